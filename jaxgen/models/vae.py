"""A convolutional VAE whose decoder outputs the parameters of a pixel likelihood."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import layers, likelihoods, pixelcnn

def check_output(who: str, image_size: int, likelihood: str, num_mixtures: int) -> None:
  """The checks every VAE model shares: two stride-2 stages and a known pixel likelihood."""
  if image_size % 4:
    raise UserError(f"{who} image_size={image_size}: expected a multiple of 4 (28, 32, 64, ...)")
  if likelihood not in likelihoods.NAMES:
    raise UserError(f"{who} likelihood={likelihood!r}: expected one of "
                    f"{', '.join(likelihoods.NAMES)}")
  if num_mixtures < 1:
    raise UserError(f"{who} num_mixtures={num_mixtures}: expected 1 or more")


class ResBlock(nn.Module):
  """relu(x + conv3×3(relu(conv3×3(x)))), the ResNet v1 block: [b, H, W, F] -> same shape."""
  dtype: Any
  custom_vjp: bool

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(layers.Conv, x.shape[-1], kernel_size=(3, 3), strides=(1, 1),
                             padding=((1, 1), (1, 1)), dtype=self.dtype,
                             custom_vjp=self.custom_vjp)
    return nn.relu(x + conv()(nn.relu(conv()(x))))


class Encoder(nn.Module):
  """Images [batch, height, width, channels] -> (mean, log-variance), each [batch, latent_dim]."""
  latent_dim: int
  features: int
  hidden: int
  blocks: int
  dtype: Any
  custom_vjp: bool

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    for width in (self.features, 2 * self.features):
      x = nn.relu(layers.Conv(width, dtype=self.dtype, custom_vjp=self.custom_vjp)(x))
      for _ in range(self.blocks):
        x = ResBlock(self.dtype, self.custom_vjp)(x)
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x.reshape(x.shape[0], -1)))
    mean, logvar = jnp.split(nn.Dense(2 * self.latent_dim, dtype=self.dtype)(x), 2, axis=-1)
    return mean, logvar


class Decoder(nn.Module):
  """Latents [batch, latent_dim] -> [batch, height, width, out_features]."""
  image_size: int
  out_features: int
  features: int
  hidden: int
  blocks: int
  dtype: Any
  custom_vjp: bool

  @nn.compact
  def __call__(self, z):
    side = self.image_size // 4
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(z))
    x = nn.relu(nn.Dense(side * side * 2 * self.features, dtype=self.dtype)(x))
    x = x.reshape(z.shape[0], side, side, 2 * self.features)
    for _ in range(self.blocks):
      x = ResBlock(self.dtype, self.custom_vjp)(x)
    x = nn.relu(layers.ConvTranspose(self.features, dtype=self.dtype,
                                     custom_vjp=self.custom_vjp)(x))
    for _ in range(self.blocks):
      x = ResBlock(self.dtype, self.custom_vjp)(x)
    return layers.ConvTranspose(self.out_features, dtype=self.dtype,
                                custom_vjp=self.custom_vjp)(x)


class PixelHead(nn.Module):
  """A light PixelCNN over the decoder's output (PixelVAE, Gulrajani et al. 2017):
  (images x [b, H, W, C] in [0, 1], the decoder's parameters [b, H, W, P]) -> parameters
  [b, H, W, P] in which pixel (i, j) also depends on the pixels before it in raster order.

  A mask-A kernel×kernel convolution of x plus a 1x1 projection of the decoder's
  parameters, `layers` − 1 mask-B 3x3 convolutions, and a zero-initialised mask-B 1x1
  convolution added to the decoder's parameters: a fresh head leaves the factorised
  decoder's likelihood exactly as it was, so it can be grown onto a trained VAE. The
  whole pixel is one group (`pixelcnn` 'pixel' mode): its channels stay independent given
  the past and z.
  """
  layers: int
  features: int
  kernel: int
  dtype: Any

  @nn.compact
  def __call__(self, x, base):
    conv = functools.partial(pixelcnn.MaskedConv, dtype=self.dtype)
    h = (conv(self.features, (self.kernel, self.kernel), mask="A")(x)
         + nn.Dense(self.features, dtype=self.dtype)(base))
    for _ in range(self.layers - 1):
      h = conv(self.features, (3, 3), mask="B")(nn.relu(h))
    out = pixelcnn.MaskedConv(base.shape[-1], mask="B", dtype=jnp.float32,
                              kernel_init=nn.initializers.zeros_init())(nn.relu(h))
    return base + out.astype(base.dtype)


def example_inputs(module: nn.Module, batch: int):
  """Init arguments of a VAE: images [batch, image_size, image_size, channels] and an rng."""
  x = jnp.zeros((batch, module.image_size, module.image_size, module.channels))
  return (x, jax.random.PRNGKey(0)), {}


@models.register("conv_vae", example_inputs=example_inputs)
class ConvVAE(nn.Module):
  """Encoder, reparameterised Gaussian latent, decoder to the likelihood's parameters.

  Inputs x are [batch, image_size, image_size, channels] floats in [0, 1] (the family maps
  each likelihood's data there). The decoder outputs [batch, H, W, P] raw parameters, laid
  out as `jaxgen.models.likelihoods` reads them, with P = `likelihoods.num_params(
  likelihood, channels, num_mixtures)`: C for 'bernoulli', 256·C for 'categorical',
  K·(1 + 2C + C(C−1)/2) for 'logistic_mixture', 2C for 'gaussian'.

  Attributes:
    image_size: a multiple of 4 (two stride-2 stages).
    num_mixtures: K, the logistic mixture's components (ignored by other likelihoods).
    blocks: residual blocks at each of the two inner resolutions (H/2, H/4), in both the
      encoder and the decoder; 0 is the plain convolutional VAE.
    hidden: width of the dense layer between the convolutions and the latent, both ways.
    pixel_layers: layers of a `PixelHead` over the decoder (an autoregressive decoder,
      Bernoulli likelihood only); 0, the default, keeps pixels independent given z.
    pixel_features, pixel_kernel: the head's width and its first (mask-A) kernel size.
    dtype: computation dtype; parameters stay float32. The likelihoods compute in float32,
      but a bfloat16 decoder output already loses the 2/255 bin resolution near ±1.
    custom_vjp: see `layers.Conv` and `layers.ConvTranspose`.
  """
  image_size: int
  channels: int
  latent_dim: int = 32
  features: int = 32
  likelihood: str = "bernoulli"
  num_mixtures: int = 10
  blocks: int = 0
  hidden: int = 256
  pixel_layers: int = 0
  pixel_features: int = 16
  pixel_kernel: int = 5
  dtype: Any = jnp.float32
  custom_vjp: bool = True

  def setup(self):
    check_output("conv_vae", self.image_size, self.likelihood, self.num_mixtures)
    if self.blocks < 0:
      raise UserError(f"conv_vae blocks={self.blocks}: expected 0 or more")
    if self.hidden < 1:
      raise UserError(f"conv_vae hidden={self.hidden}: expected 1 or more")
    self.encoder = Encoder(self.latent_dim, self.features, self.hidden, self.blocks,
                           self.dtype, self.custom_vjp)
    out = likelihoods.num_params(self.likelihood, self.channels, self.num_mixtures)
    self.decoder = Decoder(self.image_size, out, self.features, self.hidden, self.blocks,
                           self.dtype, self.custom_vjp)
    if self.pixel_layers:
      _check_pixel_head(self)
      self.head = PixelHead(self.pixel_layers, self.pixel_features, self.pixel_kernel,
                            self.dtype)

  # How the family bounds log p(x) (see `jaxgen.families.vae`): one Gaussian latent vector,
  # so IWAE encodes once and decodes k latents.
  posterior = "gaussian"

  def encode(self, x):
    """x [batch, H, W, channels] -> (mean, logvar), each [batch, latent_dim]."""
    return self.encoder(x)

  def decode(self, z):
    """z [batch, latent_dim] -> the decoder's likelihood parameters [batch, H, W, P]: the
    whole likelihood when pixel_layers = 0, else what `refine` conditions on."""
    return self.decoder(z)

  def refine(self, x, decoded):
    """The parameters of p(x|z) for images x [b, H, W, C] in [0, 1], given decode(z): with
    a pixel head, pixel (i, j)'s depend on x's pixels before (i, j); without, decode(z)."""
    return self.head(x, decoded) if self.pixel_layers else decoded

  @property
  def rows_above(self) -> int:
    """How many rows above pixel (i, j) the pixel head reads (0 without one): a window of
    rows_above + 1 rows ending at row i gives row i's `refine` exactly, which keeps the
    sampler's work per pixel a window's, not the image's."""
    return self.pixel_kernel // 2 + self.pixel_layers - 1 if self.pixel_layers else 0

  def __call__(self, x, rng):
    """(params, mean, logvar) with z = mean + exp(logvar / 2)·eps, eps ~ N(0, I) from rng.

    The rng is an argument rather than a Flax rng stream so the caller owns the randomness.
    """
    mean, logvar = self.encode(x)
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    return self.refine(x, self.decode(mean + jnp.exp(0.5 * logvar) * eps)), mean, logvar

  def elbo_terms(self, x, rng, train: bool = False):
    """(likelihood parameters, KL per latent dimension [batch, latent_dim], aux metrics {})."""
    del train  # No state to update.
    params, mean, logvar = self(x, rng)
    mean, logvar = mean.astype(jnp.float32), logvar.astype(jnp.float32)
    return params, 0.5 * (jnp.exp(logvar) + mean ** 2 - 1.0 - logvar), {}

  def sample_params(self, rng, num: int):
    """decode(z) of `num` draws z ~ N(0, I) (with a pixel head, the family's sampler
    then draws the pixels in order through `refine`)."""
    return self.decode(jax.random.normal(rng, (num, self.latent_dim)))

  def reconstruct_params(self, x):
    """decode(z) at the posterior mean of x (as `sample_params`)."""
    return self.decode(self.encode(x)[0])


def _check_pixel_head(model) -> None:
  if model.likelihood != "bernoulli":
    raise UserError(f"conv_vae pixel_layers={model.pixel_layers} with likelihood="
                    f"{model.likelihood!r}: the pixel head samples Bernoulli pixels only; set "
                    "model.likelihood='bernoulli' or model.pixel_layers=0")
  if model.pixel_layers < 0 or model.pixel_features < 1:
    raise UserError(f"conv_vae pixel_layers={model.pixel_layers}, pixel_features="
                    f"{model.pixel_features}: expected ≥ 0 and ≥ 1")
  if model.pixel_kernel < 3 or model.pixel_kernel % 2 == 0:
    raise UserError(f"conv_vae pixel_kernel={model.pixel_kernel}: expected an odd size ≥ 3 "
                    "(the mask-A layer sees the pixels before the centre)")
