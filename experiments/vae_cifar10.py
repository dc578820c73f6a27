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

from jaxgen import experiment

VARIANTS = ("small",)


def get_config(arg=None):
  return experiment.vae(
      arg, VARIANTS,
      model=dict(name="conv_vae", image_size=32, channels=3, latent_dim=128, features=64,
                 likelihood="logistic_mixture", num_mixtures=10, blocks=2, hidden=256),
      small_model=dict(latent_dim=4, features=8, num_mixtures=2, blocks=1),
      data=dict(name="cifar10", normalize="integer"),  # 8-bit values: discrete.
      total_steps=100_000, log_every=500, sample_every=5000, checkpoint_every=5000,
      eval_every=20_000, ema_decay=0.999, vae=dict(kl_warmup_steps=10_000),
      optim=dict(learning_rate=5e-4, schedule="cosine", warmup_steps=1000))
