"""GANs: a generator and a discriminator trained against each other in one jitted step.

The step mirrors the reference PyTorch DCGAN iteration: the generator runs forward once;
the discriminator is updated on real and (stopped-gradient) fake images; the generator is
then updated through the *updated* discriminator, reusing that same forward pass via its
VJP instead of recomputing it. Loss: non-saturating (softplus form of BCE-with-logits).
"""

import jax
import jax.numpy as jnp
import optax

from jaxgen import models, optim, sharding
from jaxgen.train_state import TrainState, ema_update, init_ema

G, D = "generator", "discriminator"


def build_models(config):
  def build(cfg):
    kwargs = dict(cfg)
    return models.get(kwargs.pop("name"))(**kwargs)
  return build(config.model.generator), build(config.model.discriminator)


def _optimizers(config):
  return {net: optim.create(config.optim[net], config.total_steps) for net in (G, D)}


def image_shape(config) -> tuple[int, int, int]:
  """[height, width, channels] of the images this config models."""
  return (config.model.generator.image_size, config.model.generator.image_size,
          config.model.generator.channels)


def init_state(config, rng, image_shape) -> TrainState:
  generator, discriminator = build_models(config)
  g_rng, d_rng, run_rng = jax.random.split(rng, 3)
  g_vars = generator.init(g_rng, jnp.zeros((1, generator.latent_dim)), train=False)
  d_vars = discriminator.init(d_rng, jnp.zeros((1, *image_shape)), train=False)
  params = {G: g_vars["params"], D: d_vars["params"]}
  opts = _optimizers(config)
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      opt_state={net: opts[net].init(params[net]) for net in (G, D)},
      model_state={G: g_vars.get("batch_stats", {}), D: d_vars.get("batch_stats", {})},
      ema_params={G: init_ema(params[G], config.ema_decay)} if config.ema_decay else {},
      rng=run_rng)


def _latents(config, rng, num, latent_dim):
  z = jax.random.normal(rng, (num, latent_dim))
  return sharding.constrain_batch(z)


def _apply_d(discriminator, params, stats, images):
  logits, updates = discriminator.apply({"params": params, "batch_stats": stats}, images,
                                        train=True, mutable=["batch_stats"])
  return logits.astype(jnp.float32), updates.get("batch_stats", stats)


def train_step(config, state: TrainState, batch):
  generator, discriminator = build_models(config)
  real = batch["image"]
  z = _latents(config, state.step_rng(), real.shape[0], generator.latent_dim)
  g_stats, d_stats = state.model_state[G], state.model_state[D]

  def generate(g_params):
    fake, updates = generator.apply({"params": g_params, "batch_stats": g_stats}, z,
                                    train=True, mutable=["batch_stats"])
    return fake, updates.get("batch_stats", g_stats)

  fake, g_vjp, new_g_stats = jax.vjp(generate, state.params[G], has_aux=True)

  def d_loss_fn(d_params):
    real_logits, stats = _apply_d(discriminator, d_params, d_stats, real)
    fake_logits, stats = _apply_d(discriminator, d_params, stats, jax.lax.stop_gradient(fake))
    loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
    return loss, (stats, real_logits, fake_logits)

  (d_loss, (d_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.params[D])
  opts = _optimizers(config)
  d_updates, d_opt = opts[D].update(d_grads, state.opt_state[D], state.params[D])
  d_params = optax.apply_updates(state.params[D], d_updates)

  def g_loss_fn(fake_images):
    logits, stats = _apply_d(discriminator, d_params, d_stats, fake_images)
    return jnp.mean(jax.nn.softplus(-logits)), stats

  (g_loss, d_stats), fake_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(fake_grads)
  g_updates, g_opt = opts[G].update(g_grads, state.opt_state[G], state.params[G])
  g_params = optax.apply_updates(state.params[G], g_updates)

  ema = state.ema_params
  if ema:
    ema = {G: ema_update(ema[G], g_params, config.ema_decay, state.step)}
  new_state = state.replace(
      step=state.step + 1, params={G: g_params, D: d_params}, opt_state={G: g_opt, D: d_opt},
      model_state={G: new_g_stats, D: d_stats}, ema_params=ema)
  metrics = {
      "train/d_loss": d_loss, "train/g_loss": g_loss,
      "train/d_real_prob": jnp.mean(jax.nn.sigmoid(real_logits)),
      "train/d_fake_prob": jnp.mean(jax.nn.sigmoid(fake_logits)),
      "train/g_grad_norm": optax.tree.norm(g_grads),
      "train/d_grad_norm": optax.tree.norm(d_grads),
      "train/learning_rate": optim.schedule(config.optim[G], config.total_steps)(state.step),
  }
  return new_state, metrics


def _generator_params(state):
  return state.ema_params[G] if state.ema_params else state.params[G]


def sample(config, state: TrainState, rng, num: int):
  """Images in [-1, 1] from the EMA generator when kept, with BatchNorm in inference mode."""
  generator, _ = build_models(config)
  z = _latents(config, rng, num, generator.latent_dim)
  return generator.apply({"params": _generator_params(state),
                          "batch_stats": state.model_state[G]}, z, train=False)


def provenance(config) -> dict:
  """How eval_metrics' numbers were computed."""
  return {"generator": "ema" if config.ema_decay else "raw",
          "discriminator_metrics": "on held-out real images and as many fresh samples"}


def eval_metrics(config, state: TrainState, batch, rng):
  """The discriminator's verdict on held-out real images and on as many fresh samples."""
  _, discriminator = build_models(config)
  d_vars = {"params": state.params[D], "batch_stats": state.model_state[D]}
  real_logits = discriminator.apply(d_vars, batch["image"], train=False).astype(jnp.float32)
  fake = sample(config, state, rng, batch["image"].shape[0])
  fake_logits = discriminator.apply(d_vars, fake, train=False).astype(jnp.float32)
  return {"d_real_prob": jax.nn.sigmoid(real_logits),
          "d_fake_prob": jax.nn.sigmoid(fake_logits),
          "d_loss": jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)}
