"""PixelCNN++-style output on 8-bit Fashion-MNIST: the Gated PixelCNN body with PixelCNN++'s
discretised logistic mixture per pixel (Salimans et al. 2017) instead of a 256-way softmax.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/pixelcnnpp_fashion_mnist.py --workdir runs/pixelcnnpp
  jaxgen evaluate --workdir runs/pixelcnnpp # exact test NLL, nats and bits/dim
What is PixelCNN++ here is the output distribution (5 logistics per pixel, 15 parameters
instead of 256 logits; for RGB the means couple G on R and B on R, G). PixelCNN++'s
down/up-sampling U-Net body and dropout are not implemented.
Variants: `:demo` (bundled subset), `:small` (tests), `:cifar10` (10 logistics, RGB coupled).
"""

from jaxgen import experiment

VARIANTS = ("demo", "small", "cifar10")


def get_config(arg=None):
  return experiment.autoregressive(
      arg, VARIANTS,
      model=dict(name="gated_pixelcnn", likelihood="logistic_mixture", num_mixtures=5, features=32,
                 num_layers=12, kernel_size=3, first_kernel_size=7, head_features=128),
      small_model=dict(features=4, num_layers=2, head_features=8, num_mixtures=2),
      per_variant=dict(cifar10=dict(model=dict(
          features=128, num_layers=15, head_features=512, num_mixtures=10))))
