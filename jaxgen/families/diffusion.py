"""Diffusion models in one continuous noise-level formulation (Karras et al. 2022, "EDM").

Data x₀ in [-1, 1] (data.normalize='symmetric') is noised as x = x₀ + σ·ε. A VP model
(DDPM) is the same model seen through z = x/√(1 + σ²), ᾱ = 1/(1 + σ²), so one denoiser
D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)) serves both, and every sampler in
`diffusion_samplers` runs on either. config.diffusion (`default_options`) picks:

  schedule   where training draws σ: 'edm' (ln σ ~ N(p_mean, p_std²)), 'vp_linear' and
             'vp_cosine' (DDPM's β schedules in continuous time, t ~ U(0, 1));
  target     what the network F predicts: 'F' (EDM's preconditioned target, σ_data), 'eps'
             (ε), 'x0' (x₀) or 'v' (α·ε − s·x₀, Salimans & Ho);
  weighting  λ(σ) on ‖D − x₀‖²: 'uniform' (the target's own unweighted MSE), 'edm'
             ((σ² + σ_d²)/(σ·σ_d)²) or 'min_snr' (min(SNR, γ), Hang et al. 2023);
  label_dropout  the share of training examples whose condition (class, attributes) is
             made null, so one network is both conditional and unconditional
             (classifier-free guidance).
With model.num_attributes = A > 0 the U-Net also reads a vector [A] per example, the data's
'attributes' (multi-hot attributes or embeddings, `jaxgen.data.attributes`), guided as labels.
Sampling (config.sampling, `sampling_options`): the sampler, steps, guidance scale w
(D = D_uncond + w·(D_cond − D_uncond): 0 unconditional, 1 conditional), η, churn, σ range.

With config.superres (`jaxgen.superres`) the model is SR3 (Saharia et al. 2021): the U-Net
takes the upsampled low-resolution image as extra input channels (model.cond_channels),
training degrades each batch on the fly, `sample` upscales cond['low_res'], and evaluation
reports PSNR/SSIM of the upscaled test images beside the `superres.upsample` baseline.

With config.diffusion.autoencoder (`jaxgen.latents`) it is latent diffusion: the U-Net
(model.image_size and channels: the latent grid's) denoises a frozen VQ-VAE's standardised
code grid, encoded on the fly, and `sample` decodes back to pixels.
"""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import (accumulate, conditioning, families, latents, models, sharding, superres,
                    train_state)
from jaxgen.errors import UserError
from jaxgen.evaluators import fidelity
from jaxgen.families import diffusion_bound
from jaxgen.families import diffusion_samplers as samplers
from jaxgen.train_state import TrainState

CAPABILITIES = frozenset()
SCHEDULES = ("edm", "vp_linear", "vp_cosine")
TARGETS = ("F", "eps", "x0", "v")
WEIGHTINGS = ("uniform", "edm", "min_snr")
# σ levels of the evaluation's per-level denoising error: fine detail, mid, coarse.
EVAL_SIGMAS = (0.05, 0.5, 5.0)


def default_options() -> ml_collections.ConfigDict:
  """config.diffusion: the training objective."""
  return ml_collections.ConfigDict(dict(
      schedule="edm", target="F", weighting="edm",
      sigma_data=0.5,          # EDM's σ_d: the data's standard deviation in [-1, 1].
      p_mean=-1.2, p_std=1.2,  # EDM's log-normal training σ.
      beta_min=0.1, beta_max=20.0,  # VP linear: β(t) = β_min + t·(β_max − β_min).
      min_snr_gamma=5.0,
      sigma_min=0.002, sigma_max=80.0,  # Training σ is clipped into this range.
      label_dropout=0.1,       # Classifier-free guidance: p(condition -> null) in training.
      # Latent diffusion (`jaxgen.latents`): the VQ-VAE's model config, None in pixel space,
      # and the workdir of the run that trained it, read once at step 0.
      autoencoder=None, autoencoder_from="",
  ))


