"""SNGAN on CIFAR-10 (32×32 RGB): residual G and D, spectral norm, hinge loss, n_critic 5.

Needs network once (TFDS downloads cifar10 into data.data_dir):
  jaxgen train --config experiments/sngan_cifar10.py --workdir runs/sngan_cifar10
  jaxgen train --config experiments/sngan_cifar10.py:conditional --workdir runs/sngan_c10
Sample metrics use the Inception network, imported from a local weights file
(`jaxgen import-inception --weights pt_inception-2015-12-05-6726825d.pth`).
Hyper-parameters from Miyato et al. (2018): Adam(2e-4, β=(0, 0.9)), 64 fakes per critic
update, 5 critic updates per generator update. `:conditional` adds labels (projection D).
`:diffaugment` trains on 10% of the data with DiffAugment, the small-data setting.
"""

import ml_collections

from jaxgen import config as config_lib, optim
from jaxgen.families import gan


def get_config(arg=None):
  config = config_lib.base_config()
  config.family = "gan"
  config.data.name = "cifar10"
  config.data.normalize = "symmetric"
  config.data.augment.flip = True
  config.batch_size = 5 * 64
  config.total_steps = 50_000
  config.log_every = 100
  config.sample_every = 2000
  config.checkpoint_every = 2000
  config.eval_every = 10_000
  config.ema_decay = 0.9999
  config.evaluation.update(sample_metrics=True, feature_network="inception_v3",
                           num_samples=50_000, max_stored_features=10_000)
  config.gan = gan.default_options()
  config.gan.update(dict(loss="hinge", n_critic=5))
  config.model = ml_collections.ConfigDict(dict(
      num_classes=0,
      generator=dict(name="resnet_generator", image_size=32, channels=3, features=128,
                     latent_dim=128),
      discriminator=dict(name="resnet_discriminator", image_size=32, channels=3, features=128,
                         spectral_norm=True),
  ))
  config.optim = ml_collections.ConfigDict(dict(
      generator=optim.default_config(learning_rate=2e-4, b1=0.0),
      discriminator=optim.default_config(learning_rate=2e-4, b1=0.0),
  ))
  config.optim.generator.b2 = config.optim.discriminator.b2 = 0.9
  if arg == "conditional":
    config.model.num_classes = 10
    config.num_samples = 100
  elif arg == "diffaugment":
    config.data.train_split = "train[:10%]"
    config.gan.diffaugment = "color,translation,cutout"
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'conditional' or 'diffaugment'")
  return config
