"""Converting model outputs to uint8 images and writing sample grids."""

import math
import os

import numpy as np


def to_uint8(images: np.ndarray, normalize: str) -> np.ndarray:
  """Maps images in the data's normalised range back to uint8 [n, H, W, C]."""
  images = np.asarray(images, dtype=np.float32)
  if normalize == "symmetric":
    images = (images + 1.0) * 127.5
  elif normalize == "unit":
    images = images * 255.0
  elif normalize != "integer":
    raise ValueError(f"unknown normalize mode {normalize!r}")
  return np.clip(np.round(images), 0, 255).astype(np.uint8)


def from_uint8(images: np.ndarray, normalize: str) -> np.ndarray:
  """uint8 [n, H, W, C] -> float32 in the data's normalised range (the inverse of to_uint8)."""
  images = np.asarray(images, dtype=np.float32)
  if normalize == "symmetric":
    return images / 127.5 - 1.0
  if normalize == "unit":
    return images / 255.0
  if normalize != "integer":
    raise ValueError(f"unknown normalize mode {normalize!r}")
  return images


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
  tmp = path + ".tmp"
  Image.fromarray(image[..., 0] if mode == "L" else image, mode=mode).save(tmp, format="PNG")
  os.replace(tmp, path)