def sampling_options() -> ml_collections.ConfigDict:
  """config.sampling: how `sample` draws (overridable at `jaxgen sample` / `evaluate`)."""
  return ml_collections.ConfigDict(dict(
      sampler="heun", steps=18,  # EDM's CIFAR-10 setting: 35 NFE.
      guidance=1.0,            # 0 unconditional, 1 conditional, > 1 guided (conditional models).
      eta=0.0,                 # DDIM's η: 0 deterministic, 1 ancestral.
      churn=0.0,               # Heun's S_churn: noise added back per step; 0 = deterministic.
      sigma_min=0.002, sigma_max=80.0, rho=7.0,  # The Karras σ schedule.
      preview_steps=0,         # Steps of the training-time sample grids; 0 = `steps`.
      # The denoiser's weights for sampling and evaluation: 'ema' (the average training
      # keeps, when ema_decay > 0) or 'raw' (the last step's).
      weights="ema",
  ))


def options(config) -> ml_collections.ConfigDict:
  opts = default_options()
  opts.update(config.get("diffusion", {}))
  return opts


def _check(config, opts) -> None:
  for name, value, allowed in (("schedule", opts.schedule, SCHEDULES),
                               ("target", opts.target, TARGETS),
                               ("weighting", opts.weighting, WEIGHTINGS)):
    if value not in allowed:
      raise UserError(f"diffusion.{name}={value!r}: expected one of {', '.join(allowed)}")
  if not 0.0 <= opts.label_dropout < 1.0:
    raise UserError(f"diffusion.label_dropout={opts.label_dropout}: expected a share in [0, 1)")
  if conditioning.num_attributes(config) and (config.get("superres") or
                                              latents.autoencoder(config)):
    raise UserError(f"model.num_attributes={conditioning.num_attributes(config)} with "
                    "super-resolution or latent diffusion: attributes condition pixel-space "
                    "generation only so far; set model.num_attributes=0")
  if config.data.normalize != "symmetric":
    raise UserError(f"data.normalize={config.data.normalize!r}: the diffusion family models "
                    "images in [-1, 1]; set data.normalize='symmetric'")
  if latents.autoencoder(config):
    latents.check(config, families.model_image_shape(config))
  sr, cond_channels = superres.options(config), config.model.get("cond_channels", 0)
  if sr is not None:
    superres.check_run(config, image_shape(config))
  if cond_channels != (config.model.channels if sr is not None else 0):
    raise UserError(f"model.cond_channels={cond_channels}: " + (
        f"super-resolution conditions on the {config.model.channels}-channel upsampled image; "
        f"set model.cond_channels={config.model.channels}" if sr is not None else
        "only super-resolution (config.superres) gives the U-Net a condition image; set "
        "model.cond_channels=0"))


def build_model(config):
  kwargs = models.config_kwargs(config.model)
  name = kwargs.pop("name")
  if name != "unet":
    raise UserError(f"model.name={name!r}: the diffusion family takes unet")
  _check(config, options(config))
  return models.get(name)(**kwargs)


def image_shape(config) -> tuple[int, int, int]:
  """(H, W, C) of the data: the U-Net's own shape, or latent diffusion's autoencoder's."""
  if latents.autoencoder(config):
    return latents.image_shape(config)
  return families.model_image_shape(config)


def init_state(config, rng, image_shape) -> TrainState:
  """The U-Net's parameters; latent diffusion's autoencoder in model_state, freshly
  initialised here and replaced by its trained weights at step 0 (`train`)."""
  model = build_model(config)
  params_rng, run_rng, autoencoder_rng = jax.random.split(rng, 3)
  shape = families.model_image_shape(config)
  labels = jnp.zeros((1,), jnp.int32) if conditioning.num_classes(config) else None
  cond_image = jnp.zeros((1, *image_shape)) if superres.options(config) else None
  count = conditioning.num_attributes(config)
  attributes = jnp.zeros((1, count), jnp.float32) if count else None
  params = model.init(params_rng, jnp.zeros((1, *shape), jnp.float32),
                      jnp.zeros((1,), jnp.float32), labels, cond_image, attributes)["params"]
  model_state = ({latents.KEY: latents.init_variables(latents.build(config), autoencoder_rng)}
                 if latents.autoencoder(config) else None)
  return train_state.create_state(config, params, run_rng, model_state=model_state)


# --- The noise levels --------------------------------------------------------------------

def _vp_sigma(opts, t):
  """σ(t) = √(1/ᾱ(t) − 1) of the VP schedules, t in [0, 1]."""
  if opts.schedule == "vp_linear":
    log_alpha_bar = -(opts.beta_min * t + 0.5 * (opts.beta_max - opts.beta_min) * t ** 2)
    return jnp.sqrt(jnp.expm1(-log_alpha_bar))
  s = 0.008  # Nichol & Dhariwal's offset: ᾱ(t) = cos²((t + s)/(1 + s)·π/2) / ᾱ(0).
  f = lambda u: jnp.cos((u + s) / (1 + s) * math.pi / 2) ** 2
  return jnp.sqrt(f(0.0) / f(t) - 1.0)


