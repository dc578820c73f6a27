"""JPEG's loss in jnp matches a real save and load (PIL's libjpeg) to about a level, and the
super-resolution degradation applies it to the low-resolution image."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import jpeg, superres


def _pil_round_trip(pixels, quality):
  from PIL import Image
  grey = pixels.shape[-1] == 1
  buffer = io.BytesIO()
  Image.fromarray(pixels[..., 0] if grey else pixels, "L" if grey else "RGB").save(
      buffer, "JPEG", quality=quality, subsampling=0)
  out = np.asarray(Image.open(buffer), np.float32)
  return out[..., None] if grey else out


def _image(channels, size=28):
  """A smooth pattern with pixel noise: JPEG loses a few levels on it, not everything."""
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:size, 0:size]
  grey = np.clip(128 + 80 * np.sin(xx / 3) * np.cos(yy / 4) + rng.normal(0, 10, (size, size)),
                 0, 255)
  planes = [grey, np.roll(grey, 5, 0), 255 - grey][:channels]
  return np.stack(planes, -1).astype(np.uint8)


@pytest.mark.parametrize("quality", [10, 50, 95])
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 28), (1, 7)])
def test_compression_is_what_a_jpeg_save_and_load_leaves(quality, channels, size):
  """Measured on 28 × 28: |ours − PIL| averages 0–0.43 levels on grey and 0.01–1.0 on RGB,
  where JPEG itself moves pixels by 1.5–13.7 levels; libjpeg's integer DCTs round
  differently."""
  pixels = _image(channels, size)
  ours = np.asarray(jpeg.compress(jnp.asarray(pixels[None], jnp.float32), quality))[0]
  real = _pil_round_trip(pixels, quality)
  # About a level from the real round trip, and nearer to it than the uncompressed image is.
  assert np.abs(ours - real).mean() < min(1.1, np.abs(real - pixels).mean())
  np.testing.assert_array_equal(ours, np.round(ours))


def test_the_degradation_compresses_the_low_resolution_image():
  image = jnp.asarray(_image(1)[None] / 127.5 - 1, jnp.float32)
  opts = superres.default_options()
  plain = superres.low_resolution(opts, image, None)
  opts.jpeg = 30
  compressed = superres.low_resolution(opts, image, None)
  np.testing.assert_allclose(
      (compressed + 1) * 127.5, jpeg.compress(jnp.round((plain + 1) * 127.5), 30), atol=1e-4)
  assert float(jnp.abs(compressed - plain).max()) > 0
  assert "JPEG quality 30" in superres.provenance(opts)["superres/degradation"]
  jax.jit(lambda x: superres.low_resolution(opts, x, None))(image)  # Traces in a step.
