"""Super-resolution pairs made on the fly: each high-resolution image and its degraded copy.

Nothing extra is stored: a family that upscales (SR3's conditional diffusion) degrades each
training batch inside its jitted step, from the step's random key, so pairs are as
deterministic, sharded and resumable as the batches themselves. config.superres
(`default_options`) says how an image [b, H, W, C] in [-1, 1] is degraded:

  blur     σ of a Gaussian blur in high-resolution pixels (0: none), edges extended;
  factor   box downsampling by an integer factor (each low-resolution pixel is the mean of
           a factor × factor block: what `tf.image.resize(..., 'area')` does);
  noise    σ of Gaussian noise added to the low-resolution image, in [-1, 1] units;
  quantise True rounds the low-resolution image to 8 bits, as a saved PNG would be;
  upsample how the low-resolution image is brought back to H × W for the network and for
           the baseline it is compared against: 'cubic' (bicubic), 'linear' or 'nearest'.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen.errors import UserError

UPSAMPLE_METHODS = ("cubic", "linear", "nearest")


def default_options() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(factor=4, blur=0.0, noise=0.0, quantise=True,
                                        upsample="cubic"))


def options(config) -> ml_collections.ConfigDict | None:
  """config.superres with its defaults filled in, or None when the config upscales nothing."""
  if not config.get("superres"):
    return None
  opts = default_options()
  opts.update(config.superres)
  return opts


def check(opts, image_shape) -> None:
  """UserError for degradation knobs the images of `image_shape` (H, W, C) cannot take."""
  height, width = image_shape[:2]
  if not isinstance(opts.factor, int) or opts.factor < 2:
    raise UserError(f"superres.factor={opts.factor!r}: expected an integer of at least 2")
  if height % opts.factor or width % opts.factor:
    raise UserError(f"superres.factor={opts.factor}: the images are {height}×{width}, not "
                    f"divisible by it; pick a factor that divides both (e.g. 2 or 4 for 28)")
  for name in ("blur", "noise"):
    if not opts[name] >= 0:
      raise UserError(f"superres.{name}={opts[name]!r}: expected a σ ≥ 0 (0: none)")
  if opts.upsample not in UPSAMPLE_METHODS:
    raise UserError(f"superres.upsample={opts.upsample!r}: expected one of "
                    f"{', '.join(UPSAMPLE_METHODS)}")


def low_resolution_shape(opts, image_shape) -> tuple[int, int, int]:
  height, width, channels = image_shape
  return height // opts.factor, width // opts.factor, channels


def gaussian_blur(image, sigma: float):
  """image [b, H, W, C] blurred per channel by a separable Gaussian of σ pixels (radius
  ⌈3σ⌉), the edges extended so a flat image stays flat."""
  if sigma <= 0:
    return image
  radius = max(1, math.ceil(3 * sigma))
  taps = jnp.exp(-0.5 * (jnp.arange(-radius, radius + 1) / sigma) ** 2)
  taps = taps / taps.sum()
  padded = jnp.pad(image, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
  channels = image.shape[-1]
  for kernel in (taps[:, None], taps[None, :]):  # Rows, then columns.
    padded = jax.lax.conv_general_dilated(
        padded, jnp.tile(kernel[:, :, None, None], (1, 1, 1, channels)).astype(image.dtype),
        (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels)
  return padded


def box_downsample(image, factor: int):
  """[b, H, W, C] → [b, H/f, W/f, C]: each output pixel the mean of its f × f block."""
  b, h, w, c = image.shape
  return image.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def quantise(image):
  """[-1, 1] images rounded to the 256 levels of an 8-bit image."""
  return jnp.round((jnp.clip(image, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def low_resolution(opts, image, rng):
  """The degraded copy [b, H/f, W/f, C] of `image` [b, H, W, C] in [-1, 1]."""
  low = box_downsample(gaussian_blur(image.astype(jnp.float32), opts.blur), opts.factor)
  if opts.noise > 0:
    low = low + opts.noise * jax.random.normal(rng, low.shape)
  return quantise(low) if opts.quantise else jnp.clip(low, -1.0, 1.0)


def upsample(opts, low, image_shape):
  """low [b, h, w, C] → [b, H, W, C] by opts.upsample, clipped to [-1, 1]: the network's
  condition image and the bicubic (or other) baseline."""
  shape = (low.shape[0], *image_shape)
  return jnp.clip(jax.image.resize(low, shape, method=opts.upsample), -1.0, 1.0)


def condition_image(opts, image, rng):
  """`upsample(low_resolution(image))`: what SR3's network sees beside the noisy image."""
  return upsample(opts, low_resolution(opts, image, rng), image.shape[1:])
