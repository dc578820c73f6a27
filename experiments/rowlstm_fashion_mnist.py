"""PixelRNN's Row LSTM (row-by-row recurrence under `lax.scan`) on 8-bit Fashion-MNIST,
256-way softmax per pixel: exact bits/dim.

Run (full Fashion-MNIST):
  jaxgen train --config experiments/rowlstm_fashion_mnist.py --workdir runs/rowlstm
  jaxgen evaluate --workdir runs/rowlstm    # exact test NLL, nats and bits/dim
A 7x7 mask-A layer, then 2 residual Row LSTM layers of 32 units (1x3 input-to-state and
state-to-state kernels): a triangular receptive field (models/rowlstm.py).
Variants: `:demo` (bundled subset), `:small` (tests), `:cifar10`.
"""

from jaxgen import experiment

VARIANTS = ("demo", "small", "cifar10")


def get_config(arg=None):
  return experiment.autoregressive(
      arg, VARIANTS,
      model=dict(name="row_lstm", likelihood="categorical", features=64, num_layers=2,
                 kernel_size=3, first_kernel_size=7, head_features=128),
      small_model=dict(features=8, num_layers=1, head_features=8),
      per_variant=dict(cifar10=dict(model=dict(features=128, num_layers=12, head_features=256))))