def training_sigmas(opts, rng, num: int):
  """σ [num] of a training batch, as config.diffusion.schedule draws them."""
  if opts.schedule == "edm":
    sigma = jnp.exp(opts.p_mean + opts.p_std * jax.random.normal(rng, (num,)))
  else:
    sigma = _vp_sigma(opts, jax.random.uniform(rng, (num,)))
  return jnp.clip(sigma, opts.sigma_min, opts.sigma_max)


def preconditioning(opts, sigma):
  """(c_skip, c_out, c_in, c_noise) for σ [...]: D = c_skip·x + c_out·F(c_in·x; c_noise)."""
  sd = opts.sigma_data
  if opts.target == "F":
    c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
    c_out = sigma * sd / jnp.sqrt(sigma ** 2 + sd ** 2)
    c_in = 1.0 / jnp.sqrt(sigma ** 2 + sd ** 2)
  else:
    c_in = 1.0 / jnp.sqrt(sigma ** 2 + 1.0)  # The VP input z = x·√ᾱ.
    if opts.target == "eps":  # x₀ = x − σ·ε.
      c_skip, c_out = jnp.ones_like(sigma), -sigma
    elif opts.target == "x0":
      c_skip, c_out = jnp.zeros_like(sigma), jnp.ones_like(sigma)
    else:  # v = α·ε − s·x₀ with α = 1/√(1+σ²), s = σ/√(1+σ²): x₀ = x/(1+σ²) − s·v.
      c_skip, c_out = 1.0 / (sigma ** 2 + 1.0), -sigma / jnp.sqrt(sigma ** 2 + 1.0)
  return c_skip, c_out, c_in, jnp.log(sigma) / 4.0


def loss_weight(opts, sigma):
  """λ(σ) on ‖D − x₀‖²."""
  if opts.weighting == "edm":
    return (sigma ** 2 + opts.sigma_data ** 2) / (sigma * opts.sigma_data) ** 2
  if opts.weighting == "min_snr":
    return jnp.minimum(1.0 / sigma ** 2, opts.min_snr_gamma)
  return 1.0 / preconditioning(opts, sigma)[1] ** 2  # The target's own MSE.


def denoise(config, params, x, sigma, labels=None, rng=None, train: bool = False,
            cond_image=None, attributes=None):
  """D(x; σ): the estimate of x₀ [b, H, W, C] from x [b, H, W, C] at σ [b] (float32), given
  the upsampled low-resolution image cond_image [b, H, W, C] for super-resolution and the
  attributes [b, A] (NaN rows null) of a model with num_attributes."""
  c_skip, c_out, c_in, c_noise = preconditioning(options(config), sigma)
  per_image = lambda c: c[:, None, None, None]
  rngs = {"dropout": rng} if train else None
  out = build_model(config).apply({"params": params}, per_image(c_in) * x, c_noise, labels,
                                  cond_image, attributes, train=train, rngs=rngs)
  return per_image(c_skip) * x + per_image(c_out) * out.astype(jnp.float32)


def per_example_loss(config, params, image, rng, labels=None, train: bool = False,
                     cond_image=None, attributes=None):
  """λ(σ)·‖D(x₀ + σε; σ) − x₀‖² averaged over pixels, per example [b], σ drawn in training."""
  opts = options(config)
  sigma_rng, noise_rng, drop_rng = jax.random.split(rng, 3)
  x0 = image.astype(jnp.float32)
  sigma = training_sigmas(opts, sigma_rng, x0.shape[0])
  noisy = x0 + sigma[:, None, None, None] * jax.random.normal(noise_rng, x0.shape)
  estimate = denoise(config, params, noisy, sigma, labels, drop_rng, train, cond_image,
                     attributes)
  error = jnp.mean((estimate - x0) ** 2, axis=(1, 2, 3))
  return loss_weight(opts, sigma) * error


