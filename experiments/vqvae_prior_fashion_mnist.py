"""A learned prior for the VQ-VAE (van den Oord et al. 2017): a Gated PixelCNN over the 7×7
code grid of a VQ-VAE trained first (experiments/vqvae_fashion_mnist.py), its samples decoded
by that VQ-VAE, its NLL the VQ-VAE's bound with this prior instead of the uniform one.

Run (full Fashion-MNIST), the autoencoder first:
  jaxgen train --config experiments/vqvae_fashion_mnist.py --workdir runs/vqvae
  jaxgen train --config experiments/vqvae_prior_fashion_mnist.py --workdir runs/vqvae_prior \\
      --config.autoregressive.autoencoder_from=runs/vqvae
  jaxgen evaluate --workdir runs/vqvae_prior  # bits/dim with the prior, and the uniform's
  jaxgen sample --workdir runs/vqvae_prior --num 100 --out samples.png --prompt "sneaker"
The VQ-VAE's weights and codebook are copied into this run's state at step 0 (as latent
diffusion's are), so sampling, evaluating and resuming need runs/vqvae_prior alone; codes
are encoded on the fly. Class-conditional (a class bias in every gate), as the other
conditional models here. Variants: `:demo` the bundled subset (its VQ-VAE from
vqvae_fashion_mnist.py:demo); `:small` a smoke run on vqvae_fashion_mnist.py:small's codes.
"""

import os

from jaxgen import config as config_lib
from jaxgen import experiment

VARIANTS = ("demo", "small")
AUTOENCODER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vqvae_fashion_mnist.py")


def get_config(arg=None):
  autoencoder = config_lib.load_file(AUTOENCODER + (":small" if arg == "small" else "")).model
  return experiment.autoregressive(
      arg, VARIANTS, autoencoder=autoencoder,
      # Receptive field 3 + 7·1 = 10 rows up and columns either side: the whole 7×7 grid.
      model=dict(name="gated_pixelcnn", likelihood="categorical", image_size=7, channels=1,
                 features=64, num_layers=8, kernel_size=3, first_kernel_size=7,
                 head_features=256, num_classes=10),
      small_model=dict(features=4, num_layers=2, head_features=8),
      batch_size=128, total_steps=3000, sample_every=1000, checkpoint_every=1000,
      eval_every=3000, num_samples=100)
