"""Gated PixelCNN (vertical and horizontal stacks, no blind spot) on 8-bit Fashion-MNIST,
256-way softmax per pixel: exact bits/dim.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/gated_pixelcnn_fashion_mnist.py --workdir runs/gated
  jaxgen evaluate --workdir runs/gated      # exact test NLL, nats and bits/dim
Twelve gated layers of width 32: receptive field R = 3 + 11·1 = 14 rows up and columns
either side (models/pixelcnn.py). Class-conditional: --config.model.num_classes=10 (a
learned class bias in every gate; samples cycle through the classes).
Variants: `:demo` (bundled subset), `:small` (tests), `:cifar10`.
"""

from jaxgen import experiment

VARIANTS = ("demo", "small", "cifar10")


def get_config(arg=None):
  return experiment.autoregressive(
      arg, VARIANTS,
      model=dict(name="gated_pixelcnn", likelihood="categorical", features=32, num_layers=12,
                 kernel_size=3, first_kernel_size=7, head_features=128, num_classes=0),
      small_model=dict(features=4, num_layers=2, head_features=8),
      per_variant=dict(cifar10=dict(model=dict(features=128, num_layers=15, head_features=512))))
