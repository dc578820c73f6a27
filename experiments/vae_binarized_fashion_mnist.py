"""Convolutional VAE on Fashion-MNIST, Bernoulli likelihood on dynamically binarised images.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/vae_binarized_fashion_mnist.py --workdir runs/vae_bin
  jaxgen evaluate --workdir runs/vae_bin    # test ELBO and IWAE-1000 NLL, nats and bits/dim
Each step binarises every pixel afresh (pixel ~ Bernoulli(value/255)); evaluation uses one
fixed draw. The 8-bit likelihoods are in experiments/vae_fashion_mnist.py.
Objective knobs: --config.vae.beta, .kl_warmup_steps, .free_bits, .train_k (IWAE bound);
widths: --config.model.features, .latent_dim, .hidden (the dense layer), .blocks;
--config.model.pixel_layers=N adds a light autoregressive head over the decoder (PixelVAE).
Variants: `:demo` on the bundled subset in a few CPU minutes; `:small` a smoke run (tests);
`:long` the recipe behind the reported NLL (benchmarks/README.md, "VAE family"): a 64-d
latent, 100k ELBO steps with cosine decay (about 80 minutes on 2 CPU cores), then IWAE-10
fine-tuning from it, 4k steps and 2k more (about 45 minutes), which gives the factorised
decoder's best; then a 2-layer pixel head grown onto it, 6k ELBO steps (about 12 minutes)
and 1k IWAE-10 steps (about 18 minutes):
  jaxgen train --config experiments/vae_binarized_fashion_mnist.py:long --workdir runs/vae_long
  jaxgen train --config experiments/vae_binarized_fashion_mnist.py:long --workdir runs/vae_iwae \
      --config.init_from=runs/vae_long --config.vae.train_k=10 --config.total_steps=4000 \
      --config.optim.learning_rate=3e-4
  jaxgen train --config experiments/vae_binarized_fashion_mnist.py:long --workdir runs/vae_iwae2 \
      --config.init_from=runs/vae_iwae --config.vae.train_k=10 --config.total_steps=2000 \
      --config.optim.learning_rate=2e-4
  jaxgen train --config experiments/vae_binarized_fashion_mnist.py:long --workdir runs/vae_pixel \
      --config.init_from=runs/vae_iwae2 --config.model.pixel_layers=2 \
      --config.total_steps=6000 --config.optim.learning_rate=3e-4
  jaxgen train --config experiments/vae_binarized_fashion_mnist.py:long --workdir runs/vae_px10 \
      --config.init_from=runs/vae_pixel --config.model.pixel_layers=2 --config.vae.train_k=10 \
      --config.total_steps=1000 --config.optim.learning_rate=3e-4
  jaxgen evaluate --workdir runs/vae_px10    # IWAE-1000 by default in this config
"""

from jaxgen import experiment

VARIANTS = ("demo", "small", "long")


def get_config(arg=None):
  return experiment.vae(
      arg, VARIANTS,
      model=dict(name="conv_vae", image_size=28, channels=1, latent_dim=32, features=32,
                 likelihood="bernoulli", num_mixtures=10, blocks=0, hidden=256,
                 pixel_layers=0, pixel_features=16, pixel_kernel=5),
      small_model=dict(latent_dim=4, features=8),
      # normalize='unit': the family binarises [0, 1] pixels on device each step.
      data=dict(name="fashion_mnist", normalize="unit"),
      per_variant=dict(long=dict(
          model=dict(latent_dim=64), optim=dict(schedule="cosine"), total_steps=100_000,
          sample_every=10_000, checkpoint_every=5000, eval_every=20_000)))
