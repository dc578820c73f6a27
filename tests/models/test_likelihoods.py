"""Pixel likelihoods: normalisation, edge bins, hand values, the Gaussian's Jacobian, samplers."""

import decimal
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.models import likelihoods as lk

LEVELS = np.arange(256, dtype=np.int32)
# Jitted: dispatched op by op, every primitive would compile on its own, 10x the time. The
# inputs are built, and the outputs reduced, in numpy (float32) for the same reason.
logistic_mixture = jax.jit(lk.logistic_mixture)
sample_logistic_mixture = jax.jit(lk.sample_logistic_mixture, static_argnums=2)
sample = jax.jit(lk.sample, static_argnums=(0, 3))


def _f32(values):
  """`values` as a numpy array, float32 where floating (what jnp.asarray would give)."""
  values = np.asarray(values)
  return values.astype(np.float32) if values.dtype.kind == "f" else values.astype(np.int32)


def _one_pixel(params, x):
  """params [P] and x [n, C] as n one-pixel images: params [n, 1, 1, P], x [n, 1, 1, C]."""
  params, x = _f32(params), _f32(x)
  return np.broadcast_to(params, (x.shape[0], 1, 1, params.shape[-1])), x[:, None, None, :]


def _grey_mixture(means, log_scales, logits):
  """Logistic-mixture params [3K] for one channel, in the documented layout."""
  return np.concatenate([_f32(v) for v in (logits, means, log_scales)]).astype(np.float32)


def _probabilities(params):
  """P(k) for k = 0..255 of a one-channel logistic mixture: [256]."""
  return np.exp(-np.asarray(logistic_mixture(*_one_pixel(params, LEVELS[:, None]))))


_draw_normal = jax.jit(lambda seed, shape: jax.random.normal(jax.random.PRNGKey(seed), shape),
                       static_argnums=1)


def _normal(seed, shape):
  """N(0, 1) float32 [shape] from PRNGKey(seed), as a writable numpy array."""
  return np.array(_draw_normal(seed, shape))


@pytest.mark.parametrize("seed", range(4))
def test_grey_logistic_mixture_sums_to_one_over_the_256_values(seed):
  k = 3
  params = _normal(seed, (3 * k,)) * np.float32(3.0)
  # Means inside and far outside [-1, 1]; scales from the e^-7 floor (and below) to wide.
  params[k:2 * k] = [-3.0, 0.1, 2.5]
  params[2 * k:] = [-9.0, -3.0, 2.0]
  np.testing.assert_allclose(np.sum(_probabilities(params)), 1.0, rtol=1e-5)


@pytest.mark.slow  # 16.7M colours; the coupling is checked exactly in the next test.
def test_rgb_logistic_mixture_sums_to_one_over_all_256_cubed_colours():
  k = 2
  params = _normal(0, (lk.logistic_mixture_num_params(k, 3),))
  params[k + 3 * k:k + 6 * k] += -2.0  # Strong coupling.
  params[k + 6 * k:] *= 3.0
  gb = np.stack(np.meshgrid(LEVELS, LEVELS, indexing="ij"), -1).reshape(-1, 2)

  @jax.jit
  def total(params, gb, levels):
    pixels = jnp.broadcast_to(params, (gb.shape[0], 1, 1, params.shape[-1]))

    def mass_with_red(r):
      rgb = jnp.concatenate([jnp.full((gb.shape[0], 1), r), gb], axis=-1)
      return jnp.sum(jnp.exp(-logistic_mixture(pixels, rgb[:, None, None, :])))
    return jnp.sum(jax.lax.map(mass_with_red, levels))

  np.testing.assert_allclose(total(params, gb, LEVELS), 1.0, rtol=1e-5)


def test_coupling_shifts_green_by_its_coefficient_times_red():
  # One component: G's conditional given R is an uncoupled logistic with mean μ_G + tanh(c)·x_R.
  means, log_scales, coupling = _f32([0.2, -0.1, 0.3]), _f32([-3.0, -2.5, -2.0]), 0.7
  rgb = np.concatenate([np.zeros(1, np.float32), means, log_scales, _f32([coupling, 0.0, 0.0])])
  red = 200
  x_red = red * 2 / 255 - 1
  shifted = means.copy()
  shifted[1] += np.float32(math.tanh(coupling) * x_red)
  plain = np.concatenate([np.zeros(1, np.float32), shifted, log_scales, np.zeros(3, np.float32)])
  colours = np.stack([np.full(256, red), LEVELS, np.full(256, 17)], axis=-1)
  np.testing.assert_allclose(logistic_mixture(*_one_pixel(rgb, colours)),
                             logistic_mixture(*_one_pixel(plain, colours)), rtol=1e-6)


