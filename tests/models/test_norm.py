"""The fused GroupNorm (models/norm.py) against Flax's GroupNorm, scale-shift and SiLU."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import norm


def _inputs(shape, seed=0):
  rng = np.random.default_rng(seed)
  b, c = shape[0], shape[-1]
  f = lambda *s, mu=0.0, sd=1.0: jnp.asarray(mu + sd * rng.standard_normal(s), jnp.float32)
  params = {"scale": f(c, mu=1.0, sd=0.2), "bias": f(c, sd=0.2)}
  # An offset mean and a spread like activations', so the statistics matter.
  return params, f(*shape, mu=0.7, sd=2.0), f(b, c, sd=0.3), f(b, c, sd=0.3), f(*shape)


def _flax(params, x, scale, shift, groups, silu):
  y = nn.GroupNorm(num_groups=groups).apply({"params": params}, x)
  y = y * (1 + scale[:, None, None, :]) + shift[:, None, None, :]
  return nn.silu(y) if silu else y


def _fused(params, x, scale, shift, groups, silu):
  return norm.GroupNorm(groups, silu=silu).apply({"params": params}, x, scale, shift)


# (shape, groups): several channels per group, one channel per group, one group.
@pytest.mark.parametrize("shape,groups", [((3, 5, 6, 8), 4), ((2, 4, 4, 6), 6),
                                          ((2, 3, 3, 4), 1)])
@pytest.mark.parametrize("silu", [True, False])
def test_value_and_gradients_equal_flax(shape, groups, silu):
  params, x, scale, shift, weights = _inputs(shape)

  def loss(fn):
    return jax.jit(jax.value_and_grad(
        lambda *a: jnp.sum(fn(*a, groups, silu) * weights), argnums=(0, 1, 2, 3)))

  np.testing.assert_allclose(_fused(params, x, scale, shift, groups, silu),
                             _flax(params, x, scale, shift, groups, silu), rtol=1e-5, atol=1e-6)
  (_, want_grads), (_, got_grads) = (loss(fn)(params, x, scale, shift) for fn in (_flax, _fused))
  for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(jnp.abs(w).max()))


def test_without_scale_shift_equals_flax_groupnorm():
  params, x, *_ = _inputs((2, 4, 4, 8))
  got = norm.GroupNorm(4).apply({"params": params}, x)
  want = nn.GroupNorm(num_groups=4).apply({"params": params}, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_parameters_are_flax_groupnorms():
  x = jnp.zeros((1, 2, 2, 6))
  shapes = lambda m: jax.tree.map(jnp.shape, m.init(jax.random.key(0), x))
  assert shapes(norm.GroupNorm(3, silu=True)) == shapes(nn.GroupNorm(num_groups=3))


def test_bfloat16_output_with_float32_statistics():
  params, x, scale, shift, weights = _inputs((2, 4, 4, 8))
  x16 = x.astype(jnp.bfloat16)
  fused = lambda v: norm.GroupNorm(4, jnp.bfloat16, silu=True).apply(
      {"params": params}, v, scale, shift)
  got = fused(x16)
  assert got.dtype == jnp.bfloat16
  want = _flax(params, x16.astype(jnp.float32), scale, shift, 4, True)
  np.testing.assert_allclose(got.astype(jnp.float32), want, rtol=2e-2, atol=2e-2)
  grad = jax.grad(lambda v: jnp.sum(fused(v).astype(jnp.float32) * weights))(x16)
  want_grad = jax.grad(lambda v: jnp.sum(_flax(params, v, scale, shift, 4, True) * weights))(
      x16.astype(jnp.float32))
  assert grad.dtype == jnp.bfloat16
  np.testing.assert_allclose(grad.astype(jnp.float32), want_grad, rtol=5e-2, atol=2e-2)


def test_bad_shapes_are_errors():
  params = {"scale": jnp.ones(6), "bias": jnp.zeros(6)}
  with pytest.raises(ValueError, match="C a multiple of groups"):
    norm.GroupNorm(4).apply({"params": params}, jnp.zeros((1, 2, 2, 6)))
