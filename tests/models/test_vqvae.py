"""The vector quantiser: nearest codes, straight-through gradients, EMA codebook updates."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models import vqvae


# Jitted (init and every apply below): eager, each op would compile on its own, 30-70 tiny
# programs per test on 2 cores.
@functools.partial(jax.jit, static_argnums=0)
def _init(vq, z):
  return vq.init(jax.random.PRNGKey(0), z, train=False)


@functools.partial(jax.jit, static_argnames=("vq", "train"))
def _apply(vq, variables, z, train):
  return vq.apply(variables, z, train=train, mutable=["batch_stats"])


def test_each_vector_snaps_to_its_nearest_code():
  vq = vqvae.VectorQuantizer(num_codes=16)
  z = jax.random.normal(jax.random.PRNGKey(1), (4, 5, 5, 3))
  variables = _init(vq, z)
  (z_q, indices, aux), _ = _apply(vq, variables, z, train=False)
  codebook = np.asarray(variables["batch_stats"]["codebook"])
  flat = np.asarray(z).reshape(-1, 3)
  expected = np.argmin(((flat[:, None] - codebook[None]) ** 2).sum(-1), axis=1)
  np.testing.assert_array_equal(np.asarray(indices).ravel(), expected)
  np.testing.assert_allclose(np.asarray(z_q).reshape(-1, 3), codebook[expected], rtol=1e-6)
  assert 1.0 <= float(aux["perplexity"]) <= 16.0


def test_straight_through_passes_the_decoder_gradient_to_the_encoder_output():
  vq = vqvae.VectorQuantizer(num_codes=8)
  z = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 4))
  variables = _init(vq, z)
  weights = jax.random.normal(jax.random.PRNGKey(2), z.shape)

  def downstream(z):
    (z_q, _, _), _ = vq.apply(variables, z, train=False, mutable=["batch_stats"])
    return jnp.sum(weights * z_q)

  def commitment(z):
    (_, _, aux), _ = vq.apply(variables, z, train=False, mutable=["batch_stats"])
    return aux["commitment"]

  @jax.jit
  def run(z):
    (z_q, _, _), _ = vq.apply(variables, z, train=False, mutable=["batch_stats"])
    return jax.grad(downstream)(z), jax.grad(commitment)(z), z_q

  downstream_grad, commitment_grad, z_q = run(z)
  # d/dz of Σ w·z_q is w exactly: the quantiser acts as the identity backwards.
  np.testing.assert_allclose(downstream_grad, weights, rtol=1e-6)
  z, z_q = np.asarray(z), np.asarray(z_q)
  n = z.size // z.shape[-1]
  np.testing.assert_allclose(commitment_grad, 2.0 * (z - z_q) / n, rtol=1e-5, atol=1e-7)


def test_ema_moves_each_used_code_towards_the_mean_of_its_vectors():
  vq = vqvae.VectorQuantizer(num_codes=4, decay=0.5)
  z = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
  variables = _init(vq, z)
  stats = variables["batch_stats"]
  for _ in range(40):
    (_, indices, _), updates = _apply(vq, {"batch_stats": stats}, z, train=True)
    stats = updates["batch_stats"]
  (_, indices, aux), _ = _apply(vq, {"batch_stats": stats}, z, train=False)
  indices, codebook = np.asarray(indices), np.asarray(stats["codebook"])
  for code in np.unique(indices):  # Converged: every used code is its cluster's mean.
    np.testing.assert_allclose(codebook[code], np.asarray(z)[indices == code].mean(0), atol=1e-3)
  unused = sorted(set(range(4)) - set(np.unique(indices).tolist()))
  initial = np.asarray(variables["batch_stats"]["codebook"])
  for code in unused:  # A code nobody picks stays where it was.
    np.testing.assert_allclose(codebook[code], initial[code], rtol=1e-3)
  (_, _, _), frozen = _apply(vq, {"batch_stats": stats}, z, train=False)
  jax.tree.map(np.testing.assert_array_equal, frozen["batch_stats"], stats)


def test_vqvae_shapes_and_decoding_codes_equals_decoding_their_vectors():
  model = vqvae.VQVAE(28, 1, "logistic_mixture", num_mixtures=1, num_codes=8, code_dim=4,
                      features=4)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 28, 28, 1))
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.PRNGKey(1), x)

  @jax.jit
  def run(variables, x):
    (out, codes, _), _ = model.apply(variables, x, train=False, mutable=["batch_stats"])
    return out, codes, model.apply(variables, codes, method=model.decode_codes)

  out, codes, decoded = run(variables, x)
  assert out.shape == (2, 28, 28, 3) and codes.shape == (2, 7, 7)
  np.testing.assert_allclose(decoded, out, rtol=1e-5, atol=1e-6)
