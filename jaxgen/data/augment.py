"""Batched augmentation: one affine warp per batch, its parameters from stateless RNG.

Flip, rotation, zoom and translation fold into one affine matrix per image, applied to the
whole batch by a single `ImageProjectiveTransformV3` (tensorflow-addons is gone, and Keras'
random layers are not reproducible under a parallel map). Stateless draws make the output a
pure function of the seed, which is what lets a resumed run see the same batches.
"""

import math
import numbers

import tensorflow as tf

from jaxgen.errors import UserError


def check_config(cfg) -> None:
  """Raises UserError for a `data.augment` knob outside its range."""
  if not isinstance(cfg.flip, bool):
    raise UserError(f"data.augment.flip={cfg.flip!r}: expected true or false")
  for key, limit in (("rotation", 180.0), ("zoom", 1.0), ("translate", 1.0)):
    value = cfg[key]
    if not isinstance(value, numbers.Real) or not 0.0 <= value < limit:
      raise UserError(f"data.augment.{key}={value!r}: expected a number in [0, {limit:g}) "
                      "(0 turns it off)")


def enabled(cfg) -> bool:
  return bool(cfg.flip or cfg.rotation or cfg.zoom or cfg.translate)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, cfg) -> tf.Tensor:
  """Randomly flips, rotates, zooms and shifts each image of a batch.

  Bilinear sampling with a constant 0 fill: apply it to pixel values before normalisation,
  so uncovered corners are black.

  Args:
    images: float32 [batch, height, width, channels].
    seed: int32 or int64 [2]; the same seed gives the same output.
    cfg: `data.augment` (flip, rotation in degrees, zoom, translate as a fraction of size).

  Returns:
    float32 [batch, height, width, channels]; `images` itself when every knob is off.
  """
  if not enabled(cfg):
    return images
  check_config(cfg)
  shape = tf.shape(images)
  transforms = affine_transforms(shape[0], shape[1], shape[2], seed, cfg)
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
      interpolation="BILINEAR", fill_mode="CONSTANT")


def affine_transforms(batch, height, width, seed, cfg) -> tf.Tensor:
  """Per-image maps from output to input pixel, float32 [batch, 8] as the op wants them.

  The content moves as q = c + s·R(θ)·F·(p − c) + t about the image centre c (F: optional
  horizontal flip, s: zoom, t: shift). The op samples input p for each output q, so it
  needs the inverse: p = M·q + c − M·(c + t) with M = F·R(−θ)/s. Rows: [a0 a1 a2 b0 b1 b2 0 0].
  """
  flip_seed, angle_seed, zoom_seed, shift_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 4))
  height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  coin = tf.random.stateless_uniform([batch], flip_seed)
  flip = tf.where(coin < 0.5, -1.0, 1.0) if cfg.flip else tf.ones([batch])
  angle = tf.random.stateless_uniform([batch], angle_seed, -cfg.rotation,
                                      cfg.rotation) * (math.pi / 180.0)
  zoom = tf.random.stateless_uniform([batch], zoom_seed, 1.0 - cfg.zoom, 1.0 + cfg.zoom)
  shift = tf.random.stateless_uniform([batch, 2], shift_seed, -cfg.translate, cfg.translate)
  cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
  m00, m01, m10, m11 = flip * cos, flip * sin, -sin, cos
  cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
  tx, ty = cx + shift[:, 0] * width, cy + shift[:, 1] * height
  zeros = tf.zeros([batch])
  return tf.stack([m00, m01, cx - (m00 * tx + m01 * ty),
                   m10, m11, cy - (m10 * tx + m11 * ty), zeros, zeros], axis=1)
