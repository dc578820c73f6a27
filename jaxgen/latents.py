"""A frozen VQ-VAE under another family: latent diffusion (Rombach et al. 2022) on its
standardised code vectors, and a learned prior (van den Oord et al. 2017) over its codes.

config.<family>.autoencoder ('diffusion' or 'autoregressive') is the VQ-VAE's model config
(an experiment copies it from the autoencoder's own experiment, so this run's config says
what it decodes with) and config.<family>.autoencoder_from the workdir of a run that trained
it. At step 0 that run's
sampling weights (its EMA when it kept one) and codebook are copied into the state's
model_state['autoencoder'], where no optimiser moves them and every checkpoint carries them:
resume, `jaxgen sample` and `jaxgen evaluate` need this run's workdir alone. The source is
vetted abstractly before anything is written, as init_from is.

The latent of an image [b, H, W, C] in [-1, 1] is its quantised code grid z_q [b, H/4, W/4,
code_dim], standardised by the codebook's usage-weighted per-channel mean and one overall
standard deviation: the moments of z_q's distribution under the codebook's own EMA of code
usage, so Stable Diffusion's scale factor needs no pass over the data. Latents are encoded
on the fly (a VQ-VAE encoder costs a few percent of a U-Net step). A sample is
destandardised, snapped to its nearest codes (the decoder has only seen codes) and decoded,
each pixel drawn from the autoencoder's likelihood as its own samples are.
"""

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import config as config_lib
from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import likelihoods, vqvae

KEY = "autoencoder"  # Its variables in the diffusion state's model_state.
# Decoding draws its pixels from fold_in(the sampler's key, this): the sampler's own draws
# stay those of a pixel-space model's.
KEY_STREAM = 0x1a7
# The VQ-VAE decodes 8-bit values: its input is k/255 and its samples are levels k.
LIKELIHOODS = ("categorical", "logistic_mixture")


def autoencoder(config) -> ml_collections.ConfigDict | None:
  """config.<family>.autoencoder (the VQ-VAE's model config), or None in pixel space."""
  return config.get(config.family, {}).get("autoencoder") or None


def knob(config, name: str = "autoencoder_from") -> str:
  """The config key of this family's `name`, for messages: 'diffusion.autoencoder_from'."""
  return f"{config.family}.{name}"


def source(config) -> str:
  """config.<family>.autoencoder_from: the workdir of the VQ-VAE run, "" when unset."""
  return config.get(config.family, {}).get("autoencoder_from", "")


def build(config) -> vqvae.VQVAE:
  kwargs = models.config_kwargs(autoencoder(config))
  name = kwargs.pop("name")
  if name != "vqvae":
    raise UserError(f"{knob(config, 'autoencoder')}.name={name!r}: expected a VQ-VAE (its "
                    "code grid is what this model works on); set it to a vqvae run's model "
                    "config")
  if kwargs.get("likelihood", "logistic_mixture") not in LIKELIHOODS:
    raise UserError(f"{knob(config, 'autoencoder')}.likelihood={kwargs['likelihood']!r}: "
                    f"decoding gives 8-bit images; expected one of {', '.join(LIKELIHOODS)}")
  return models.get(name)(**kwargs)


def image_shape(config) -> tuple[int, int, int]:
  """(H, W, C) of the pixels the autoencoder encodes and decodes."""
  ae = autoencoder(config)
  return (ae.image_size, ae.image_size, ae.channels)


def latent_shape(config) -> tuple[int, int, int]:
  """(h, w, code_dim) of the code grid the autoencoder makes of an image."""
  model = build(config)
  x = jax.ShapeDtypeStruct((1, *image_shape(config)), jnp.float32)
  z_q = jax.eval_shape(lambda v, x: model.apply(v, x, False, method=model.encode)[0],
                       _abstract_variables(model), x)
  return tuple(z_q.shape[1:])


def _abstract_variables(model):
  return jax.eval_shape(lambda: init_variables(model, jax.random.PRNGKey(0)))


def init_variables(model, rng) -> dict:
  """Fresh VQ-VAE variables {'params', 'batch_stats'}: the shapes the loaded ones replace."""
  return dict(model.init(rng, *vqvae._example_inputs(model, 1)[0], train=False))


