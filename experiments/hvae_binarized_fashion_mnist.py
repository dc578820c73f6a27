"""Two-level hierarchical VAE (top-down inference) on dynamically binarised Fashion-MNIST.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/hvae_binarized_fashion_mnist.py --workdir runs/hvae_bin
  jaxgen evaluate --workdir runs/hvae_bin   # test ELBO and IWAE-1000 NLL, nats and bits/dim
The same data protocol as experiments/vae_binarized_fashion_mnist.py, so the two NLLs
compare directly. z2 is a 32-vector, z1 a 7x7x8 grid (models/hvae.py); free bits keep the
392 lower-level dimensions from collapsing onto their prior early in training.
Variants: `:demo` on the bundled subset in a few CPU minutes; `:small` a smoke run (tests).
"""

from jaxgen import experiment

VARIANTS = ("demo", "small")


def get_config(arg=None):
  return experiment.vae(
      arg, VARIANTS,
      model=dict(name="hvae", image_size=28, channels=1, latent_dim=32, latent_channels=8,
                 features=32, likelihood="bernoulli", num_mixtures=10),
      small_model=dict(latent_dim=4, latent_channels=2, features=8),
      # normalize='unit': the family binarises [0, 1] pixels on device each step.
      data=dict(name="fashion_mnist", normalize="unit"),
      vae=dict(kl_warmup_steps=2000))
