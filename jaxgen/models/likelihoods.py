"""Pixel likelihoods as pure functions: −log p(x | params) per example, and samplers.

Every likelihood reads a network's raw output `params` [batch, height, width, P] and data
x [batch, height, width, channels] in its own convention, and returns nats [batch] summed
over all height·width·channels sub-pixels. Nothing here knows about VAEs, so an
autoregressive model (PixelCNN++) can use the same functions on its per-pixel outputs.

  name              data x (and what `sample` returns)              P per pixel
  bernoulli         {0, 1} floats: binarised images                 C logits
  categorical       integers 0..255: 8-bit images                   256·C logits, [C, 256]
  logistic_mixture  integers 0..255: 8-bit images                   K·(1 + 2C + C(C−1)/2)
  gaussian          (k + u) / 256 with k 8-bit and u ~ U[0, 1):     2C: C means, C log-scales
                    uniformly dequantised floats in [0, 1)

Only the two discrete ones (categorical, logistic_mixture) give exact 8-bit likelihoods;
`gaussian` gives an upper bound on the 8-bit NLL (see `gaussian`).
"""

import math

import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

NAMES = ("bernoulli", "categorical", "logistic_mixture", "gaussian")

# PixelCNN++'s floor on log-scales (Salimans et al. 2017), for stability: at e^-7 a logistic
# centred in a 2/255-wide bin already holds 97% of its mass there. For the Gaussian on
# [0, 1) data it is σ ≥ 9e-4, below the dequantisation noise's own σ = 1/(256·√12) ≈ 1.1e-3,
# the best σ even for a perfectly predicted bin.
MIN_LOG_SCALE = -7.0


def logistic_mixture_num_params(num_mixtures: int, channels: int) -> int:
  """P = K·(1 + 2C + C(C−1)/2): 10K for RGB (as PixelCNN++), 3K for grey."""
  return num_mixtures * (1 + 2 * channels + _num_couplings(channels))


def num_params(likelihood: str, channels: int, num_mixtures: int = 10) -> int:
  """Parameters per pixel P that `likelihood` reads from the last axis of `params`."""
  check(likelihood)
  if likelihood == "logistic_mixture":
    return logistic_mixture_num_params(num_mixtures, channels)
  return channels * {"bernoulli": 1, "categorical": 256, "gaussian": 2}[likelihood]


def check(likelihood: str) -> None:
  if likelihood not in NAMES:
    raise UserError(f"likelihood={likelihood!r}: expected one of {', '.join(NAMES)}; set "
                    "model.likelihood to one of these")


def nll(likelihood: str, params, x):
  """−log p(x | params) in nats [batch] for the named likelihood (see the module table)."""
  check(likelihood)
  return {"bernoulli": bernoulli, "categorical": categorical,
          "logistic_mixture": logistic_mixture, "gaussian": gaussian}[likelihood](params, x)


def sample(likelihood: str, rng, params, channels: int):
  """One draw [batch, height, width, channels] in the likelihood's data convention."""
  check(likelihood)
  if likelihood == "logistic_mixture":
    return sample_logistic_mixture(rng, params, channels)
  return {"bernoulli": sample_bernoulli, "categorical": sample_categorical,
          "gaussian": sample_gaussian}[likelihood](rng, params)


def _sum_per_example(values):
  return jnp.sum(values.reshape(values.shape[0], -1), axis=-1)


def bernoulli(params, x):
  """Bernoulli on binarised pixels: params are logits [b, H, W, C], x in {0, 1}."""
  logits = params.astype(jnp.float32)
  # −log σ(l) for x=1 and −log σ(−l) for x=0, through softplus so large |l| stays finite.
  return _sum_per_example(jax.nn.softplus(logits) - x.astype(jnp.float32) * logits)


def sample_bernoulli(rng, params):
  """{0, 1} floats [b, H, W, C]."""
  return jax.random.bernoulli(rng, jax.nn.sigmoid(params.astype(jnp.float32))).astype(
      jnp.float32)


def _categorical_logits(params):
  """[b, H, W, 256·C] → [b, H, W, C, 256]: one 256-way distribution per sub-pixel."""
  return params.astype(jnp.float32).reshape(*params.shape[:-1], -1, 256)


def categorical(params, x):
  """256-way softmax per sub-pixel on 8-bit x [b, H, W, C]; params [b, H, W, C·256]."""
  log_probs = jax.nn.log_softmax(_categorical_logits(params))
  picked = jnp.take_along_axis(log_probs, x.astype(jnp.int32)[..., None], axis=-1)
  return -_sum_per_example(picked)


def sample_categorical(rng, params):
  """int32 [b, H, W, C] in 0..255."""
  return jax.random.categorical(rng, _categorical_logits(params)).astype(jnp.int32)


