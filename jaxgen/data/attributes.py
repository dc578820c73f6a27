"""Per-image binary attributes (CelebA's 40, or any table of them), read beside the images.

config.data.attributes is a CSV file: a header `image,NAME_1,...,NAME_A`, then one row per
image, keyed by the image's record name as `jaxgen audit-data` gives it ('split/label/file'
in a folder dataset, 'split[index]' in a TFDS one) and valued 0/1, or CelebA's -1/1 (-1 is
0). Each example then carries a float32 multi-hot vector [A], batch key 'attributes', that a
model conditions on (model.num_attributes = A).

The model's input is any float vector per example, so a file of precomputed embeddings (a
text encoder's, say) plugs into the same key: config.data.attributes may instead be an .npz
holding 'records' (the record names [n]) and 'vectors' (float [n, D]); such a table names
no attributes, so its models are sampled with vectors, not prompts.

config.data.attributes='tfds' takes a TFDS dataset's own boolean 'attributes' feature
(CelebA's 40, `experiments/edm_celeba.py`), in name order, read once per split without
decoding an image.
"""

import csv
import os

import numpy as np

from jaxgen.errors import UserError


def read(path: str) -> tuple[list[str], dict[str, np.ndarray]]:
  """(attribute names, {record name: float32 [A]}) of the table at PATH: a CSV's header
  names and multi-hot rows, or an .npz's vectors (and no names)."""
  if path.endswith(".npz"):
    return [], _read_vectors(path)
  try:
    with open(os.path.expanduser(path), newline="") as f:
      rows = list(csv.reader(f))
  except OSError as error:
    raise UserError(f"data.attributes={path!r} cannot be read ({error.strerror}): pass a CSV "
                    "of image,NAME_1,...,NAME_A rows") from None
  if not rows or len(rows[0]) < 2:
    raise UserError(f"data.attributes={path!r}: expected a header image,NAME_1,...,NAME_A")
  names, table = [name.strip() for name in rows[0][1:]], {}
  for line, row in enumerate(rows[1:], start=2):
    if not row:
      continue
    values = [cell.strip() for cell in row[1:]]
    if len(values) != len(names) or any(v not in ("-1", "0", "1") for v in values):
      raise UserError(f"data.attributes={path!r} line {line} ({row[0]!r}): expected "
                      f"{len(names)} values, each 0/1 (or -1/1), got {','.join(values)!r}")
    table[row[0].strip()] = np.array([v == "1" for v in values], np.float32)
  return names, table


def _read_vectors(path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(os.path.expanduser(path)) as f:
      records, vectors = f["records"].astype(str), f["vectors"].astype(np.float32)
  except (OSError, KeyError, ValueError) as error:
    raise UserError(f"data.attributes={path!r} cannot be read as embeddings ({error}): pass an "
                    ".npz with 'records' [n] and 'vectors' [n, D]") from None
  if vectors.ndim != 2 or len(vectors) != len(records) or not np.isfinite(vectors).all():
    raise UserError(f"data.attributes={path!r}: expected finite 'vectors' [n, D] for its "
                    f"{len(records)} 'records', got shape {vectors.shape}")
  return dict(zip(records, vectors))


def names(path: str) -> list[str]:
  """The attribute names in the table's header."""
  return read(path)[0]


TFDS = "tfds"


def _tfds_attributes(data, split: str | None):
  """(names, {record name: float32 [A]}) of a TFDS dataset's 'attributes' feature, records
  named as `datasets` names them ('split[index]'); the names alone when split is None."""
  import tensorflow as tf
  import tensorflow_datasets as tfds
  from jaxgen.data import builders, datasets  # datasets imports this module.
  builder = builders.prepared_builder(data)
  feature = builder.info.features["attributes"] if "attributes" in builder.info.features else None
  if not isinstance(feature, tfds.features.FeaturesDict):
    raise UserError(f"data.attributes='tfds' but {data.name!r} has no 'attributes' feature "
                    "(CelebA's): pass a CSV of image,NAME_1,...,NAME_A rows instead")
  names = sorted(feature.keys())
  if split is None:
    return names, {}
  base, _ = datasets._split_base_and_offset(builder, split, 0, 1)
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={"image": tfds.decode.SkipDecoding()})
  ds = ds.map(lambda ex: tf.stack([tf.cast(ex["attributes"][n], tf.float32) for n in names]))
  rows = [batch for batch in ds.batch(4096).as_numpy_iterator()]
  rows = np.concatenate(rows) if rows else np.zeros((0, len(names)), np.float32)
  return names, {f"{base}[{i}]": row for i, row in enumerate(rows)}


def attribute_names(data) -> list[str]:
  """The attribute names data.attributes gives ([] for none, or for embeddings)."""
  if not data.get("attributes"):
    return []
  return _tfds_attributes(data, None)[0] if data.attributes == TFDS else names(data.attributes)


def for_split(data, split: str, record_names) -> np.ndarray | None:
  """float32 [n, A] for the records of `split` named `record_names`, from data.attributes
  (a file, or 'tfds'); None without attributes."""
  if not data.get("attributes"):
    return None
  table = _tfds_attributes(data, split)[1] if data.attributes == TFDS else None
  return for_records(data.attributes, record_names, table)


def for_records(path: str, record_names, table: dict | None = None) -> np.ndarray:
  """float32 [n, A]: the table's (that at `path`, unless given) row of each record name; a
  UserError naming the first record the table lacks."""
  if table is None:
    _, table = read(path)
  missing = [name for name in record_names if name not in table]
  if missing:
    raise UserError(f"data.attributes={path!r} has no row for {missing[0]!r} ({len(missing)} "
                    "images lack one): add a row per image, keyed by its record name")
  return np.stack([table[name] for name in record_names])
