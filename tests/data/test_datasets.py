"""Dataset sources: bundled Fashion-MNIST, offline preparation, image folders, generic TFDS."""

import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxgen import config as config_lib
from jaxgen.data import builders, datasets
from jaxgen.errors import UserError

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"


def make_data(**overrides):
  data = config_lib.base_config().data
  data.update(overrides)
  return data


@pytest.fixture(scope="module")
def bundled_dir(data_dir):
  """The suite's TFDS data_dir with fashion_mnist_small prepared (conftest)."""
  return data_dir


def read_idx_images(path):
  with gzip.open(path, "rb") as f:
    return np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28, 1)


def test_bundled_splits_hold_the_package_images(bundled_dir):
  train = datasets.load_split(make_data(data_dir=bundled_dir), "train")
  test = datasets.load_split(make_data(data_dir=bundled_dir), "test")
  assert train.images.shape == (10_000, 28, 28, 1) and train.images.dtype == np.uint8
  assert test.images.shape == (2_000, 28, 28, 1)
  assert train.labels.dtype == np.int32 and set(np.unique(test.labels)) == set(range(10))
  assert (train.num_classes, train.num_dropped, test.max_shard_size) == (10, 0, 2_000)
  # TFDS stores records in its own order: compare the images as sets of bytes.
  package = read_idx_images(os.path.join(builders.BUNDLED_DIR, "t10k-images-idx3-ubyte.gz"))
  assert sorted(x.tobytes() for x in test.images) == sorted(x.tobytes() for x in package)


def test_process_shards_are_disjoint_and_cover_the_split(bundled_dir):
  data = make_data(data_dir=bundled_dir)
  whole = datasets.load_split(data, "test")
  shards = [datasets.load_split(data, "test", i, 2) for i in range(2)]
  assert [len(s.images) for s in shards] == [1_000, 1_000]
  np.testing.assert_array_equal(np.concatenate([s.images for s in shards]), whole.images)
  np.testing.assert_array_equal(np.concatenate([s.labels for s in shards]), whole.labels)


def test_resize_and_channels_follow_the_config(bundled_dir):
  data = make_data(data_dir=bundled_dir, image_size=32, channels=3)
  source = datasets.load_split(data, "test", 0, 8)
  assert source.images.shape == (250, 32, 32, 3)
  np.testing.assert_array_equal(source.images[..., 0], source.images[..., 2])  # Grey → RGB.
  assert datasets.dataset_info(data) == {"shape": (32, 32, 3), "num_classes": 10}
  assert datasets.dataset_info(make_data(data_dir=bundled_dir)) == {
      "shape": (28, 28, 1), "num_classes": 10}


