"""Experiment builders: one per family, all sharing how the variants (`FILE.py:NAME`) apply.

An experiment file declares the variants it accepts and builds its config with its family's
builder; `config.load_file` rejects any other variant before `get_config` runs:

  VARIANTS = ("demo", "small")

  def get_config(arg=None):
    return experiment.gan(arg, VARIANTS, model=dict(...), optim=dict(...))

Every builder has the shape `FAMILY(variant, variants, *, model, small_model, per_variant,
**settings)` and builds in this order:
  1. the family's full-size recipe, around `model`;
  2. `settings`: the experiment's own values, as nested config keys
     (`total_steps=5000, gan=dict(loss="hinge")`), each of which must already exist;
  3. the variant: the family's recipe for it (`:demo` trains on the bundled subset in CPU
     minutes, `:small` is a seconds-long smoke run with `small_model`'s widths, the
     autoregressive family adds `:cifar10`), then `per_variant[variant]`'s nested keys.
A variant needs a family recipe or a `per_variant` entry (`sngan_cifar10.py:conditional`).
"""

from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxgen import config as config_lib, families, optim, superres as superres_lib
from jaxgen.families import autoregressive as autoregressive_family
from jaxgen.families import diffusion as diffusion_family
from jaxgen.families import gan as gan_family
from jaxgen.families import srgan as srgan_family
from jaxgen.families import vae as vae_family

Overrides = Mapping[str, Any]  # Nested config keys: dict(model=dict(features=8), seed=1).
PerVariant = Mapping[str, Overrides]  # Variant name -> its overrides, after the family recipe.

# Both networks at the :small variant's widths.
_GAN_SMALL_MODEL = dict(generator=dict(features=8, latent_dim=16),
                        discriminator=dict(features=8))


def gan(variant: str | None, variants: tuple[str, ...], *, model: Overrides,
        small_model: Overrides = _GAN_SMALL_MODEL, per_variant: PerVariant | None = None,
        **settings) -> ml_collections.ConfigDict:
  """A GAN experiment; `model` holds num_classes, generator and discriminator.

  The full-size recipe is DCGAN's (Radford et al. 2016): Fashion-MNIST in [-1, 1] for a tanh
  generator, batch 64, 10k steps, Adam(2e-4, β1=0.5) for both networks, parameter EMA 0.999,
  sample metrics during training.
  """
  config = _family_base("gan", gan_family.sampling_options(), model)
  config.data.update(name="fashion_mnist", normalize="symmetric")
  config.update(batch_size=64, total_steps=10_000, log_every=100, sample_every=1000,
                checkpoint_every=1000, eval_every=5000, ema_decay=0.999)
  config.evaluation.sample_metrics = True  # FID/KID/precision/recall (`jaxgen train-features`).
  config.gan = gan_family.default_options()
  config.optim = ml_collections.ConfigDict(dict(
      generator=optim.default_config(learning_rate=2e-4, b1=0.5),
      discriminator=optim.default_config(learning_rate=2e-4, b1=0.5)))
  recipes = dict(
      demo=dict(total_steps=3000, log_every=50, sample_every=500, checkpoint_every=1000,
                eval_every=3000),
      # The sample metrics at a size the smoke run's bundled features can score.
      small=dict(num_samples=8, evaluation=dict(
          feature_network="fashion_mnist_small", num_samples=200, max_stored_features=200,
          kid_subsets=10, kid_subset_size=50)))
  return _build(config, variant, variants, settings, recipes, small_model, per_variant)


def dcgan_model(num_classes: int = 0, **discriminator) -> dict:
  """The Fashion-MNIST GANs' `model`: DCGAN's two networks at 28x28 grey, width 64, a 100-d
  latent; `discriminator` holds that network's own options (norm, spectral_norm, ...)."""
  return dict(num_classes=num_classes,
              generator=dict(name="dcgan_generator", image_size=28, channels=1, features=64,
                             latent_dim=100),
              discriminator=dict(name="dcgan_discriminator", image_size=28, channels=1,
                                 features=64, **discriminator))


def vae(variant: str | None, variants: tuple[str, ...], *, model: Overrides,
        small_model: Overrides, per_variant: PerVariant | None = None,
        **settings) -> ml_collections.ConfigDict:
  """A VAE experiment: batch 128, 20k steps, Adam 1e-3, config.vae at its defaults.

  Set `data=dict(name=..., normalize=...)`: the normalisation is the likelihood's (see
  `jaxgen.families.vae`).
  """
  config = _family_base("vae", vae_family.sampling_options(), model)
  config.update(batch_size=128, total_steps=20_000, log_every=200, sample_every=2000,
                checkpoint_every=2000, eval_every=5000)
  config.vae = vae_family.default_options()
  config.optim = optim.default_config(learning_rate=1e-3)
  recipes = dict(
      demo=dict(total_steps=2000, sample_every=500, checkpoint_every=1000, eval_every=2000),
      small=dict(num_samples=8, evaluation=dict(iwae_k=8)))
  return _build(config, variant, variants, settings, recipes, small_model, per_variant)


