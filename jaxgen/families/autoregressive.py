"""Autoregressive models (PixelCNN, Gated PixelCNN, Row LSTM, PixelCNN++'s U-Net and its
output): exact likelihoods, and sampling one sub-pixel at a time.

Data: 8-bit integers (data.normalize='integer', no dequantisation); the network reads them
as k/127.5 − 1. config.model.likelihood picks the output (`jaxgen.models.likelihoods`):
  'categorical'       a 256-way softmax per sub-pixel, R → G → B inside a pixel through the
                      networks' channel masks ('subpixel' output mode);
  'logistic_mixture'  PixelCNN++'s discretised logistic mixture per pixel, whose RGB means
                      are coupled linearly inside the pixel ('pixel' output mode).
The test NLL is exact: −log p(x) summed over every sub-pixel, no bound.

Sampling runs the pixels in raster order inside one jitted `lax.fori_loop` over rows (an
inner one over the row's draws: one per sub-pixel for 'categorical', per pixel for
'logistic_mixture'), drawing value number n with the key fold_in(rng, n). `sample` uses the
networks' row mode (see `jaxgen.models.pixelcnn`): each draw computes one row, with the rows
above read from per-layer caches, O(W) work, and one more call per row caches the finished
row. `sample_naive` runs the whole network on the whole image every
iteration, O(H·W) work, for reference: the two draw the same images.

With config.autoregressive.autoencoder (`jaxgen.latents`) the model is a VQ-VAE's learned
prior (van den Oord et al. 2017): the network (model.image_size: the code grid's side, one
channel, a categorical over the codes) models the frozen VQ-VAE's code grid of each image,
encoded on the fly; samples are drawn codes decoded to pixels, and the test NLL is the
VQ-VAE's bound with this prior in place of its uniform one: −log p(x | z(x)) − log p(z(x)),
reported beside the uniform prior's.
"""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
from jax import lax

from jaxgen import accumulate, conditioning, families, latents, models, sharding, train_state
from jaxgen.errors import UserError
from jaxgen.models import likelihoods
from jaxgen.train_state import TrainState, sampling_params

CAPABILITIES = frozenset()

_OUTPUT_MODE = {"categorical": "subpixel", "logistic_mixture": "pixel"}


def sampling_options() -> ml_collections.ConfigDict:
  """config.sampling: how `sample` draws (overridable at `jaxgen sample` / `evaluate`)."""
  return ml_collections.ConfigDict(dict(
      temperature=1.0,  # Logits / t, logistic scales × t: < 1 sharpens; 1 = the model.
  ))


def build_model(config):
  kwargs = models.config_kwargs(config.model)
  name = kwargs.pop("name")
  likelihood = kwargs.pop("likelihood")
  num_mixtures = kwargs.pop("num_mixtures", 10)
  kwargs.pop("image_size")
  if likelihood not in _OUTPUT_MODE:
    raise UserError(f"model.likelihood={likelihood!r}: the autoregressive family takes "
                    f"{' or '.join(_OUTPUT_MODE)} (exact 8-bit likelihoods)")
  if config.data.normalize != "integer" or config.data.dequantize:
    raise UserError(f"the autoregressive family models 8-bit values: set "
                    f"data.normalize='integer' and data.dequantize=False (got "
                    f"{config.data.normalize!r}/{config.data.dequantize})")
  cls = models.get(name)
  if not hasattr(cls, "output_mode"):
    raise UserError(f"model.name={name!r} is not autoregressive: the autoregressive family "
                    "takes pixelcnn, gated_pixelcnn, pixelcnnpp_unet or row_lstm")
  if latents.autoencoder(config):
    _check_prior(config, likelihood)
  num_params = (256 if likelihood == "categorical" else
                likelihoods.logistic_mixture_num_params(num_mixtures, kwargs["channels"]))
  return cls(num_params=num_params, output_mode=_OUTPUT_MODE[likelihood], **kwargs)


