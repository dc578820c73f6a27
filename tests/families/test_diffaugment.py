"""DiffAugment: each transform does what it says, stays differentiable, and is seeded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.families import diffaugment

# Eager, every jax op compiles a program of its own (50-80 ms each on 2 cores): the tests
# below jit the transforms and build and compare images in numpy.
IMAGES = np.asarray(jax.jit(lambda: jax.random.uniform(jax.random.PRNGKey(0), (16, 16, 16, 3),
                                                       minval=-1.0, maxval=1.0))())
augment = jax.jit(diffaugment.augment, static_argnums=2)


def test_translation_shifts_by_at_most_an_eighth_and_fills_with_zeros():
  out = np.asarray(jax.jit(diffaugment.translation)(jax.random.PRNGKey(1), IMAGES))
  for image, shifted in zip(np.asarray(IMAGES), out):
    matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
               if np.array_equal(shifted, _shift(image, dy, dx))]
    assert matches, "every output is the input shifted by at most 2 = 16/8 pixels"
  assert np.any(out == 0.0)


def _shift(image, dy, dx):
  """out[i, j] = image[i + dy, j + dx], zero outside."""
  h, w, _ = image.shape
  out = np.zeros_like(image)
  rows, cols = np.arange(h) + dy, np.arange(w) + dx
  valid_r, valid_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
  out[np.ix_(valid_r, valid_c)] = image[np.ix_(rows[valid_r], cols[valid_c])]
  return out


def test_cutout_zeroes_one_square_of_half_the_side():
  ones = np.ones((64, 16, 16, 1), np.float32)
  out = np.asarray(jax.jit(diffaugment.cutout)(jax.random.PRNGKey(2), ones))[..., 0]
  zeroed = (out == 0).sum(axis=(1, 2))
  assert zeroed.max() == 64 and zeroed.min() > 0  # 8x8 squares, clipped at the border.
  for mask in out == 0:
    rows, cols = np.where(mask)
    assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # One rectangle.


def test_color_keeps_grey_images_grey_and_moves_values():
  color = jax.jit(diffaugment.color)
  out = np.asarray(color(jax.random.PRNGKey(3), IMAGES))
  assert out.shape == IMAGES.shape and not np.allclose(out, IMAGES)
  grey = np.repeat(IMAGES[..., :1], 3, axis=-1)
  out = np.asarray(color(jax.random.PRNGKey(3), grey))
  np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-6)


def test_augment_is_seeded_and_differentiable():
  policy = "color,translation,cutout"
  # Two calls of one compiled function: within one program XLA could merge the two draws.
  a = augment(jax.random.PRNGKey(4), IMAGES, policy)
  b = augment(jax.random.PRNGKey(4), IMAGES, policy)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, augment(jax.random.PRNGKey(5), IMAGES, policy))
  grad = np.asarray(jax.jit(jax.grad(lambda x: jnp.sum(
      diffaugment.augment(jax.random.PRNGKey(4), x, policy))))(IMAGES))
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)
  np.testing.assert_array_equal(augment(jax.random.PRNGKey(4), IMAGES, ""), IMAGES)


def test_unknown_policy_is_a_user_error():
  with pytest.raises(UserError, match="'zoom'.*color, translation, cutout"):
    diffaugment.parse("translation,zoom")
