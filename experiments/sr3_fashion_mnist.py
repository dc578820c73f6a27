"""SR3 super-resolution on Fashion-MNIST: 7×7 → 28×28 (×4) by conditional diffusion.

The U-Net (EDM's preconditioning and loss, unconditional in class) takes the bicubically
upsampled low-resolution image as an extra input channel; each training batch is degraded
on the fly (`jaxgen.superres`: box ÷4, 8-bit), so nothing extra is stored. Sampled with
DPM-Solver++(2M) in 10 steps. Evaluation upscales the degraded test images and reports PSNR
and SSIM against the originals beside bicubic upsampling of the same images;
WORKDIR/samples/ gets grids of 32 fixed images as bicubic, upscaled and original rows.

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/sr3_fashion_mnist.py --workdir runs/sr3
  jaxgen evaluate --workdir runs/sr3   # PSNR/SSIM against bicubic, and the bound
  jaxgen upscale --workdir runs/sr3 --in low.png --out high.png   # a 7×7 image → 28×28
Variants: `:x2` is 14×14 → 28×28; `:cpu` the 2-core CPU's size (features 16, batch 64);
`:cifar10` CIFAR-10 16×16 → 32×32 RGB (TFDS, network once; width 64, attention at 8×8);
`:demo` the bundled subset; `:small` a seconds-long smoke run (tests). Blur and noise in the
degradation: --config.superres.blur=S --config.superres.noise=S.
"""

from jaxgen import experiment

VARIANTS = ("x2", "cpu", "cifar10", "demo", "small")


def get_config(arg=None):
  return experiment.diffusion(
      arg, VARIANTS,
      model=dict(name="unet", image_size=28, channels=1, features=32, multipliers=(1, 2, 2),
                 blocks=2, attention=(7,), dropout=0.1, num_classes=0),
      superres=dict(factor=4, upsample="cubic"),
      diffusion=dict(label_dropout=0.0),
      sampling=dict(sampler="dpmpp_2m", steps=10),
      per_variant=dict(x2=dict(superres=dict(factor=2)),
                       cpu=dict(model=dict(features=16), batch_size=64, total_steps=2000,
                                checkpoint_every=400, eval_every=0),
                       cifar10=dict(data=dict(name="cifar10"), superres=dict(factor=2),
                                    model=dict(image_size=32, channels=3, cond_channels=3,
                                               features=64, attention=(8,)))))
