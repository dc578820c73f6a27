"""Dataset sources → this process's shard of a split, decoded once into uint8 arrays in RAM.

Every source is read through TFDS with decoding skipped, sharded per process *before*
decoding, and decoded by one `tf.io.decode_image` map followed directly by
`ignore_errors()`, so a corrupt image costs one record (counted in `num_dropped`), not the
run. Names jaxgen knows besides any TFDS image dataset:

  fashion_mnist_small  10k train / 2k test Fashion-MNIST images shipped in the package.
  fashion_mnist        TFDS's Fashion-MNIST, prepared offline from `data.manual_dir` when
                       the original *.gz files are there (Debian's dataset-fashion-mnist).
  folder               `data.folder/<split>/<label>/*.png|jpg|jpeg`.
"""

import dataclasses
import functools
import math
import os
import re

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from jaxgen.data import attributes, augment, builders
from jaxgen.errors import UserError

NORMALIZE_MODES = ("symmetric", "unit", "integer")


@dataclasses.dataclass
class Source:
  """One process's shard of a split, decoded.

  Attributes:
    images: uint8 [n, height, width, channels].
    labels: int32 [n] (zeros when the dataset has no 'label').
    num_dropped: records of this shard that failed to decode and were skipped.
    num_classes: classes of 'label', or None when there is none.
    name, split: what was loaded.
    max_shard_size: the largest shard any process holds; evaluation pads every process to
      it so all run the same number of batches. None: this shard's size.
    attributes: float32 [n, A] multi-hot, from data.attributes (`attributes`); None without.
  """
  images: np.ndarray
  labels: np.ndarray
  num_dropped: int
  num_classes: int | None
  name: str
  split: str
  max_shard_size: int | None = None
  attributes: np.ndarray | None = None


@functools.cache
def keep_tf_off_accelerators() -> None:
  """Hides GPUs from TensorFlow so tf.data never takes accelerator memory JAX needs."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF was initialised before jaxgen got here: it may hold GPU memory.
    logging.warning("TensorFlow was initialised before jaxgen could hide the GPUs from it")


def check_config(data) -> None:
  """Raises UserError for a `data` config value no source or pipeline can honour."""
  if data.name == "prepared" and data.get("attributes"):
    raise UserError(f"data.attributes={data.attributes!r} with prepared data: attributes are "
                    "read with in-memory data only so far; train with data.name set to the "
                    "dataset or folder itself")
  if data.image_size is not None and (not isinstance(data.image_size, int)
                                      or data.image_size < 1):
    raise UserError(f"data.image_size={data.image_size!r}: expected None or a positive "
                    "integer; set --config.data.image_size=N")
  if data.crop not in ("center", "none"):
    raise UserError(f"data.crop={data.crop!r}: expected 'center' or 'none'")
  if data.channels not in (None, 1, 3):
    raise UserError(f"data.channels={data.channels!r}: expected None (the dataset's own), "
                    "1 or 3")
  if data.normalize not in NORMALIZE_MODES:
    raise UserError(f"data.normalize={data.normalize!r}: expected one of "
                    f"{', '.join(NORMALIZE_MODES)}")
  if data.dequantize and data.normalize == "integer":
    raise UserError("data.dequantize=True needs float pixels but data.normalize='integer': "
                    "set data.normalize to 'unit' or 'symmetric', or data.dequantize=False")
  if data.get("exclude") and data.name == "prepared":
    raise UserError(f"data.exclude={data.exclude!r} with prepared data: apply the list when "
                    "preparing (`jaxgen prepare-data ... --exclude FILE`), then train on that")
  if not isinstance(data.prefetch, int) or data.prefetch < 1:
    raise UserError(f"data.prefetch={data.prefetch!r}: expected a positive integer")
  augment.check_config(data.augment)


def load_split(data, split: str, process_index: int = 0, process_count: int = 1) -> Source:
  """This process's slice of `split`, decoded, cropped/resized and held in RAM."""
  check_config(data)
  keep_tf_off_accelerators()
  if data.name == "prepared":
    return _prepared_source(data, split, process_index, process_count)
  # Read before decoding: an unreadable list fails at once, not after the whole split.
  excluded = read_exclusions(data.exclude) if data.get("exclude") else None
  read = _folder_records if data.name == "folder" else _tfds_records
  records = read(data, split, process_index, process_count)
  images, labels, names = _materialise(_transform(_decode(records.ds, records.channels), data))
  num_decoded = len(images)
  if excluded is not None:
    keep = ~np.isin(names, excluded)
    images, labels, names = images[keep], labels[keep], names[keep]
  if not len(images):
    raise UserError(f"none of the {records.num_examples} images of {data.name!r} split "
                    f"{split!r} on process {process_index} of {process_count} could be "
                    "decoded: check the image files, or pick a bigger split")
  num_dropped = records.num_examples - num_decoded
  if num_decoded != len(images):
    logging.warning("%s/%s: left out %d images named in data.exclude=%s", data.name, split,
                    num_decoded - len(images), data.exclude)
  if num_dropped:
    logging.warning("%s/%s: skipped %d of %d images that failed to decode", data.name, split,
                    num_dropped, records.num_examples)
  return Source(images=images, labels=labels, num_dropped=num_dropped,
                num_classes=records.num_classes, name=data.name, split=split,
                max_shard_size=records.max_shard_size,
                attributes=attributes.for_split(data, split, names))