def _check_prior(config, likelihood: str) -> None:
  """A UserError unless the network fits a prior over the autoencoder's code grid."""
  side, _, _ = latents.latent_shape(config)
  num_codes = latents.autoencoder(config).num_codes
  if likelihood != "categorical" or num_codes > 256:
    raise UserError(f"model.likelihood={likelihood!r} over {num_codes} codes: a prior over "
                    "codes is a 256-way categorical over at most 256 codes; set "
                    "model.likelihood='categorical'")
  shape = families.model_image_shape(config)
  if shape != (side, side, 1):
    raise UserError(f"model.image_size={shape[0]}, model.channels={shape[2]}: the "
                    f"autoencoder's code grid is {side}×{side}; set model.image_size={side} "
                    "and model.channels=1")


def image_shape(config) -> tuple[int, int, int]:
  """(H, W, C) of the data: the model's own, or the prior's autoencoder's pixels."""
  if latents.autoencoder(config):
    return latents.image_shape(config)
  return families.model_image_shape(config)


def init_state(config, rng, image_shape) -> TrainState:
  """The network's parameters; a prior's autoencoder in model_state, freshly initialised
  here and replaced by its trained weights at step 0 (`train`)."""
  del image_shape  # The network's own shape: a prior's is the code grid's.
  model = build_model(config)
  params_rng, run_rng, autoencoder_rng = jax.random.split(rng, 3)
  labels = jnp.zeros((1,), jnp.int32) if conditioning.num_classes(config) else None
  shape = families.model_image_shape(config)
  params = model.init(params_rng, jnp.zeros((1, *shape), jnp.float32), labels)["params"]
  model_state = ({latents.KEY: latents.init_variables(latents.build(config), autoencoder_rng)}
                 if latents.autoencoder(config) else None)
  return train_state.create_state(config, params, run_rng, model_state=model_state)


def _modelled(config, state: TrainState, image):
  """What the network models: the 8-bit images, or a prior's code grids [b, h, w, 1]."""
  if latents.autoencoder(config):
    return latents.codes(config, state.model_state, image)[..., None]
  return image


def _network_input(config, image):
  """8-bit values (or a prior's codes 0..K−1) -> the networks' [-1, 1]."""
  top = latents.autoencoder(config).num_codes - 1 if latents.autoencoder(config) else 255
  return image.astype(jnp.float32) / (top / 2.0) - 1.0  # 8-bit: k/127.5 − 1, as it always was.


def _only_codes(config, out):
  """The output, a prior's categorical logits [..., 256] past its K codes masked out: the
  prior never spends probability on, nor draws, a code the VQ-VAE lacks."""
  if not latents.autoencoder(config):
    return out
  exists = jnp.arange(out.shape[-1]) < latents.autoencoder(config).num_codes
  return jnp.where(exists, out.astype(jnp.float32), -1e9)


def _flat_params(config, out):
  """Network output -> the [b, H, W, P] layout `likelihoods` reads."""
  if config.model.likelihood == "categorical":
    return out.reshape(*out.shape[:-2], -1)  # [b, H, W, C, 256] -> [b, H, W, C·256]
  return out


def nll_nats(config, params, image, labels=None, rng=None):
  """Exact −log p(x) per example [b], in nats, from one parallel pass; `rng` (training
  only) turns on the networks' dropout, where they have any."""
  out = build_model(config).apply({"params": params}, _network_input(config, image), labels,
                                  rngs=None if rng is None else {"dropout": rng})
  out = _only_codes(config, out)
  return likelihoods.nll(config.model.likelihood, _flat_params(config, out).astype(jnp.float32),
                         image.astype(jnp.int32))


def train_loss(config, state: TrainState, params, batch, rng):
  """(The batch's mean NLL in nats, {}): the loss `train_step` differentiates; rng feeds
  dropout only (the likelihood is exact: nothing else is drawn)."""
  return jnp.mean(nll_nats(config, params, _modelled(config, state, batch["image"]),
                           conditioning.batch_labels(config, batch), rng)), {}


