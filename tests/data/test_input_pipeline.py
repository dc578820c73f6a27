"""Input pipelines: values per normalize mode, exact resume, per-process order, eval masks."""

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec as P

from jaxgen import config as config_lib, images as images_lib
from jaxgen.data import datasets, input_pipeline
from jaxgen.errors import UserError


def make_data(**overrides):
  data = config_lib.base_config().data
  data.update(overrides)
  return data


def numbered_source(n=50, size=6):
  """Random uint8 images whose label is their row, so a batch says which rows it holds."""
  rng = np.random.default_rng(0)
  return datasets.Source(images=rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
                         labels=np.arange(n, dtype=np.int32), num_dropped=0, num_classes=None,
                         name="numbered", split="train")


def take(ds, count):
  return list(ds.take(count).as_numpy_iterator())


@pytest.fixture(scope="module")
def bundled_test_split(data_dir):
  return datasets.load_split(make_data(data_dir=data_dir), "test")


@pytest.mark.parametrize("normalize, dequantize, dtype, low, high", [
    ("symmetric", False, np.float32, -1.0, 1.0),
    ("unit", False, np.float32, 0.0, 1.0),
    ("integer", False, np.int32, 0, 255),
    ("symmetric", True, np.float32, -1.0, 1.0 - 1e-7),
    ("unit", True, np.float32, 0.0, 1.0 - 1e-7),
])
def test_bundled_batches_per_normalize_mode(bundled_test_split, normalize, dequantize, dtype,
                                            low, high):
  data = make_data(normalize=normalize, dequantize=dequantize)
  ds = input_pipeline.train_dataset(data, bundled_test_split, local_batch_size=64, seed=0,
                                    start_step=0)
  for batch in take(ds, 3):
    image, label = batch["image"], batch["label"]
    assert image.shape == (64, 28, 28, 1) and image.dtype == dtype
    assert label.shape == (64,) and label.dtype == np.int32
    assert image.min() >= low and image.max() <= high
    assert image.min() < low + 0.1 * (high - low) and image.max() > high - 0.1 * (high - low)


@pytest.mark.parametrize("normalize, expected", [
    ("symmetric", lambda x: x / 127.5 - 1.0),
    ("unit", lambda x: x / 255.0),
    ("integer", lambda x: x),
])
def test_images_are_the_gathered_rows_normalised(normalize, expected):
  source = numbered_source()
  data = make_data(normalize=normalize)
  batch, = take(input_pipeline.train_dataset(data, source, local_batch_size=8, seed=1,
                                             start_step=3), 1)
  want = expected(source.images[batch["label"]].astype(np.float32))
  np.testing.assert_allclose(batch["image"], want, atol=1e-6)


def test_dequantisation_noise_stays_inside_each_pixel_bin():
  source = numbered_source()
  batch, = take(input_pipeline.train_dataset(make_data(normalize="unit", dequantize=True),
                                             source, local_batch_size=8, seed=1, start_step=0), 1)
  pixels = batch["image"] * 256.0
  base = source.images[batch["label"]].astype(np.float32)
  assert np.all(pixels >= base - 1e-3) and np.all(pixels < base + 1.0 + 1e-3)
  assert 0.3 < np.mean(pixels - base) < 0.7


def test_each_epoch_is_a_fresh_permutation():
  source = numbered_source(n=50)
  labels = [b["label"] for b in take(input_pipeline.train_dataset(
      make_data(), source, local_batch_size=8, seed=0, start_step=0), 12)]
  first, second = np.concatenate(labels[:6]), np.concatenate(labels[6:])
  assert len(set(first)) == 48 and len(set(second)) == 48  # 50 // 8 batches, remainder dropped.
  assert not np.array_equal(first, second)


def _epoch_rows(epoch, n, batch_size):
  """[steps_per_epoch, batch] rows the shuffled in-memory path gives one epoch's steps."""
  import tensorflow as tf
  steps = n // batch_size
  return np.stack([input_pipeline._train_indices(
      tf.constant(epoch * steps + s, tf.int64), n, steps, batch_size, 0, 0, True).numpy()
      for s in range(steps)])


def _mean_spread(rows, n):
  """The std of the batches' mean row over a random batch's (1 for a random permutation)."""
  return rows.mean(axis=1).std() / (n / np.sqrt(12 * rows.shape[1]))


def test_batches_are_drawn_like_a_random_permutation():
  # Fashion-MNIST's shape. TF's default of 4 rounds fails both: an epoch's batch drew its
  # images from 13 of the previous epoch's batches (random: 112), and batch means of the
  # row spread 0.50 times as much as a random batch's.
  n, batch = 60_000, 128
  first, second = _epoch_rows(0, n, batch), _epoch_rows(1, n, batch)
  steps = n // batch
  batch_of = np.empty(n, int)
  batch_of[first.ravel()] = np.repeat(np.arange(steps), batch)
  sources = np.mean([len(np.unique(batch_of[row])) for row in second])
  expected = steps * (1 - (1 - 1 / steps) ** batch)
  assert sources > 0.9 * expected, (sources, expected)
  assert 0.8 < _mean_spread(first, n) < 1.25