def _prepared_source(data, split, process_index, process_count) -> Source:
  """This process's every process_count-th record of a prepared split, in RAM: what the
  evaluators read (training streams the split instead, see `input_pipeline`)."""
  from jaxgen.data import prepared
  records = prepared.open_split(data.prepared_dir, split)
  own = [records[i] for i in range(process_index, len(records), process_count)]
  names = records.manifest["label_names"]
  return Source(images=np.stack([image for image, _ in own]),
                labels=np.array([label for _, label in own], np.int32),
                num_dropped=records.num_dropped, num_classes=len(names) or None,
                name=f"prepared:{data.prepared_dir}", split=split,
                max_shard_size=math.ceil(len(records) / process_count))


def dataset_info(data) -> dict:
  """{'shape': (height, width, channels), 'num_classes': int | None} from metadata alone."""
  check_config(data)
  if data.name == "prepared":
    from jaxgen.data import prepared
    manifest = prepared.read_manifest(data.prepared_dir)
    return dict(shape=tuple(manifest["image_shape"]),
                num_classes=len(manifest["label_names"]) or None)
  if data.name == "folder":
    builder = builders.image_folder(data)
    size = _required_image_size(data)
    return dict(shape=(size, size, data.channels or 3),
                num_classes=builder.info.features["label"].num_classes)
  builder = builders.builder_for(data)
  feature = _image_feature(builder, data.name)
  return dict(shape=_output_shape(feature.shape, data), num_classes=_num_classes(builder))


def label_names(data) -> list[str]:
  """The dataset's class names from its metadata, in label order; [] when it has none."""
  check_config(data)
  if data.name == "prepared":
    from jaxgen.data import prepared
    return list(prepared.read_manifest(data.prepared_dir)["label_names"])
  builder = (builders.image_folder(data) if data.name == "folder"
             else builders.builder_for(data))
  label = _class_label(builder)
  return list(label.names) if label is not None else []


@dataclasses.dataclass
class _Records:
  """A shard's still-encoded (image bytes, int32 label) records and what to expect of them."""
  ds: tf.data.Dataset
  num_examples: int
  max_shard_size: int
  num_classes: int | None
  channels: int


def _tfds_records(data, split, process_index, process_count) -> _Records:
  builder = builders.prepared_builder(data)
  feature = _image_feature(builder, data.name)
  shape = _output_shape(feature.shape, data)
  total = _split_size(builder, data.name, split)
  shard = tfds.even_splits(split, n=process_count)[process_index]
  ds = builder.as_dataset(split=shard, shuffle_files=False,
                          decoders={"image": tfds.decode.SkipDecoding()},
                          read_config=_read_config())
  num_classes = _num_classes(builder)

  def image_and_label(example):
    label = example["label"] if num_classes is not None else 0
    return example["image"], tf.cast(label, tf.int32)

  # Names as `jaxgen audit-data` and prepare-data give them: split[index in the whole split].
  base, offset = _split_base_and_offset(builder, split, process_index, process_count)
  ds = ds.enumerate().map(lambda i, example: (*image_and_label(example), tf.strings.join(
      [base, "[", tf.strings.as_string(i + offset), "]"])))
  return _Records(ds=ds, num_examples=builder.info.splits[shard].num_examples,
                  max_shard_size=math.ceil(total / process_count),
                  num_classes=num_classes, channels=shape[-1])


def _folder_records(data, split, process_index, process_count) -> _Records:
  _required_image_size(data)
  builder = builders.image_folder(data)
  total = _split_size(builder, f"folder {data.folder}", split)
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={"image": tfds.decode.SkipDecoding()},
                          read_config=_read_config())
  # Folders have no split slicing; sharding the encoded records still decodes each once.
  ds = ds.shard(process_count, process_index)
  # Names relative to the root (split/label/file), as `jaxgen audit-data` gives them.
  prefix = "^" + re.escape(os.path.expanduser(data.folder).rstrip("/") + "/")
  ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32),
                          tf.strings.regex_replace(ex["image/filename"], prefix, "")))
  return _Records(ds=ds, num_examples=len(range(process_index, total, process_count)),
                  max_shard_size=math.ceil(total / process_count),
                  num_classes=builder.info.features["label"].num_classes,
                  channels=data.channels or 3)


