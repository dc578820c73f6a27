"""Variational autoencoders: negative ELBO training, ELBO in nats and bits/dim.

Likelihoods (config.model.likelihood):
  'bernoulli'   — on dynamically binarised images (data.normalize='unit'; each step draws a
                  fresh binarisation, evaluation a fixed one); the standard binary-MNIST setup.
  'categorical' — 256-way softmax per sub-pixel on 8-bit images (data.normalize='integer'),
                  a discrete likelihood, so bits/dim is a true bound on the 8-bit data.
"""

import math

import jax
import jax.numpy as jnp
import optax

from jaxgen import models, optim
from jaxgen.errors import UserError
from jaxgen.train_state import TrainState, ema_update, init_ema, sampling_params

_NORMALIZE = {"bernoulli": "unit", "categorical": "integer"}


def build_model(config):
  kwargs = dict(config.model)
  name = kwargs.pop("name")
  expected = _NORMALIZE.get(kwargs.get("likelihood"))
  if expected is None:
    raise UserError(f"model.likelihood={kwargs.get('likelihood')!r}: expected "
                    f"{' or '.join(_NORMALIZE)}")
  if config.data.normalize != expected or config.data.dequantize:
    raise UserError(f"the {kwargs['likelihood']} likelihood needs data.normalize={expected!r} "
                    f"and data.dequantize=False, got {config.data.normalize!r}/"
                    f"{config.data.dequantize}")
  return models.get(name)(**kwargs)


def _optimizer(config):
  return optim.create(config.optim, config.total_steps)


def image_shape(config) -> tuple[int, int, int]:
  """[height, width, channels] of the images this config models."""
  return (config.model.image_size, config.model.image_size, config.model.channels)


def init_state(config, rng, image_shape) -> TrainState:
  model = build_model(config)
  params_rng, z_rng, run_rng = jax.random.split(rng, 3)
  params = model.init(params_rng, jnp.zeros((1, *image_shape), jnp.float32), z_rng)["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=_optimizer(config).init(params), model_state={},
                    ema_params=init_ema(params, config.ema_decay), rng=run_rng)


def _inputs(config, image, rng):
  """(model input in [0, 1], likelihood target) for a batch [b, H, W, C]."""
  if config.model.likelihood == "bernoulli":
    binary = (jax.random.uniform(rng, image.shape) < image).astype(jnp.float32)
    return binary, binary
  return image.astype(jnp.float32) / 255.0, image.astype(jnp.int32)


def _reconstruction_nats(likelihood, logits, target):
  """−log p(x|z) per example [b], summed over pixels and channels."""
  if likelihood == "bernoulli":
    per_dim = optax.sigmoid_binary_cross_entropy(logits, target)
  else:
    per_dim = optax.softmax_cross_entropy_with_integer_labels(logits, target)
  return jnp.sum(per_dim.reshape(per_dim.shape[0], -1), axis=-1)


