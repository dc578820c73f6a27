"""Residual convolutional VAE on 8-bit CIFAR-10 (32×32 RGB): discretised logistic mixture.

Needs network once (TFDS downloads cifar10 into data.data_dir):
  jaxgen train --config experiments/vae_cifar10.py --workdir runs/vae_cifar10
  jaxgen evaluate --workdir runs/vae_cifar10   # test ELBO and IWAE-1000 NLL, bits/dim
PixelCNN++'s likelihood (Salimans et al. 2017): per pixel a mixture of 10 logistics with
G's mean linear in R and B's in R and G, on the 8-bit values, so bits/dim is a true bound.
Expect well above PixelCNN++'s 2.92 bits/dim: this decoder's pixels are independent given
z. KL warm-up over the first 10k steps (Sønderby et al. 2016) guards against posterior collapse.
Variants: `:small` shrinks the model and steps (tests feed it random images directly).
"""

import ml_collections

from jaxgen import config as config_lib, optim
from jaxgen.families import vae


def get_config(arg=None):
  config = config_lib.base_config()
  config.family = "vae"
  config.data.name = "cifar10"
  config.data.normalize = "integer"  # 8-bit values: the likelihood is discrete.
  config.batch_size = 128
  config.total_steps = 100_000
  config.log_every = 500
  config.sample_every = 5000
  config.checkpoint_every = 5000
  config.eval_every = 20_000
  config.ema_decay = 0.999
  config.model = ml_collections.ConfigDict(dict(
      name="conv_vae", image_size=32, channels=3, latent_dim=128, features=64,
      likelihood="logistic_mixture", num_mixtures=10, blocks=2))
  config.vae = vae.default_options()
  config.vae.kl_warmup_steps = 10_000
  config.optim = optim.default_config(learning_rate=5e-4)
  config.optim.update(schedule="cosine", warmup_steps=1000)
  if arg == "small":
    config.batch_size = 8
    config.eval_batch_size = 64
    config.total_steps = 2
    config.log_every = config.sample_every = config.checkpoint_every = 1
    config.eval_every = 0
    config.num_samples = 8
    config.model.update(latent_dim=4, features=8, num_mixtures=2, blocks=1)
    config.evaluation.iwae_k = 8
  elif arg is not None:
    raise ValueError(f"unknown variant {arg!r}: expected 'small'")
  return config
