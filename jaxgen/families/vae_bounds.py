"""The VAE family's model and bounds: building the model from config, each likelihood's
data convention (see `jaxgen.families.vae`), the ELBO and the IWAE-k bound, the KL terms.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import likelihoods

_DATA = {"bernoulli": ("unit", False), "categorical": ("integer", False),
         "logistic_mixture": ("integer", False), "gaussian": ("unit", True)}


def default_options() -> ml_collections.ConfigDict:
  """config.vae: the training objective."""
  return ml_collections.ConfigDict(dict(
      beta=1.0,            # Weight of the KL term: 1 is the ELBO, > 1 a β-VAE.
      kl_warmup_steps=0,   # β rises linearly from 0 to `beta` over these steps; 0 = off.
      free_bits=0.0,       # λ nats: each latent dimension's batch-mean KL counts as ≥ λ; 0 = off.
      train_k=1,           # Samples of the IWAE training bound; 1 = the ELBO (with β, free bits).
      commitment_cost=0.25,  # VQ-VAE only: weight of ‖z_e − sg(z_q)‖² (the paper's β).
  ))


def options(config) -> ml_collections.ConfigDict:
  """config.vae over the defaults, so runs saved before a knob existed still load."""
  opts = default_options()
  opts.update(config.get("vae", {}))
  return opts


def _check_objective(opts) -> None:
  if not isinstance(opts.train_k, int) or opts.train_k < 1:
    raise UserError(f"vae.train_k={opts.train_k!r}: expected a positive integer (1 = ELBO)")
  if opts.beta < 0 or opts.free_bits < 0 or opts.kl_warmup_steps < 0:
    raise UserError(f"vae.beta={opts.beta}, vae.free_bits={opts.free_bits}, "
                    f"vae.kl_warmup_steps={opts.kl_warmup_steps}: expected all ≥ 0; set "
                    "the negative ones to 0 or more")
  if opts.train_k > 1 and (opts.beta != 1 or opts.free_bits or opts.kl_warmup_steps):
    raise UserError(f"vae.train_k={opts.train_k} trains the IWAE bound, which has no separate "
                    "KL term to weight or clamp: set vae.beta=1, vae.free_bits=0 and "
                    "vae.kl_warmup_steps=0, or vae.train_k=1")


def build_model(config):
  kwargs = models.config_kwargs(config.model)
  name = kwargs.pop("name")
  if not hasattr(models.get(name), "elbo_terms"):
    raise UserError(f"model.name={name!r} is not a VAE: the vae family takes conv_vae, hvae "
                    "or vqvae")
  likelihood = kwargs.get("likelihood")
  likelihoods.check(likelihood)
  normalize, dequantize = _DATA[likelihood]
  if (config.data.normalize, bool(config.data.dequantize)) != (normalize, dequantize):
    raise UserError(f"the {likelihood} likelihood needs data.normalize={normalize!r} and "
                    f"data.dequantize={dequantize}, got {config.data.normalize!r}/"
                    f"{config.data.dequantize}: set both, or pick another model.likelihood")
  opts = options(config)
  _check_objective(opts)
  model = models.get(name)(**kwargs)
  if model.posterior == "deterministic" and opts.train_k > 1:
    raise UserError(f"vae.train_k={opts.train_k}: {name}'s posterior is deterministic, so its "
                    "IWAE bound is its ELBO; set vae.train_k=1")
  return model


def model_variables(params, model_state):
  return {"params": params, **(model_state or {})}


def inputs(config, image, rng):
  """(encoder input [b, H, W, C] in [0, 1], the likelihood's data) for a batch."""
  likelihood = config.model.likelihood
  if likelihood == "bernoulli":
    binary = (jax.random.uniform(rng, image.shape) < image).astype(jnp.float32)
    return binary, binary
  if likelihood == "gaussian":
    # Fresh noise for every batch, evaluation included: eval batches sit at bin centres
    # (input_pipeline.eval_dataset), where the density is no bound on the 8-bit NLL; a
    # uniform draw makes each value a one-sample estimate of the dequantisation bound.
    k = jnp.clip(jnp.floor(image.astype(jnp.float32) * 256.0), 0.0, 255.0)
    dequantised = (k + jax.random.uniform(rng, image.shape)) / 256.0
    return dequantised, dequantised
  return image.astype(jnp.float32) / 255.0, image.astype(jnp.int32)


def reconstruction_nats(likelihood, params, target):
  """−log p(x|z) per example [b], summed over pixels and channels."""
  return likelihoods.nll(likelihood, params.astype(jnp.float32), target)


def kl_per_dim(mean, logvar):
  """KL(N(mean, exp(logvar)) ‖ N(0, 1)) per example and latent dimension [b, latent]."""
  return 0.5 * (jnp.exp(logvar) + mean ** 2 - 1.0 - logvar)


def kl_nats(mean, logvar):
  """KL(N(mean, exp(logvar)) ‖ N(0, I)) per example [b], in closed form."""
  return jnp.sum(kl_per_dim(mean, logvar), axis=-1)


def elbo_terms(config, params, image, rng, model_state=None, train=False):
  """(reconstruction nats [b], KL nats per latent dimension [b, D], aux metrics, model state
  after the step: VQ-VAE's codebook moves when train is set)."""
  input_rng, z_rng = jax.random.split(rng)
  x, target = inputs(config, image, input_rng)
  model = build_model(config)
  mutable = list(model_state) if train and model_state else False
  out = model.apply(model_variables(params, model_state), x, z_rng, train, method=model.elbo_terms,
                    mutable=mutable)
  (decoded, kl_dims, aux), model_state = out if mutable else (out, model_state)
  recon = reconstruction_nats(config.model.likelihood, decoded, target)
  return recon, kl_dims.astype(jnp.float32), aux, model_state


def negative_elbo(config, params, image, rng, model_state=None):
  """Per-example (−ELBO, reconstruction, KL), all in nats, each [b]."""
  recon, kl_dims, _, _ = elbo_terms(config, params, image, rng, model_state)
  kl = jnp.sum(kl_dims, axis=-1)
  return recon + kl, recon, kl


def iwae_chunk(k: int, per_sample_floats: int, budget: int = 1 << 26) -> int:
  """The largest divisor of k whose decoder outputs for a chunk fit `budget` floats."""
  fits = [c for c in range(1, k + 1) if k % c == 0 and c * per_sample_floats <= budget]
  return max(fits, default=1)


def floats_per_sample(config, model, image_shape) -> int:
  """The full-resolution floats one IWAE sample holds: the decoder's output and a pixel
  head's feature maps (pixel_features wide each; they dwarf a Bernoulli output: without
  them in the budget an IWAE-1000 evaluation ran out of memory)."""
  per_pixel = likelihoods.num_params(config.model.likelihood, image_shape[-1],
                                     config.model.get("num_mixtures", 10))
  per_pixel += 2 * getattr(model, "pixel_layers", 0) * getattr(model, "pixel_features", 0)
  return math.prod(image_shape[:2]) * per_pixel


def negative_iwae(config, params, image, rng, k: int, model_state=None):
  """−log (1/k Σᵢ p(x, zᵢ)/q(zᵢ|x)) per example [b], in nats: the IWAE-k bound on −log p(x).

  Uses the same input draw as `negative_elbo` for the same rng, so the two compare per
  example; the k samples stream through a scan in chunks with a running logsumexp, so
  memory is bounded whatever k is. Differentiable: with a small k it is the IWAE
  training objective. A deterministic posterior (VQ-VAE) makes every weight the same, so
  the bound is the ELBO.
  """
  model = build_model(config)
  if model.posterior == "deterministic":
    return negative_elbo(config, params, image, rng, model_state)[0]
  input_rng, z_rng = jax.random.split(rng)
  x, target = inputs(config, image, input_rng)
  variables = model_variables(params, model_state)
  b = image.shape[0]
  chunk = iwae_chunk(k, b * floats_per_sample(config, model, image.shape[1:]))
  tile = lambda v: jnp.broadcast_to(v, (chunk, *v.shape)).reshape(chunk * b, *v.shape[1:])
  tiled = tile(target)
  log_weights = (_gaussian_log_weights(model, variables, x, chunk, tile)
                 if model.posterior == "gaussian" else
                 _joint_log_weights(model, variables, x, tile))

  def body(total, key):
    decoded, log_ratio = log_weights(key)
    log_px = -reconstruction_nats(config.model.likelihood, decoded, tiled)
    log_w = (log_px + log_ratio).reshape(chunk, b)
    return jnp.logaddexp(total, jax.nn.logsumexp(log_w, axis=0)), None

  start, keys = jnp.full((b,), -jnp.inf), jax.random.split(z_rng, k // chunk)
  # One chunk (every training k) skips the scan: differentiating through lax.scan made the
  # IWAE-5 training step 7× slower than the same work unrolled on CPU (1.35 s vs 0.19 s).
  total = body(start, keys[0])[0] if len(keys) == 1 else jax.lax.scan(body, start, keys)[0]
  return -(total - math.log(k))


def _gaussian_log_weights(model, variables, x, chunk, tile):
  """key -> (decoded [chunk·b, ...], log p(z) − log q(z|x) [chunk·b]) for one Gaussian
  latent: the encoder runs once, only the decoder once per sample. `tile` repeats a
  per-image array once per sample of a chunk, as `negative_iwae` lays them out."""
  mean, logvar = model.apply(variables, x, method=model.encode)
  mean, logvar = mean.astype(jnp.float32), logvar.astype(jnp.float32)
  b, latent = mean.shape
  log_norm = latent * math.log(2 * math.pi)
  tiled_x = tile(x)  # A pixel head reads the image itself: each sample's copy.

  def log_weights(key):
    eps = jax.random.normal(key, (chunk, b, latent))
    z = mean + jnp.exp(0.5 * logvar) * eps
    decoded = model.apply(variables, z.reshape(chunk * b, latent), tiled_x, method=_decode)
    log_pz = -0.5 * (jnp.sum(z ** 2, -1) + log_norm)
    log_qz = -0.5 * (jnp.sum(eps ** 2 + logvar, -1) + log_norm)
    return decoded, (log_pz - log_qz).reshape(chunk * b)
  return log_weights


def _decode(model, z, x):
  """The parameters of p(x|z) from a Gaussian-latent model (`ConvVAE.refine`)."""
  return model.refine(x, model.decode(z))


def _joint_log_weights(model, variables, x, tile):
  """key -> the same for a model that draws whole joint samples (the hierarchical VAE): the
  bottom-up pass runs once, then each of the chunk copies of its output gets its own draw
  of every level through the top-down pass."""
  encoded = jax.tree.map(tile, model.apply(variables, x, method=model.encode))
  return lambda key: model.apply(variables, encoded, key, method=model.log_weight_terms)


def kl_weight(opts, step):
  """β at `step`: `beta`, ramped linearly from 0 over the first kl_warmup_steps steps."""
  if not opts.kl_warmup_steps:
    return jnp.asarray(opts.beta, jnp.float32)
  ramp = jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / opts.kl_warmup_steps)
  return opts.beta * ramp


def free_bits_kl(kl_dims, free_bits: float):
  """Σ_d max(λ, mean over the batch of KL_d) [] (Kingma et al. 2016, per latent dimension).

  A dimension whose batch-mean KL is below λ gets no KL gradient: it may carry up to λ nats
  of information for free, which keeps the posterior from collapsing onto the prior early.
  """
  return jnp.sum(jnp.maximum(jnp.mean(kl_dims, axis=0), free_bits))
