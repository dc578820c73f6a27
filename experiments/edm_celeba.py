"""EDM diffusion on CelebA at 64×64 conditioned on its 40 binary attributes, for users with
network (TFDS downloads celeb_a, about 1.4 GB, into data.data_dir once): the attributes come
from the dataset itself (data.attributes='tfds'), label dropout makes the vector null for
classifier-free guidance, and prompts name attributes.

  jaxgen train --config experiments/edm_celeba.py --workdir runs/edm_celeba
  jaxgen sample --workdir runs/edm_celeba --num 16 --prompt "Smiling,Eyeglasses" \\
      --config.sampling.guidance=2 --out smiling_eyeglasses.png
The faces are centre-cropped to 178×178 and resized to 64×64; 64 → 32 → 16 → 8, attention at
16×16, horizontal flips. Variants: `:demo` (short, needs the download) and `:small` (tests
feed random images and attribute vectors).
"""

from jaxgen import experiment

VARIANTS = ("demo", "small")


def get_config(arg=None):
  return experiment.diffusion(
      arg, VARIANTS,
      model=dict(name="unet", image_size=64, channels=3, features=64, multipliers=(1, 2, 2, 2),
                 blocks=2, attention=(16,), dropout=0.1, num_classes=0, num_attributes=40),
      data=dict(name="celeb_a", image_size=64, channels=3, attributes="tfds",
                augment=dict(flip=True)),
      sampling=dict(sampler="dpmpp_2m", steps=20),
      total_steps=200_000, sample_every=5000, checkpoint_every=5000, eval_every=20_000)
