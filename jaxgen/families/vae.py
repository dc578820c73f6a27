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

import functools

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import accumulate, families, train_state
from jaxgen.errors import UserError
from jaxgen.families import vae_bounds
from jaxgen.families.vae_bounds import (build_model, default_options, inputs, kl_weight,
                                        model_variables, negative_elbo, negative_iwae, options)
from jaxgen.models import likelihoods
from jaxgen.train_state import TrainState, sampling_params

CAPABILITIES = frozenset({"reconstruct", "traverse"})


def sampling_options() -> ml_collections.ConfigDict:
  """config.sampling: none yet (samples are prior draws decoded, see `sample`)."""
  return ml_collections.ConfigDict()


image_shape = families.model_image_shape


def init_state(config, rng, image_shape) -> TrainState:
  model = build_model(config)
  params_rng, z_rng, run_rng = jax.random.split(rng, 3)
  variables = model.init(params_rng, jnp.zeros((1, *image_shape), jnp.float32), z_rng,
                         method=model.elbo_terms)
  params = variables["params"]
  # VQ-VAE's EMA codebook ('batch_stats'); empty for the Gaussian models.
  model_state = {name: value for name, value in variables.items() if name != "params"}
  return train_state.create_state(config, params, run_rng, model_state=model_state)


def objective(config, params, image, rng, beta, model_state=None):
  """(the loss the step minimises [], (batch means {'nelbo', 'reconstruction', 'kl', ...} in
  nats, the model state after the step)).

  train_k = 1: reconstruction + β·KL, the KL clamped per dimension by free bits when set (the
  ELBO at β = 1 without free bits); train_k > 1: the IWAE-k bound (Burda et al. 2016).
  VQ-VAE adds commitment_cost times its commitment loss, and reports its codebook usage.
  """
  opts = options(config)
  recon, kl_dims, aux, model_state = vae_bounds.elbo_terms(config, params, image, rng,
                                                            model_state, train=True)
  kl = jnp.sum(kl_dims, axis=-1)
  stats = {"nelbo": jnp.mean(recon + kl), "reconstruction": jnp.mean(recon),
           "kl": jnp.mean(kl), **aux}
  if opts.train_k > 1:
    return jnp.mean(negative_iwae(config, params, image, rng, opts.train_k)), (stats,
                                                                                model_state)
  kl_term = vae_bounds.free_bits_kl(kl_dims, opts.free_bits) if opts.free_bits else stats["kl"]
  loss = stats["reconstruction"] + beta * kl_term
  if "commitment" in aux:
    loss = loss + opts.commitment_cost * aux["commitment"]
  return loss, (stats, model_state)


def train_loss(config, state: TrainState, params, batch, rng):
  """(loss, (stats, new model state)) of `objective` at the step's KL weight: the loss
  `train_step` differentiates."""
  beta = kl_weight(options(config), state.step)
  return objective(config, params, batch["image"], rng, beta, state.model_state)


def train_step(config, state: TrainState, batch):
  image = batch["image"]
  beta = kl_weight(options(config), state.step)
  (loss, (stats, model_state)), grads = accumulate.value_and_grad(
      functools.partial(train_loss, config, state), accumulate.steps(config), state.params,
      batch, state.step_rng(), accumulate.unrolled(config))
  new_state, update = train_state.apply_gradients(config, state, grads, model_state=model_state,
                                                  loss=loss)
  metrics = {
      "train/loss": loss, "train/nelbo": stats["nelbo"],
      "train/reconstruction": stats["reconstruction"], "train/kl": stats["kl"],
      "train/beta": beta,
      "train/bits_per_dim": likelihoods.bits_per_dim(stats["nelbo"], image.shape[1:]),
      **{f"train/{name}": value for name, value in update.items()},
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
             "bits_per_dim": likelihoods.bits_per_dim(nelbo, image.shape[1:])}
  k = config.evaluation.iwae_k
  if k:
    nll = negative_iwae(config, sampling_params(state), image, rng, k, state.model_state)
    metrics.update({f"iwae{k}_nll_nats": nll,
                    f"iwae{k}_bits_per_dim": likelihoods.bits_per_dim(nll, image.shape[1:])})
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
          "parameters": train_state.parameters_provenance(config)}


def preview_overrides(config) -> dict:
  """Training-time evaluations bound the NLL with evaluation.iwae_k_during_training samples
  (0: the ELBO only); `jaxgen evaluate` uses evaluation.iwae_k."""
  return {"evaluation.iwae_k": config.evaluation.iwae_k_during_training}


def sample(config, state: TrainState, rng, num: int, cond=None):
  """Images [num, H, W, C] in the data's normalised range, latents drawn from the prior.

  Bernoulli: the decoder's mean image in [0, 1] (a binary draw hides the grey levels the
  model learned; with a pixel head, each pixel's probability given the binary pixels drawn
  before it, see `_draw_pixels`); categorical and logistic mixture: sampled 8-bit int32
  values; gaussian: a draw rounded to its 8-bit bin k and returned as k/255, so
  `images.to_uint8` gives k. The models are unconditional: `cond` is unused.
  """
  del cond
  model = build_model(config)
  z_rng, pixel_rng = jax.random.split(rng)
  variables = model_variables(sampling_params(state), state.model_state)
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
  x, _ = inputs(config, image, input_rng)
  variables = model_variables(sampling_params(state), state.model_state)
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
