"""A DDPM++/ADM-style U-Net denoiser: [b, H, W, C] images and noise levels -> [b, H, W, C].

Residual blocks with GroupNorm, SiLU and a scale-shift noise-level (and class) embedding;
self-attention at chosen resolutions and always in the middle; an up path with one more
block per resolution than the down path, each concatenating a skip from the down path
(Dhariwal & Nichol 2021, `guided_diffusion/unet.py`; Song et al. 2021 DDPM++). Every
residual branch and the output end in a zero-initialised layer, so each block starts as its
skip path (the identity where the width stays) and a fresh network outputs zeros.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import layers, norm, remat as remat_lib

EMBEDDINGS = ("fourier", "positional")
# EDM's NCSN++ Fourier features: frequencies N(0, 16²), drawn once from a fixed seed and
# folded into the graph as constants, so they are neither trained nor decayed nor saved.
_FOURIER_SCALE = 16.0
_FOURIER_SEED = 0
_HEAD_CHANNELS = 64
_zeros = nn.initializers.zeros_init()


def groups(channels: int) -> int:
  """GroupNorm's group count: the largest divisor of `channels` that is at most 32."""
  return max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)


def _norm(channels: int, dtype: Any, silu: bool = False) -> norm.GroupNorm:
  # nn.GroupNorm's parameters, statistics in float32 (so bfloat16 stays stable), with the
  # scale-shift and SiLU fused in: 1.4-4.2x faster than Flax's on XLA:CPU (models/norm.py).
  return norm.GroupNorm(num_groups=groups(channels), dtype=dtype, silu=silu)


def _conv3(features: int, dtype: Any, kernel_init=nn.initializers.lecun_normal()) -> layers.Conv:
  # layers.Conv, not nn.Conv: its weight gradient runs in micro-batches, 3.7x faster here.
  return layers.Conv(features, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), dtype=dtype,
                     kernel_init=kernel_init)