def test_streamed_batches_are_drawn_like_a_random_permutation():
  import grain
  n, batch = 60_000, 128  # Grain's own shuffle alone: 0.52.
  records = input_pipeline.shuffled(grain.MapDataset.range(n), seed=0)
  rows = np.array([records[i] for i in range(n // batch * batch)]).reshape(-1, batch)
  assert len(np.unique(rows)) == rows.size
  assert 0.8 < _mean_spread(rows, n) < 1.25


def test_no_shuffle_reads_in_order():
  source = numbered_source(n=50)
  labels = [b["label"] for b in take(input_pipeline.train_dataset(
      make_data(shuffle=False), source, local_batch_size=8, seed=0, start_step=5), 2)]
  np.testing.assert_array_equal(labels[0], np.arange(40, 48))
  np.testing.assert_array_equal(labels[1], np.arange(0, 8))


@pytest.mark.parametrize("start", [4, 7])
def test_resume_at_step_k_sees_the_uninterrupted_batches(start):
  # 6 steps per epoch: both resumes cross or start past an epoch boundary.
  source = numbered_source(n=50)
  data = make_data(dequantize=True, augment=dict(flip=True, rotation=10.0, zoom=0.1,
                                                 translate=0.1))
  build = lambda step: input_pipeline.train_dataset(data, source, local_batch_size=8, seed=5,
                                                    start_step=step)
  uninterrupted = take(build(0), start + 5)[start:]
  for want, got in zip(uninterrupted, take(build(start), 5), strict=True):
    np.testing.assert_array_equal(got["label"], want["label"])
    np.testing.assert_array_equal(got["image"], want["image"])


def test_processes_draw_their_own_order_and_augmentation():
  source = numbered_source(n=50)

  def first_batches(**overrides):
    data = make_data(augment=dict(flip=False, rotation=20.0, zoom=0.0, translate=0.0),
                     **overrides)
    return [take(input_pipeline.train_dataset(data, source, local_batch_size=8, seed=0,
                                              start_step=0, process_index=i), 1)[0]
            for i in range(2)]

  shuffled = first_batches()
  assert not np.array_equal(shuffled[0]["label"], shuffled[1]["label"])
  ordered = first_batches(shuffle=False)
  np.testing.assert_array_equal(ordered[0]["label"], ordered[1]["label"])
  assert not np.array_equal(ordered[0]["image"], ordered[1]["image"])


def test_batch_larger_than_the_shard_is_a_user_error():
  with pytest.raises(UserError, match="per-process batch of 64"):
    input_pipeline.train_dataset(make_data(), numbered_source(n=50), local_batch_size=64,
                                 seed=0, start_step=0)


@pytest.mark.parametrize("max_shard_size, num_batches", [(None, 4), (64, 4), (65, 5)])
def test_eval_covers_every_example_once(max_shard_size, num_batches):
  source = numbered_source(n=50)
  source.max_shard_size = max_shard_size
  batches = list(input_pipeline.eval_dataset(make_data(), source, local_batch_size=16)
                 .as_numpy_iterator())
  assert len(batches) == num_batches
  mask = np.concatenate([b["mask"] for b in batches])
  labels = np.concatenate([b["label"] for b in batches])
  assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
  np.testing.assert_array_equal(labels[mask == 1], np.arange(50))
  images = np.concatenate([b["image"] for b in batches])[mask == 1]
  np.testing.assert_allclose(images, source.images / 127.5 - 1.0, atol=1e-6)


@pytest.mark.parametrize("normalize", ["symmetric", "unit"])
def test_eval_images_are_exactly_images_from_uint8(normalize):
  # Bit for bit: the FID reference statistics rely on tf.data and jaxgen.images agreeing.
  source = numbered_source(n=16)
  batch, = input_pipeline.eval_dataset(make_data(normalize=normalize), source,
                                       local_batch_size=16).as_numpy_iterator()
  np.testing.assert_array_equal(batch["image"], images_lib.from_uint8(source.images, normalize))


def test_eval_dequantised_pixels_sit_at_bin_centres():
  source = numbered_source(n=8)
  batch, = input_pipeline.eval_dataset(make_data(normalize="unit", dequantize=True), source,
                                       local_batch_size=8).as_numpy_iterator()
  np.testing.assert_allclose(batch["image"], (source.images + 0.5) / 256.0, atol=1e-6)


def make_mesh(shape):
  if jax.device_count() < 4:
    pytest.skip("needs 4 devices: XLA_FLAGS=--xla_force_host_platform_device_count=4")
  return jax.make_mesh(shape, ("data", "model"), axis_types=(AxisType.Auto,) * 2,
                       devices=jax.devices()[:4])


@pytest.mark.parametrize("shape", [(4, 1), (2, 2)])
def test_global_batches_shard_the_batch_over_data(shape):
  mesh = make_mesh(shape)
  ds = input_pipeline.train_dataset(make_data(), numbered_source(), local_batch_size=8, seed=0,
                                    start_step=0)
  local = take(ds, 3)
  batches = input_pipeline.global_batches(ds, mesh)
  for want in local:
    got = next(batches)
    assert got["image"].sharding.spec == P("data") and got["image"].shape == (8, 6, 6, 1)
    per_device = {s.device: s.index for s in got["label"].addressable_shards}
    assert len({idx[0].start for idx in per_device.values()}) == shape[0]
    np.testing.assert_array_equal(np.asarray(got["image"]), want["image"])
    np.testing.assert_array_equal(np.asarray(got["label"]), want["label"])


def test_global_batches_end_with_a_finite_dataset():
  ds = input_pipeline.eval_dataset(make_data(), numbered_source(n=50), local_batch_size=16)
  masks = [b["mask"] for b in input_pipeline.global_batches(ds, make_mesh((4, 1)), prefetch=3)]
  assert len(masks) == 4 and float(sum(m.sum() for m in masks)) == 50.0
