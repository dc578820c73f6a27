"""What a sample is conditioned on, passed the same way to every family's `sample`.

`cond` is None (unconditional, or "cycle through the classes") or a dict of per-sample
arrays, each with the batch as its first axis:
  'label'  int32 [num]: class indices (config.model.num_classes > 0).
Later conditions (an image to upscale, an attribute vector) are further keys, so a family
reads the ones it knows and the call sites stay the same.
"""

import jax.numpy as jnp
import numpy as np

from jaxgen import sharding
from jaxgen.errors import UserError


def num_classes(config) -> int:
  """Classes a model is conditioned on (config.model.num_classes); 0 when unconditional."""
  return int(config.model.get("num_classes", 0))


def class_labels(config, num: int, label: int | None = None) -> np.ndarray | None:
  """Labels int32 [num]: all `label`, or cycling 0, 1, …, C−1 (so a grid with C columns
  has one class per column); None for an unconditional model, where a label is an error."""
  classes = num_classes(config)
  if label is not None and not 0 <= label < classes:
    raise UserError(f"--label {label}: expected a class in [0, {classes - 1}]" if classes else
                    f"--label {label}: this {config.family} model is unconditional")
  if not classes:
    return None
  if label is not None:
    return np.full(num, label, np.int32)
  return (np.arange(num) % classes).astype(np.int32)


def for_sampling(config, num: int, label: int | None = None) -> dict | None:
  """The `cond` of `num` samples: {'label': class_labels(...)}, or None if unconditional."""
  labels = class_labels(config, num, label)
  return None if labels is None else {"label": labels}


def labels(config, cond: dict | None, num: int):
  """cond['label'] when given, else the cycling labels of a conditional model (None if
  unconditional)."""
  if cond is not None and cond.get("label") is not None:
    return cond["label"]
  return class_labels(config, num)


def sampling_labels(config, cond: dict | None, num: int):
  """`labels` as int32 [num] pinned to the batch sharding, as a family's sampler reads them
  (None if unconditional)."""
  found = labels(config, cond, num)
  return None if found is None else sharding.constrain_batch(jnp.asarray(found, jnp.int32))


def batch_labels(config, batch: dict):
  """A training or evaluation batch's labels when the model is conditional, else None."""
  return batch["label"] if num_classes(config) else None