def _reference_log_prob(k, mean, log_scale):
  """log P(k) of a discretised logistic at 200 significant digits (stdlib decimal)."""
  decimal.getcontext().prec = 200
  d = decimal.Decimal
  sigmoid = lambda t: 1 / (1 + (-t).exp())
  x, scale = d(2 * k) / 255 - 1, d(log_scale).exp()
  upper = sigmoid((x + d(1) / 255 - d(mean)) / scale) if k < 255 else d(1)
  lower = sigmoid((x - d(1) / 255 - d(mean)) / scale) if k > 0 else d(0)
  return float((upper - lower).ln())


@pytest.mark.parametrize("k,mean,log_scale", [
    (0, -0.9, -4.0), (0, 0.5, -1.0), (255, 0.99, -5.0), (255, -0.5, 0.5),
    (128, 0.003, -6.9), (100, -0.2, -2.0), (250, 0.1, -5.0), (5, 0.9, -4.0),
    (130, 0.9, -3.0), (200, 0.0, 3.0)])
def test_discretised_logistic_matches_a_200_digit_reference(k, mean, log_scale):
  # (250, 0.1, -5) and (5, 0.9, -4) are deep tails where the openai code falls back to
  # pdf·bin-width; (200, 0, 3) a wide logistic, whose bins' CDFs nearly cancel.
  params = _grey_mixture([mean], [log_scale], [0.0])
  got = -float(logistic_mixture(*_one_pixel(params, [[k]]))[0])
  np.testing.assert_allclose(got, _reference_log_prob(k, mean, log_scale), rtol=1e-5, atol=1e-5)


def test_edge_bins_take_the_open_ended_tails():
  # A mean far below 0 puts nearly all mass in bin 0; far above, in bin 255.
  low, high = _grey_mixture([-5.0], [-2.0], [0.0]), _grey_mixture([5.0], [-2.0], [0.0])
  assert float(_probabilities(low)[0]) > 0.999 and float(_probabilities(high)[255]) > 0.999


def test_logistic_mixture_gradients_are_finite_at_the_edges_and_extremes():
  params = np.stack([_grey_mixture([m], [s], [0.0]) for m in (-4.0, 0.0, 4.0)
                     for s in (-20.0, -7.0, 0.0, 5.0)])[:, None, None, :]
  x = _f32([0, 255, 37] * 4)[:, None, None, None]
  grads = jax.jit(jax.grad(lambda p: jnp.sum(lk.logistic_mixture(p, x))))(params)
  assert np.all(np.isfinite(grads))


def test_categorical_against_hand_values():
  probs = np.array([0.5, 0.25, 0.125] + [0.125 / 253] * 253)
  logits = np.log(probs.astype(np.float32))
  params = np.concatenate([logits, np.zeros(256, np.float32)])  # Then a uniform channel 1.
  nll = jax.jit(lk.categorical)(*_one_pixel(params, [[1, 7], [2, 200]]))
  np.testing.assert_allclose(nll, [-math.log(0.25) + math.log(256),
                                   -math.log(0.125) + math.log(256)], rtol=1e-5)


