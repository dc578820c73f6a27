"""Threefry-2x32, JAX's default random-number hash, lowered unrolled on XLA:CPU.

JAX lowers the hash's 20 rounds on CPU as a `fori_loop` of 5 iterations (to keep compile
times down), and XLA:CPU runs each iteration as its own pass over the counters in memory;
the U-Net's dropout masks took ~44 ms of a 627 ms EDM step that way. Unrolled, a
[64, 28, 28, 16] mask with its application took 0.83-1.35 against 1.96-2.71 ms in two runs
of `benchmarks/unet_ops.py`. It is the lowering JAX itself uses on GPU, so the bits are
identical: registering it changes no random number, only speed and compile time.
`families.get` registers it, so jaxgen's train, sample and evaluate paths use it; importing
jaxgen alone does not.
"""

import functools

import jax
from jax import lax
from jax.interpreters import mlir
import jax.extend.random
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(v, r: int):
  return lax.shift_left(v, np.uint32(r)) | lax.shift_right_logical(v, np.uint32(32 - r))


def hash_2x32(key1, key2, x1, x2):
  """Threefry-2x32 with 20 rounds (Salmon et al. 2011) of uint32 arrays, broadcast together.

  Returns:
    The two uint32 output words, each of the inputs' broadcast shape.
  """
  ks = (key1, key2, key1 ^ key2 ^ _PARITY)
  x0, x1 = x1 + ks[0], x2 + ks[1]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x0 = x0 + x1
      x1 = _rotate_left(x1, r) ^ x0
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x0, x1


@functools.cache
def use_unrolled_on_cpu() -> None:
  """Lowers `threefry2x32_p` unrolled on CPU for the rest of the process (idempotent)."""
  mlir.register_lowering(jax.extend.random.threefry2x32_p,
                         mlir.lower_fun(hash_2x32, multiple_results=True), platform="cpu")
