"""Class-conditional EDM diffusion on Fashion-MNIST (28×28 grey): a U-Net denoiser with EDM's
preconditioning, log-normal σ and loss weighting, label dropout for classifier-free guidance,
sampled with EDM's Heun sampler (18 steps, 35 network evaluations).

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/edm_fashion_mnist.py --workdir runs/edm
  jaxgen sample --workdir runs/edm --num 100 --out samples.png --config.sampling.guidance=2
  jaxgen evaluate --workdir runs/edm   # denoising errors and the bound in bits/dim
Variants: `:demo` trains on the bundled 10k-image subset in CPU minutes; `:cpu` is the
full data at a 2-core CPU's scale (features 16, batch 64, no dropout, 5,500 steps: about an
hour at ~100 images/s on an AVX-512 EPYC, sampled with DPM-Solver++(2M) in 20 steps at
guidance 1.5; benchmarks/README.md has its FID against cdcgan's); `:small` is a seconds-long
smoke run
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
      # against 16.2 at batch 64, benchmarks/throughput.py), so an hour sees ~6 epochs, too
      # few for dropout to help. Sampled with DPM-Solver++(2M): it beat Heun at every NFE up
      # to 35 at 3 epochs; at 6 epochs guidance 1.25 and 1.5 tied ahead of 1, 2 and 3, and
      # 20 steps beat 10 (one run, 2,000 samples each; benchmarks/README.md).
      per_variant=dict(cpu=dict(model=dict(features=16, dropout=0.0), batch_size=64,
                                total_steps=5500, sample_every=800, checkpoint_every=400,
                                eval_every=0,
                                sampling=dict(sampler="dpmpp_2m", steps=20, guidance=1.5))))
