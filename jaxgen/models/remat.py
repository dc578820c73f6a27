"""Rematerialisation (model.remat): blocks that recompute their activations in the backward
pass instead of storing them (`jax.checkpoint` through `nn.remat`), trading about one more
forward pass for the activation memory of every block.
"""

import collections
from collections.abc import Callable

import flax.linen as nn


def block_maker(remat: bool) -> Callable[..., nn.Module]:
  """make(cls, *fields, static_argnums=()) -> an instance of `cls`, under `nn.remat` when
  `remat`, named as Flax would name it without (ResBlock_0, ResBlock_1, …): a remat class's
  own automatic names differ (CheckpointResBlock_0), and parameters and checkpoints must be
  the same either way. Create every instance of a class in the module through one maker.

  static_argnums: the call's non-array arguments, counting the module as 0 (`train` of
  `__call__(self, x, train)` is 2).
  """
  counts = collections.Counter()

  def make(cls, *fields, static_argnums=(), **kwargs):
    name = f"{cls.__name__}_{counts[cls.__name__]}"
    counts[cls.__name__] += 1
    wrapped = nn.remat(cls, static_argnums=static_argnums) if remat else cls
    return wrapped(*fields, name=name, **kwargs)
  return make
