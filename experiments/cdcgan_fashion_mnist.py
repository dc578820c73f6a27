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

from jaxgen import experiment

VARIANTS = ("small",)


def get_config(arg=None):
  return experiment.gan(
      arg, VARIANTS,
      model=experiment.dcgan_model(num_classes=10, norm="none", spectral_norm=True),
      optim=dict(generator=dict(learning_rate=1e-4, b1=0.0, b2=0.9),
                 discriminator=dict(learning_rate=4e-4, b1=0.0, b2=0.9)),
      gan=dict(loss="hinge"),
      num_samples=100,  # 10 per class: one column per class in the grids.
      per_variant=dict(small=dict(num_samples=20)))
