"""PixelCNN++ (Salimans et al. 2017) on 8-bit Fashion-MNIST: its own network, a U-Net of gated
ResNet blocks over the down-shifted and down-right-shifted streams at 28, 14 and 7 pixels
(concat-ELU, dropout), with its discretised logistic mixture per pixel: exact bits/dim.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/pixelcnnpp_unet_fashion_mnist.py --workdir runs/pcnnpp_unet
  jaxgen evaluate --workdir runs/pcnnpp_unet  # exact test NLL, nats and bits/dim
The paper's CIFAR-10 network is 160 wide with 5 blocks per resolution and dropout 0.5
(`:cifar10`, 53.6M parameters); on Fashion-MNIST, 2 CPU cores' scale is 32 wide with 2
blocks: 28.0 images/s at batch 32 (benchmarks/throughput.py; width 64 is 8.7), about the
Gated PixelCNN's 35.6, so an epoch takes ~36 minutes. experiments/pixelcnnpp_fashion_mnist.py
is the same likelihood on the Gated PixelCNN body.
Variants: `:demo` (bundled subset), `:small` (tests), `:cifar10`.
"""

from jaxgen import experiment

VARIANTS = ("demo", "small", "cifar10")


def get_config(arg=None):
  return experiment.autoregressive(
      arg, VARIANTS,
      model=dict(name="pixelcnnpp_unet", likelihood="logistic_mixture", num_mixtures=5,
                 features=32, num_resnet=2, levels=3, dropout=0.1),
      small_model=dict(features=4, num_resnet=1, num_mixtures=2),
      per_variant=dict(cifar10=dict(model=dict(features=160, num_resnet=5, dropout=0.5,
                                               num_mixtures=10))))