def write_png(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


def stripes(height, width):
  """RGB image: white left quarter, grey middle half, black right quarter."""
  image = np.full((height, width, 3), 100, np.uint8)
  image[:, :width // 4] = 255
  image[:, width - width // 4:] = 0
  return image


@pytest.fixture
def folder(tmp_path):
  """root/train/{cat,dog}/*.png: five good images (two shapes) and one truncated PNG."""
  root = tmp_path / "images"
  for i in range(3):
    write_png(str(root / "train" / "cat" / f"{i}.png"), stripes(8, 16))
  for i in range(2):
    write_png(str(root / "train" / "dog" / f"{i}.png"), stripes(12, 24))
  good = (root / "train" / "dog" / "0.png").read_bytes()
  (root / "train" / "dog" / "broken.png").write_bytes(good[:len(good) // 2])
  return str(root)


def test_folder_drops_and_counts_a_truncated_png(folder):
  source = datasets.load_split(make_data(name="folder", folder=folder, image_size=8), "train")
  assert source.images.shape == (5, 8, 8, 3) and source.num_dropped == 1
  assert source.num_classes == 2 and sorted(source.labels) == [0, 0, 0, 1, 1]
  # The central square crop keeps only the grey middle of every stripe image.
  assert np.all(source.images == 100)


def test_folder_without_crop_squeezes_the_whole_image(folder):
  data = make_data(name="folder", folder=folder, image_size=8, crop="none", channels=1)
  source = datasets.load_split(data, "train")
  assert source.images.shape == (5, 8, 8, 1)
  assert source.images[:, :, 0].min() > 200 and source.images[:, :, -1].max() < 50


def test_folder_shards_split_the_encoded_records(folder):
  data = make_data(name="folder", folder=folder, image_size=8)
  shards = [datasets.load_split(data, "train", i, 2) for i in range(2)]
  assert sum(len(s.images) + s.num_dropped for s in shards) == 6
  assert sum(s.num_dropped for s in shards) == 1
  assert all(s.max_shard_size == 3 for s in shards)


def test_folder_errors_name_the_fix(folder, tmp_path):
  with pytest.raises(UserError, match="not a directory"):
    datasets.load_split(make_data(name="folder", folder=str(tmp_path / "nope"), image_size=8),
                        "train")
  with pytest.raises(UserError, match="available splits are train"):
    datasets.load_split(make_data(name="folder", folder=folder, image_size=8), "test")
  with pytest.raises(UserError, match="needs data.image_size"):
    datasets.load_split(make_data(name="folder", folder=folder), "train")


def test_generic_tfds_dataset_without_labels(tmp_path):
  rng = np.random.default_rng(0)
  examples = [(i, {"image": rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)})
              for i in range(7)]
  features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, 3))})
  tfds.dataset_builders.store_as_tfds_dataset(
      name="tiny_rgb", version="1.0.0", features=features, split_datasets={"train": examples},
      data_dir=str(tmp_path), disable_shuffling=True)
  data = make_data(name="tiny_rgb", data_dir=str(tmp_path), image_size=4)
  source = datasets.load_split(data, "train", 1, 2)
  assert source.images.shape == (3, 4, 4, 3) and source.num_classes is None
  assert source.max_shard_size == 4 and not source.labels.any()
  with pytest.raises(UserError, match="varying size"):
    datasets.load_split(make_data(name="tiny_rgb", data_dir=str(tmp_path)), "train")


@pytest.mark.parametrize("overrides, match", [
    (dict(name="no_such_dataset"), "not a TFDS dataset.*fashion_mnist_small"),
    (dict(normalize="integer", dequantize=True), "data.dequantize=True"),
    (dict(crop="middle"), "data.crop='middle'"),
    (dict(channels=2), "data.channels=2"),
])
def test_bad_config_raises_user_error(tmp_path, overrides, match):
  with pytest.raises(UserError, match=match):
    datasets.load_split(make_data(data_dir=str(tmp_path), **overrides), "train")


def test_fashion_mnist_not_prepared_and_offline_says_what_to_do(tmp_path, monkeypatch):
  def offline(*args, **kwargs):
    raise ConnectionError("no network")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
  data = make_data(name="fashion_mnist", data_dir=str(tmp_path), manual_dir=str(tmp_path))
  with pytest.raises(UserError, match=f"not prepared in {tmp_path}.*fashion_mnist_small"):
    datasets.load_split(data, "test")


@pytest.mark.slow  # The full 70k images; the bundled subset takes the same path in seconds.
@pytest.mark.skipif(not os.path.isdir(DEBIAN_DIR), reason="needs Debian's dataset-fashion-mnist")
def test_fashion_mnist_prepares_offline_from_debian_files(tmp_path):
  data = make_data(name="fashion_mnist", data_dir=str(tmp_path), manual_dir=DEBIAN_DIR)
  source = datasets.load_split(data, "test")
  assert source.images.shape == (10_000, 28, 28, 1) and source.num_classes == 10
  # Prepared under the registered name: plain TFDS reads it back.
  ds = tfds.load("fashion_mnist", split="train", data_dir=str(tmp_path))
  assert ds.cardinality().numpy() == 60_000
