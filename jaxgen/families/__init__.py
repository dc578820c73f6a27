"""Model families: each a module of plain functions with one shared signature.

  image_shape(config) -> (height, width, channels)
  init_state(config, rng, image_shape) -> TrainState
  train_step(config, state, batch) -> (state, metrics)        # one jitted iteration
  sample(config, state, rng, num) -> images [num, H, W, C] in the data's normalised range
  eval_metrics(config, state, batch, rng) -> {name: per-example values [batch]}
  provenance(config) -> {name: str or number}   # how eval_metrics' values were computed

The loop, the evaluators and the CLI call only these, so a family with its own step (the
GAN updates two networks) plugs in without special cases.
"""

import types

from jaxgen.errors import UserError
from jaxgen.families import autoregressive, gan, vae

_FAMILIES = {"autoregressive": autoregressive, "gan": gan, "vae": vae}


def get(name: str) -> types.ModuleType:
  if name not in _FAMILIES:
    raise UserError(f"unknown family {name!r}: expected one of {', '.join(sorted(_FAMILIES))}")
  return _FAMILIES[name]


def num_classes(config) -> int:
  """Classes a model is conditioned on (config.model.num_classes); 0 when unconditional."""
  return int(config.model.get("num_classes", 0))
