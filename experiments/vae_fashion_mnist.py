"""Convolutional VAE on 8-bit Fashion-MNIST: PixelCNN++'s discretised logistic mixture.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/vae_fashion_mnist.py --workdir runs/vae
  jaxgen evaluate --workdir runs/vae     # test ELBO and IWAE-1000 NLL, nats and bits/dim
A discrete likelihood on the 8-bit pixels, so bits/dim is a true bound on the data's NLL.
Other likelihoods on the same data:
  256-way categorical:  --config.model.likelihood=categorical
  Gaussian, dequantised (a bound via the Jacobian of /256):  --config.model.likelihood=gaussian
      --config.data.normalize=unit --config.data.dequantize=true
Objective knobs: --config.vae.beta, .kl_warmup_steps, .free_bits, .train_k (IWAE bound).
Binarised Fashion-MNIST (Bernoulli) is experiments/vae_binarized_fashion_mnist.py.
Variants: `:demo` on the bundled subset in a few CPU minutes; `:small` a smoke run (tests).
"""

from jaxgen import experiment

VARIANTS = ("demo", "small")


def get_config(arg=None):
  return experiment.vae(
      arg, VARIANTS,
      model=dict(name="conv_vae", image_size=28, channels=1, latent_dim=32, features=32,
                 likelihood="logistic_mixture", num_mixtures=10, blocks=0, hidden=256),
      small_model=dict(latent_dim=4, features=8, num_mixtures=2),
      data=dict(name="fashion_mnist", normalize="integer"))  # 8-bit values: discrete.
