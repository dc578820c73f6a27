"""Which TFDS builder a data config names, prepared offline where jaxgen can.

The bundled `fashion_mnist_small` and Debian's Fashion-MNIST files (`data.manual_dir`) are
prepared by TFDS's own Fashion-MNIST builder reading local IDX files, so neither needs the
network; other TFDS names download once, and fail with a one-line fix when they cannot.
"""

import gzip
import os
import shutil
import struct
import tempfile

import tensorflow_datasets as tfds
from absl import logging
from tensorflow_datasets.image_classification import mnist

from jaxgen.errors import UserError

KNOWN_NAMES = ("fashion_mnist_small", "fashion_mnist", "folder", "prepared")
BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled",
                           "fashion_mnist_small")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


def image_folder(data):
  """The TFDS ImageFolder builder over data.folder/<split>/<label>/*."""
  root = os.path.expanduser(data.folder) if data.folder else ""
  if not root or not os.path.isdir(root):
    raise UserError(f"data.folder={data.folder!r} is not a directory: set "
                    "--config.data.folder=DIR with images in DIR/<split>/<label>/*.png|jpg")
  channels = data.channels or 3
  return tfds.folder_dataset.ImageFolder(root, shape=(None, None, channels))


def builder_for(data):
  """The (possibly unprepared) TFDS builder for data.name."""
  if data.name == "fashion_mnist_small":
    return _FashionMNISTSmall(data_dir=data.data_dir)
  try:
    return tfds.builder(data.name, data_dir=data.data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(f"data.name={data.name!r} is not a TFDS dataset: use one of jaxgen's "
                    f"{', '.join(KNOWN_NAMES)} or a TFDS image dataset name such as "
                    "'cifar10'") from None


def prepared_builder(data):
  """The builder for data.name, preparing it first (offline where jaxgen can) if needed."""
  builder = builder_for(data)
  if builder.is_prepared():
    return builder
  if data.name == "fashion_mnist_small":
    _prepare_from_idx_gz(_FashionMNISTSmall, BUNDLED_DIR, data.data_dir)
    return builder_for(data)
  if data.name == "fashion_mnist" and _has_idx_files(data.manual_dir):
    _prepare_from_idx_gz(_FashionMNISTFromFiles, data.manual_dir, data.data_dir)
    return builder_for(data)
  try:
    builder.download_and_prepare()
  except Exception as e:  # Any failure to fetch means the same fix for the user.
    raise UserError(_not_prepared_message(data, builder.data_dir, e)) from e
  return builder


def _not_prepared_message(data, data_dir, error) -> str:
  why = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
  if data.name == "fashion_mnist":
    return (f"dataset 'fashion_mnist' is not prepared in {data_dir} and could not be "
            f"downloaded ({why}): install Debian's dataset-fashion-mnist, set "
            "--config.data.manual_dir=DIR to the folder with the original *.gz files, or use "
            "data.name=fashion_mnist_small (bundled)")
  return (f"dataset {data.name!r} is not prepared in {data_dir} and could not be downloaded "
          f"({why}): it needs network access once, or set --config.data.data_dir=DIR to a "
          "folder holding a prepared copy")


def _has_idx_files(directory: str | None) -> bool:
  return bool(directory) and all(
      os.path.isfile(os.path.join(directory, name + ".gz")) for name in IDX_FILES)


def _prepare_from_idx_gz(builder_cls, gz_dir: str, data_dir: str | None) -> None:
  """Prepares builder_cls into data_dir from the four gzipped IDX files in gz_dir."""
  logging.info("preparing %s in %s from %s", builder_cls.name, data_dir or "the TFDS default",
               gz_dir)
  with tempfile.TemporaryDirectory() as idx_dir:
    for name in IDX_FILES:
      path = os.path.join(gz_dir, name + ".gz")
      try:
        with gzip.open(path, "rb") as src, open(os.path.join(idx_dir, name), "wb") as dst:
          shutil.copyfileobj(src, dst)
      except (OSError, EOFError) as e:
        raise UserError(f"{path} is not a readable gzip file ({e}): replace it with the "
                        "original Fashion-MNIST file") from e
    builder = builder_cls(data_dir=data_dir, idx_dir=idx_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))


def _idx_count(path: str) -> int:
  """The record count in an IDX file's header (big-endian uint32 after the magic)."""
  with open(path, "rb") as f:
    return struct.unpack(">I", f.read(8)[4:])[0]


class _IdxFashionMNIST(mnist.FashionMNIST, skip_registration=True):
  """TFDS's own Fashion-MNIST builder, reading decompressed IDX files from `idx_dir`.

  Only `_split_generators` changes: the parent's `_generate_examples` already reads raw IDX,
  and its checksums (which Debian's rewritten gzip headers fail) are never consulted.
  """

  def __init__(self, *, idx_dir: str | None = None, **kwargs):
    self._idx_dir = idx_dir
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is local.
    return [tfds.core.SplitGenerator(name=tfds.Split.TRAIN, gen_kwargs=self._files("train")),
            tfds.core.SplitGenerator(name=tfds.Split.TEST, gen_kwargs=self._files("t10k"))]

  def _files(self, prefix: str) -> dict:
    data_path = os.path.join(self._idx_dir, f"{prefix}-images-idx3-ubyte")
    label_path = os.path.join(self._idx_dir, f"{prefix}-labels-idx1-ubyte")
    num_examples = _idx_count(data_path)
    if _idx_count(label_path) != num_examples:
      raise UserError(f"{prefix} images and labels hold different record counts: the IDX "
                      "files are not a matching set; replace them with the originals")
    return dict(num_examples=num_examples, data_path=data_path, label_path=label_path)


class _FashionMNISTFromFiles(_IdxFashionMNIST, skip_registration=True):
  # The registered name and version: a later tfds.load('fashion_mnist') reads what this wrote.
  name = "fashion_mnist"


class _FashionMNISTSmall(_IdxFashionMNIST, skip_registration=True):
  name = "fashion_mnist_small"
