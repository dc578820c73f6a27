"""Batched augmentation: exact flips, centred warps, reproducible draws, one op per batch."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from jaxgen.data import augment
from jaxgen.errors import UserError


def knobs(flip=False, rotation=0.0, zoom=0.0, translate=0.0):
  return ml_collections.ConfigDict(dict(flip=flip, rotation=rotation, zoom=zoom,
                                        translate=translate))


def random_images(batch=32, size=9, channels=3):
  rng = np.random.default_rng(0)
  return tf.constant(rng.integers(0, 256, (batch, size, size, channels)).astype(np.float32))


SEED = tf.constant([3, 4], tf.int64)


def test_all_knobs_off_returns_the_input_itself():
  images = random_images()
  assert augment.augment_batch(images, SEED, knobs()) is images


def test_flip_is_exactly_flip_left_right_or_identity():
  images = random_images(batch=64)
  out = augment.augment_batch(images, SEED, knobs(flip=True)).numpy()
  flipped = tf.image.flip_left_right(images).numpy()
  is_flipped = [np.array_equal(o, f) for o, f in zip(out, flipped)]
  is_same = [np.array_equal(o, x) for o, x in zip(out, images.numpy())]
  assert all(a or b for a, b in zip(is_flipped, is_same))
  assert 16 < sum(is_flipped) < 48  # p = 0.5 over 64 images.


def test_warps_turn_about_the_centre():
  # A lone bright pixel at the centre stays put under any flip, rotation and zoom.
  images = np.zeros((16, 9, 9, 1), np.float32)
  images[:, 4, 4] = 255.0
  out = augment.augment_batch(tf.constant(images), SEED,
                              knobs(flip=True, rotation=40.0, zoom=0.3)).numpy()
  np.testing.assert_allclose(out[:, 4, 4, 0], 255.0, rtol=1e-5)


def test_translation_moves_content_within_the_limit():
  images = np.zeros((16, 21, 21, 1), np.float32)
  images[:, 10, 10] = 255.0
  out = augment.augment_batch(tf.constant(images), SEED, knobs(translate=0.2)).numpy()[..., 0]
  rows, cols = np.mgrid[:21, :21]
  mass = out.sum(axis=(1, 2))
  dy = (out * rows).sum(axis=(1, 2)) / mass - 10
  dx = (out * cols).sum(axis=(1, 2)) / mass - 10
  assert np.all(np.abs(dx) <= 0.2 * 21 + 1e-3) and np.all(np.abs(dy) <= 0.2 * 21 + 1e-3)
  assert np.abs(dx).max() > 1 and np.abs(dy).max() > 1


def test_augmentation_changes_images_and_keeps_the_pixel_range():
  images = random_images()
  cfg = knobs(flip=True, rotation=15.0, zoom=0.2, translate=0.1)
  out = augment.augment_batch(images, SEED, cfg).numpy()
  assert out.shape == images.shape and out.dtype == np.float32
  assert out.min() >= 0.0 and out.max() <= 255.0
  assert np.mean(np.abs(out - images.numpy())) > 10.0


def test_same_seed_same_output_other_seed_other_output():
  images = random_images()
  cfg = knobs(flip=True, rotation=15.0, zoom=0.2, translate=0.1)
  first = augment.augment_batch(images, SEED, cfg).numpy()
  np.testing.assert_array_equal(first, augment.augment_batch(images, SEED, cfg).numpy())
  other = augment.augment_batch(images, tf.constant([3, 5], tf.int64), cfg).numpy()
  assert not np.array_equal(first, other)


def test_one_warp_op_per_batch():
  cfg = knobs(flip=True, rotation=15.0, zoom=0.2, translate=0.1)
  fn = tf.function(lambda x, s: augment.augment_batch(x, s, cfg))
  graph = fn.get_concrete_function(tf.TensorSpec([None, 9, 9, 3], tf.float32),
                                   tf.TensorSpec([2], tf.int64)).graph
  warps = [op for op in graph.get_operations() if op.type == "ImageProjectiveTransformV3"]
  assert len(warps) == 1


@pytest.mark.parametrize("cfg, match", [
    (knobs(zoom=1.0), "data.augment.zoom=1.0"),
    (knobs(rotation=-5.0), "data.augment.rotation=-5.0"),
    (knobs(flip=1), "data.augment.flip=1"),
])
def test_out_of_range_knobs_raise_user_error(cfg, match):
  with pytest.raises(UserError, match=match):
    augment.augment_batch(random_images(), SEED, cfg)
