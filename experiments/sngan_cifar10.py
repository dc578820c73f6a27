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

from jaxgen import experiment

VARIANTS = ("conditional", "diffaugment")


def get_config(arg=None):
  return experiment.gan(
      arg, VARIANTS,
      model=dict(num_classes=0,
                 generator=dict(name="resnet_generator", image_size=32, channels=3,
                                features=128, latent_dim=128, remat=False),
                 discriminator=dict(name="resnet_discriminator", image_size=32, channels=3,
                                    features=128, spectral_norm=True, remat=False)),
      optim=dict(generator=dict(learning_rate=2e-4, b1=0.0, b2=0.9),
                 discriminator=dict(learning_rate=2e-4, b1=0.0, b2=0.9)),
      gan=dict(loss="hinge", n_critic=5),
      data=dict(name="cifar10", augment=dict(flip=True)),
      batch_size=5 * 64, total_steps=50_000, sample_every=2000, checkpoint_every=2000,
      eval_every=10_000, ema_decay=0.9999,
      evaluation=dict(feature_network="inception_v3", num_samples=50_000,
                      max_stored_features=10_000),
      per_variant=dict(
          conditional=dict(model=dict(num_classes=10), num_samples=100),
          diffaugment=dict(data=dict(train_split="train[:10%]"),
                           gan=dict(diffaugment="color,translation,cutout"))))