def train_loss(config, state: TrainState, params, batch, rng):
  """(The batch's mean weighted denoising loss, {}), σ, noise and label dropout from `rng`:
  the loss `train_step` differentiates."""
  loss_rng, label_rng = jax.random.split(rng)
  degrade_rng = jax.random.fold_in(rng, superres.KEY_STREAM)
  labels, attributes = conditioning.drop(
      config, conditioning.batch_labels(config, batch),
      conditioning.batch_attributes(config, batch), label_rng, options(config).label_dropout)
  cond_image = _condition(config, batch["image"], degrade_rng)
  return jnp.mean(per_example_loss(config, params, _data(config, state, batch["image"]),
                                   loss_rng, labels, train=True, cond_image=cond_image,
                                   attributes=attributes)), {}


def _data(config, state: TrainState, image):
  """What the U-Net denoises: the images, or latent diffusion's latents of them."""
  if latents.autoencoder(config):
    return jax.lax.stop_gradient(latents.encode(config, state.model_state, image))
  return image.astype(jnp.float32)


def _condition(config, image, rng):
  """The upsampled degraded copy of `image` for super-resolution, else None."""
  sr = superres.options(config)
  return None if sr is None else superres.condition_image(sr, image, rng)


def train_step(config, state: TrainState, batch):
  (loss, _), grads = accumulate.value_and_grad(
      functools.partial(train_loss, config, state), accumulate.steps(config), state.params,
      batch, state.step_rng(), accumulate.unrolled(config))
  state, update = train_state.apply_gradients(config, state, grads, loss=loss)
  return state, {"train/loss": loss, **{f"train/{k}": v for k, v in update.items()}}


def eval_metrics(config, state: TrainState, batch, rng):
  """The training loss (its σ distribution), the plain denoising MSE at fixed σ levels and
  the variational bound in bits/dim (`diffusion_bound`) on held-out images, with the EMA
  weights; conditional models see the true labels. Latent diffusion reports the loss and
  errors of its latents and no bound (one on latents bounds no pixel likelihood)."""
  params = _weights(config, state)
  labels = conditioning.batch_labels(config, batch)
  attributes = conditioning.batch_attributes(config, batch)
  x0 = _data(config, state, batch["image"])
  degrade_rng, upscale_rng = jax.random.split(jax.random.fold_in(rng, superres.KEY_STREAM))
  loss_rng, bound_rng, rng = jax.random.split(rng, 3)
  cond_image = _condition(config, x0, degrade_rng)
  metrics = {"loss": per_example_loss(config, params, x0, loss_rng, labels,
                                      cond_image=cond_image, attributes=attributes)}
  sampling = _sampling_options(config)
  if not latents.autoencoder(config):
    metrics.update(diffusion_bound.bound_terms(
        config, lambda x, sigma: denoise(config, params, x, sigma, labels,
                                         cond_image=cond_image, attributes=attributes),
        x0, bound_rng, sampling.sigma_min, sampling.sigma_max))
  for i, level in enumerate(EVAL_SIGMAS):
    sigma = jnp.full((x0.shape[0],), level, jnp.float32)
    estimate = denoise(config, params, x0 + level * jax.random.normal(
        jax.random.fold_in(rng, i), x0.shape), sigma, labels, cond_image=cond_image,
        attributes=attributes)
    metrics[f"denoise_mse_sigma_{level:g}"] = jnp.mean((estimate - x0) ** 2, axis=(1, 2, 3))
  if cond_image is not None:
    metrics.update(_upscaling_metrics(config, params, x0, labels, cond_image, upscale_rng))
  return metrics


def _upscaling_metrics(config, params, x0, labels, cond_image, rng):
  """PSNR/SSIM of the sampler's upscaling of each degraded test image, and of the
  `superres.upsample` baseline (the condition image itself), against the original."""
  upscaled = jnp.clip(_draw(config, params, labels, cond_image, rng, x0.shape[0]), -1.0, 1.0)
  return fidelity.upscaling_metrics(upscaled, cond_image, x0)


def provenance(config) -> dict:
  opts, sampling = options(config), _sampling_options(config)
  return {"schedule": opts.schedule, "target": opts.target, "weighting": opts.weighting,
          "sigma_data": opts.sigma_data, "label_dropout": opts.label_dropout,
          "loss": "λ(σ)·mean squared error of D(x₀ + σε; σ) against x₀, σ as in training",
          "denoise_mse": f"plain MSE of D at σ = {', '.join(f'{s:g}' for s in EVAL_SIGMAS)}",
          "bound": ("none: latent diffusion bounds no pixel likelihood"
                    if latents.autoencoder(config) else diffusion_bound.DESCRIPTION),
          "nfe": samplers.num_evaluations(sampling.sampler, sampling.steps),
          "parameters": ("raw" if sampling.weights == "raw"
                         else train_state.parameters_provenance(config)),
          **_superres_provenance(config),
          **({**latents.provenance(config, "latent"),
              "latent/loss": "on the standardised code grid z_q, not on pixels"}
             if latents.autoencoder(config) else {})}


