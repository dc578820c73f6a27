"""The normalised ↔ uint8 mapping every part of jaxgen shares, and atomic file writes."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import files, images

PIXELS = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)


@pytest.mark.parametrize("normalize, low, high", [
    ("symmetric", -1.0, 1.0), ("unit", 0.0, 1.0), ("integer", 0.0, 255.0)])
def test_uint8_round_trips_through_each_range(normalize, low, high):
  normalised = images.from_uint8(PIXELS, normalize)
  assert normalised.dtype == np.float32
  assert normalised.min() == low and normalised.max() == high
  np.testing.assert_array_equal(images.to_uint8(normalised, normalize), PIXELS)


@pytest.mark.parametrize("normalize", ["symmetric", "unit", "integer"])
def test_numpy_and_jitted_jax_agree(normalize):
  values = np.random.default_rng(0).uniform(-1.2, 1.2, (64, 8)).astype(np.float32)
  if normalize != "symmetric":
    values = values * 300.0 if normalize == "integer" else values + 0.5
  pixels = jax.jit(lambda x: images.to_pixels(x, normalize, jnp))(values)
  np.testing.assert_array_equal(np.asarray(pixels).astype(np.uint8),
                                images.to_uint8(values, normalize))
  back = jax.jit(lambda x: images.from_uint8(x, normalize, jnp))(PIXELS)
  # XLA's float division may round differently from numpy's, in the last bit.
  np.testing.assert_allclose(back, images.from_uint8(PIXELS, normalize), atol=1e-6)


def test_dequantised_pixels_fill_the_range_without_reaching_its_top():
  scale, offset = images.scale_offset("symmetric", dequantize=True)
  assert 0.0 / scale + offset == -1.0 and 255.999 / scale + offset < 1.0
  with pytest.raises(ValueError, match="unknown normalize mode 'signed'"):
    images.scale_offset("signed")


def test_atomic_write_replaces_the_file_only_when_the_block_succeeds(tmp_path):
  path = str(tmp_path / "stats.npz")
  with files.atomic_write(path) as tmp:
    assert tmp.endswith(".npz") and tmp != path
    np.savez(tmp, x=np.arange(3))  # Keeps the name: np.savez only appends to other names.
  with pytest.raises(RuntimeError):
    with files.atomic_write(path) as tmp:
      np.savez(tmp, x=np.arange(5))
      raise RuntimeError("crash mid-write")
  with np.load(path) as f:
    np.testing.assert_array_equal(f["x"], np.arange(3))
  assert os.listdir(tmp_path) == ["stats.npz"]
