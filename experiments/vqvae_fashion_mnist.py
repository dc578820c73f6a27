"""VQ-VAE on 8-bit Fashion-MNIST: a 7x7 grid of codes from a 256-entry EMA codebook, decoded
through PixelCNN++'s discretised logistic mixture.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/vqvae_fashion_mnist.py --workdir runs/vqvae
  jaxgen evaluate --workdir runs/vqvae      # test NLL bound, nats and bits/dim
  jaxgen sample --workdir runs/vqvae --reconstruct --num 32 --out recon.png
Its NLL bound takes the uniform prior over codes (models/vqvae.py): reconstruction + 49·ln 256
nats, with IWAE-k equal to it. Reconstructions are where a VQ-VAE shines; samples from the
uniform prior are noise-like patchworks until a learned prior over the codes is added.
train/perplexity and train/codes_used watch the codebook's usage.
Variants: `:demo` on the bundled subset in a few CPU minutes; `:small` a smoke run (tests).
"""

import ml_collections

from jaxgen import config as config_lib, optim
from jaxgen.families import vae


def get_config(arg=None):
  config = config_lib.base_config()
  config.family = "vae"
  config.data.name = "fashion_mnist"
  config.data.normalize = "integer"  # 8-bit values: the likelihood is discrete.
  config.batch_size = 128
  config.total_steps = 20_000
  config.log_every = 200
  config.sample_every = 2000
  config.checkpoint_every = 2000
  config.eval_every = 5000
  config.model = ml_collections.ConfigDict(dict(
      name="vqvae", image_size=28, channels=1, num_codes=256, code_dim=16, features=32,
      decay=0.99, likelihood="logistic_mixture", num_mixtures=10))
  config.vae = vae.default_options()
  config.optim = optim.default_config(learning_rate=1e-3)
  # The bound does not depend on k (a deterministic posterior): one pass is enough.
  config.evaluation.iwae_k = 1
  if arg == "demo":
    config.data.name = "fashion_mnist_small"
    config.total_steps = 2000
    config.sample_every = 500
    config.checkpoint_every = 1000
    config.eval_every = 2000
  elif arg == "small":
    config.data.name = "fashion_mnist_small"
    config.batch_size = 8
    config.eval_batch_size = 64
    config.total_steps = 2
    config.log_every = config.sample_every = config.checkpoint_every = 1
    config.eval_every = 0
    config.num_samples = 8
    config.model.update(num_codes=16, code_dim=4, features=8, num_mixtures=2)
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'demo' or 'small'")
  return config