def check(config, model_shape) -> None:
  """UserError unless the U-Net's (image_size, image_size, channels) = `model_shape` is the
  autoencoder's latent shape and nothing else conditions it on an image."""
  want = latent_shape(config)
  if tuple(model_shape) != want:
    raise UserError(f"model.image_size={model_shape[0]}, model.channels={model_shape[2]}: the "
                    f"autoencoder's latents are {want[0]}×{want[1]}×{want[2]}; set "
                    f"model.image_size={want[0]} and model.channels={want[2]}")
  if config.get("superres"):
    raise UserError("config.superres with diffusion.autoencoder: latent super-resolution is "
                    "not built; drop one of them")


def _moments(variables):
  """(mean [code_dim], std []) of z_q under the codebook's EMA usage."""
  stats = variables["batch_stats"]["quantizer"]
  codebook, weight = stats["codebook"], stats["cluster_size"] / jnp.sum(stats["cluster_size"])
  mean = weight @ codebook
  std = jnp.sqrt(jnp.mean(weight @ (codebook - mean) ** 2))
  return mean, std


def encode(config, model_state, image):
  """Images [b, H, W, C] in [-1, 1] -> standardised latents [b, h, w, code_dim]."""
  model, variables = build(config), model_state[KEY]
  z_q = model.apply(variables, (image.astype(jnp.float32) + 1.0) / 2.0, False,
                    method=model.encode)[0]
  mean, std = _moments(variables)
  return (z_q - mean) / std


def codes(config, model_state, levels):
  """8-bit images int [b, H, W, C] -> their code indices int32 [b, h, w]."""
  model = build(config)
  return model.apply(model_state[KEY], levels.astype(jnp.float32) / 255.0, False,
                     method=model.encode)[1].astype(jnp.int32)


def reconstruction_nats(config, model_state, code_grid, levels):
  """−log p(x | its codes) [b] in nats: the VQ-VAE's likelihood of 8-bit images `levels`
  [b, H, W, C] decoded from `code_grid` [b, h, w]."""
  model = build(config)
  params = model.apply(model_state[KEY], code_grid, method=model.decode_codes)
  return likelihoods.nll(model.likelihood, params.astype(jnp.float32), levels.astype(jnp.int32))


def pixels(config, model_state, code_grid, rng):
  """Code grids [b, h, w] -> 8-bit images int32 [b, H, W, C], each pixel drawn from the
  decoder's likelihood as the VQ-VAE's own samples are."""
  model = build(config)
  decoded = model.apply(model_state[KEY], code_grid, method=model.decode_codes)
  return likelihoods.sample(model.likelihood, rng, decoded, model.channels).astype(jnp.int32)


def decode(config, model_state, latents, rng):
  """Standardised latents [b, h, w, code_dim] -> images [b, H, W, C] in [-1, 1]: nearest
  codes, decoded, each pixel drawn from the likelihood (levels k as k/127.5 − 1)."""
  model, variables = build(config), model_state[KEY]
  mean, std = _moments(variables)
  z = latents * std + mean
  codebook = variables["batch_stats"]["quantizer"]["codebook"]
  nearest = vqvae.nearest_codes(z.reshape(-1, z.shape[-1]), codebook).reshape(z.shape[:-1])
  return pixels(config, model_state, nearest, rng).astype(jnp.float32) / 127.5 - 1.0


def provenance(config, prefix: str) -> dict:
  """What an evaluation records of the autoencoder, under `prefix`/."""
  h, w, dim = latent_shape(config)
  return {f"{prefix}/autoencoder": f"vqvae from {source(config)}",
          f"{prefix}/codes": f"{h}×{w} of {autoencoder(config).num_codes} codes of {dim} "
                             "dimensions"}


def check_source(config, source_config, source: str) -> None:
  """UserError unless `source_config` (config.<family>.autoencoder_from's run) trained the
  autoencoder this config names: a vae-family run of the same model config."""
  if source_config.family != "vae":
    raise UserError(f"{knob(config)}={source!r} is a {source_config.family} run: "
                    "pass the workdir of a VQ-VAE run (experiments/vqvae_fashion_mnist.py)")
  changed = config_lib.differences(source_config.model, autoencoder(config))
  if changed:
    key = changed[0]
    there, here = (c.get(key) if key in c else "missing"
                   for c in (source_config.model, autoencoder(config)))
    raise UserError(f"{knob(config)}={source!r}: its model differs from "
                    f"{knob(config, 'autoencoder')} ({key}: {there!r} there, {here!r} here); "
                    f"set --config.{knob(config, 'autoencoder')}.{key}={there!r} (or train the "
                    "autoencoder this config names)")