def _num_couplings(channels: int) -> int:
  return channels * (channels - 1) // 2


def _coupling_pairs(channels: int):
  """(channel, earlier channel) per coupling coefficient: (1, 0), (2, 0), (2, 1) for RGB."""
  return [(c, j) for c in range(channels) for j in range(c)]


def _split_mixture(params, channels: int):
  """The layout of a logistic mixture's params [b, H, W, P], K = P / (1 + 2C + C(C−1)/2).

  [0, K)          mixture logits
  [K, P)          a [2C + C(C−1)/2, K] block, row-major: rows 0..C−1 the means,
                  rows C..2C−1 the log-scales, then one row of coupling coefficients
                  (pre-tanh) per pair in `_coupling_pairs` order (G←R, B←R, B←G for RGB).
  Returns logits [b, H, W, K], means, log_scales [b, H, W, C, K], coefficients
  [b, H, W, C(C−1)/2, K]; channel values are on PixelCNN++'s [−1, 1] scale.
  """
  rows = 2 * channels + _num_couplings(channels)
  if params.shape[-1] % (1 + rows):
    raise UserError(f"logistic mixture params have {params.shape[-1]} values per pixel: "
                    f"expected a multiple of {1 + rows} for {channels} channels; size the "
                    "network's output with logistic_mixture_num_params")
  params = params.astype(jnp.float32)
  k = params.shape[-1] // (1 + rows)
  rest = params[..., k:].reshape(*params.shape[:-1], rows, k)
  log_scales = jnp.maximum(rest[..., channels:2 * channels, :], MIN_LOG_SCALE)
  return params[..., :k], rest[..., :channels, :], log_scales, jnp.tanh(rest[..., 2 * channels:, :])


def _to_unit_interval(k):
  """8-bit values → PixelCNN++'s bin centres 2k/255 − 1 in [−1, 1]."""
  return k.astype(jnp.float32) * (2.0 / 255.0) - 1.0


def _coupled_means(means, coeffs, scaled):
  """Each channel's mean plus its coefficients times the earlier channels' values.

  means [..., C, K], coeffs [..., C(C−1)/2, K], scaled [..., C] → [..., C, K]. The earlier
  channels enter at their observed (or already sampled) 8-bit values, so the mixture
  component's joint over the sub-pixels is p(R) p(G | R) p(B | R, G).
  """
  channels = means.shape[-2]
  shifted = [means[..., c, :] for c in range(channels)]
  for i, (c, j) in enumerate(_coupling_pairs(channels)):
    shifted[c] = shifted[c] + coeffs[..., i, :] * scaled[..., j, None]
  return jnp.stack(shifted, axis=-2)


def _log_discretised_logistic(k, mean, log_scale):
  """log P(k) of the logistic(mean, e^log_scale) mass in k's bin, the edges open-ended.

  Bin k covers x_k ± 1/255 with x_k = 2k/255 − 1; bin 0 reaches down to −∞ and bin 255 up
  to +∞. k broadcasts against mean and log_scale.
  """
  centred = _to_unit_interval(k) - mean
  inv_scale = jnp.exp(-log_scale)
  upper = inv_scale * (centred + 1.0 / 255.0)
  lower = inv_scale * (centred - 1.0 / 255.0)
  # σ(u) − σ(l) = σ(u)·σ(−l)·(1 − e^−(u−l)), with u − l = 2/(255·scale) formed directly: no
  # difference of nearly equal CDFs, so it stays accurate in the far tails (where the openai
  # code falls back to pdf·bin-width) and for wide logistics alike. The floor keeps the log
  # finite should a huge scale underflow the width to 0.
  width = jnp.maximum(inv_scale * (2.0 / 255.0), jnp.finfo(jnp.float32).tiny)
  interior = (jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower)
              + jnp.log(-jnp.expm1(-width)))
  return jnp.where(k == 0, jax.nn.log_sigmoid(upper),
                   jnp.where(k == 255, jax.nn.log_sigmoid(-lower), interior))


def logistic_mixture(params, x):
  """PixelCNN++'s discretised logistic mixture on 8-bit x [b, H, W, C] (Salimans et al. 2017).

  Per pixel, a mixture of K components, each a product over channels of discretised
  logistics whose means are coupled linearly to the earlier channels (see
  `_split_mixture` for the params layout, `logistic_mixture_num_params` for P). With one
  channel there is nothing to couple.
  """
  channels = x.shape[-1]
  logits, means, log_scales, coeffs = _split_mixture(params, channels)
  k = x.astype(jnp.int32)
  means = _coupled_means(means, coeffs, _to_unit_interval(k))
  per_channel = _log_discretised_logistic(k[..., None], means, log_scales)  # [b, H, W, C, K]
  joint = jnp.sum(per_channel, axis=-2) + jax.nn.log_softmax(logits)
  return -_sum_per_example(jax.nn.logsumexp(joint, axis=-1))


