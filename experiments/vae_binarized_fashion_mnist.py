"""Convolutional VAE on Fashion-MNIST, Bernoulli likelihood on dynamically binarised images.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/vae_binarized_fashion_mnist.py --workdir runs/vae_bin
  jaxgen evaluate --workdir runs/vae_bin    # test ELBO and IWAE-1000 NLL, nats and bits/dim
Each step binarises every pixel afresh (pixel ~ Bernoulli(value/255)); evaluation uses one
fixed draw. The 8-bit likelihoods are in experiments/vae_fashion_mnist.py.
Objective knobs: --config.vae.beta, .kl_warmup_steps, .free_bits, .train_k (IWAE bound).
Variants: `:demo` on the bundled subset in a few CPU minutes; `:small` a smoke run (tests).
"""

import ml_collections

from jaxgen import config as config_lib, optim
from jaxgen.families import vae


def get_config(arg=None):
  config = config_lib.base_config()
  config.family = "vae"
  config.data.name = "fashion_mnist"
  config.data.normalize = "unit"  # The family binarises [0, 1] pixels on device each step.
  config.batch_size = 128
  config.total_steps = 20_000
  config.log_every = 200
  config.sample_every = 2000
  config.checkpoint_every = 2000
  config.eval_every = 5000
  config.model = ml_collections.ConfigDict(dict(
      name="conv_vae", image_size=28, channels=1, latent_dim=32, features=32,
      likelihood="bernoulli", num_mixtures=10, blocks=0))
  config.vae = vae.default_options()
  config.optim = optim.default_config(learning_rate=1e-3)
  if arg == "demo":
    config.data.name = "fashion_mnist_small"
    config.total_steps = 2000
    config.sample_every = 500
    config.checkpoint_every = 1000
    config.eval_every = 2000
  elif arg == "small":
    config.data.name = "fashion_mnist_small"
    config.batch_size = 8
    config.eval_batch_size = 64
    config.total_steps = 2
    config.log_every = config.sample_every = config.checkpoint_every = 1
    config.eval_every = 0
    config.num_samples = 8
    config.model.update(latent_dim=4, features=8)
    config.evaluation.iwae_k = 8
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'demo' or 'small'")
  return config
