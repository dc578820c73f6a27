"""GANs: a generator and a discriminator trained against each other in one jitted step.

One iteration = `gan.n_critic` discriminator updates, then one generator update:
  - The global batch is split into n_critic chunks; critic update i sees real chunk i and
    a fresh fake chunk.
  - The last fake chunk is generated under `jax.vjp`, and the generator update reuses that
    forward pass through the *updated* discriminator instead of recomputing it — the
    reference PyTorch DCGAN iteration. With n_critic = 1 that is all there is.
Knobs (config.gan): the loss (`gan_losses`), WGAN-GP's gradient penalty, a lazy R1 penalty
every `r1_every` steps, DiffAugment on everything D sees. Class-conditional models
(model.num_classes > 0) train on the data's labels and draw fake labels uniformly.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import accumulate, conditioning, families, models, sharding, train_state
from jaxgen.errors import UserError
from jaxgen.families import diffaugment, gan_losses, standing_stats
from jaxgen.train_state import TrainState

G, D = "generator", "discriminator"
CAPABILITIES = frozenset({"interpolate"})


def default_options() -> ml_collections.ConfigDict:
  """config.gan: the objective and its regularisers."""
  return ml_collections.ConfigDict(dict(
      loss="non_saturating",  # See gan_losses.LOSSES.
      n_critic=1,             # D updates per G update; the batch is split between them.
      gradient_penalty=0.0,   # λ of WGAN-GP's (‖∇D(x̂)‖ - 1)² (10 in the paper); 0 = off.
      r1_gamma=0.0,           # γ of the R1 penalty γ/2·‖∇D(x)‖² on reals; 0 = off.
      r1_every=16,            # Lazy R1: applied (×r1_every) on every r1_every-th step only.
      diffaugment="",         # e.g. 'color,translation,cutout'; '' = off.
  ))


def sampling_options() -> ml_collections.ConfigDict:
  """config.sampling: how `sample` draws (overridable at `jaxgen sample` / `evaluate`)."""
  return ml_collections.ConfigDict(dict(
      truncation=0.0,  # Latents from N(0, I) truncated to [-t, t] (truncation trick); 0 = off.
      # The generator's BatchNorm statistics when sampling: 'running', the averages training
      # kept (of the raw weights, also for EMA ones), or 'standing', measured on a batch of
      # the sampled weights' own outputs (`standing_stats`). Running scored the better FID
      # on two of the three seeds measured, EMA and raw weights alike (benchmarks/README.md).
      batch_stats="running",
      # The generator's weights: 'ema', the average training keeps (when ema_decay > 0), or
      # 'raw', the last step's, to compare the two on one checkpoint.
      weights="ema",
  ))

# One batch of untrained-distribution latents, from a fixed key: the statistics, and so the
# samples of a seed, do not depend on how sampling is chunked.
STANDING_BATCH, STANDING_KEY = 512, 20240


def build_models(config):
  dtype = models.compute_dtype(config.model.get("dtype", "float32"))

  def build(cfg):
    kwargs = dict(cfg)
    return models.get(kwargs.pop("name"))(num_classes=config.model.num_classes, dtype=dtype,
                                          **kwargs)
  return build(config.model.generator), build(config.model.discriminator)


def check_options(config, batch_size: int) -> None:
  opts = config.gan
  gan_losses.check(opts.loss)
  diffaugment.parse(opts.diffaugment)
  if opts.n_critic < 1 or batch_size % opts.n_critic:
    raise UserError(f"gan.n_critic={opts.n_critic}: expected a positive divisor of the batch "
                    f"size {batch_size}, which is split between the critic updates")
  if opts.r1_every < 1:
    raise UserError(f"gan.r1_every={opts.r1_every}: expected a positive number of steps")
  k = accumulate.steps(config)
  if k > 1 and batch_size % (opts.n_critic * k):
    raise UserError(f"optim.accumulate_steps={k}: each of the gan.n_critic={opts.n_critic} "
                    f"chunks of the batch of {batch_size} must split into {k} micro-batches; "
                    f"use a batch_size divisible by {opts.n_critic * k}")


def image_shape(config) -> tuple[int, int, int]:
  """[height, width, channels] of the images this config models."""
  return (config.model.generator.image_size, config.model.generator.image_size,
          config.model.generator.channels)


def _example_labels(config, num):
  return jnp.zeros((num,), jnp.int32) if config.model.num_classes else None


def init_state(config, rng, image_shape) -> TrainState:
  check_options(config, config.batch_size)
  generator, discriminator = build_models(config)
  g_rng, d_rng, run_rng = jax.random.split(rng, 3)
  g_vars = generator.init(g_rng, jnp.zeros((1, generator.latent_dim)),
                          _example_labels(config, 1), train=False)
  d_vars = discriminator.init(d_rng, jnp.zeros((1, *image_shape)), _example_labels(config, 1),
                              train=False)
  return train_state.create_state(
      config, {G: g_vars["params"], D: d_vars["params"]}, run_rng,
      model_state={G: g_vars.get("batch_stats", {}), D: d_vars.get("batch_stats", {})},
      networks=(G, D), ema_networks=(G,))


def _latents(rng, num, latent_dim, truncation: float = 0.0):
  """z [num, latent_dim] ~ N(0, I), or N(0, I) truncated to [-t, t] when t > 0."""
  if truncation < 0:
    raise UserError(f"sampling.truncation={truncation}: expected t > 0 (latents kept in "
                    "[-t, t]) or 0 (off)")
  z = (jax.random.truncated_normal(rng, -truncation, truncation, (num, latent_dim))
       if truncation else jax.random.normal(rng, (num, latent_dim)))
  return sharding.constrain_batch(z)


def _sampling_latents(config, rng, num):
  """Latents to sample with: config.sampling's truncation (training never truncates)."""
  return _latents(rng, num, latent_dim(config), families.sampling(config).truncation)


