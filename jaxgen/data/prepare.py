"""`jaxgen prepare-data`: decode, crop and resize a dataset once, into ArrayRecord shards.

  jaxgen prepare-data --folder ROOT --out DIR [--image-size S] [--channels C]
  jaxgen prepare-data --tfds NAME --out DIR [--data-dir D] [--image-size S] [--channels C]

ROOT/<split>/<label>/*.png|jpg|jpeg as `data.name=folder` reads it (labels are the sorted
folder names), or any TFDS image dataset (Fashion-MNIST offline from Debian's files, as
training reads it). Shards are written by worker processes, each to a temporary name that
is renamed when complete, with a small JSON of what it holds beside it: a re-run skips the
shards already finished. manifest.json is written last (see `prepared.py`), with counts per
split and class, the image shape and the files skipped as corrupt, by name.
"""

import concurrent.futures
import itertools
import json
import multiprocessing
import os

import numpy as np

from jaxgen import __version__
from jaxgen.data import prepared
from jaxgen.errors import UserError

_EXTENSIONS = (".png", ".jpg", ".jpeg")
_PLAN = ".plan.json"


def prepare(out: str, *, folder: str | None = None, tfds_name: str | None = None,
            data_dir: str | None = None, image_size: int | None = None,
            channels: int | None = None, encoding: str = "png", shard_size: int = 10_000,
            workers: int | None = None, exclude: str | None = None) -> dict:
  """Prepares `folder` or the TFDS dataset `tfds_name` into `out`, leaving out the records
  named in the file `exclude` (`jaxgen audit-data`'s list); returns the manifest."""
  if (folder is None) == (tfds_name is None):
    raise UserError("prepare-data needs exactly one of --folder ROOT and --tfds NAME")
  if encoding not in prepared.ENCODINGS:
    raise UserError(f"--encoding {encoding!r}: expected one of {', '.join(prepared.ENCODINGS)}")
  if shard_size < 1 or (image_size is not None and image_size < 1) or channels not in (
      None, 1, 3):
    raise UserError(f"--shard-size {shard_size}, --image-size {image_size}, --channels "
                    f"{channels}: expected positive sizes and channels 1 or 3")
  splits, label_names = (folder_splits(folder) if folder is not None
                         else tfds_splits(tfds_name, data_dir))
  excluded = set()
  if exclude:
    from jaxgen.data import datasets
    excluded = set(datasets.read_exclusions(exclude))
    splits = _excluding(splits, excluded)
  spec = dict(source=os.path.abspath(folder) if folder else f"tfds:{tfds_name}",
              image_size=image_size, channels=channels or (3 if folder else None),
              encoding=encoding, shard_size=shard_size,
              splits={name: count for name, (count, _) in splits.items()},
              exclude=dict(file=os.path.abspath(exclude), count=len(excluded)) if exclude
              else None)
  _start(out, spec)
  workers = workers or os.cpu_count()
  context = multiprocessing.get_context("spawn")  # Workers need neither TF nor JAX.
  shards, pending = [], []
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
    for split, (count, items) in splits.items():
      num_shards = -(-count // shard_size)
      items = iter(items)
      for i in range(num_shards):
        # Read lazily and keep few shards in flight: a TFDS split need not fit in memory.
        chunk = list(itertools.islice(items, shard_size))
        pending.append(pool.submit(_shard, (out, split, i, num_shards, chunk, spec)))
        while len(pending) > 2 * workers:
          shards.append(pending.pop(0).result())
    shards.extend(future.result() for future in pending)
  return _write_manifest(out, spec, splits, shards, label_names)


def _excluding(splits: dict, names: set) -> dict:
  """`splits` without the records named in `names`, their counts reduced to match."""
  out = {}
  for split, (count, items) in splits.items():
    if isinstance(items, list):
      kept = [item for item in items if item[0] not in names]
      out[split] = (len(kept), kept)
    else:  # A TFDS split, read lazily: its records are named split[index].
      dropped = sum(f"{split}[{i}]" in names for i in range(count))
      out[split] = (count - dropped, (item for item in items if item[0] not in names))
  return out


def _start(out: str, spec: dict) -> None:
  """Creates `out`, or checks that the unfinished preparation in it is this one."""
  try:
    os.makedirs(out, exist_ok=True)
    plan = os.path.join(out, _PLAN)
    if os.path.exists(plan):
      with open(plan) as f:
        if json.load(f) != spec:
          raise UserError(f"--out {out} holds another preparation (a different source or "
                          "settings): pick a new --out, or delete it")
    else:
      with open(plan + ".tmp", "w") as f:
        json.dump(spec, f)
      os.replace(plan + ".tmp", plan)
  except OSError as e:
    raise UserError(f"--out {out} is not writable ({e.strerror}): pick another directory")


def folder_splits(root: str) -> tuple[dict, list[str]]:
  """({split: (count, [(name, path, label)])}, label names) of ROOT/<split>/<label>/<image>."""
  if not os.path.isdir(root):
    raise UserError(f"--folder {root} does not exist or is not a directory")
  split_names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  if not split_names:
    raise UserError(f"--folder {root} has no split folders: expected ROOT/<split>/<label>/"
                    "<image> (e.g. ROOT/train/cat/1.png)")
  labels = sorted({label for split in split_names
                   for label in os.listdir(os.path.join(root, split))
                   if os.path.isdir(os.path.join(root, split, label))})
  splits = {}
  for split in split_names:
    items = [(os.path.join(split, label, name), os.path.join(root, split, label, name),
              index)
             for index, label in enumerate(labels)
             if os.path.isdir(os.path.join(root, split, label))
             for name in sorted(os.listdir(os.path.join(root, split, label)))
             if name.lower().endswith(_EXTENSIONS)]
    if not items:
      raise UserError(f"--folder {root}: split {split!r} holds no .png/.jpg/.jpeg images "
                      "in label folders")
    splits[split] = (len(items), items)
  return splits, labels


def tfds_splits(name: str, data_dir: str | None) -> tuple[dict, list[str]]:
  """({split: (count, iterator of (name, uint8 image, label))}, label names) of a TFDS
  dataset, found or prepared as training does (offline Fashion-MNIST included)."""
  import ml_collections
  import tensorflow_datasets as tfds
  from jaxgen.data import builders, datasets
  datasets.keep_tf_off_accelerators()
  data = ml_collections.ConfigDict(dict(name=name, data_dir=data_dir,
                                        manual_dir="/usr/share/datasets/fashion-mnist"))
  builder = builders.prepared_builder(data)
  features = builder.info.features
  if "image" not in features:
    raise UserError(f"--tfds {name} has no 'image' feature: it is not an image dataset")

  def examples(split):
    ds = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    for i, example in enumerate(ds):
      yield f"{split}[{i}]", example["image"], int(example.get("label", 0))
  splits = {split: (info.num_examples, examples(split))
            for split, info in builder.info.splits.items()}
  return splits, list(features["label"].names) if "label" in features else []


def _load(source, image_size: int | None, channels: int | None) -> np.ndarray:
  """uint8 [H, W, C] of a file path or an array: 16-bit scaled to 8, palette and CMYK to
  RGB, alpha dropped, grey or RGB as `channels` says, centre-cropped to a square and
  resized (antialiased) when `image_size` is set. Raises on an undecodable file."""
  from PIL import Image
  image = to_8_bit(open_image(source))
  channels = channels or (1 if image.mode in ("L", "1") else 3)
  image = image.convert("L" if channels == 1 else "RGB")
  if image_size is not None:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize(
        (image_size, image_size), Image.BILINEAR, reducing_gap=None)
  array = np.asarray(image, np.uint8)
  return array.reshape(*array.shape[:2], -1)


def open_image(source):
  """The PIL image of a file path or a uint8 [H, W, C] array, decoded (raises on a bad
  file)."""
  from PIL import Image
  if isinstance(source, np.ndarray):
    return Image.fromarray(source[..., 0] if source.shape[-1] == 1 else source)
  image = Image.open(source)
  image.load()
  return image


def to_8_bit(image):
  """16- or 32-bit integer greys (PIL modes I, I;16…) scaled to 8-bit grey; others as is."""
  from PIL import Image
  if not image.mode.startswith("I"):
    return image
  return Image.fromarray((np.asarray(image, np.float64) / 257.0).clip(0, 255).astype(np.uint8))


def _shard(task) -> dict:
  """Writes one shard (skipped when a previous run finished it); returns what it holds."""
  from array_record.python.array_record_module import ArrayRecordWriter
  out, split, index, count, items, spec = task
  file = f"{split}-{index:05d}-of-{count:05d}.array_record"
  path, info_path = os.path.join(out, file), os.path.join(out, file + ".json")
  if os.path.exists(path) and os.path.exists(info_path):
    with open(info_path) as f:
      return json.load(f)
  writer = ArrayRecordWriter(path + ".tmp", "group_size:1")
  corrupt, labels, shape = [], [], None
  for name, source, label in items:
    try:
      image = _load(source, spec["image_size"], spec["channels"])
    except Exception:  # PIL raises many kinds on broken files; the name is what matters.
      corrupt.append(name)
      continue
    if shape is None:
      shape = image.shape
    elif image.shape != shape:
      writer.close()
      raise UserError(f"{name} is {image.shape[1]}x{image.shape[0]}, other images are "
                      f"{shape[1]}x{shape[0]}: pass --image-size S to crop and resize all")
    writer.write(prepared.encode(image, label, spec["encoding"]))
    labels.append(label)
  writer.close()
  info = dict(file=file, num_examples=len(labels), corrupt=corrupt,
              shape=list(shape) if shape else None,
              class_counts={str(k): int(v) for k, v in zip(*np.unique(labels,
                                                                      return_counts=True))})
  with open(info_path + ".tmp", "w") as f:
    json.dump(info, f)
  os.replace(path + ".tmp", path)
  os.replace(info_path + ".tmp", info_path)
  return info


def _write_manifest(out, spec, splits, shards, label_names) -> dict:
  shapes = {tuple(s["shape"]) for s in shards if s["shape"]}
  if len(shapes) != 1:
    raise UserError(f"the prepared images have shapes {sorted(shapes)}: pass --image-size S "
                    "(and --channels C) so they all match")
  manifest = dict(format=prepared.FORMAT, version=prepared.VERSION, tool=f"jaxgen {__version__}",
                  source=spec["source"], image_shape=list(shapes.pop()),
                  encoding=spec["encoding"], label_names=label_names, splits={},
                  exclude=spec["exclude"])
  for split in splits:
    own = [s for s in shards if s["file"].startswith(f"{split}-")]
    counts = {}
    for s in own:
      for label, n in s["class_counts"].items():
        counts[label] = counts.get(label, 0) + n
    manifest["splits"][split] = dict(
        num_examples=sum(s["num_examples"] for s in own),
        shards=[dict(file=s["file"], num_examples=s["num_examples"]) for s in own],
        class_counts=dict(sorted(counts.items(), key=lambda kv: int(kv[0]))),
        corrupt=[name for s in own for name in s["corrupt"]])
  path = os.path.join(out, prepared.MANIFEST)
  with open(path + ".tmp", "w") as f:
    json.dump(manifest, f, indent=1)
  os.replace(path + ".tmp", path)
  return manifest
