"""What a sample is conditioned on, passed the same way to every family's `sample`.

`cond` is None (unconditional, or "cycle through the classes") or a dict of per-sample
arrays, each with the batch as its first axis:
  'label'       int32 [num]: class indices (config.model.num_classes > 0);
  'attributes'  float32 [num, A]: multi-hot attributes or any vector per example
                (config.model.num_attributes = A > 0), NaN rows meaning none (null);
  'low_res'     an image to upscale (super-resolution).
A family reads the keys it knows, so the call sites stay the same.
"""

import jax
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


def for_sampling(config, num: int, label: int | None = None,
                 attributes: np.ndarray | None = None) -> dict | None:
  """The `cond` of `num` samples: {'label': class_labels(...)} and, when given,
  'attributes': a vector [A] for every sample, or rows [N, A] taken in turn (sample i gets
  row i mod N); None when that leaves nothing (unconditional, or a model with attributes
  cycling through them)."""
  cond = {}
  labels = class_labels(config, num, label)
  if labels is not None:
    cond["label"] = labels
  if attributes is not None:
    rows = np.atleast_2d(np.asarray(attributes, np.float32))
    cond["attributes"] = rows[np.arange(num) % len(rows)]
  return cond or None


def read_vectors(path: str, config) -> np.ndarray:
  """float32 [A] or [N, A] attribute vectors (multi-hot, or embeddings such as a text
  encoder's) from a .npy file, for `jaxgen sample --condition`; NaN rows are the null
  condition. UserError unless they fit the model's num_attributes."""
  count = num_attributes(config)
  if not count:
    raise UserError(f"--condition {path}: this {config.family} model takes no attribute "
                    "vectors (model.num_attributes=0)"
                    + ("; use --label or --prompt for a class" if num_classes(config) else ""))
  if not path.endswith(".npy"):
    raise UserError(f"--condition {path}: expected a FILE.npy of float vectors [{count}] or "
                    f"[N, {count}] (numpy.save)")
  try:
    vectors = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise UserError(f"--condition {path}: cannot read it as .npy ({e})") from None
  if (vectors.ndim not in (1, 2) or not vectors.size or vectors.shape[-1] != count
      or not (np.issubdtype(vectors.dtype, np.floating)
              or np.issubdtype(vectors.dtype, np.integer) or vectors.dtype == bool)):
    raise UserError(f"--condition {path}: expected float vectors [{count}] or [N, {count}] "
                    f"for this model's {count} attributes, found {vectors.dtype} "
                    f"{list(vectors.shape)}")
  vectors = vectors.astype(np.float32)
  rows = np.atleast_2d(vectors)
  nan = np.isnan(rows)
  # The model reads any NaN in a row as the null condition: a partly-NaN row is a mistake.
  bad = np.flatnonzero((nan.any(1) & ~nan.all(1)) | np.isinf(rows).any(1))
  if bad.size:
    raise UserError(f"--condition {path}: row {bad[0]} has infinite or some (not all) NaN "
                    "values; give finite values, or an all-NaN row for the null condition")
  return vectors


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


def num_attributes(config) -> int:
  """Length of the attribute vector a model is conditioned on; 0 when it takes none."""
  return int(config.model.get("num_attributes", 0))


def batch_attributes(config, batch: dict):
  """A batch's attributes [b, A] when the model takes them, else None."""
  return batch["attributes"].astype(jnp.float32) if num_attributes(config) else None


def check_attributes(config, source) -> None:
  """A UserError unless the model takes exactly the attribute vectors `source` (a loaded
  split) carries: model.num_attributes = their length, 0 when it has none."""
  found = getattr(source, "attributes", None)
  width = 0 if found is None else found.shape[1]
  if width != num_attributes(config):
    raise UserError(f"model.num_attributes={num_attributes(config)} but data.attributes="
                    f"{config.data.get('attributes', '')!r} gives {width} per image: set "
                    f"model.num_attributes={width}" + (
                        "" if width else " or pass data.attributes (jaxgen/data/attributes.py)"))


def named_attributes(config) -> int:
  """num_attributes when they are named attributes; 0 for an embedding table (an .npz),
  whose basis vectors mean nothing."""
  return 0 if str(config.data.get("attributes", "")).endswith(".npz") else num_attributes(config)


def grid_columns(config) -> int | None:
  """Columns of a grid of unprompted samples: one per class (or, without classes, per named
  attribute) as they cycle; None to let the grid choose."""
  return num_classes(config) or named_attributes(config) or None


def cycling_attributes(config, num: int) -> np.ndarray | None:
  """float32 [num, A]: example i has attribute i mod A alone, so a grid with A columns shows
  one attribute per column; NaN rows (the null condition: unconditional draws) for an
  embedding table; None for a model without attributes."""
  count = num_attributes(config)
  if not count:
    return None
  if not named_attributes(config):
    return np.full((num, count), np.nan, np.float32)
  return np.eye(count, dtype=np.float32)[np.arange(num) % count]


def sampling_attributes(config, cond: dict | None, num: int):
  """cond['attributes'] (or `cycling_attributes`) as float32 [num, A] pinned to the batch
  sharding; None for a model without attributes."""
  found = cond.get("attributes") if cond is not None else None
  found = cycling_attributes(config, num) if found is None else found
  return None if found is None else sharding.constrain_batch(jnp.asarray(found, jnp.float32))


def null(config, labels, attributes):
  """The null condition shaped as (labels [b], attributes [b, A]): the null class
  (num_classes) and NaN rows; None where the model takes neither."""
  return (None if labels is None else jnp.full_like(labels, num_classes(config)),
          None if attributes is None else jnp.full_like(attributes, jnp.nan))


def drop(config, labels, attributes, rng, share: float):
  """(labels, attributes) with `share` of the examples made null together (`null`):
  classifier-free guidance's unconditional examples."""
  example = labels if labels is not None else attributes
  if example is None:
    return labels, attributes
  dropped = jax.random.bernoulli(rng, share, example.shape[:1])
  null_labels, null_attributes = null(config, labels, attributes)
  if labels is not None:
    labels = jnp.where(dropped, null_labels, labels)
  if attributes is not None:
    attributes = jnp.where(dropped[:, None], null_attributes, attributes)
  return labels, attributes
