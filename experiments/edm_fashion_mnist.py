"""Class-conditional EDM diffusion on Fashion-MNIST (28×28 grey): a U-Net denoiser with EDM's
preconditioning, log-normal σ and loss weighting, label dropout for classifier-free guidance,
sampled with EDM's Heun sampler (18 steps, 35 network evaluations).

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/edm_fashion_mnist.py --workdir runs/edm
  jaxgen sample --workdir runs/edm --num 100 --out samples.png --config.sampling.guidance=2
Variants: `:demo` trains on the bundled 10k-image subset in CPU minutes; `:small` is a
seconds-long smoke run with a tiny U-Net (tests). Other objectives are one override away,
e.g. DDPM's: --config.diffusion.schedule=vp_linear --config.diffusion.target=eps
--config.diffusion.weighting=uniform.
"""

from jaxgen import experiment, optim
from jaxgen.families import diffusion

VARIANTS = ("demo", "small")


def get_config(arg=None):
  return experiment.build(
      "diffusion", arg, VARIANTS,
      model=dict(name="unet", image_size=28, channels=1, features=32, multipliers=(1, 2, 2),
                 blocks=2, attention=(7,), dropout=0.1, num_classes=10),
      small_model=dict(features=8, blocks=1, multipliers=(1, 2), attention=()),
      sections=dict(diffusion=diffusion.default_options(),
                    optim=optim.default_config(learning_rate=5e-4)),
      data=dict(name="fashion_mnist", normalize="symmetric"),
      optim=dict(warmup_steps=500, grad_clip=1.0),
      batch_size=128, total_steps=20_000, log_every=100, sample_every=2000,
      checkpoint_every=1000, eval_every=5000, ema_decay=0.999, num_samples=100,
      recipes=dict(
          demo=dict(total_steps=2000, sample_every=500, eval_every=2000,
                    sampling=dict(preview_steps=10)),
          small=dict(num_samples=4, sampling=dict(steps=2))))