def _fake_labels(config, rng, num):
  if not config.model.num_classes:
    return None
  return sharding.constrain_batch(jax.random.randint(rng, (num,), 0, config.model.num_classes))


def apply_discriminator(discriminator, params, stats, images, labels):
  """(logits [b] float32, updated model state): BatchNorm/spectral-norm state moves."""
  logits, updates = discriminator.apply({"params": params, "batch_stats": stats}, images, labels,
                                        train=True, mutable=["batch_stats"])
  return logits.astype(jnp.float32), updates.get("batch_stats", stats)


def _critic_chunks(batch, n):
  """{image, label} [B, ...] -> [n, B/n, ...], chunk i holding examples i, n+i, 2n+i, ...

  The split gradient accumulation makes (`accumulate.micro_batches`): each device keeps its
  contiguous rows, so the chunks stay sharded over 'data' along their second axis.
  """
  return accumulate.micro_batches({k: v for k, v in batch.items() if k in ("image", "label")},
                                  n)


def discriminator_objective(config, discriminator, d_params, d_stats, real, real_labels, fake,
                            fake_labels, rng, step):
  """D's loss on one chunk, with its penalties; returns (loss, (stats, metrics))."""
  opts = config.gan
  aug_real, aug_fake, gp_rng = jax.random.split(rng, 3)
  if opts.diffaugment:
    real = diffaugment.augment(aug_real, real, opts.diffaugment)
    fake = diffaugment.augment(aug_fake, fake, opts.diffaugment)
  real_logits, stats = apply_discriminator(discriminator, d_params, d_stats, real, real_labels)
  fake_logits, stats = apply_discriminator(discriminator, d_params, stats, fake, fake_labels)
  adversarial = gan_losses.discriminator_loss(opts.loss, real_logits, fake_logits)
  metrics = {"d_adversarial_loss": adversarial, "d_real_score": jnp.mean(real_logits),
             "d_fake_score": jnp.mean(fake_logits)}
  loss = adversarial
  # Penalty passes see the current statistics but leave them alone.
  d_fn = lambda labels: lambda x: apply_discriminator(discriminator, d_params, stats, x,
                                                      labels)[0]
  if opts.gradient_penalty:
    gp = gan_losses.wgan_gradient_penalty(d_fn(real_labels), real, fake, gp_rng)
    loss += opts.gradient_penalty * gp
    metrics["gradient_penalty"] = gp
  if opts.r1_gamma:
    r1 = jax.lax.cond(step % opts.r1_every == 0,
                      lambda: gan_losses.r1_penalty(d_fn(real_labels), real),
                      lambda: jnp.zeros((), jnp.float32))
    loss += 0.5 * opts.r1_gamma * opts.r1_every * r1
    metrics["r1_penalty"] = r1
  return loss, (stats, metrics)


