"""Two-level hierarchical VAE (top-down inference) on dynamically binarised Fashion-MNIST.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/hvae_binarized_fashion_mnist.py --workdir runs/hvae_bin
  jaxgen evaluate --workdir runs/hvae_bin   # test ELBO and IWAE-1000 NLL, nats and bits/dim
The same data protocol as experiments/vae_binarized_fashion_mnist.py, so the two NLLs
compare directly. z2 is a 32-vector, z1 a 7x7x8 grid (models/hvae.py); free bits keep the
392 lower-level dimensions from collapsing onto their prior early in training.
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
      name="hvae", image_size=28, channels=1, latent_dim=32, latent_channels=8, features=32,
      likelihood="bernoulli", num_mixtures=10))
  config.vae = vae.default_options()
  config.vae.kl_warmup_steps = 2000
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
    config.model.update(latent_dim=4, latent_channels=2, features=8)
    config.evaluation.iwae_k = 8
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'demo' or 'small'")
  return config
