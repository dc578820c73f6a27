"""Unconditional DDPM on Fashion-MNIST (28×28 grey): VP diffusion with the linear β schedule
(β from 0.1 to 20 in continuous time), ε-prediction and the plain ε MSE (Ho et al. 2020),
the same U-Net as edm_fashion_mnist.py without classes. Sampled with DDIM (η = 0, 50 steps);
DDPM's own ancestral sampler is --config.sampling.sampler=ddpm.

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/ddpm_fashion_mnist.py --workdir runs/ddpm
  jaxgen sample --workdir runs/ddpm --num 100 --out samples.png --config.sampling.steps=20
  jaxgen evaluate --workdir runs/ddpm   # denoising errors and the bound in bits/dim
The cosine schedule (Nichol & Dhariwal 2021) is --config.diffusion.schedule=vp_cosine.
Variants: `:demo` (the bundled subset, CPU minutes) and `:small` (tests).
"""

from jaxgen import experiment

VARIANTS = ("demo", "small")


def get_config(arg=None):
  return experiment.diffusion(
      arg, VARIANTS,
      model=dict(name="unet", image_size=28, channels=1, features=32, multipliers=(1, 2, 2),
                 blocks=2, attention=(7,), dropout=0.1, num_classes=0),
      diffusion=dict(schedule="vp_linear", target="eps", weighting="uniform",
                     label_dropout=0.0),
      sampling=dict(sampler="ddim", steps=50))