def train_step(config, state: TrainState, batch):
  (loss, _), grads = accumulate.value_and_grad(
      functools.partial(train_loss, config, state), accumulate.steps(config), state.params,
      batch, state.step_rng(), accumulate.unrolled(config))
  state, update = train_state.apply_gradients(config, state, grads, loss=loss)
  # A prior's loss is per code grid: its bits are per code, not per pixel.
  name = "prior_bits_per_code" if latents.autoencoder(config) else "bits_per_dim"
  metrics = {"train/loss": loss,
             f"train/{name}": likelihoods.bits_per_dim(loss, families.model_image_shape(config))}
  return state, {**metrics, **{f"train/{k}": v for k, v in update.items()}}


def eval_metrics(config, state: TrainState, batch, rng):
  """Exact test NLL in nats and bits/dim; a prior's is the VQ-VAE's bound with it, beside
  the bound with the uniform prior and the prior's own NLL of the codes."""
  del rng  # Exact: nothing is drawn.
  image = batch["image"]
  modelled = _modelled(config, state, image)
  nats = nll_nats(config, sampling_params(state), modelled,
                  conditioning.batch_labels(config, batch))
  if not latents.autoencoder(config):
    return {"nll_nats": nats, "bits_per_dim": likelihoods.bits_per_dim(nats, image.shape[1:])}
  recon = latents.reconstruction_nats(config, state.model_state, modelled[..., 0], image)
  uniform = recon + modelled[0].size * math.log(latents.autoencoder(config).num_codes)
  return {"nll_nats": recon + nats,
          "bits_per_dim": likelihoods.bits_per_dim(recon + nats, image.shape[1:]),
          "reconstruction_nats": recon, "prior_nats": nats,
          "uniform_prior_nll_nats": uniform,
          "uniform_prior_bits_per_dim": likelihoods.bits_per_dim(uniform, image.shape[1:])}


def provenance(config) -> dict:
  if latents.autoencoder(config):
    return {"likelihood": f"categorical over the VQ-VAE's {latents.autoencoder(config).num_codes}"
                          " codes (the prior); the VQ-VAE's own pixel likelihood",
            **latents.provenance(config, "prior"),
            "nll_units": "nats per image; bits/dim = nats / (H·W·C · ln 2) over pixels",
            "bounds": "a bound: −log p(x | z(x)) − log p_prior(z(x)), z(x) the encoder's "
                      "codes (the VQ-VAE's ELBO with this prior); uniform_prior_*: with the "
                      "uniform prior, as the VQ-VAE run reports it",
            "parameters": train_state.parameters_provenance(config)}
  return {"likelihood": config.model.likelihood,
          "data_convention": "8-bit values, no dequantisation: an exact discrete likelihood",
          "nll_units": "nats per image; bits/dim = nats / (H·W·C · ln 2)",
          "bounds": "exact: −log p(x) by the chain rule in raster order, R → G → B",
          "parameters": train_state.parameters_provenance(config)}


def preview_overrides(config) -> dict:
  del config  # Training-time grids and evaluations are the real thing: nothing is cheaper.
  return {}


def sample(config, state: TrainState, rng, num: int, cond=None):
  """Images int32 [num, H, W, C] in 0..255, drawn with the row caches (fast); a prior's
  drawn code grids decoded by its VQ-VAE."""
  return _draw_and_decode(config, state, rng, num, cond, cached=True)


def sample_naive(config, state: TrainState, rng, num: int, cond=None):
  """The same draws as `sample`, recomputing the whole network for every sub-pixel."""
  return _draw_and_decode(config, state, rng, num, cond, cached=False)


