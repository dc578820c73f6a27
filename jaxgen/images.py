"""Pixels ↔ the data's normalised range (numpy, jax.numpy and tf.data alike); sample grids."""

import math
import os

import numpy as np

from jaxgen import files


def scale_offset(normalize: str, dequantize: bool = False) -> tuple[float, float]:
  """(scale, offset) with normalised = pixels / scale + offset, for pixel values in [0, 256).

  The one definition of data.normalize's ranges: 'symmetric' is [-1, 1], 'unit' [0, 1],
  'integer' the pixel values themselves. Dequantised pixels fill [0, 256), so they are
  divided by 256 and land in [-1, 1) or [0, 1). Divide by `scale` rather than multiply by
  its reciprocal, which rounds differently.
  """
  if normalize == "symmetric":
    return (128.0 if dequantize else 127.5), -1.0
  if normalize == "unit":
    return (256.0 if dequantize else 255.0), 0.0
  if normalize == "integer":
    return 1.0, 0.0
  raise ValueError(f"unknown normalize mode {normalize!r}")


def to_pixels(images, normalize: str, xp=np):
  """Images in the data's normalised range → float pixel values, rounded into [0, 255].

  `xp` is the array namespace (numpy or jax.numpy); a float input keeps its dtype.
  """
  scale, offset = scale_offset(normalize)
  return xp.clip(xp.round((images - offset) * scale), 0, 255)


def to_uint8(images: np.ndarray, normalize: str) -> np.ndarray:
  """Maps images in the data's normalised range back to uint8 [n, H, W, C]."""
  return to_pixels(np.asarray(images, dtype=np.float32), normalize).astype(np.uint8)


def from_uint8(images, normalize: str, xp=np):
  """uint8 [n, H, W, C] → float32 in the data's normalised range (the inverse of to_uint8).

  `xp` is the array namespace (numpy or jax.numpy).
  """
  scale, offset = scale_offset(normalize)
  return xp.asarray(images, dtype=xp.float32) / scale + offset


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
  """Tiles uint8 [n, H, W, C] into one [rows·(H+pad)+pad, cols·(W+pad)+pad, C] image."""
  n, h, w, c = images.shape
  columns = columns or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / columns))
  out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    y, x = pad + r * (h + pad), pad + col * (w + pad)
    out[y:y + h, x:x + w] = image
  return out


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a uint8 [H, W, C] image (C = 1 or 3) atomically."""
  from PIL import Image  # Imported here: only sample writing needs it.
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  mode = "L" if image.shape[-1] == 1 else "RGB"
  with files.atomic_write(path) as tmp:
    Image.fromarray(image[..., 0] if mode == "L" else image, mode=mode).save(tmp, format="PNG")