def train_step(config, state: TrainState, batch):
  check_options(config, batch["image"].shape[0])
  if accumulate.steps(config) > 1:
    return _accumulated_train_step(config, state, batch, accumulate.steps(config))
  generator, discriminator = build_models(config)
  opts = config.gan
  chunks = _critic_chunks(batch, opts.n_critic)
  conditional = bool(config.model.num_classes)
  keys = jax.random.split(state.step_rng(), opts.n_critic)
  step = state.step  # Every update of this iteration sees the step it started at.

  def generate(g_params, g_stats, rng, num):
    z_rng, y_rng = jax.random.split(rng)
    labels = _fake_labels(config, y_rng, num)
    z = _latents(z_rng, num, generator.latent_dim)
    fake, updates = generator.apply({"params": g_params, "batch_stats": g_stats}, z, labels,
                                    train=True, mutable=["batch_stats"])
    return fake, (labels, updates.get("batch_stats", g_stats))

  def d_update(state, real, real_labels, fake, fake_labels, rng):
    grad_fn = jax.value_and_grad(
        functools.partial(discriminator_objective, config, discriminator), has_aux=True)
    (loss, (d_stats, metrics)), grads = grad_fn(state.params[D], state.model_state[D], real,
                                                real_labels, fake, fake_labels, rng, step)
    state, update = train_state.apply_gradients(config, state, grads, network=D,
                                                model_state=d_stats, advance=False, loss=loss)
    metrics.update(d_loss=loss, d_grad_norm=update["grad_norm"], d_skipped=update["skipped"])
    return state, metrics

  def with_g_stats(state, g_stats):
    return state.replace(model_state={**state.model_state, G: g_stats})

  labels = chunks["label"] if conditional else jnp.zeros(chunks["image"].shape[:2], jnp.int32)
  d_skipped = 0.0  # Whether any critic update of this iteration was skipped (not finite).
  # Unrolled in the trace rather than a lax.scan: on XLA:CPU the scanned version of an
  # n_critic=2 step ran 5.5x slower (710 vs 130 ms, benchmarks/README.md); n_critic is small.
  for i in range(opts.n_critic - 1):
    g_rng, d_rng = jax.random.split(keys[i])
    real = chunks["image"][i]
    fake, (fake_labels, g_stats) = generate(state.params[G], state.model_state[G], g_rng,
                                            real.shape[0])
    state, metrics = d_update(with_g_stats(state, g_stats), real,
                              labels[i] if conditional else None, jax.lax.stop_gradient(fake),
                              fake_labels, d_rng)
    d_skipped = jnp.maximum(d_skipped, metrics["d_skipped"])

  # The last critic update: its fake chunk also serves the generator update.
  real, real_labels = chunks["image"][-1], labels[-1] if conditional else None
  g_rng, d_rng, g_aug = jax.random.split(keys[-1], 3)
  num = real.shape[0]
  fake, g_vjp, (fake_labels, new_g_stats) = jax.vjp(
      lambda p: generate(p, state.model_state[G], g_rng, num), state.params[G], has_aux=True)
  state, metrics = d_update(state, real, real_labels, jax.lax.stop_gradient(fake), fake_labels,
                            d_rng)
  metrics["d_skipped"] = jnp.maximum(d_skipped, metrics["d_skipped"])

  def g_loss_fn(fake_images):
    if opts.diffaugment:
      fake_images = diffaugment.augment(g_aug, fake_images, opts.diffaugment)
    logits, stats = apply_discriminator(discriminator, state.params[D], state.model_state[D],
                                        fake_images, fake_labels)
    return gan_losses.generator_loss(opts.loss, logits), stats

  (g_loss, d_stats), fake_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(fake_grads)
  state, update = generator_update(config, state, g_grads, g_loss, {G: new_g_stats, D: d_stats})
  return state, step_metrics(metrics, g_loss, update)


def generator_update(config, state: TrainState, grads, loss, model_state):
  """The generator's update, with the BatchNorm statistics of both networks from its pass:
  kept as they were, like G's parameters, when the update is skipped (not finite)."""
  new, update = train_state.apply_gradients(config, state.replace(model_state=model_state),
                                            grads, network=G, loss=loss)
  kept = train_state.unless_skipped(update["skipped"] == 0, new.model_state, state.model_state)
  return new.replace(model_state=kept), update