def _decode(ds: tf.data.Dataset, channels: int) -> tf.data.Dataset:
  def decode(encoded, label, name):
    return tf.io.decode_image(encoded, channels=channels, expand_animations=False), label, name

  # Right after the decode and nowhere else: ignore_errors would hide real bugs too.
  return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True)


def _transform(ds: tf.data.Dataset, data) -> tf.data.Dataset:
  """Central square crop (crop='center') and resize, when data.image_size asks for it."""
  if data.image_size is None:
    return ds

  def crop_and_resize(image, label, name):
    if data.crop == "center":
      height, width = tf.shape(image)[0], tf.shape(image)[1]
      side = tf.minimum(height, width)
      image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2,
                                            side, side)
    # Antialiasing keeps downscaled images free of aliasing; same-size resizes are exact.
    image = tf.image.resize(image, [data.image_size] * 2, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label, name

  return ds.map(crop_and_resize, num_parallel_calls=tf.data.AUTOTUNE)


def _materialise(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(uint8 [n, height, width, channels], int32 [n], names [n]) in the dataset's order."""
  images, labels, names = [], [], []
  for image_batch, label_batch, name_batch in ds.batch(1024).prefetch(1).as_numpy_iterator():
    images.append(image_batch)
    labels.append(label_batch)
    names.append(name_batch)
  if not images:
    return np.zeros((0, 0, 0, 0), np.uint8), np.zeros((0,), np.int32), np.zeros((0,), str)
  return (np.concatenate(images), np.concatenate(labels).astype(np.int32),
          np.concatenate(names).astype(str))


def _split_base_and_offset(builder, split, process_index, process_count) -> tuple[str, int]:
  """(the split's name, the index in it of this process's first record) for naming records;
  a slice of a split must start at its beginning (as 'test[:512]' does) to be named."""
  base, _, sliced = split.partition("[")
  if sliced and not sliced.startswith(":") and not sliced.startswith("0:"):
    base = split  # Names within a slice that starts elsewhere: still unique per split spec.
  shards = tfds.even_splits(split, n=process_count)
  return base, sum(builder.info.splits[s].num_examples for s in shards[:process_index])


def read_exclusions(path: str) -> np.ndarray:
  """The record names in the exclusion list at PATH (one per line, '#' comments)."""
  try:
    with open(os.path.expanduser(path)) as f:
      return np.array([line.strip() for line in f if line.strip() and not
                       line.startswith("#")], str)
  except OSError as error:
    raise UserError(f"data.exclude={path!r} cannot be read ({error.strerror}): pass the "
                    "exclusion list `jaxgen audit-data` wrote") from None


def _read_config() -> tfds.ReadConfig:
  # No autocache: jaxgen keeps its own decoded copy in RAM, and a second one would lie in
  # benchmarks and double the memory.
  return tfds.ReadConfig(try_autocache=False)


def _output_shape(feature_shape, data) -> tuple[int, int, int]:
  """(height, width, channels) after resizing and channel conversion."""
  channels = data.channels or feature_shape[-1] or 3
  if data.image_size is not None:
    return data.image_size, data.image_size, channels
  if None in feature_shape[:2]:
    raise UserError(f"dataset {data.name!r} has images of varying size {feature_shape}: set "
                    "--config.data.image_size=N to resize them to N×N")
  return feature_shape[0], feature_shape[1], channels


def _required_image_size(data) -> int:
  if data.image_size is None:
    raise UserError("data.name='folder' needs data.image_size (folder images vary in size): "
                    "set --config.data.image_size=N")
  return data.image_size


def _split_size(builder, what: str, split: str) -> int:
  try:
    return builder.info.splits[split].num_examples
  except (KeyError, ValueError):
    raise UserError(f"split {split!r} is not in {what}: available splits are "
                    f"{', '.join(sorted(builder.info.splits)) or 'none'}; set "
                    "data.train_split/data.eval_split to one of them") from None


def _image_feature(builder, name: str):
  features = builder.info.features
  if "image" not in features or not isinstance(features["image"], tfds.features.Image):
    raise UserError(f"dataset {name!r} has no 'image' feature (it has "
                    f"{', '.join(features.keys())}): jaxgen needs an image dataset")
  return features["image"]


def _class_label(builder) -> tfds.features.ClassLabel | None:
  """The builder's 'label' feature when it is a ClassLabel (names, count), else None."""
  features = builder.info.features
  label = features["label"] if "label" in features else None
  return label if isinstance(label, tfds.features.ClassLabel) else None


def _num_classes(builder) -> int | None:
  label = _class_label(builder)
  return label.num_classes if label is not None else None
