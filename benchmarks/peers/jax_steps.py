"""Minimal JAX training steps matching the PyTorch peers, for side-by-side timing.

DCGAN: one jit holding both updates; the generator runs forward once and its VJP is reused
for the G update, as PyTorch reuses `fake`. VAE: one Adam step on the negative ELBO.
`--slow-conv-transpose` differentiates lax.conv_transpose (what nn.ConvTranspose does)
instead of jaxgen's custom VJP.

  python benchmarks/peers/jax_steps.py --model dcgan --image-size 64 --channels 3
"""

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from jaxgen.models import dcgan, vae


def _bce_with_logits(logits, label):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)))


def dcgan_state_and_step(image_size, channels, features=64, latent_dim=100, custom_vjp=True):
  """(initial state, jitted step(state, real, rng) -> (state, (d_loss, g_loss)))."""
  generator = dcgan.Generator(image_size, channels, features, latent_dim, custom_vjp=custom_vjp)
  discriminator = dcgan.Discriminator(image_size, channels, features)
  opt = optax.adam(2e-4, b1=0.5, b2=0.999)
  g_rng, d_rng = jax.random.split(jax.random.PRNGKey(0))
  g_vars = generator.init(g_rng, jnp.zeros((1, latent_dim)), train=False)
  d_vars = discriminator.init(d_rng, jnp.zeros((1, image_size, image_size, channels)),
                              train=False)
  state = {"g": g_vars, "d": d_vars, "g_opt": opt.init(g_vars["params"]),
           "d_opt": opt.init(d_vars["params"])}

  def apply_d(params, stats, images):
    logits, updates = discriminator.apply({"params": params, "batch_stats": stats}, images,
                                          train=True, mutable=["batch_stats"])
    return logits, updates["batch_stats"]

  def step(state, real, rng):
    z = jax.random.normal(rng, (real.shape[0], latent_dim))
    g_stats, d_params = state["g"]["batch_stats"], state["d"]["params"]

    def generate(g_params):
      return generator.apply({"params": g_params, "batch_stats": g_stats}, z, train=True,
                             mutable=["batch_stats"])

    fake, g_vjp, g_updates = jax.vjp(generate, state["g"]["params"], has_aux=True)

    def d_loss_fn(params):
      real_logits, stats = apply_d(params, state["d"]["batch_stats"], real)
      fake_logits, stats = apply_d(params, stats, jax.lax.stop_gradient(fake))
      return _bce_with_logits(real_logits, 1.0) + _bce_with_logits(fake_logits, 0.0), stats

    (d_loss, d_stats), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_params)
    d_step, d_opt = opt.update(d_grads, state["d_opt"], d_params)
    d_params = optax.apply_updates(d_params, d_step)

    def g_loss_fn(images):
      logits, stats = apply_d(d_params, d_stats, images)
      return _bce_with_logits(logits, 1.0), stats

    (g_loss, d_stats), fake_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grads)
    g_step, g_opt = opt.update(g_grads, state["g_opt"], state["g"]["params"])
    new_state = {
        "g": {"params": optax.apply_updates(state["g"]["params"], g_step), **g_updates},
        "d": {"params": d_params, "batch_stats": d_stats}, "g_opt": g_opt, "d_opt": d_opt}
    return new_state, (d_loss, g_loss)

  return state, jax.jit(step, donate_argnums=0)


def vae_state_and_step(image_size, channels, latent_dim=32, features=32, custom_vjp=True):
  """(initial state, jitted step(state, x, rng) -> (state, loss)); x binary [b, H, W, C]."""
  model = vae.ConvVAE(image_size, channels, latent_dim, features, custom_vjp=custom_vjp)
  opt = optax.adam(1e-3)
  x = jnp.zeros((1, image_size, image_size, channels))
  params = model.init(jax.random.PRNGKey(0), x, jax.random.PRNGKey(1))["params"]

  def loss_fn(params, x, rng):
    logits, mean, logvar = model.apply({"params": params}, x, rng)
    recon = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=(1, 2, 3))
    kl = 0.5 * jnp.sum(jnp.exp(logvar) + mean ** 2 - 1.0 - logvar, axis=-1)
    return jnp.mean(recon + kl)

  def step(state, x, rng):
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, rng)
    updates, opt_state = opt.update(grads, state["opt"], state["params"])
    return {"params": optax.apply_updates(state["params"], updates), "opt": opt_state}, loss

  return {"params": params, "opt": opt.init(params)}, jax.jit(step, donate_argnums=0)


def images_per_second(batch_size, steps, warmup, model="dcgan", image_size=28, channels=1,
                      custom_vjp=True):
  """Times `steps` jitted steps after `warmup` (compilation included there); a JSON record."""
  shape = (batch_size, image_size, image_size, channels)
  if model == "dcgan":
    state, step = dcgan_state_and_step(image_size, channels, custom_vjp=custom_vjp)
    batch = jax.random.uniform(jax.random.PRNGKey(1), shape, minval=-1.0, maxval=1.0)
  else:
    state, step = vae_state_and_step(image_size, channels, custom_vjp=custom_vjp)
    batch = (jax.random.uniform(jax.random.PRNGKey(1), shape) < 0.5).astype(jnp.float32)
  times = []
  for i in range(warmup + steps):
    start = time.perf_counter()
    state, metrics = step(state, batch, jax.random.PRNGKey(i))
    jax.block_until_ready(metrics)
    if i >= warmup:
      times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return {"model": f"{'dcgan' if model == 'dcgan' else 'conv_vae'}{image_size}",
          "framework": "jax", "batch_size": batch_size,
          "median_step_ms": round(1000 * median, 2),
          "images_per_s": round(batch_size / median, 1),
          "threads": len(os.sched_getaffinity(0)),
          "conv_transpose": "custom_vjp" if custom_vjp else "lax_autodiff"}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", choices=("dcgan", "vae"), default="dcgan")
  parser.add_argument("--image-size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--slow-conv-transpose", action="store_true")
  args = parser.parse_args()
  print(json.dumps(images_per_second(args.batch_size, args.steps, args.warmup, args.model,
                                     args.image_size, args.channels,
                                     not args.slow_conv_transpose)))


if __name__ == "__main__":
  main()
