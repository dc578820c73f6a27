"""Class-conditional EDM diffusion on Fashion-MNIST (28×28 grey): a U-Net denoiser with EDM's
preconditioning, log-normal σ and loss weighting, label dropout for classifier-free guidance,
sampled with EDM's Heun sampler (18 steps, 35 network evaluations).

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/edm_fashion_mnist.py --workdir runs/edm
  jaxgen sample --workdir runs/edm --num 100 --out samples.png --config.sampling.guidance=2
  jaxgen evaluate --workdir runs/edm   # denoising errors and the bound in bits/dim
Variants: `:demo` trains on the bundled 10k-image subset in CPU minutes; `:cpu` is the
full data at a 2-core CPU's scale (features 16, batch 64, no dropout, 2,900 steps: about an
hour at ~53 images/s, sampled with DPM-Solver++(2M) in 10 steps at guidance 2: FID 6.24,
benchmarks/README.md); `:small` is a seconds-long smoke run
with a tiny U-Net (tests). DDPM's objective is
experiments/ddpm_fashion_mnist.py.
"""

from jaxgen import experiment

VARIANTS = ("demo", "cpu", "small")


def get_config(arg=None):
  return experiment.diffusion(
      arg, VARIANTS,
      model=dict(name="unet", image_size=28, channels=1, features=32, multipliers=(1, 2, 2),
                 blocks=2, attention=(7,), dropout=0.1, num_classes=10),
      # A quarter of the FLOPs of features 32 and 3.5x the images/s on 2 CPU cores (57.8
      # against 16.2 at batch 64, benchmarks/throughput.py), so an hour sees ~3 epochs, too
      # few for dropout to help. Sampled with DPM-Solver++(2M) in 10 steps: at this much
      # training it beat Heun at every NFE up to 35, and guidance 2 beat 1, 1.5 and 3
      # (benchmarks/README.md).
      per_variant=dict(cpu=dict(model=dict(features=16, dropout=0.0), batch_size=64,
                                total_steps=2900, sample_every=800, checkpoint_every=400,
                                eval_every=0,
                                sampling=dict(sampler="dpmpp_2m", steps=10, guidance=2.0))))
