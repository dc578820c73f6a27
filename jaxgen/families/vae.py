"""Variational autoencoders: ELBO, β-VAE, free-bits and IWAE training; ELBO and IWAE-k NLL.

Likelihoods (config.model.likelihood; the maths in `jaxgen.models.likelihoods`), each with
the data convention it needs:
  'bernoulli'        data.normalize='unit': the family binarises each pixel ~ Bernoulli(value)
                     afresh every step (a fixed draw in evaluation), the binary-MNIST setup.
  'categorical'      data.normalize='integer': 256-way softmax per sub-pixel on 8-bit values.
  'logistic_mixture' data.normalize='integer': PixelCNN++'s discretised logistic mixture
                     (model.num_mixtures components, RGB channels coupled).
  'gaussian'         data.normalize='unit', data.dequantize=True: a Gaussian density on
                     (k + u)/256, reported with its Jacobian as a bound on the 8-bit NLL.
The two discrete 8-bit likelihoods need data.dequantize=False.

The training objective is config.vae (`default_options`); evaluation always reports the
plain ELBO (β = 1, no free bits) and the IWAE-k bound, whatever was trained.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import config as config_lib, models, optim
from jaxgen.errors import UserError
from jaxgen.models import likelihoods
from jaxgen.train_state import TrainState, ema_update, init_ema, sampling_params

# (data.normalize, data.dequantize) each likelihood's inputs assume.
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


def experiment_config(model: dict, variant: str | None, *, data_name: str, normalize: str,
                      small_model: dict, variants: tuple[str, ...] = ("demo", "small"),
                      total_steps: int = 20_000, log_every: int = 200,
                      sample_every: int = 2000, checkpoint_every: int = 2000,
                      eval_every: int = 5000) -> ml_collections.ConfigDict:
  """The config every VAE experiment shares, around its `model`: batch 128, Adam 1e-3,
  config.vae at its defaults; variants 'demo' (the bundled Fashion-MNIST subset, a few CPU
  minutes) and 'small' (a smoke run for tests, `small_model`'s widths). Experiment-specific
  settings the variants leave alone (β schedule, EMA, optimiser) go on the returned config."""
  if variant is not None and variant not in variants:
    raise ValueError(f"unknown variant {variant!r}: expected "
                     f"{' or '.join(repr(v) for v in variants)}")
  config = config_lib.base_config()
  config.family = "vae"
  config.data.name = data_name
  config.data.normalize = normalize
  config.batch_size = 128
  config.total_steps = total_steps
  config.log_every = log_every
  config.sample_every = sample_every
  config.checkpoint_every = checkpoint_every
  config.eval_every = eval_every
  config.model = ml_collections.ConfigDict(model)
  config.vae = default_options()
  config.optim = optim.default_config(learning_rate=1e-3)
  # The bundled subset stands in for Fashion-MNIST; other datasets' tests feed random images.
  bundled = "fashion_mnist_small" if data_name == "fashion_mnist" else data_name
  if variant == "demo":
    config.data.name = bundled
    config.total_steps = 2000
    config.sample_every = 500
    config.checkpoint_every = 1000
    config.eval_every = 2000
  elif variant == "small":
    config_lib.smoke_run(config, bundled)
    config.num_samples = 8
    config.model.update(small_model)
    config.evaluation.iwae_k = 8
  return config


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
  kwargs = dict(config.model)
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


def _optimizer(config):
  return optim.create(config.optim, config.total_steps)


def image_shape(config) -> tuple[int, int, int]:
  """[height, width, channels] of the images this config models."""
  return (config.model.image_size, config.model.image_size, config.model.channels)


def init_state(config, rng, image_shape) -> TrainState:
  model = build_model(config)
  params_rng, z_rng, run_rng = jax.random.split(rng, 3)
  variables = model.init(params_rng, jnp.zeros((1, *image_shape), jnp.float32), z_rng,
                         method=model.elbo_terms)
  params = variables["params"]
  # VQ-VAE's EMA codebook ('batch_stats'); empty for the Gaussian models.
  model_state = {name: value for name, value in variables.items() if name != "params"}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=_optimizer(config).init(params), model_state=model_state,
                    ema_params=init_ema(params, config.ema_decay), rng=run_rng)


def _variables(params, model_state):
  return {"params": params, **(model_state or {})}


def _inputs(config, image, rng):
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


def _reconstruction_nats(likelihood, params, target):
  """−log p(x|z) per example [b], summed over pixels and channels."""
  return likelihoods.nll(likelihood, params.astype(jnp.float32), target)


def _kl_per_dim(mean, logvar):
  """KL(N(mean, exp(logvar)) ‖ N(0, 1)) per example and latent dimension [b, latent]."""
  return 0.5 * (jnp.exp(logvar) + mean ** 2 - 1.0 - logvar)


def _kl_nats(mean, logvar):
  """KL(N(mean, exp(logvar)) ‖ N(0, I)) per example [b], in closed form."""
  return jnp.sum(_kl_per_dim(mean, logvar), axis=-1)


def _elbo_terms(config, params, image, rng, model_state=None, train=False):
  """(reconstruction nats [b], KL nats per latent dimension [b, D], aux metrics, model state
  after the step: VQ-VAE's codebook moves when train is set)."""
  input_rng, z_rng = jax.random.split(rng)
  x, target = _inputs(config, image, input_rng)
  model = build_model(config)
  mutable = list(model_state) if train and model_state else False
  out = model.apply(_variables(params, model_state), x, z_rng, train, method=model.elbo_terms,
                    mutable=mutable)
  (decoded, kl_dims, aux), model_state = out if mutable else (out, model_state)
  recon = _reconstruction_nats(config.model.likelihood, decoded, target)
  return recon, kl_dims.astype(jnp.float32), aux, model_state


def negative_elbo(config, params, image, rng, model_state=None):
  """Per-example (−ELBO, reconstruction, KL), all in nats, each [b]."""
  recon, kl_dims, _, _ = _elbo_terms(config, params, image, rng, model_state)
  kl = jnp.sum(kl_dims, axis=-1)
  return recon + kl, recon, kl


def _iwae_chunk(k: int, per_sample_floats: int, budget: int = 1 << 26) -> int:
  """The largest divisor of k whose decoder outputs for a chunk fit `budget` floats."""
  fits = [c for c in range(1, k + 1) if k % c == 0 and c * per_sample_floats <= budget]
  return max(fits, default=1)


def _floats_per_sample(config, model, image_shape) -> int:
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
  x, target = _inputs(config, image, input_rng)
  variables = _variables(params, model_state)
  b = image.shape[0]
  chunk = _iwae_chunk(k, b * _floats_per_sample(config, model, image.shape[1:]))
  tile = lambda v: jnp.broadcast_to(v, (chunk, *v.shape)).reshape(chunk * b, *v.shape[1:])
  tiled = tile(target)
  log_weights = (_gaussian_log_weights(model, variables, x, chunk, tile)
                 if model.posterior == "gaussian" else
                 _joint_log_weights(model, variables, x, tile))

  def body(total, key):
    decoded, log_ratio = log_weights(key)
    log_px = -_reconstruction_nats(config.model.likelihood, decoded, tiled)
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


def objective(config, params, image, rng, beta, model_state=None):
  """(the loss the step minimises [], (batch means {'nelbo', 'reconstruction', 'kl', ...} in
  nats, the model state after the step)).

  train_k = 1: reconstruction + β·KL, the KL clamped per dimension by free bits when set (the
  ELBO at β = 1 without free bits); train_k > 1: the IWAE-k bound (Burda et al. 2016).
  VQ-VAE adds commitment_cost times its commitment loss, and reports its codebook usage.
  """
  opts = options(config)
  recon, kl_dims, aux, model_state = _elbo_terms(config, params, image, rng, model_state,
                                                 train=True)
  kl = jnp.sum(kl_dims, axis=-1)
  stats = {"nelbo": jnp.mean(recon + kl), "reconstruction": jnp.mean(recon),
           "kl": jnp.mean(kl), **aux}
  if opts.train_k > 1:
    return jnp.mean(negative_iwae(config, params, image, rng, opts.train_k)), (stats,
                                                                                model_state)
  kl_term = free_bits_kl(kl_dims, opts.free_bits) if opts.free_bits else stats["kl"]
  loss = stats["reconstruction"] + beta * kl_term
  if "commitment" in aux:
    loss = loss + opts.commitment_cost * aux["commitment"]
  return loss, (stats, model_state)


def _nats_to_bits_per_dim(nats, image_shape):
  return nats / (math.prod(image_shape) * math.log(2.0))


def train_step(config, state: TrainState, batch):
  image = batch["image"]
  beta = kl_weight(options(config), state.step)

  def loss_fn(params):
    return objective(config, params, image, state.step_rng(), beta, state.model_state)

  (loss, (stats, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                            model_state=model_state, ema_params=ema_update(state.ema_params, params, config.ema_decay,
                                                  state.step))
  metrics = {
      "train/loss": loss, "train/nelbo": stats["nelbo"],
      "train/reconstruction": stats["reconstruction"], "train/kl": stats["kl"],
      "train/beta": beta,
      "train/bits_per_dim": _nats_to_bits_per_dim(stats["nelbo"], image.shape[1:]),
      "train/grad_norm": optax.tree.norm(grads),
      "train/learning_rate": optim.schedule(config.optim, config.total_steps)(state.step),
  }
  # VQ-VAE: the commitment loss, and the batch's codebook perplexity and codes in use.
  metrics.update({f"train/{name}": value for name, value in stats.items()
                  if name not in ("nelbo", "reconstruction", "kl")})
  return new_state, metrics


def eval_metrics(config, state: TrainState, batch, rng):
  image = batch["image"]
  nelbo, recon, kl = negative_elbo(config, sampling_params(state), image, rng,
                                   state.model_state)
  metrics = {"nelbo_nats": nelbo, "reconstruction_nats": recon, "kl_nats": kl,
             "bits_per_dim": _nats_to_bits_per_dim(nelbo, image.shape[1:])}
  k = config.evaluation.iwae_k
  if k:
    nll = negative_iwae(config, sampling_params(state), image, rng, k, state.model_state)
    metrics.update({f"iwae{k}_nll_nats": nll,
                    f"iwae{k}_bits_per_dim": _nats_to_bits_per_dim(nll, image.shape[1:])})
  return metrics


def _data_convention(config) -> str:
  likelihood = config.model.likelihood
  if likelihood == "bernoulli":
    return ("dynamically binarised: each pixel ~ Bernoulli(value/255), one fixed draw per "
            "evaluation (seeded by config.seed)")
  if likelihood == "categorical":
    return "8-bit values, no dequantisation: a discrete 256-way likelihood per sub-pixel"
  if likelihood == "logistic_mixture":
    return (f"8-bit values, no dequantisation: a discrete likelihood, PixelCNN++'s "
            f"discretised mixture of {config.model.get('num_mixtures', 10)} logistics per "
            "pixel, edge bins open-ended, RGB means coupled linearly (G on R, B on R and G)")
  return ("uniformly dequantised: x = (k + u)/256, u ~ U[0, 1) drawn afresh for every "
          "training and evaluation batch (one fixed draw per evaluation); a Gaussian density "
          "with a learned mean and variance per sub-pixel; nats include the Jacobian "
          "H·W·C·ln 256 of the /256 scaling, so they bound the 8-bit NLL from above (in "
          "expectation over u) and bits/dim compare with the discrete likelihoods'")


def _objective_description(opts) -> str:
  if opts.train_k > 1:
    return f"IWAE-{opts.train_k} bound"
  if opts.beta == 1 and not opts.kl_warmup_steps and not opts.free_bits:
    return "ELBO"
  return "reconstruction + β·KL" + (" with free bits" if opts.free_bits else "")


def provenance(config) -> dict:
  """How eval_metrics' numbers were computed: the data convention, bounds and objective."""
  opts = options(config)
  return {"likelihood": config.model.likelihood, "data_convention": _data_convention(config),
          "nll_units": "nats per image; bits/dim = nats / (H·W·C · ln 2)",
          "bounds": "ELBO (β = 1, no free bits) and IWAE-k, whatever the training objective",
          "iwae_k": config.evaluation.iwae_k,
          "train_objective": _objective_description(opts), "train_beta": opts.beta,
          "train_kl_warmup_steps": opts.kl_warmup_steps,
          "train_free_bits_nats": opts.free_bits, "train_k": opts.train_k,
          "parameters": "ema" if config.ema_decay else "raw"}


def sample(config, state: TrainState, rng, num: int):
  """Images [num, H, W, C] in the data's normalised range, latents drawn from the prior.

  Bernoulli: the decoder's mean image in [0, 1] (a binary draw hides the grey levels the
  model learned; with a pixel head, each pixel's probability given the binary pixels drawn
  before it, see `_draw_pixels`); categorical and logistic mixture: sampled 8-bit int32
  values; gaussian: a draw rounded to its 8-bit bin k and returned as k/255, so
  `images.to_uint8` gives k.
  """
  model = build_model(config)
  z_rng, pixel_rng = jax.random.split(rng)
  variables = _variables(sampling_params(state), state.model_state)
  decoded = model.apply(variables, z_rng, num, method=model.sample_params)
  return _to_images(config, _draw_pixels(model, variables, decoded, pixel_rng)[0], pixel_rng)


def _draw_pixels(model, variables, decoded, rng):
  """With a pixel head, (the parameters [b, H, W, P] of each pixel given z and the pixels
  drawn before it, the drawn binary pixels [b, H, W, C]), in raster order; without one,
  (`decoded` as it is, None).

  Each pixel's logits come from `refine` on a window of rows_above + 1 rows holding its
  row, its Bernoulli draw joins the canvas, and the next pixel reads it: H·W window passes
  instead of H·W whole-image ones. The window never reaches above the image (the first
  rows share the top window), so the convolutions pad it exactly as they pad the image.
  """
  if not getattr(model, "pixel_layers", 0):
    return decoded, None
  b, h, w, _ = decoded.shape
  rows = min(model.rows_above + 1, h)
  base = decoded.astype(jnp.float32)

  def body(index, carry):
    canvas, out = carry
    i, j = index // w, index % w
    top = jnp.maximum(i - rows + 1, 0)
    window = lambda a: jax.lax.dynamic_slice_in_dim(a, top, rows, axis=1)
    logits = model.apply(variables, window(canvas), window(base), method=model.refine)
    logits = logits[:, i - top, j]
    bit = jax.random.bernoulli(jax.random.fold_in(rng, index), jax.nn.sigmoid(logits))
    canvas = canvas.at[:, i, j].set(bit.astype(canvas.dtype))
    return canvas, out.at[:, i, j].set(logits)

  canvas = jnp.zeros((b, h, w, model.channels), jnp.float32)
  canvas, out = jax.lax.fori_loop(0, h * w, body, (canvas, jnp.zeros_like(base)))
  return out, canvas


def _to_images(config, decoded, rng):
  """Likelihood parameters -> images in the data's normalised range, as `sample` returns."""
  likelihood = config.model.likelihood
  if likelihood == "bernoulli":
    return jax.nn.sigmoid(decoded.astype(jnp.float32))
  drawn = likelihoods.sample(likelihood, rng, decoded, config.model.channels)
  if likelihood == "gaussian":
    return jnp.clip(jnp.floor(drawn * 256.0), 0.0, 255.0) / 255.0
  return drawn


def reconstruct(config, state: TrainState, image, rng):
  """Images [b, H, W, C] in the data's normalised range -> their reconstructions, decoded
  from the posterior mean (the input binarised or dequantised as in training)."""
  model = build_model(config)
  input_rng, pixel_rng = jax.random.split(rng)
  x, _ = _inputs(config, image, input_rng)
  variables = _variables(sampling_params(state), state.model_state)
  decoded = model.apply(variables, x, method=model.reconstruct_params)
  return _to_images(config, _draw_pixels(model, variables, decoded, pixel_rng)[0], pixel_rng)


def traverse(config, state: TrainState, rng, num_dims: int, steps: int, span: float = 3.0):
  """Latent traversals [num_dims * steps, H, W, C]: row d moves latent dimension d over
  [-span, span] from one random z, the other dimensions held fixed."""
  model = build_model(config)
  if model.posterior != "gaussian":
    raise UserError(f"latent traversals need one Gaussian latent vector (model conv_vae); "
                    f"{config.model.name} has none: use --reconstruct or plain samples")
  z_rng, pixel_rng = jax.random.split(rng)
  num_dims = min(num_dims, model.latent_dim)
  z = jnp.tile(jax.random.normal(z_rng, (1, 1, model.latent_dim)), (num_dims, steps, 1))
  values = jnp.linspace(-span, span, steps)
  z = z.at[jnp.arange(num_dims)[:, None], jnp.arange(steps)[None], jnp.arange(num_dims)[:, None]
           ].set(values[None])
  variables = {"params": sampling_params(state)}
  decoded = model.apply(variables, z.reshape(num_dims * steps, -1), method=model.decode)
  return _to_images(config, _draw_pixels(model, variables, decoded, pixel_rng)[0], pixel_rng)