def sample_logistic_mixture(rng, params, channels: int):
  """int32 [b, H, W, C] in 0..255, exactly from the discretised mixture.

  A continuous logistic draw rounded to its bin (and clipped into the open-ended edge
  bins) has exactly the bin's mass; each channel then conditions on the earlier channels'
  8-bit values, as the likelihood does.
  """
  logits, means, log_scales, coeffs = _split_mixture(params, channels)
  component_rng, noise_rng = jax.random.split(rng)
  component = jax.random.categorical(component_rng, logits)
  pick = jax.nn.one_hot(component, logits.shape[-1])[..., None, :]
  means, coeffs = jnp.sum(means * pick, -1), jnp.sum(coeffs * pick, -1)
  noise = jnp.exp(jnp.sum(log_scales * pick, -1)) * jax.random.logistic(noise_rng, means.shape)
  values, scaled = [], []
  couplings = _coupling_pairs(channels)
  for c in range(channels):
    mean = means[..., c] + sum(coeffs[..., i] * scaled[j]
                               for i, (target, j) in enumerate(couplings) if target == c)
    k = jnp.clip(jnp.round((mean + noise[..., c] + 1.0) * 127.5), 0, 255)
    values.append(k)
    scaled.append(_to_unit_interval(k))
  return jnp.stack(values, axis=-1).astype(jnp.int32)


def _gaussian_split(params):
  params = params.astype(jnp.float32)
  means, log_scales = jnp.split(params, 2, axis=-1)
  return means, jnp.maximum(log_scales, MIN_LOG_SCALE)


def gaussian(params, x):
  """Gaussian density with a learned mean and variance per sub-pixel, on dequantised x.

  params [b, H, W, 2C] are C means then C log-scales (log σ); x [b, H, W, C] are
  y = (k + u) / 256 with k the 8-bit value and u ~ U[0, 1). Returned in nats on the 8-bit
  scale: the density of z = 256·y is p(y) / 256 per sub-pixel, so −log p(z) = −log p(y) +
  D·log 256 for D sub-pixels. Because P(k) = ∫ p(z) dz over [k, k+1), Jensen gives
  E_u[−log p(k + u)] ≥ −log P(k): in expectation over the noise this is an upper bound on
  the discrete 8-bit NLL, and its bits/dim compare with the discrete likelihoods'.
  """
  means, log_scales = _gaussian_split(params)
  z = (x.astype(jnp.float32) - means) * jnp.exp(-log_scales)
  per_dim = 0.5 * z ** 2 + log_scales + 0.5 * math.log(2 * math.pi) + math.log(256.0)
  return _sum_per_example(per_dim)


def sample_gaussian(rng, params):
  """Float [b, H, W, C] in [0, 1]: a Gaussian draw clipped to the data's range."""
  means, log_scales = _gaussian_split(params)
  return jnp.clip(means + jnp.exp(log_scales) * jax.random.normal(rng, means.shape), 0.0, 1.0)


def temper(likelihood: str, params, channels: int, temperature: float):
  """`params` of a sharper (t < 1) or flatter (t > 1) distribution to sample from:
  categorical logits / t; a logistic mixture's component logits / t and its scales × t.
  t = 1 returns `params` untouched (no arithmetic, so default sampling is bit-identical)."""
  if temperature <= 0:
    raise UserError(f"sampling.temperature={temperature}: expected a positive number "
                    "(1 samples the model as trained)")
  if temperature == 1:
    return params
  params = params.astype(jnp.float32)
  if likelihood == "categorical":
    return params / temperature
  if likelihood != "logistic_mixture":
    raise UserError(f"sampling.temperature={temperature} is defined for the categorical and "
                    f"logistic_mixture likelihoods, not {likelihood!r}: set it to 1")
  rows = 2 * channels + _num_couplings(channels)
  k = params.shape[-1] // (1 + rows)
  rest = params[..., k:].reshape(*params.shape[:-1], rows, k)
  rest = rest.at[..., channels:2 * channels, :].add(math.log(temperature))
  return jnp.concatenate([params[..., :k] / temperature,
                          rest.reshape(*params.shape[:-1], rows * k)], axis=-1)


def bits_per_dim(nats, image_shape) -> jax.Array:
  """Nats per image → bits per sub-pixel: nats / (H·W·C · ln 2)."""
  return nats / (math.prod(image_shape) * math.log(2.0))
