"""Latent diffusion on Fashion-MNIST (Stable Diffusion's design at 28×28): class-conditional
EDM on the 7×7×16 code grid of a VQ-VAE trained first (experiments/vqvae_fashion_mnist.py),
decoded back to pixels by that VQ-VAE (`jaxgen.latents`).

Run (full Fashion-MNIST), the autoencoder first:
  jaxgen train --config experiments/vqvae_fashion_mnist.py --workdir runs/vqvae
  jaxgen train --config experiments/ldm_fashion_mnist.py --workdir runs/ldm \\
      --config.diffusion.autoencoder_from=runs/vqvae
  jaxgen sample --workdir runs/ldm --num 100 --out samples.png --prompt "ankle boot"
  jaxgen evaluate --workdir runs/ldm --config.evaluation.sample_metrics=True
The autoencoder's weights and codebook are copied into this run's state at step 0, so
sampling, evaluating and resuming need runs/ldm alone. The U-Net has one resolution (7 does
not halve). Variants: `:cpu` the 2-core CPU budget beside edm_fashion_mnist:cpu (the
benchmarks' latent-vs-pixel comparison); `:demo` the bundled subset (its VQ-VAE from
vqvae_fashion_mnist.py:demo); `:small` a smoke run on vqvae_fashion_mnist.py:small's codes.
"""

import os

from jaxgen import config as config_lib
from jaxgen import experiment

VARIANTS = ("demo", "cpu", "small")
AUTOENCODER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vqvae_fashion_mnist.py")


def get_config(arg=None):
  autoencoder = config_lib.load_file(AUTOENCODER + (":small" if arg == "small" else "")).model
  config = experiment.diffusion(
      arg, VARIANTS, autoencoder=autoencoder,
      model=dict(name="unet", image_size=7, channels=autoencoder.code_dim, features=64,
                 multipliers=(1,), blocks=2, attention=(7,), dropout=0.0, num_classes=10),
      small_model=dict(channels=autoencoder.code_dim, multipliers=(1,)),
      # Standardised latents have unit variance: EDM's σ_data is 1 there, not 0.5.
      diffusion=dict(sigma_data=1.0),
      sampling=dict(sampler="dpmpp_2m", steps=10, guidance=2.0),
      per_variant=dict(cpu=dict(batch_size=64, total_steps=2900, sample_every=800,
                                checkpoint_every=400, eval_every=0)))
  return config