def _superres_provenance(config) -> dict:
  sr = superres.options(config)
  if sr is None:
    return {}
  return {**superres.provenance(sr),
          "superres/bound": "conditional: −log p(x | its degraded copy)"}


def preview_overrides(config) -> dict:
  """Training-time sample grids with sampling.preview_steps steps when set."""
  steps = families.sampling(config).preview_steps
  return {"sampling.steps": steps} if steps else {}


def _sampling_options(config):
  opts = families.sampling(config)
  samplers.check(opts)
  if opts.guidance != 1.0 and not (conditioning.num_classes(config)
                                   or conditioning.num_attributes(config)):
    raise UserError(f"sampling.guidance={opts.guidance}: guidance needs a conditional model "
                    "(model.num_classes or model.num_attributes > 0); set sampling.guidance=1")
  return opts


def guided_denoiser(config, params, labels, guidance: float, cond_image=None,
                    attributes=None):
  """(x, σ) -> D at the scalar σ: conditional on `labels` [b] and `attributes` [b, A] (null
  ones for an unconditional draw of a conditional model) and on cond_image, guided with
  scale w when w ≠ 1: the conditional and unconditional predictions in one batched pass."""
  def denoise_at(x, sigma):
    sigmas = jnp.full((x.shape[0],), sigma, jnp.float32)
    if (labels is None and attributes is None) or guidance == 1.0:
      return denoise(config, params, x, sigmas, labels, cond_image=cond_image,
                     attributes=attributes)
    null_labels, null_attributes = conditioning.null(config, labels, attributes)
    both = lambda v, null: None if v is None else jnp.concatenate([v, null])
    twice = lambda v: both(v, v)
    joint = denoise(config, params, twice(x), twice(sigmas), both(labels, null_labels),
                    cond_image=twice(cond_image),
                    attributes=both(attributes, null_attributes))
    cond, uncond = jnp.split(joint, 2)
    return uncond + guidance * (cond - uncond)
  return denoise_at


def sample(config, state: TrainState, rng, num: int, cond=None):
  """Images [num, H, W, C] in [-1, 1] from config.sampling's sampler; conditional models
  follow cond['label'] [num], or cycle through the classes, and cond['attributes'] [num, A],
  or one attribute each in turn; super-resolution upscales
  cond['low_res'] [num, H/f, W/f, C] in [-1, 1]; latent diffusion decodes its latents."""
  labels = conditioning.sampling_labels(config, cond, num)
  cond_image = None
  sr = superres.options(config)
  if sr is not None:
    if cond is None or cond.get("low_res") is None:
      raise UserError("this super-resolution model upscales given images: use `jaxgen "
                      "upscale --workdir DIR --in FILE --out FILE`")
    cond_image = sharding.constrain_batch(
        superres.upsample(sr, jnp.asarray(cond["low_res"], jnp.float32), image_shape(config)))
  attributes = conditioning.sampling_attributes(config, cond, num)
  drawn = _draw(config, _weights(config, state), labels, cond_image, rng, num, attributes)
  if latents.autoencoder(config):
    return latents.decode(config, state.model_state, drawn,
                          jax.random.fold_in(rng, latents.KEY_STREAM))
  return jnp.clip(drawn, -1.0, 1.0)


def _weights(config, state: TrainState):
  """The parameters sampling.weights names: the EMA (when kept) or the raw ones."""
  return train_state.weights_to_sample(state, _sampling_options(config).weights)


def _draw(config, params, labels, cond_image, rng, num, attributes=None):
  opts = _sampling_options(config)
  noise_rng, sampler_rng = jax.random.split(rng)
  shape = families.model_image_shape(config)
  noise = sharding.constrain_batch(jax.random.normal(noise_rng, (num, *shape)))
  denoiser = guided_denoiser(config, params, labels, opts.guidance, cond_image, attributes)
  return samplers.sample(opts, denoiser, noise, sampler_rng)
