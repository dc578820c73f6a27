"""GAN objectives on discriminator logits, and the gradient penalties on its inputs.

Each loss is a pair (discriminator loss, generator loss), both means over the batch:
  non_saturating  D: softplus(-r) + softplus(f)    G: softplus(-f)   (BCE with logits)
  hinge           D: relu(1 - r) + relu(1 + f)     G: -f
  least_squares   D: ((r - 1)² + f²) / 2           G: (f - 1)² / 2
  wasserstein     D: f - r                         G: -f              (pair with a penalty)
with r, f the logits of real and fake images.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

LOSSES = ("non_saturating", "hinge", "least_squares", "wasserstein")


def check(kind: str) -> None:
  if kind not in LOSSES:
    raise UserError(f"gan.loss={kind!r}: expected one of {', '.join(LOSSES)}")


def discriminator_loss(kind: str, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  check(kind)
  r, f = real_logits, fake_logits
  if kind == "non_saturating":
    per_example = jax.nn.softplus(-r) + jax.nn.softplus(f)
  elif kind == "hinge":
    per_example = jax.nn.relu(1.0 - r) + jax.nn.relu(1.0 + f)
  elif kind == "least_squares":
    per_example = 0.5 * ((r - 1.0) ** 2 + f ** 2)
  else:
    per_example = f - r
  return jnp.mean(per_example)


def generator_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
  check(kind)
  f = fake_logits
  if kind == "non_saturating":
    return jnp.mean(jax.nn.softplus(-f))
  if kind == "least_squares":
    return jnp.mean(0.5 * (f - 1.0) ** 2)
  return -jnp.mean(f)  # hinge and wasserstein


def _input_grad_sq_norms(d_fn: Callable[[jax.Array], jax.Array], images: jax.Array
                         ) -> jax.Array:
  """‖∂D(x_i)/∂x_i‖² per example [batch]: summing the logits keeps examples apart, as long
  as D treats examples independently (no BatchNorm in training mode)."""
  grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(images)
  return jnp.sum(grads.reshape(grads.shape[0], -1).astype(jnp.float32) ** 2, axis=-1)


def wgan_gradient_penalty(d_fn, real: jax.Array, fake: jax.Array, rng: jax.Array) -> jax.Array:
  """E[(‖∇D(x̂)‖ - 1)²] at x̂ = εx + (1-ε)x̃, ε ~ U[0, 1] per example (Gulrajani et al., 2017)."""
  eps = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  mixed = eps * real + (1.0 - eps) * fake
  # The epsilon keeps the square root's gradient finite at a zero input gradient.
  norms = jnp.sqrt(_input_grad_sq_norms(d_fn, mixed) + 1e-12)
  return jnp.mean((norms - 1.0) ** 2)


def r1_penalty(d_fn, real: jax.Array) -> jax.Array:
  """E[‖∇D(x)‖²] on real images (Mescheder et al., 2018); the caller scales it by γ/2."""
  return jnp.mean(_input_grad_sq_norms(d_fn, real))
