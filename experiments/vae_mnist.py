"""Convolutional VAE on binarised MNIST: Bernoulli likelihood, dynamic binarisation.

Needs network once (TFDS downloads mnist into data.data_dir):
  jaxgen train --config experiments/vae_mnist.py --workdir runs/vae_mnist
  jaxgen evaluate --workdir runs/vae_mnist   # test ELBO and IWAE-1000 NLL, nats and bits/dim
Each step binarises every pixel afresh (pixel ~ Bernoulli(value/255)), the setup behind the
usual dynamically binarised MNIST numbers; evaluation uses one fixed draw. For the IWAE
training bound add --config.vae.train_k=5 (Burda et al. 2016 trained with k = 5 and 50).
Variants: `:small` shrinks the model and steps (tests feed it random images directly).
"""

import ml_collections

from jaxgen import config as config_lib, optim
from jaxgen.families import vae


def get_config(arg=None):
  config = config_lib.base_config()
  config.family = "vae"
  config.data.name = "mnist"
  config.data.normalize = "unit"  # The family binarises [0, 1] pixels on device each step.
  config.batch_size = 128
  config.total_steps = 50_000
  config.log_every = 200
  config.sample_every = 5000
  config.checkpoint_every = 5000
  config.eval_every = 10_000
  config.model = ml_collections.ConfigDict(dict(
      name="conv_vae", image_size=28, channels=1, latent_dim=32, features=32,
      likelihood="bernoulli", num_mixtures=10, blocks=1))
  config.vae = vae.default_options()
  config.optim = optim.default_config(learning_rate=1e-3)
  if arg == "small":
    config.batch_size = 8
    config.eval_batch_size = 64
    config.total_steps = 2
    config.log_every = config.sample_every = config.checkpoint_every = 1
    config.eval_every = 0
    config.num_samples = 8
    config.model.update(latent_dim=4, features=8)
    config.evaluation.iwae_k = 8
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'small'")
  return config