def autoregressive(variant: str | None, variants: tuple[str, ...], *, model: Overrides,
                   small_model: Overrides, per_variant: PerVariant | None = None,
                   autoencoder: ml_collections.ConfigDict | None = None,
                   **settings) -> ml_collections.ConfigDict:
  """An autoregressive experiment on 8-bit 28x28 grey Fashion-MNIST, batch 32, Adam 1e-3.

  `model` holds name, likelihood and widths. `:cifar10` is 32x32 RGB CIFAR-10 (it needs
  network once), batch 64, 100k steps; `per_variant['cifar10']` sets its widths.
  `autoencoder` (a VQ-VAE's model config) makes it that VQ-VAE's learned prior
  (`jaxgen.latents`): `model` then holds the code grid's side, and
  autoregressive.autoencoder_from names the run that trained the VQ-VAE.
  """
  config = _family_base("autoregressive", autoregressive_family.sampling_options(),
                        {"image_size": 28, "channels": 1, **model})
  if autoencoder is not None:
    config.autoregressive = ml_collections.ConfigDict(dict(
        autoencoder=ml_collections.ConfigDict(autoencoder), autoencoder_from=""))
  config.data.update(name="fashion_mnist", normalize="integer")  # Discrete, exact likelihood.
  config.update(batch_size=32, eval_batch_size=250, total_steps=3000, log_every=100,
                sample_every=1000, checkpoint_every=500, num_samples=16)
  config.optim = optim.default_config(learning_rate=1e-3)
  recipes = dict(
      demo=dict(total_steps=600, sample_every=300),
      small=dict(num_samples=4),
      cifar10=dict(data=dict(name="cifar10"), batch_size=64, total_steps=100_000,
                   sample_every=5000, checkpoint_every=5000,
                   model=dict(image_size=32, channels=3)))
  return _build(config, variant, variants, settings, recipes, small_model, per_variant)


def diffusion(variant: str | None, variants: tuple[str, ...], *, model: Overrides,
              small_model: Overrides | None = None, per_variant: PerVariant | None = None,
              superres: Overrides | None = None,
              autoencoder: ml_collections.ConfigDict | None = None,
              **settings) -> ml_collections.ConfigDict:
  """A diffusion experiment: images in [-1, 1], batch 128, 20k steps, Adam 5e-4 after 500
  warm-up steps, gradient clipping 1, EMA 0.999, config.diffusion at its defaults (EDM's).

  `model` holds the U-Net's shape; `:demo` previews with 10-step samplers, `:small` is a
  two-level 8-wide U-Net without attention sampled in 2 steps. `superres` (overrides of
  `jaxgen.superres.default_options`) makes it SR3: the U-Net conditions on the upsampled
  degraded image (model.cond_channels = its channels), its sample grids upscale 32 fixed
  images of the eval split (the training split when eval_every=0), and FID of the
  upscaled test split is off by default (it samples the whole split; PSNR/SSIM are always
  reported). `autoencoder` (a VQ-VAE's model config) makes it latent diffusion
  (`jaxgen.latents`): `model` then holds the latent grid's shape, and
  diffusion.autoencoder_from names the run that trained it.
  """
  config = _family_base("diffusion", diffusion_family.sampling_options(),
                        {"remat": False, "num_attributes": 0, **model})
  config.data.update(name="fashion_mnist", normalize="symmetric")
  config.update(batch_size=128, total_steps=20_000, log_every=100, sample_every=2000,
                checkpoint_every=1000, eval_every=5000, ema_decay=0.999, num_samples=100)
  config.diffusion = diffusion_family.default_options()
  if autoencoder is not None:
    config.diffusion.autoencoder = ml_collections.ConfigDict(autoencoder)
  if superres is not None:
    config.superres = superres_lib.default_options()
    _override(config.superres, superres, "superres.")
    config.model.cond_channels = config.model.channels
    config.num_samples = 32  # Grids of 4 runs of 8: baselines, upscalings, originals.
  config.optim = optim.default_config(learning_rate=5e-4)
  config.optim.update(warmup_steps=500, grad_clip=1.0)
  recipes = dict(
      demo=dict(total_steps=2000, sample_every=500, eval_every=2000,
                sampling=dict(preview_steps=10)),
      small=dict(num_samples=4, sampling=dict(steps=2)))
  small = {**dict(features=8, blocks=1, multipliers=(1, 2), attention=()), **(small_model or {})}
  config = _build(config, variant, variants, settings, recipes, small, per_variant)
  if superres is not None:  # After every variant: none may turn FID of the upscalings on.
    config.evaluation.sample_metrics = False
  return config