def test_bernoulli_against_hand_values():
  logits = _f32([0.0, math.log(3.0), 100.0, -100.0]).reshape(1, 1, 4, 1)
  x = _f32([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 4, 1)
  # log 2, −log(3/4), then a confidently wrong and a confidently right pixel.
  np.testing.assert_allclose(jax.jit(lk.bernoulli)(logits, x),
                             [math.log(2) - math.log(0.75) + 100.0], rtol=1e-6)


def test_gaussian_nats_include_the_jacobian_of_the_256_scaling():
  mean, log_scale, y = 0.4, math.log(0.05), 0.43
  params = _f32([[[[mean, log_scale]]]])
  expected = (0.5 * ((y - mean) / 0.05) ** 2 + log_scale + 0.5 * math.log(2 * math.pi)
              + math.log(256))
  np.testing.assert_allclose(jax.jit(lk.gaussian)(params, _f32([[[[y]]]])), [expected],
                             rtol=1e-5)


def test_gaussian_density_integrates_to_one_on_the_8_bit_scale_and_bounds_the_pmf():
  mean, scale = 0.47, 0.03
  params = _f32([mean, math.log(scale)])
  per_bin = 64
  # Midpoints of a fine grid over [0, 256), exact in float32.
  z = (np.arange(256 * per_bin, dtype=np.float32) + 0.5) / per_bin

  @jax.jit
  def mass_and_nlls(params, y):
    log_density = -lk.gaussian(params, y)
    bins = log_density.reshape(256, per_bin)
    return (jnp.sum(jnp.exp(log_density)) / per_bin, -jnp.log(jnp.mean(jnp.exp(bins), axis=-1)),
            -jnp.mean(bins, axis=-1))
  mass, pmf_nll, dequantised_nll = map(np.asarray, mass_and_nlls(
      *_one_pixel(params, (z / 256.0)[:, None])))
  # The returned nats are −log of a density over the 8-bit scale z: it integrates to 1.
  np.testing.assert_allclose(mass, 1.0, rtol=1e-4)
  # Jensen: the dequantised NLL averaged over a bin bounds −log P(k) from above.
  likely = slice(110, 130)
  assert np.all(dequantised_nll[likely] >= pmf_nll[likely])
  # Where the density is smooth on the bin scale the bound is nearly tight.
  np.testing.assert_allclose(dequantised_nll[likely], pmf_nll[likely], atol=2e-3)


@pytest.mark.parametrize("likelihood,channels,num_mixtures,expected", [
    ("logistic_mixture", 3, 10, 100), ("logistic_mixture", 1, 5, 15),
    ("categorical", 3, 10, 768), ("gaussian", 3, 10, 6), ("bernoulli", 1, 10, 1)])
def test_num_params(likelihood, channels, num_mixtures, expected):
  assert lk.num_params(likelihood, channels, num_mixtures) == expected


def test_unknown_likelihood_and_mis_sized_mixture_are_user_errors():
  with pytest.raises(UserError, match="likelihood='poisson'"):
    lk.num_params("poisson", 1)
  with pytest.raises(UserError, match="multiple of 10 for 3 channels"):
    logistic_mixture(np.zeros((1, 1, 1, 31), np.float32), np.zeros((1, 1, 1, 3), np.int32))


def test_logistic_mixture_sampler_draws_the_discretised_distribution():
  params = _grey_mixture([-0.95, 0.3], [-2.5, -3.0], [0.5, -0.2])  # Mass in edge bin 0 too.
  draws = sample_logistic_mixture(jax.random.PRNGKey(0),
                                     np.broadcast_to(params, (20_000, 1, 1, 6)), 1)
  counts = np.bincount(np.asarray(draws).ravel(), minlength=256) / draws.size
  assert 0.5 * np.abs(counts - np.asarray(_probabilities(params))).sum() < 0.03


def test_rgb_sampler_conditions_on_the_sampled_earlier_channels():
  # Near-deterministic components: G = round of μ_G + tanh(c)·x_R exactly.
  means, coupling = _f32([0.5, -0.2, 0.0]), 0.6
  params = _f32(np.concatenate([np.zeros(1), means, np.full(3, -9.0), [coupling, 0.0, 0.0]]))
  draws = sample_logistic_mixture(jax.random.PRNGKey(1), params[None, None, None], 3)
  red, green = int(draws[0, 0, 0, 0]), int(draws[0, 0, 0, 1])
  x_red = red * 2 / 255 - 1
  assert red == round((0.5 + 1) * 127.5)
  assert green == round((-0.2 + math.tanh(coupling) * x_red + 1) * 127.5)


@pytest.mark.parametrize("likelihood,low,high,dtype", [
    ("bernoulli", 0, 1, jnp.float32), ("categorical", 0, 255, jnp.int32),
    ("logistic_mixture", 0, 255, jnp.int32), ("gaussian", 0, 1, jnp.float32)])
def test_samplers_stay_in_the_data_convention(likelihood, low, high, dtype):
  size = lk.num_params(likelihood, 3, 2)
  params = np.float32(4.0) * _normal(2, (2, 4, 4, size))
  drawn = sample(likelihood, jax.random.PRNGKey(3), params, 3)
  assert drawn.shape == (2, 4, 4, 3) and drawn.dtype == dtype
  drawn = np.asarray(drawn)
  assert float(drawn.min()) >= low and float(drawn.max()) <= high