def step_metrics(d_metrics, g_loss, g_update):
  """The last critic update's metrics, G's, and 'train/skipped': 1 if any update of the
  iteration was skipped (`train_state.apply_gradients`)."""
  metrics = {f"train/{k}": v for k, v in d_metrics.items()}
  metrics.update({"train/g_loss": g_loss, "train/g_grad_norm": g_update["grad_norm"],
                  "train/g_skipped": g_update["skipped"],
                  "train/learning_rate": g_update["learning_rate"],
                  "train/skipped": jnp.maximum(d_metrics["d_skipped"], g_update["skipped"])})
  return metrics


def _accumulated_train_step(config, state: TrainState, batch, k: int):
  """`train_step` with each critic chunk split into k micro-batches (optim.accumulate_steps):
  every D update, and the G update after the last, follows the mean gradient of its
  micro-batches. Each micro-batch generates its own fakes, so G's BatchNorm sees
  micro-batch statistics, and the last chunk's fakes are generated twice (for D's update and
  for G's) instead of once under `jax.vjp`: memory for one generator forward more."""
  generator, discriminator = build_models(config)
  opts = config.gan
  chunks = _critic_chunks(batch, opts.n_critic)
  conditional = bool(config.model.num_classes)
  step = state.step

  def generate(g_params, g_stats, micro):
    fake, updates = generator.apply({"params": g_params, "batch_stats": g_stats}, micro["z"],
                                    micro.get("fake_label"), train=True,
                                    mutable=["batch_stats"])
    return fake, updates.get("batch_stats", g_stats)

  def d_loss(state, d_params, micro, rng):
    fake, _ = generate(state.params[G], state.model_state[G], micro)
    return discriminator_objective(config, discriminator, d_params, state.model_state[D],
                                   micro["real"], micro.get("real_label"),
                                   jax.lax.stop_gradient(fake), micro.get("fake_label"), rng,
                                   step)

  def g_loss(state, g_params, micro, rng):
    fake, g_stats = generate(g_params, state.model_state[G], micro)
    if opts.diffaugment:
      fake = diffaugment.augment(rng, fake, opts.diffaugment)
    logits, d_stats = apply_discriminator(discriminator, state.params[D], state.model_state[D],
                                          fake, micro.get("fake_label"))
    return gan_losses.generator_loss(opts.loss, logits), (g_stats, d_stats)

  d_skipped = 0.0
  for i, key in enumerate(jax.random.split(state.step_rng(), opts.n_critic)):
    z_rng, y_rng, d_rng, g_rng = jax.random.split(key, 4)
    num = chunks["image"].shape[1]
    inputs = {"real": chunks["image"][i], "z": _latents(z_rng, num, generator.latent_dim)}
    if conditional:
      inputs.update(real_label=chunks["label"][i], fake_label=_fake_labels(config, y_rng, num))
    (loss, (d_stats, metrics)), grads = accumulate.value_and_grad(
        functools.partial(d_loss, state), k, state.params[D], inputs, d_rng,
        accumulate.unrolled(config))
    state, update = train_state.apply_gradients(config, state, grads, network=D,
                                                model_state=d_stats, advance=False, loss=loss)
    d_skipped = jnp.maximum(d_skipped, update["skipped"])
    metrics.update(d_loss=loss, d_grad_norm=update["grad_norm"], d_skipped=d_skipped)
  # The generator's update on the last chunk's latents, through the updated discriminator.
  (loss, (g_stats, d_stats)), grads = accumulate.value_and_grad(
      functools.partial(g_loss, state), k, state.params[G], inputs, g_rng,
      accumulate.unrolled(config))
  state, update = generator_update(config, state, grads, loss, {G: g_stats, D: d_stats})
  return state, step_metrics(metrics, loss, update)


