"""DCGAN on Fashion-MNIST (28×28 grey), non-saturating loss, two Adam optimisers.

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/dcgan_fashion_mnist.py --workdir runs/dcgan
Variants: `:demo` trains on the bundled 10k-image subset in a few CPU minutes (`make demo`);
`:small` is a seconds-long smoke run with tiny networks (tests).
"""

from jaxgen import experiment

VARIANTS = ("demo", "small")


def get_config(arg=None):
  # Non-saturating loss, no penalties, no DiffAugment: the GAN builder's DCGAN recipe.
  return experiment.gan(
      arg, VARIANTS,
      model=experiment.dcgan_model(norm="batch"),
      per_variant=dict(demo=dict(model=dict(generator=dict(features=32),
                                            discriminator=dict(features=32)))))
