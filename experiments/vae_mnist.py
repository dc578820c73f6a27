"""Convolutional VAE on binarised MNIST: Bernoulli likelihood, dynamic binarisation.

Needs network once (TFDS downloads mnist into data.data_dir):
  jaxgen train --config experiments/vae_mnist.py --workdir runs/vae_mnist
  jaxgen evaluate --workdir runs/vae_mnist   # test ELBO and IWAE-1000 NLL, nats and bits/dim
Each step binarises every pixel afresh (pixel ~ Bernoulli(value/255)), the setup behind the
usual dynamically binarised MNIST numbers; evaluation uses one fixed draw. For the IWAE
training bound add --config.vae.train_k=5 (Burda et al. 2016 trained with k = 5 and 50).
Variants: `:small` shrinks the model and steps (tests feed it random images directly).
"""

from jaxgen import experiment

VARIANTS = ("small",)


def get_config(arg=None):
  return experiment.vae(
      arg, VARIANTS,
      model=dict(name="conv_vae", image_size=28, channels=1, latent_dim=32, features=32,
                 likelihood="bernoulli", num_mixtures=10, blocks=1, hidden=256),
      small_model=dict(latent_dim=4, features=8),
      # normalize='unit': the family binarises [0, 1] pixels on device each step.
      data=dict(name="mnist", normalize="unit"),
      total_steps=50_000, sample_every=5000, checkpoint_every=5000, eval_every=10_000)