def _draw_and_decode(config, state: TrainState, rng, num, cond, cached: bool):
  """The drawn images, or a prior's drawn code grids [num, h, w, 1] decoded to pixels (the
  codes and the pixels from keys of their own: the draws fold in their positions)."""
  if not latents.autoencoder(config):
    return sample_with_log_probs(config, state, rng, num, cond, cached)[0]
  code_rng, pixel_rng = jax.random.split(rng)
  drawn = sample_with_log_probs(config, state, code_rng, num, cond, cached)[0]
  return latents.pixels(config, state.model_state, drawn[..., 0], pixel_rng)


def sample_with_log_probs(config, state: TrainState, rng, num: int, cond=None,
                          cached: bool = True):
  """(images int32 [num, H, W, C], Σ log p of each drawn value as the sampler saw it [num]).

  Conditional models follow cond['label'] [num], or cycle through the classes. Each drawn
  value's distribution is tempered by config.sampling.temperature; the log-probabilities
  are the tempered distribution's.
  """
  model = build_model(config)
  height, width, channels = families.model_image_shape(config)
  temperature = families.sampling(config).temperature
  labels = conditioning.sampling_labels(config, cond, num)
  variables = {"params": sampling_params(state)}
  categorical = config.model.likelihood == "categorical"
  per_pixel = channels if categorical else 1  # Draws per pixel.
  image = sharding.constrain_batch(jnp.zeros((num, height, width, channels), jnp.int32))

  def row_params(image, cache, i):
    """Network output for row i [num, W, ...] given the image so far."""
    if not cached:
      out = _only_codes(config, model.apply(variables, _network_input(config, image), labels))
      return lax.dynamic_index_in_dim(out, i, axis=1, keepdims=False), cache
    x_row = lax.dynamic_slice_in_dim(image, i, 1, axis=1)
    out, mutated = model.apply({**variables, "cache": cache}, _network_input(config, x_row),
                               labels, row=i, mutable=["cache"])
    return _only_codes(config, out[:, 0]), mutated["cache"]

  def draw(i, t, carry):
    """Draw number t of row i: sub-pixel c of pixel j (or all of pixel j)."""
    image, cache, log_prob = carry
    j, c = t // per_pixel, t % per_pixel
    out, cache = row_params(image, cache, i)
    pixel = lax.dynamic_index_in_dim(out, j, axis=1, keepdims=False).astype(jnp.float32)
    key = jax.random.fold_in(rng, (i * width + j) * per_pixel + c)
    if categorical:  # pixel [num, C, 256]: draw sub-pixel c.
      logits = likelihoods.temper("categorical",
                                  lax.dynamic_index_in_dim(pixel, c, axis=1, keepdims=False),
                                  channels, temperature)
      value = jax.random.categorical(key, logits)
      step_log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), value[:, None], -1)[:, 0]
      image = image.at[:, i, j, c].set(value.astype(jnp.int32))
    else:  # pixel [num, P]: draw all channels of the pixel, coupled.
      params = likelihoods.temper("logistic_mixture", pixel[:, None, None, :], channels,
                                  temperature)
      value = likelihoods.sample_logistic_mixture(key, params, channels)
      step_log_prob = -likelihoods.logistic_mixture(params, value)
      image = image.at[:, i, j, :].set(value[:, 0, 0])
    return image, cache, log_prob + step_log_prob

  def draw_row(i, carry):
    image, cache, log_prob = lax.fori_loop(0, width * per_pixel, lambda t, c: draw(i, t, c),
                                           carry)
    if cached:  # The row's last call came before its last draw: cache the finished row.
      cache = row_params(image, cache, i)[1]
    return image, cache, log_prob

  cache = {}
  if cached:  # The caches' shapes, zero-filled: calling row 0 creates them.
    cache = jax.tree.map(jnp.zeros_like, model.apply(
        variables, _network_input(config, image[:, :1]), labels, row=0,
        mutable=["cache"])[1]["cache"])
  image, _, log_prob = lax.fori_loop(0, height, draw_row,
                                     (image, cache, jnp.zeros((num,), jnp.float32)))
  return image, log_prob