def srgan(variant: str | None, variants: tuple[str, ...], *, model: Overrides,
          superres: Overrides, small_model: Overrides | None = None,
          per_variant: PerVariant | None = None, **settings) -> ml_collections.ConfigDict:
  """An SRGAN experiment: `model` holds image_size, channels, generator and discriminator;
  `superres` (overrides of `jaxgen.superres.default_options`) the degradation. SRGAN's
  recipe: Adam(1e-4, β1 0.9) for both networks, adversarial weight 10⁻³, batch 64 (its 16
  at 96×96 is more pixels), EMA 0.999; sample grids every 1,000 steps of 16 fixed images of
  the eval split (the training split when eval_every=0), each as the baseline, the
  upscaling and the original.
  """
  config = _family_base("srgan", srgan_family.sampling_options(), model)
  config.data.update(name="fashion_mnist", normalize="symmetric")
  config.update(batch_size=64, total_steps=10_000, log_every=100, checkpoint_every=1000,
                sample_every=1000, eval_every=5000, ema_decay=0.999, num_samples=16)
  config.superres = superres_lib.default_options()
  _override(config.superres, superres, "superres.")
  config.srgan = srgan_family.default_options()
  config.gan = gan_family.default_options()
  config.optim = ml_collections.ConfigDict(dict(
      generator=optim.default_config(learning_rate=1e-4, b1=0.9),
      discriminator=optim.default_config(learning_rate=1e-4, b1=0.9)))
  recipes = dict(demo=dict(total_steps=2000, sample_every=500, eval_every=2000),
                 small=dict(num_samples=4))
  small = small_model or dict(generator=dict(features=8, blocks=1),
                              discriminator=dict(features=8))
  return _build(config, variant, variants, settings, recipes, small, per_variant)


def build(family: str, variant: str | None, variants: tuple[str, ...], *, model: Overrides,
          small_model: Overrides | None = None, sections: Overrides | None = None,
          recipes: PerVariant | None = None, per_variant: PerVariant | None = None,
          **settings) -> ml_collections.ConfigDict:
  """An experiment of any registered family, built as the three builders above are.

  Starts from `base_config()` with the family's `sampling_options()` and `model`, adds
  `sections` (new top-level sub-configs, e.g. the family's own options), then applies
  `settings` and the variant (`recipes` are the variants' family-level settings). A new
  family's experiments can use it directly, before (or without) a builder of their own.
  """
  config = _family_base(family, families.get(family).sampling_options(), model)
  for name, section in (sections or {}).items():
    if name in config:
      raise KeyError(f"sections[{name!r}]: the config already has {name!r}; set it through "
                     "settings instead")
    config[name] = ml_collections.ConfigDict(section)
  recipes = {"demo": {}, "small": {}, **(recipes or {})}
  return _build(config, variant, variants, settings, recipes, small_model or {}, per_variant)


def _family_base(family, sampling, model):
  config = config_lib.base_config()
  config.family = family
  config.sampling = sampling
  # model.dtype: 'float32' or 'bfloat16' computation, for every model (see jaxgen.models).
  config.model = ml_collections.ConfigDict({"dtype": "float32", **model})
  return config


def _build(config, variant, variants, settings, recipes, small_model, per_variant):
  """Applies the experiment's `settings`, then `variant`: the family's recipe for it (with
  the common :demo / :small parts), then the experiment's `per_variant` overrides."""
  per_variant = per_variant or {}
  for name in (*per_variant, variant):
    if name is not None and name not in variants:
      raise ValueError(f"variant {name!r} is not among the declared variants {variants}: "
                       "add it to the experiment file's VARIANTS")
  for name in variants:
    if name not in recipes and name not in per_variant:
      raise ValueError(f"variant {name!r} has no family recipe ({', '.join(recipes)}): give "
                       "it a per_variant entry")
  if "optim" in config and "accumulate_steps" not in config.optim:
    # One knob for every network of the family (the GAN's two): see jaxgen/accumulate.py.
    config.optim.accumulate_steps = 1
    config.optim.accumulate_unroll = False
  _override(config, settings)
  if variant is None:
    return config
  # The bundled subset stands in for Fashion-MNIST; other datasets' tests feed random images.
  bundled = "fashion_mnist_small" if config.data.name == "fashion_mnist" else config.data.name
  if variant == "demo":
    config.data.name = bundled
  elif variant == "small":
    smoke_run(config, bundled)
    _override(config.model, small_model)
  _override(config, recipes.get(variant, {}))
  _override(config, per_variant.get(variant, {}))
  return config


def _override(config: ml_collections.ConfigDict, overrides: Overrides, prefix: str = "") -> None:
  """Sets nested keys that must exist already, so a misspelt key fails here, not silently."""
  for key, value in overrides.items():
    if key not in config:
      raise KeyError(f"no config key {prefix + key!r} to set: valid keys here are "
                     f"{', '.join(sorted(config))}")
    if isinstance(value, Mapping) and isinstance(config[key], ml_collections.ConfigDict):
      _override(config[key], value, f"{prefix}{key}.")
    else:
      config[key] = value


def smoke_run(config: ml_collections.ConfigDict, data_name: str = "fashion_mnist_small") -> None:
  """Turns `config` into the `:small` variant's seconds-long run (tests): the bundled data,
  batch 8, two steps, every output each step, no evaluation during training. Experiments
  then shrink their model."""
  config.data.name = data_name
  config.batch_size = 8
  config.eval_batch_size = 64
  config.total_steps = 2
  config.log_every = config.sample_every = config.checkpoint_every = 1
  config.eval_every = 0
