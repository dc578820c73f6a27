"""Reading a dataset `jaxgen prepare-data` wrote: ArrayRecord shards plus manifest.json.

Each split is a list of shards `SPLIT-IIIII-of-NNNNN.array_record`, written with
`group_size:1` so any record is read by index. A record is the label (int32, little-endian)
followed by the image: a PNG file, or raw uint8 pixels of the manifest's image shape. The
manifest is written last, so a directory without one is never taken for a finished
preparation. Records are read through Grain's `ArrayRecordDataSource`; `input_pipeline`
shuffles, slices per process and batches them.
"""

import dataclasses
import io
import json
import os
import struct
import threading

import numpy as np
from absl import logging

from jaxgen.errors import UserError

MANIFEST = "manifest.json"
FORMAT = "jaxgen-prepared"
VERSION = 1  # Of the layout above; a reader refuses any other.
ENCODINGS = ("png", "raw")
_LABEL = struct.Struct("<i")


def encode(image: np.ndarray, label: int, encoding: str) -> bytes:
  """One record: the label, then the uint8 image [H, W, C] as PNG or raw bytes."""
  if encoding == "raw":
    return _LABEL.pack(label) + np.ascontiguousarray(image, np.uint8).tobytes()
  from PIL import Image
  out = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out, format="PNG")
  return _LABEL.pack(label) + out.getvalue()


def decode(record: bytes, shape: tuple[int, int, int], encoding: str
           ) -> tuple[np.ndarray, np.int32]:
  """(uint8 image [H, W, C], int32 label) of a record; ValueError if it is damaged."""
  if len(record) < _LABEL.size:
    raise ValueError(f"record of {len(record)} bytes")
  (label,), payload = _LABEL.unpack_from(record), record[_LABEL.size:]
  if encoding == "raw":
    image = np.frombuffer(payload, np.uint8)
    if image.size != np.prod(shape):
      raise ValueError(f"{image.size} pixel values for an image of shape {shape}")
    return image.reshape(shape), np.int32(label)
  from PIL import Image
  try:
    image = np.asarray(Image.open(io.BytesIO(payload)))
  except Exception as e:  # PIL raises many kinds on broken files.
    raise ValueError(f"undecodable PNG ({e})") from None
  image = image.reshape(*image.shape[:2], -1)
  if image.shape != tuple(shape) or image.dtype != np.uint8:
    raise ValueError(f"an image of shape {image.shape} ({image.dtype}), expected {shape}")
  return image, np.int32(label)


def read_manifest(directory: str) -> dict:
  """The manifest of a prepared dataset; a one-line error if `directory` is not one."""
  path = os.path.join(directory or "", MANIFEST)
  if not os.path.isdir(directory or ""):
    raise UserError(f"data.prepared_dir={directory!r} does not exist: prepare it with "
                    "`jaxgen prepare-data --folder ROOT --out DIR` (or --tfds NAME)")
  if not os.path.exists(path):
    raise UserError(f"{directory} is not a finished prepared dataset (no {MANIFEST}): run "
                    "`jaxgen prepare-data` with --out pointing there again to finish it")
  with open(path) as f:
    manifest = json.load(f)
  if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
    raise UserError(f"{path} is {manifest.get('format')!r} version {manifest.get('version')}"
                    f", this jaxgen reads {FORMAT!r} version {VERSION}: prepare the data "
                    "again with this version's `jaxgen prepare-data`")
  return manifest


@dataclasses.dataclass
class PreparedSplit:
  """Random access to one split's records, decoded: a Grain data source.

  split[i] is (uint8 image [H, W, C], int32 label). A damaged record is skipped: the next
  decodable one (i + 1, i + 2, … wrapping) takes its place, so batches keep their size and
  stay a function of the index; it is counted in `num_damaged` and logged with its shard.
  """
  directory: str
  split: str
  manifest: dict
  num_damaged: int = 0

  def __post_init__(self):
    import grain
    entry = self.manifest["splits"][self.split]
    paths = [os.path.join(self.directory, shard["file"]) for shard in entry["shards"]]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
      raise UserError(f"prepared dataset {self.directory}: shard {missing[0]} is missing "
                      f"({len(missing)} of {len(paths)} shards of split {self.split!r}); "
                      "prepare the data again")
    self.shape = tuple(self.manifest["image_shape"])
    self.encoding = self.manifest["encoding"]
    self._records = grain.sources.ArrayRecordDataSource(paths)
    self._lock = threading.Lock()
    self._damaged: set[int] = set()

  def __len__(self) -> int:
    return len(self._records)

  @property
  def num_dropped(self) -> int:
    """Images skipped as corrupt when the split was prepared, plus damaged records met."""
    return len(self.manifest["splits"][self.split]["corrupt"]) + self.num_damaged

  def __getitem__(self, index: int):
    n = len(self)
    for offset in range(n):
      i = (index + offset) % n
      try:
        return decode(self._records[i], self.shape, self.encoding)
      except ValueError as e:
        self._count_damaged(i, e)
    raise UserError(f"prepared dataset {self.directory}: no record of split {self.split!r} "
                    "decodes; prepare the data again")

  def _count_damaged(self, index: int, error: Exception) -> None:
    with self._lock:  # Grain reads from several threads.
      if index not in self._damaged:
        self._damaged.add(index)
        self.num_damaged = len(self._damaged)
        logging.warning("prepared dataset %s: record %d of split %r is damaged (%s); the "
                        "next record takes its place", self.directory, index, self.split,
                        error)


def open_split(directory: str, split: str) -> PreparedSplit:
  """One split of the prepared dataset in `directory`, checked against its manifest."""
  manifest = read_manifest(directory)
  if split not in manifest["splits"]:
    raise UserError(f"prepared dataset {directory} has no split {split!r}: it has "
                    f"{', '.join(sorted(manifest['splits']))}; set data.train_split / "
                    "data.eval_split to one of them")
  return PreparedSplit(directory, split, manifest)
