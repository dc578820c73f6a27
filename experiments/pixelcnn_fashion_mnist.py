"""PixelCNN (masked convolutions, 256-way softmax) on 8-bit Fashion-MNIST: exact bits/dim.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/pixelcnn_fashion_mnist.py --workdir runs/pixelcnn
  jaxgen evaluate --workdir runs/pixelcnn   # exact test NLL, nats and bits/dim
  jaxgen sample --workdir runs/pixelcnn --num 64 --out samples.png   # cached sampling
The PixelRNN paper's residual PixelCNN, narrowed to train on a CPU: a 7x7 mask-A layer and
5 residual blocks of 3x3 mask-B convolutions (it keeps the PixelCNN blind spot; the Gated
PixelCNN removes it). Variants: `:demo` (bundled subset), `:small` (tests), `:cifar10`.
"""

from jaxgen import experiment

VARIANTS = ("demo", "small", "cifar10")


def get_config(arg=None):
  return experiment.autoregressive(
      arg, VARIANTS,
      model=dict(name="pixelcnn", likelihood="categorical", features=64, num_blocks=5,
                 kernel_size=3, first_kernel_size=7, head_features=128),
      small_model=dict(features=8, num_blocks=1, head_features=8),
      per_variant=dict(cifar10=dict(model=dict(features=128, num_blocks=12, head_features=256))))