def _kl_nats(mean, logvar):
  """KL(N(mean, exp(logvar)) ‖ N(0, I)) per example [b], in closed form."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + mean ** 2 - 1.0 - logvar, axis=-1)


def negative_elbo(config, params, image, rng):
  """Per-example (−ELBO, reconstruction, KL), all in nats, each [b]."""
  input_rng, z_rng = jax.random.split(rng)
  x, target = _inputs(config, image, input_rng)
  logits, mean, logvar = build_model(config).apply({"params": params}, x, z_rng)
  recon = _reconstruction_nats(config.model.likelihood, logits.astype(jnp.float32), target)
  kl = _kl_nats(mean.astype(jnp.float32), logvar.astype(jnp.float32))
  return recon + kl, recon, kl


def _iwae_chunk(k: int, per_sample_floats: int, budget: int = 1 << 26) -> int:
  """The largest divisor of k whose decoder outputs for a chunk fit `budget` floats."""
  fits = [c for c in range(1, k + 1) if k % c == 0 and c * per_sample_floats <= budget]
  return max(fits, default=1)


def negative_iwae(config, params, image, rng, k: int):
  """−log (1/k Σᵢ p(x, zᵢ)/q(zᵢ|x)) per example [b], in nats: the IWAE-k bound on −log p(x).

  Uses the same input draw as `negative_elbo` for the same rng, so the two compare per
  example; the k samples stream through a scan in chunks with a running logsumexp, so
  memory is bounded whatever k is.
  """
  input_rng, z_rng = jax.random.split(rng)
  x, target = _inputs(config, image, input_rng)
  model = build_model(config)
  mean, logvar = model.apply({"params": params}, x, method=model.encode)
  mean, logvar = mean.astype(jnp.float32), logvar.astype(jnp.float32)
  b, latent = mean.shape
  out_floats = math.prod(image.shape[1:]) * (256 if config.model.likelihood == "categorical" else 1)
  chunk = _iwae_chunk(k, b * out_floats)
  tiled = jnp.broadcast_to(target, (chunk, *target.shape)).reshape(chunk * b, *target.shape[1:])
  log_norm = latent * math.log(2 * math.pi)

  def body(total, key):
    eps = jax.random.normal(key, (chunk, b, latent))
    z = mean + jnp.exp(0.5 * logvar) * eps
    logits = model.apply({"params": params}, z.reshape(chunk * b, latent), method=model.decode)
    log_px = -_reconstruction_nats(config.model.likelihood, logits.astype(jnp.float32), tiled)
    log_pz = -0.5 * (jnp.sum(z ** 2, -1) + log_norm)
    log_qz = -0.5 * (jnp.sum(eps ** 2 + logvar, -1) + log_norm)
    log_w = log_px.reshape(chunk, b) + log_pz - log_qz
    return jnp.logaddexp(total, jax.nn.logsumexp(log_w, axis=0)), None

  total, _ = jax.lax.scan(body, jnp.full((b,), -jnp.inf), jax.random.split(z_rng, k // chunk))
  return -(total - math.log(k))


def _nats_to_bits_per_dim(nats, image_shape):
  return nats / (math.prod(image_shape) * math.log(2.0))


def train_step(config, state: TrainState, batch):
  image = batch["image"]

  def loss_fn(params):
    nelbo, recon, kl = negative_elbo(config, params, image, state.step_rng())
    return jnp.mean(nelbo), (jnp.mean(recon), jnp.mean(kl))

  (loss, (recon, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                            ema_params=ema_update(state.ema_params, params, config.ema_decay,
                                                       state.step))
  metrics = {
      "train/loss": loss, "train/reconstruction": recon, "train/kl": kl,
      "train/bits_per_dim": _nats_to_bits_per_dim(loss, image.shape[1:]),
      "train/grad_norm": optax.tree.norm(grads),
      "train/learning_rate": optim.schedule(config.optim, config.total_steps)(state.step),
  }
  return new_state, metrics


def eval_metrics(config, state: TrainState, batch, rng):
  image = batch["image"]
  nelbo, recon, kl = negative_elbo(config, sampling_params(state), image, rng)
  metrics = {"nelbo_nats": nelbo, "reconstruction_nats": recon, "kl_nats": kl,
             "bits_per_dim": _nats_to_bits_per_dim(nelbo, image.shape[1:])}
  k = config.evaluation.iwae_k
  if k:
    nll = negative_iwae(config, sampling_params(state), image, rng, k)
    metrics.update({f"iwae{k}_nll_nats": nll,
                    f"iwae{k}_bits_per_dim": _nats_to_bits_per_dim(nll, image.shape[1:])})
  return metrics


def provenance(config) -> dict:
  """How eval_metrics' numbers were computed: the data convention and the bounds' details."""
  if config.model.likelihood == "bernoulli":
    data = ("dynamically binarised: each pixel ~ Bernoulli(value/255), one fixed draw per "
            "evaluation (seeded by config.seed)")
  else:
    data = "8-bit values, no dequantisation: a discrete 256-way likelihood per sub-pixel"
  return {"likelihood": config.model.likelihood, "data_convention": data,
          "nll_units": "nats per image; bits/dim = nats / (H·W·C · ln 2)",
          "iwae_k": config.evaluation.iwae_k,
          "parameters": "ema" if config.ema_decay else "raw"}


def sample(config, state: TrainState, rng, num: int):
  """Bernoulli: the decoder's mean image in [0, 1]; categorical: sampled 8-bit values."""
  model = build_model(config)
  z_rng, pixel_rng = jax.random.split(rng)
  z = jax.random.normal(z_rng, (num, model.latent_dim))
  logits = model.apply({"params": sampling_params(state)}, z, method=model.decode)
  logits = logits.astype(jnp.float32)
  if config.model.likelihood == "bernoulli":
    return jax.nn.sigmoid(logits)
  return jax.random.categorical(pixel_rng, logits).astype(jnp.int32)
