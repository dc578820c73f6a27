"""JPEG compression's loss, in jnp: what an image keeps after a save and load at a quality.

The lossy part of baseline JPEG is exactly this: per 8 × 8 block (edges padded by
replication, as libjpeg pads), level-shift by 128, a 2-D DCT-II, division by the quality-
scaled quantisation table and rounding, then the inverse. Huffman coding is lossless, so it
is left out. Grey images use the standard luminance table; RGB goes to YCbCr (JFIF) with the
chrominance table on Cb and Cr at full resolution: what PIL writes with `subsampling=0`
(4:4:4). libjpeg's integer DCTs round differently, so the result matches a real save and
load to about a level (tests/test_jpeg.py), not bit for bit. Written in jnp, rather than
calling PIL or TensorFlow, because it runs inside a jitted, sharded training step.
"""

import math

import jax.numpy as jnp
import numpy as np

# ITU-T T.81 Annex K, Tables K.1 and K.2 (row-major).
_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float32)
_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, np.float32)


def quantisation_table(base: np.ndarray, quality: int) -> np.ndarray:
  """libjpeg's `jpeg_quality_scaling`: the 8 × 8 table at `quality` 1–100, baseline-clipped."""
  scale = 5000 / quality if quality < 50 else 200 - 2 * quality
  return np.clip(np.floor((base * scale + 50) / 100), 1, 255).reshape(8, 8)


def _dct_matrix() -> np.ndarray:
  """The orthonormal 8-point DCT-II as a matrix: coefficients = M @ samples."""
  k, n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
  m = np.cos((2 * n + 1) * k * math.pi / 16) * np.sqrt(2 / 8)
  m[0] /= np.sqrt(2)
  return m.astype(np.float32)


def _blocks_through_tables(x, tables):
  """x [b, H, W, C] level-shifted, H and W multiples of 8; tables [C, 8, 8]."""
  b, h, w, c = x.shape
  m = jnp.asarray(_dct_matrix())
  blocks = x.reshape(b, h // 8, 8, w // 8, 8, c)
  coeffs = jnp.einsum("ui,bhiwjc,vj->bhuwvc", m, blocks, m)
  q = jnp.asarray(tables).transpose(1, 2, 0)[None, None, :, None, :, :]  # [1,1,8,1,8,C]
  coeffs = jnp.round(coeffs / q) * q
  return jnp.einsum("ui,bhuwvc,vj->bhiwjc", m, coeffs, m).reshape(b, h, w, c)


def _to_ycbcr(rgb):
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  y = 0.299 * r + 0.587 * g + 0.114 * b
  return jnp.stack([y, -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0,
                      0.5 * r - 0.418688 * g - 0.081312 * b + 128.0], -1)


def _to_rgb(ycc):
  y, cb, cr = ycc[..., 0], ycc[..., 1] - 128.0, ycc[..., 2] - 128.0
  return jnp.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -1)


def compress(pixels, quality: int):
  """pixels [b, H, W, 1 or 3] on 0..255 → the same after a JPEG save and load at `quality`
  (1–100), rounded to 0..255."""
  b, h, w, c = pixels.shape
  if c not in (1, 3):
    raise ValueError(f"JPEG takes grey or RGB images, got {c} channels")
  x = jnp.pad(pixels.astype(jnp.float32), ((0, 0), (0, -h % 8), (0, -w % 8), (0, 0)),
              mode="edge")
  tables = [quantisation_table(_LUMA, quality)]
  if c == 3:  # libjpeg converts to 8-bit YCbCr samples before the DCT, and back after.
    x = jnp.clip(jnp.round(_to_ycbcr(x)), 0.0, 255.0)
    tables += [quantisation_table(_CHROMA, quality)] * 2
  x = _blocks_through_tables(x - 128.0, np.stack(tables)) + 128.0
  if c == 3:
    x = _to_rgb(jnp.clip(jnp.round(x), 0.0, 255.0))
  return jnp.clip(jnp.round(x[:, :h, :w]), 0.0, 255.0)
