"""VQ-VAE on 8-bit Fashion-MNIST: a 7x7 grid of codes from a 256-entry EMA codebook, decoded
through PixelCNN++'s discretised logistic mixture.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/vqvae_fashion_mnist.py --workdir runs/vqvae
  jaxgen evaluate --workdir runs/vqvae      # test NLL bound, nats and bits/dim
  jaxgen sample --workdir runs/vqvae --reconstruct --num 32 --out recon.png
Its NLL bound takes the uniform prior over codes (models/vqvae.py): reconstruction + 49·ln 256
nats, with IWAE-k equal to it. Reconstructions are where a VQ-VAE shines; samples from the
uniform prior are noise-like patchworks: experiments/vqvae_prior_fashion_mnist.py trains the
learned prior over this run's codes that makes them garments.
train/perplexity and train/codes_used watch the codebook's usage.
Variants: `:demo` on the bundled subset in a few CPU minutes; `:small` a smoke run (tests).
"""

from jaxgen import experiment

VARIANTS = ("demo", "small")


def get_config(arg=None):
  config = experiment.vae(
      arg, VARIANTS,
      model=dict(name="vqvae", image_size=28, channels=1, num_codes=256, code_dim=16,
                 features=32, decay=0.99, likelihood="logistic_mixture", num_mixtures=10),
      small_model=dict(num_codes=16, code_dim=4, features=8, num_mixtures=2),
      data=dict(name="fashion_mnist", normalize="integer"))  # 8-bit values: discrete.
  # The bound does not depend on k (a deterministic posterior): one pass is enough, in every
  # variant (:small's k included).
  config.evaluation.iwae_k = 1
  return config
