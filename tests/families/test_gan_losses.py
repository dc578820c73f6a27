"""GAN losses against hand-computed values, and the penalties on a D whose gradient is known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.families import gan_losses

REAL, FAKE = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
# Eager, every jax op compiles a program of its own (50-80 ms each on 2 cores): the tests
# below jit the losses and penalties, with the random inputs they draw.
_losses = jax.jit(lambda kind, r, f: (gan_losses.discriminator_loss(kind, r, f),
                                      gan_losses.generator_loss(kind, f)), static_argnums=0)


def _softplus(x):
  return np.log1p(np.exp(x))


@pytest.mark.parametrize("kind,d_expected,g_expected", [
    ("non_saturating",
     np.mean([_softplus(-2.0) + _softplus(0.5), _softplus(1.0) + _softplus(-3.0)]),
     np.mean([_softplus(-0.5), _softplus(3.0)])),
    # relu(1 - r) + relu(1 + f): (0 + 1.5, 2 + 0); G: -mean(f).
    ("hinge", np.mean([1.5, 2.0]), 1.25),
    # ((r - 1)² + f²) / 2: ((1 + 0.25) / 2, (4 + 9) / 2); G: (f - 1)² / 2 = (0.125, 8).
    ("least_squares", np.mean([0.625, 6.5]), np.mean([0.125, 8.0])),
    # mean(f) - mean(r) = -1.25 - 0.5; G: -mean(f).
    ("wasserstein", -1.75, 1.25),
])
def test_losses_match_hand_computed_values(kind, d_expected, g_expected):
  d_loss, g_loss = _losses(kind, REAL, FAKE)
  np.testing.assert_allclose(d_loss, d_expected, rtol=1e-6)
  np.testing.assert_allclose(g_loss, g_expected, rtol=1e-6)


def test_unknown_loss_names_the_choices():
  with pytest.raises(UserError, match="'minimax'.*hinge"):
    gan_losses.discriminator_loss("minimax", REAL, FAKE)


def _linear_d(w):
  """D(x) = <w, x> per example: its input gradient is w everywhere."""
  return lambda x: jnp.sum(x * w, axis=(1, 2, 3))


def test_gradient_penalty_of_a_linear_critic_is_its_norm_minus_one_squared():
  @jax.jit
  def critic_and_penalties():
    w = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 4, 1))
    real = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 4, 1))
    fake = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 4, 1))
    gp = gan_losses.wgan_gradient_penalty(_linear_d(w), real, fake, jax.random.PRNGKey(3))
    unit = w / jnp.linalg.norm(w)
    return w, gp, gan_losses.wgan_gradient_penalty(_linear_d(unit), real, fake,
                                                   jax.random.PRNGKey(3))
  w, gp, unit_gp = critic_and_penalties()
  np.testing.assert_allclose(gp, (np.linalg.norm(w) - 1.0) ** 2, rtol=1e-5)
  # A unit-norm critic pays nothing.
  assert float(unit_gp) < 1e-10


def test_gradient_penalty_is_evaluated_between_real_and_fake():
  # D(x) = ½‖x‖²: ∇D(x̂) = x̂, so the penalty depends on where x̂ lies: between real and fake.
  d_fn = lambda x: 0.5 * jnp.sum(x ** 2, axis=(1, 2, 3))
  real, fake = np.full((256, 1, 1, 1), 3.0, np.float32), np.full((256, 1, 1, 1), 1.0, np.float32)
  gp = jax.jit(lambda r, f: gan_losses.wgan_gradient_penalty(d_fn, r, f, jax.random.PRNGKey(0)))(
      real, fake)
  # x̂ = 1 + 2ε with ε ~ U[0, 1]: E[(2ε)²] = 4/3.
  np.testing.assert_allclose(gp, 4.0 / 3.0, rtol=0.1)


def test_the_penalty_differentiates_to_the_critic_parameters():
  w = np.full((1, 4, 4, 1), 2.0 / 4.0, np.float32)  # ‖w‖ = 2.
  grad = jax.jit(jax.grad(lambda w: gan_losses.r1_penalty(
      _linear_d(w), jax.random.normal(jax.random.PRNGKey(1), (3, 4, 4, 1)))))(w)
  np.testing.assert_allclose(grad, 2.0 * w, rtol=1e-5)  # ∇_w ‖w‖² = 2w.


def test_r1_penalty_is_the_squared_input_gradient_norm():
  @jax.jit
  def critic_and_penalty():
    w = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 4, 1))
    real = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 4, 1))
    return w, gan_losses.r1_penalty(_linear_d(w), real)
  w, penalty = critic_and_penalty()
  np.testing.assert_allclose(penalty, np.linalg.norm(w) ** 2, rtol=1e-5)
