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
  jpeg     a JPEG quality 1–100: the low-resolution image as a save and load at it would
           leave it (`jaxgen.jpeg`); 0: no compression;
  upsample how the low-resolution image is brought back to H × W for the network and for
           the baseline it is compared against: 'cubic' (bicubic), 'linear' or 'nearest'.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import jpeg
from jaxgen.errors import UserError

UPSAMPLE_METHODS = ("cubic", "linear", "nearest")
# A family's degradations draw from fold_in(its key, this): the splits the rest of its step
# makes of the same key, and so every run without super-resolution, stay as they were.
KEY_STREAM = 0x5e5


def default_options() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(factor=4, blur=0.0, noise=0.0, quantise=True,
                                        jpeg=0, upsample="cubic"))


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
  if not isinstance(opts.jpeg, int) or not 0 <= opts.jpeg <= 100:
    raise UserError(f"superres.jpeg={opts.jpeg!r}: expected a JPEG quality from 1 to 100, or "
                    "0 (no compression)")
  if opts.upsample not in UPSAMPLE_METHODS:
    raise UserError(f"superres.upsample={opts.upsample!r}: expected one of "
                    f"{', '.join(UPSAMPLE_METHODS)}")


def check_run(config, image_shape) -> ml_collections.ConfigDict:
  """config.superres's options for images of `image_shape`, checked (`check`)."""
  opts = options(config)
  check(opts, image_shape)
  return opts


def preview_grid_order(baseline, upscaled, originals, columns: int) -> np.ndarray:
  """The [n, H, W, C] stacks interleaved for a grid of `columns`: for each run of `columns`
  examples, a row of their baselines, one of their upscalings and one of the originals
  (white where the last run is short)."""
  n = len(originals)
  padded = -n % columns
  rows = []
  for start in range(0, n, columns):
    for stack in (baseline, upscaled, originals):
      rows.append(stack[start:start + columns])
      if start + columns > n and padded:
        rows.append(np.full((padded, *stack.shape[1:]), 255, stack.dtype))
  return np.concatenate(rows)


def provenance(opts) -> dict:
  """How a super-resolution run's evaluation degraded and compared its images."""
  return {"superres/degradation": f"Gaussian blur σ {opts.blur:g}, box ÷{opts.factor}, noise "
                                  f"σ {opts.noise:g}" + (", 8-bit" if opts.quantise else "")
                                  + (f", JPEG quality {opts.jpeg}" if opts.jpeg else ""),
          "superres/baseline": f"{opts.upsample} upsampling of the degraded image",
          "superres/psnr_ssim": "8-bit images; SSIM as tf.image.ssim (11×11 Gaussian σ 1.5)"}


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


def to_levels(image):
  """[-1, 1] images → the nearest of the 8-bit levels 0..255, as floats."""
  return jnp.round((jnp.clip(image, -1.0, 1.0) + 1.0) * 127.5)


def quantise(image):
  """[-1, 1] images rounded to the 256 levels of an 8-bit image."""
  return jnp.round((jnp.clip(image, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def low_resolution(opts, image, rng):
  """The degraded copy [b, H/f, W/f, C] of `image` [b, H, W, C] in [-1, 1]."""
  image = image.astype(jnp.float32)
  if opts.quantise and not opts.blur and not opts.noise:
    # 8-bit in, 8-bit out: the block means of integer levels, whose sums are exact in float32
    # whatever order XLA adds in, so a mean on a tie (x.5 levels: one block in 16 at ÷4)
    # rounds the same way on one device or many, and the pairs are the same on any mesh.
    levels = box_downsample(to_levels(image), opts.factor)
    low = jnp.round(levels) / 127.5 - 1.0
  else:
    low = box_downsample(gaussian_blur(image, opts.blur), opts.factor)
    if opts.noise > 0:
      low = low + opts.noise * jax.random.normal(rng, low.shape)
    low = quantise(low) if opts.quantise else jnp.clip(low, -1.0, 1.0)
  if opts.jpeg:
    low = jpeg.compress(to_levels(low), opts.jpeg) / 127.5 - 1.0
  return low


def upsample(opts, low, image_shape):
  """low [b, h, w, C] → [b, H, W, C] by opts.upsample, clipped to [-1, 1]: the network's
  condition image and the bicubic (or other) baseline."""
  shape = (low.shape[0], *image_shape)
  return jnp.clip(jax.image.resize(low, shape, method=opts.upsample), -1.0, 1.0)


def condition_image(opts, image, rng):
  """`upsample(low_resolution(image))`: what SR3's network sees beside the noisy image."""
  return upsample(opts, low_resolution(opts, image, rng), image.shape[1:])