def noise_features(noise_level: jax.Array, dim: int, kind: str) -> jax.Array:
  """Noise levels [b] -> float32 features [b, dim]: cos and sin of the level times frequencies.

  'fourier' draws the frequencies at random (EDM's NCSN++, for c_noise = ln σ / 4 or similar
  O(1) inputs); 'positional' spaces them geometrically from 1 to 1/10000 (DDPM's timestep
  embedding, made for inputs spanning 0 to ~1000).
  """
  half = dim // 2
  if kind == "fourier":
    normal = np.random.default_rng(_FOURIER_SEED).standard_normal(half).astype(np.float32)
    freqs = 2 * math.pi * _FOURIER_SCALE * normal
  else:
    freqs = np.exp(-math.log(10_000.0) * np.arange(half, dtype=np.float32) / half)
  angles = noise_level.astype(jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class Embedding(nn.Module):
  """Noise levels [b] (and labels [b], attributes [b, A]) -> the embedding [b, 4·features]
  every block reads.

  Noise-level features → Dense → SiLU → Dense, plus a class embedding when num_classes > 0
  (labels None meaning the null class, num_classes, for every example), plus a projection
  of the attribute vector and a null flag when num_attributes > 0 (a row of NaN, or
  attributes None for all, is the null condition; its vector counts as zeros).
  """
  features: int
  num_classes: int
  kind: str
  dtype: Any
  num_attributes: int = 0

  @nn.compact
  def __call__(self, noise_level, labels, attributes=None):
    width = 4 * self.features
    emb = noise_features(noise_level, self.features, self.kind)
    emb = nn.Dense(width, dtype=self.dtype)(emb.astype(self.dtype))
    emb = nn.Dense(width, dtype=self.dtype)(nn.silu(emb))
    if self.num_classes:
      if labels is None:
        labels = jnp.full(noise_level.shape, self.num_classes, jnp.int32)
      emb = emb + nn.Embed(self.num_classes + 1, width, dtype=self.dtype,
                           name="class_embedding")(labels)
    if self.num_attributes:
      if attributes is None:
        attributes = jnp.full((*noise_level.shape, self.num_attributes), jnp.nan)
      null = jnp.any(jnp.isnan(attributes), axis=-1, keepdims=True)
      vector = jnp.concatenate([jnp.where(null, 0.0, attributes), null], axis=-1)
      emb = emb + nn.Dense(width, dtype=self.dtype, name="attribute_embedding")(
          vector.astype(self.dtype))
    return emb


class ResBlock(nn.Module):
  """x [b, H, W, in] and embedding [b, E] -> [b, H, W, features].

  GroupNorm → SiLU → conv3x3 → GroupNorm, then scale-shift by the projected embedding
  (h·(1 + scale) + shift, ADM's use_scale_shift_norm) → SiLU → dropout → zero-initialised
  conv3x3; the skip is a 1x1 convolution when the width changes.
  """
  features: int
  dropout: float
  dtype: Any

  @nn.compact
  def __call__(self, x, emb, train: bool):
    h = _conv3(self.features, self.dtype)(_norm(x.shape[-1], self.dtype, silu=True)(x))
    scale_shift = nn.Dense(2 * self.features, dtype=self.dtype)(nn.silu(emb))
    scale, shift = jnp.split(scale_shift, 2, axis=-1)
    h = _norm(self.features, self.dtype, silu=True)(h, scale, shift)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = _conv3(self.features, self.dtype, kernel_init=_zeros)(h)
    if x.shape[-1] != self.features:
      # layers.Conv (nn.Conv's parameters): on one CPU device it runs as oneDNN's 1x1
      # convolution, where XLA's took 48 ms of a 500 ms step (benchmarks/README.md).
      x = layers.Conv(self.features, (1, 1), strides=(1, 1), padding=((0, 0), (0, 0)),
                      dtype=self.dtype, name="skip")(x)
    return x + h


class Attention(nn.Module):
  """Multi-head self-attention over the H·W positions, residual: [b, H, W, C] -> same shape.

  Heads of 64 channels when C is a multiple of 64, else one head of C; the output
  projection is zero-initialised.
  """
  dtype: Any

  @nn.compact
  def __call__(self, x):
    b, height, width, c = x.shape
    heads = c // _HEAD_CHANNELS if c % _HEAD_CHANNELS == 0 else 1
    h = _norm(c, self.dtype)(x).reshape(b, height * width, c)
    qkv = nn.Dense(3 * c, dtype=self.dtype, name="qkv")(h)
    q, k, v = jnp.split(qkv.reshape(b, height * width, heads, 3 * c // heads), 3, axis=-1)
    # Logits and softmax in float32 whatever the dtype, as ADM's attention upcasts them.
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits / math.sqrt(c // heads), axis=-1).astype(v.dtype)
    h = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, height * width, c)
    h = nn.Dense(c, dtype=self.dtype, kernel_init=_zeros, name="out")(h)
    return x + h.reshape(x.shape)


def _example_inputs(module: nn.Module, batch: int):
  """UNet init arguments: zero images, noise levels, labels (class 0) and condition images."""
  size = module.image_size
  x = jnp.zeros((batch, size, size, module.channels))
  labels = jnp.zeros((batch,), jnp.int32) if module.num_classes else None
  cond = jnp.zeros((batch, size, size, module.cond_channels)) if module.cond_channels else None
  attributes = jnp.zeros((batch, module.num_attributes)) if module.num_attributes else None
  return (x, jnp.zeros((batch,)), labels, cond, attributes), {"train": False}


@models.register("unet", example_inputs=_example_inputs)
class UNet(nn.Module):
  """The denoiser network of the diffusion family (preconditioning lives in the family).

  Attributes:
    image_size: height and width; a multiple of 2^(len(multipliers) - 1).
    channels: image channels, in and out.
    features: base width; the noise-level embedding is 4·features wide.
    multipliers: width multiplier per resolution, highest first; each after the first
      halves the resolution (28 → 14 → 7 with three; 32 → 16 → 8 → 4 with four).
    blocks: residual blocks per resolution on the down path; the up path has blocks + 1.
    attention: feature-map heights that get self-attention after each residual block
      (the middle always has one).
    dropout: rate inside every residual block, active only with train=True (which then
      needs a 'dropout' rng).
    num_classes: > 0 adds a class embedding with num_classes + 1 rows; label num_classes
      is the null class, which classifier-free guidance trains and samples with.
    cond_channels: > 0 takes a condition image [b, H, W, cond_channels], concatenated to x.
    num_attributes: > 0 takes a vector [b, num_attributes] per example (multi-hot
      attributes, or any embedding), projected into the embedding with a null flag.
    embedding: 'fourier' or 'positional' noise-level features (see `noise_features`).
    dtype: computation dtype; parameters and the output stay float32.
    remat: recompute each residual and attention block's activations in the backward pass
      instead of storing them (`models.remat`): less memory, about a third more compute.
  """
  image_size: int = 28
  channels: int = 1
  features: int = 64
  multipliers: tuple = (1, 2, 2)
  blocks: int = 2
  attention: tuple = (7,)
  dropout: float = 0.1
  num_classes: int = 0
  cond_channels: int = 0
  num_attributes: int = 0
  embedding: str = "fourier"
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, x, noise_level, labels=None, cond_image=None, attributes=None,
               train: bool = False):
    """Denoiser output for x [b, H, W, channels] at noise levels [b] (the family's c_noise).

    Args:
      labels: int32 [b] in [0, num_classes], num_classes meaning null; None on a
        class-conditional model means all null.
      cond_image: [b, H, W, cond_channels], required exactly when cond_channels > 0.
      attributes: float [b, num_attributes], NaN rows null; None on a model with
        attributes means all null.

    Returns:
      float32 [b, H, W, channels].
    """
    self._check(x, labels, cond_image, attributes)
    emb = Embedding(self.features, self.num_classes, self.embedding, self.dtype,
                    self.num_attributes, name="embed")(noise_level, labels, attributes)
    h = x if cond_image is None else jnp.concatenate([x, cond_image.astype(x.dtype)], axis=-1)
    h = _conv3(self.features, self.dtype)(h.astype(self.dtype))
    skips = [h]
    make = remat_lib.block_maker(self.remat)
    for level, mult in enumerate(self.multipliers):
      for _ in range(self.blocks):
        h = self._block(make, h, emb, self.features * mult, train)
        skips.append(h)
      if level < len(self.multipliers) - 1:
        h = layers.Conv(h.shape[-1], kernel_size=(3, 3), strides=(2, 2),
                        padding=((1, 1), (1, 1)), dtype=self.dtype)(h)
        skips.append(h)
    h = self._block(make, h, emb, h.shape[-1], train, middle=True)
    h = make(ResBlock, h.shape[-1], self.dropout, self.dtype, static_argnums=(3,))(h, emb, train)
    for level, mult in reversed(list(enumerate(self.multipliers))):
      for _ in range(self.blocks + 1):
        h = self._block(make, jnp.concatenate([h, skips.pop()], axis=-1), emb,
                        self.features * mult, train)
      if level > 0:
        # Nearest-neighbour upsampling and a conv: nn.ConvTranspose's weight gradient is
        # ~12x slower on XLA:CPU (PERF-NOTES), and this avoids checkerboard artefacts.
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        h = _conv3(h.shape[-1], self.dtype)(h)
    h = _norm(h.shape[-1], self.dtype, silu=True)(h)
    return _conv3(self.channels, jnp.float32, kernel_init=_zeros)(h).astype(jnp.float32)

  def _block(self, make, h, emb, features: int, train: bool, middle: bool = False):
    """A residual block, then attention in the middle and at the resolutions listed in
    `attention`."""
    h = make(ResBlock, features, self.dropout, self.dtype, static_argnums=(3,))(h, emb, train)
    return make(Attention, self.dtype)(h) if middle or h.shape[1] in self.attention else h

  def _check(self, x, labels, cond_image, attributes) -> None:
    """Static checks of the fields and of the inputs' shapes; raises UserError."""
    factor = 2 ** (len(self.multipliers) - 1)
    if self.image_size % factor:
      raise UserError(f"unet image_size={self.image_size} with {len(self.multipliers)} "
                      f"multipliers: expected a multiple of {factor}; resize the data or use "
                      "fewer model.multipliers")
    if self.embedding not in EMBEDDINGS:
      raise UserError(f"unet embedding={self.embedding!r}: expected one of "
                      f"{', '.join(EMBEDDINGS)}")
    sizes = [self.image_size // 2 ** i for i in range(len(self.multipliers))]
    if not set(self.attention) <= set(sizes):
      raise UserError(f"unet attention={self.attention}: expected feature-map sizes among "
                      f"{', '.join(map(str, sizes))} for image_size={self.image_size}; set "
                      "model.attention to those (or () for the middle's attention only)")
    expected = (self.image_size, self.image_size, self.channels)
    if x.shape[1:] != expected:
      raise UserError(f"unet got images {x.shape}: expected [batch, {self.image_size}, "
                      f"{self.image_size}, {self.channels}]; set model.image_size and "
                      "model.channels to the data's")
    if labels is not None and not self.num_classes:
      raise UserError("unet is unconditional (num_classes=0) but got labels: set "
                      "model.num_classes to condition on them")
    if (cond_image is None) != (not self.cond_channels):
      raise UserError(f"unet cond_channels={self.cond_channels} but cond_image is "
                      f"{'missing' if cond_image is None else 'given'}: pass a condition image "
                      "exactly when model.cond_channels > 0")
    if attributes is not None and attributes.shape[1:] != (self.num_attributes,):
      raise UserError(f"unet got attributes {attributes.shape} but num_attributes="
                      f"{self.num_attributes}: set model.num_attributes to the data's "
                      "attribute count")
    if cond_image is not None and cond_image.shape[1:] != (*expected[:2], self.cond_channels):
      raise UserError(f"unet got cond_image {cond_image.shape}: expected [batch, "
                      f"{self.image_size}, {self.image_size}, {self.cond_channels}]")
