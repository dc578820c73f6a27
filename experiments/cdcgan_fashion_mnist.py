"""Class-conditional DCGAN on Fashion-MNIST: hinge loss, spectral norm, projection discriminator.

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/cdcgan_fashion_mnist.py --workdir runs/cdcgan
  jaxgen sample --workdir runs/cdcgan --num 100 --out classes.png   # a column per class
  jaxgen sample --workdir runs/cdcgan --label 7 --num 64 --out sneakers.png
The generator appends a label embedding to z; the discriminator is DCGAN's with spectral
normalisation instead of BatchNorm and a projection head (Miyato & Koyama, 2018). Two time-
scale learning rates (D 4e-4, G 1e-4, Adam β=(0, 0.9)) as in SAGAN.
Variants: `:small` is a seconds-long smoke run with tiny networks (tests).
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
  config.num_samples = 100  # 10 per class: one column per class in the grids.
  config.ema_decay = 0.999
  config.evaluation.sample_metrics = True
  config.gan = gan.default_options()
  config.gan.loss = "hinge"
  config.model = ml_collections.ConfigDict(dict(
      num_classes=10,
      generator=dict(name="dcgan_generator", image_size=28, channels=1, features=64,
                     latent_dim=100),
      discriminator=dict(name="dcgan_discriminator", image_size=28, channels=1, features=64,
                         norm="none", spectral_norm=True),
  ))
  config.optim = ml_collections.ConfigDict(dict(
      generator=optim.default_config(learning_rate=1e-4, b1=0.0),
      discriminator=optim.default_config(learning_rate=4e-4, b1=0.0),
  ))
  config.optim.generator.b2 = config.optim.discriminator.b2 = 0.9
  if arg == "small":
    config_lib.smoke_run(config)
    config.num_samples = 20
    config.model.generator.update(features=8, latent_dim=16)
    config.model.discriminator.features = 8
    config.evaluation.update(feature_network="fashion_mnist_small", num_samples=200,
                             max_stored_features=200, kid_subsets=10, kid_subset_size=50)
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'small'")
  return config
