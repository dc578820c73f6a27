"""Differentiable augmentation (DiffAugment, Zhao et al., 2020) for GAN training on little data.

The same random transforms are applied to real and fake images before the discriminator,
inside the jitted step; they are differentiable in the images, so the generator learns
through them. Without them a discriminator memorises a small training set and the
generator collapses. Images are [batch, height, width, channels] in [-1, 1]; the transform
parameters are per example, as in the reference implementation.

Policy: a comma-separated subset of 'color', 'translation', 'cutout' ('' = off).
"""

import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

OPS = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125  # Shift by up to 1/8 of the image; the reference defaults.
CUTOUT_RATIO = 0.5         # Zero a square half the image's side.


def parse(policy: str) -> tuple[str, ...]:
  """'color,translation' -> ('color', 'translation'), refusing unknown names."""
  ops = tuple(op.strip() for op in policy.split(",") if op.strip())
  unknown = [op for op in ops if op not in OPS]
  if unknown:
    raise UserError(f"gan.diffaugment={policy!r}: unknown {unknown}; expected a comma-separated "
                    f"subset of {', '.join(OPS)}, or '' for none")
  return ops


def augment(rng: jax.Array, images: jax.Array, policy: str) -> jax.Array:
  """Applies the policy's transforms in the reference order: color, translation, cutout."""
  ops = parse(policy)
  keys = jax.random.split(rng, len(OPS))
  for op, key in zip(OPS, keys):
    if op in ops:
      images = _OPS[op](key, images)
  return images


def _per_example(key, images):
  """One uniform [0, 1) draw per example, broadcastable against the images."""
  return jax.random.uniform(key, (images.shape[0],) + (1,) * (images.ndim - 1), images.dtype)


def color(rng, x):
  """Brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5]."""
  brightness, saturation, contrast = jax.random.split(rng, 3)
  x = x + (_per_example(brightness, x) - 0.5)
  mean = jnp.mean(x, axis=-1, keepdims=True)  # A no-op for one channel, as in the reference.
  x = (x - mean) * (_per_example(saturation, x) * 2.0) + mean
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (_per_example(contrast, x) + 0.5) + mean


def translation(rng, x):
  """Shifts each image by an integer offset in [-s, s]² pixels, filling with zeros."""
  b, h, w, _ = x.shape
  shift_h, shift_w = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
  ky, kx = jax.random.split(rng)
  ty = jax.random.randint(ky, (b, 1), -shift_h, shift_h + 1)
  tx = jax.random.randint(kx, (b, 1), -shift_w, shift_w + 1)
  # Indices into the image padded by one zero pixel: out-of-range reads land on the zeros.
  rows = jnp.clip(jnp.arange(h)[None] + ty + 1, 0, h + 1)
  cols = jnp.clip(jnp.arange(w)[None] + tx + 1, 0, w + 1)
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return jax.vmap(lambda image, r, c: image[r][:, c])(padded, rows, cols)


def cutout(rng, x):
  """Zeroes one square of side h/2 per image, centred anywhere (it may overhang the edge)."""
  b, h, w, _ = x.shape
  size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
  ky, kx = jax.random.split(rng)
  cy = jax.random.randint(ky, (b, 1), 0, h + (1 - size_h % 2))
  cx = jax.random.randint(kx, (b, 1), 0, w + (1 - size_w % 2))
  top, left = cy - size_h // 2, cx - size_w // 2
  in_rows = (jnp.arange(h)[None] >= top) & (jnp.arange(h)[None] < top + size_h)
  in_cols = (jnp.arange(w)[None] >= left) & (jnp.arange(w)[None] < left + size_w)
  keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
  return x * keep[..., None].astype(x.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}
