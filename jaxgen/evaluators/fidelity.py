"""Per-image fidelity of a reconstruction to its original: PSNR and SSIM, in jnp so they run
inside a family's jitted eval step, sharded over the batch.

Both compare 8-bit images (inputs in [-1, 1] are rounded to 256 levels first, as the PNGs a
user compares would be). SSIM is Wang et al. (2004) with an 11 × 11 Gaussian window of
σ 1.5, K1 = 0.01, K2 = 0.03, over valid windows, averaged over positions and channels:
`tf.image.ssim`'s definition, which the tests check it against. Written here rather than
called from TensorFlow because it must trace inside JAX.
"""

import jax
import jax.numpy as jnp

from jaxgen import superres

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def to_pixels(image):
  """[-1, 1] → float pixel values 0..255 on the 8-bit grid."""
  return (superres.quantise(image) + 1.0) * 127.5


def psnr(estimate, original):
  """Peak signal-to-noise ratio in dB per image [b]; images [b, H, W, C] in [-1, 1]. An exact
  copy is capped at 100 dB, so a mean over images stays finite."""
  mse = jnp.mean((to_pixels(estimate) - to_pixels(original)) ** 2, axis=(1, 2, 3))
  return jnp.minimum(10.0 * jnp.log10(255.0 ** 2 / jnp.maximum(mse, 1e-10)), 100.0)


def _window_means(x):
  """The Gaussian-weighted mean of every valid 11 × 11 window, per channel."""
  taps = jnp.exp(-0.5 * ((jnp.arange(SSIM_WINDOW) - SSIM_WINDOW // 2) / SSIM_SIGMA) ** 2)
  taps = taps / taps.sum()
  kernel = jnp.outer(taps, taps)[:, :, None, None]
  channels = x.shape[-1]
  return jax.lax.conv_general_dilated(
      x, jnp.tile(kernel, (1, 1, 1, channels)), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels,
      precision=jax.lax.Precision.HIGHEST)


def ssim(estimate, original):
  """Structural similarity per image [b]; images [b, H, W, C] in [-1, 1], H, W ≥ 11."""
  x, y = to_pixels(estimate), to_pixels(original)
  c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
  mu_x, mu_y = _window_means(x), _window_means(y)
  var_x = _window_means(x * x) - mu_x ** 2
  var_y = _window_means(y * y) - mu_y ** 2
  cov = _window_means(x * y) - mu_x * mu_y
  luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
  structure = (2 * cov + c2) / (var_x + var_y + c2)
  return jnp.mean(luminance * structure, axis=(1, 2, 3))


def upscaling_metrics(upscaled, baseline, original) -> dict:
  """Per-image {'psnr', 'ssim'} of a model's upscalings [b, H, W, C] and {'baseline_psnr',
  'baseline_ssim'} of the interpolation baseline, each against the original."""
  return {"psnr": psnr(upscaled, original), "ssim": ssim(upscaled, original),
          "baseline_psnr": psnr(baseline, original), "baseline_ssim": ssim(baseline, original)}