def generate_from(config, state: TrainState, z, labels=None):
  """Images [b, H, W, C] in [-1, 1] from latents z [b, latent_dim] (and labels [b] when
  conditional; None cycles through the classes), with BatchNorm in inference mode, from the
  EMA generator when one is kept, with the statistics config.sampling.batch_stats names."""
  generator, _ = build_models(config)
  if labels is None:
    labels = conditioning.class_labels(config, z.shape[0])
  opts = families.sampling(config)
  params = train_state.weights_to_sample(state, opts.weights, G)
  stats, mode = state.model_state[G], opts.batch_stats
  if mode not in ("standing", "running"):
    raise UserError(f"sampling.batch_stats={mode!r}: expected 'standing' or 'running'")
  if mode == "standing" and stats:
    z_rng, y_rng = jax.random.split(jax.random.PRNGKey(STANDING_KEY))
    stats = standing_stats.measure(
        generator, params, stats, _latents(z_rng, STANDING_BATCH, generator.latent_dim),
        _fake_labels(config, y_rng, STANDING_BATCH))
  return generator.apply({"params": params, "batch_stats": stats}, z, labels, train=False)


def sample(config, state: TrainState, rng, num: int, cond=None):
  """`num` images [num, H, W, C] in [-1, 1]; conditional models follow cond['label'] [num],
  or cycle through the classes."""
  z = _sampling_latents(config, rng, num)
  labels = conditioning.sampling_labels(config, cond, num)
  return generate_from(config, state, z, labels)


def latent_path(z0, z1, steps: int, mode: str):
  """[b, steps, d]: from z0 [b, d] to z1 [b, d] along a line or a great circle.

  Spherical interpolation keeps the norm near that of Gaussian latents, which linear paths
  lose midway (‖(z0 + z1)/2‖ ≈ ‖z0‖/√2), into a region the generator never saw in training.
  """
  t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
  z0, z1 = z0[:, None], z1[:, None]
  if mode == "linear":
    return (1.0 - t) * z0 + t * z1
  if mode != "spherical":
    raise UserError(f"interpolation {mode!r}: expected 'linear' or 'spherical'")
  cos = jnp.sum(z0 * z1, -1, keepdims=True) / (
      jnp.linalg.norm(z0, axis=-1, keepdims=True) * jnp.linalg.norm(z1, axis=-1, keepdims=True))
  omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  sin = jnp.maximum(jnp.sin(omega), 1e-6)  # Parallel endpoints: fall back towards linear.
  return (jnp.sin((1.0 - t) * omega) * z0 + jnp.sin(t * omega) * z1) / sin


def interpolate(config, state: TrainState, rng, num: int, steps: int, mode: str, cond=None):
  """`num` strips of `steps` images between two random latents: [num * steps, H, W, C],
  strip after strip; a conditional strip keeps its row's label."""
  z0, z1 = jax.random.normal(rng, (2, num, latent_dim(config)))
  z = latent_path(z0, z1, steps, mode).reshape(num * steps, -1)
  labels = conditioning.labels(config, cond, num)
  if labels is not None:
    labels = jnp.repeat(labels, steps)
  return generate_from(config, state, z, labels)


def latent_dim(config) -> int:
  return build_models(config)[0].latent_dim


def provenance(config) -> dict:
  """How eval_metrics' numbers were computed."""
  raw = families.sampling(config).weights == "raw"
  return {"generator": "raw" if raw else train_state.parameters_provenance(config),
          "loss": config.gan.loss,
          "discriminator_metrics": "mean logits on held-out real images and as many samples"}


def preview_overrides(config) -> dict:
  del config  # One generator pass per sample: previews cost what the real thing costs.
  return {}


def eval_metrics(config, state: TrainState, batch, rng):
  """The discriminator's verdict on held-out real images and on as many fresh samples."""
  _, discriminator = build_models(config)
  d_vars = {"params": state.params[D], "batch_stats": state.model_state[D]}
  num = batch["image"].shape[0]
  real_labels = batch["label"] if config.model.num_classes else None
  real_logits = discriminator.apply(d_vars, batch["image"], real_labels, train=False)
  z_rng, y_rng = jax.random.split(rng)
  fake_labels = _fake_labels(config, y_rng, num)
  fake = generate_from(config, state, _sampling_latents(config, z_rng, num), fake_labels)
  fake_logits = discriminator.apply(d_vars, fake, fake_labels, train=False)
  real_logits, fake_logits = real_logits.astype(jnp.float32), fake_logits.astype(jnp.float32)
  loss = jax.vmap(lambda r, f: gan_losses.discriminator_loss(config.gan.loss, r, f))(
      real_logits, fake_logits)
  return {"d_real_score": real_logits, "d_fake_score": fake_logits, "d_loss": loss}
