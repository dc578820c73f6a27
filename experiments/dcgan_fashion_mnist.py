"""DCGAN on Fashion-MNIST (28×28 grey), non-saturating loss, two Adam optimisers.

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/dcgan_fashion_mnist.py --workdir runs/dcgan
Variants: `:demo` trains on the bundled 10k-image subset in a few CPU minutes (`make demo`);
`:small` is a seconds-long smoke run with tiny networks (tests).
"""

import ml_collections

from jaxgen import config as config_lib, optim
from jaxgen.families import gan


def get_config(arg=None):
  config = config_lib.base_config()
  config.family = "gan"
  config.data.name = "fashion_mnist"
  config.data.normalize = "symmetric"  # tanh generator output.
  config.batch_size = 64
  config.total_steps = 10_000
  config.log_every = 100
  config.sample_every = 1000
  config.checkpoint_every = 1000
  config.eval_every = 5000
  config.ema_decay = 0.999
  config.evaluation.sample_metrics = True  # FID/KID/precision/recall (`jaxgen train-features`).
  config.gan = gan.default_options()  # Non-saturating loss, no penalties, no DiffAugment.
  config.model = ml_collections.ConfigDict(dict(
      num_classes=0,
      generator=dict(name="dcgan_generator", image_size=28, channels=1, features=64,
                     latent_dim=100),
      discriminator=dict(name="dcgan_discriminator", image_size=28, channels=1, features=64,
                         norm="batch"),
  ))
  config.optim = ml_collections.ConfigDict(dict(
      generator=optim.default_config(learning_rate=2e-4, b1=0.5),
      discriminator=optim.default_config(learning_rate=2e-4, b1=0.5),
  ))
  if arg == "demo":
    config.data.name = "fashion_mnist_small"
    config.total_steps = 3000
    config.log_every = 50
    config.sample_every = 500
    config.checkpoint_every = 1000
    config.eval_every = 3000
    config.model.generator.features = 32
    config.model.discriminator.features = 32
  elif arg == "small":
    config_lib.smoke_run(config)
    config.num_samples = 8
    config.model.generator.update(features=8, latent_dim=16)
    config.model.discriminator.features = 8
    config.evaluation.update(feature_network="fashion_mnist_small", num_samples=200,
                             max_stored_features=200, kid_subsets=10, kid_subset_size=50)
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'demo' or 'small'")
  return config
