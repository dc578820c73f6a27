"""SRGAN super-resolution on Fashion-MNIST: 7×7 → 28×28 (×4), a residual generator against a
discriminator.

The generator (`srresnet`: 8 residual blocks of width 64, two ×2 sub-pixel stages) adds a
residual to the bicubic upsampling of its input; the discriminator is DCGAN's. Each
training batch is degraded on the fly (`jaxgen.superres`: box ÷4, 8-bit), as for SR3, so
the two models see the same pairs. The loss is L1 plus 10⁻³ of the non-saturating GAN loss
(`--config.srgan.feature_weight=W` adds the feature network's MSE; it needs `jaxgen
train-features --dataset fashion_mnist` first). Evaluation upscales the degraded test
images and reports PSNR and SSIM against the originals beside bicubic upsampling;
WORKDIR/samples/ gets grids of 16 fixed images as bicubic, upscaled and original rows.

Run (full Fashion-MNIST; offline it prepares from Debian's dataset-fashion-mnist files):
  jaxgen train --config experiments/srgan_fashion_mnist.py --workdir runs/srgan
  jaxgen evaluate --workdir runs/srgan   # PSNR/SSIM against bicubic
  jaxgen evaluate --workdir runs/srgan --config.evaluation.sample_metrics=True   # and FID
  jaxgen upscale --workdir runs/srgan --in low.png --out high.png   # a 7×7 image → 28×28
Variants: `:x2` is 14×14 → 28×28; `:cpu` the 2-core CPU's size; `:cifar10` CIFAR-10
16×16 → 32×32 RGB (TFDS, network once); `:demo` the bundled subset; `:small` a seconds-long
smoke run (tests). `--config.srgan.adversarial_weight=0` is SRResNet (pixel loss alone).
"""

from jaxgen import experiment

VARIANTS = ("x2", "cpu", "cifar10", "demo", "small")


def get_config(arg=None):
  return experiment.srgan(
      arg, VARIANTS,
      model=dict(image_size=28, channels=1,
                 generator=dict(name="srresnet", features=64, blocks=8),
                 discriminator=dict(name="dcgan_discriminator", features=64)),
      superres=dict(factor=4, upsample="cubic"),
      per_variant=dict(x2=dict(superres=dict(factor=2)),
                       cpu=dict(total_steps=2000, checkpoint_every=500, eval_every=0),
                       cifar10=dict(data=dict(name="cifar10"), superres=dict(factor=2),
                                    model=dict(image_size=32, channels=3))))
