"""SRGAN-style super-resolution (Ledig et al. 2017): a residual generator from the degraded
low-resolution image to the high-resolution one, trained against a discriminator.

Each iteration degrades its batch on the fly (`jaxgen.superres`, from the step's key, as
SR3 does), then makes
  - one discriminator update: real high-resolution images against the generator's
    upscalings, with config.gan's loss and regularisers (the GAN family's objective);
  - one generator update on
        pixel_weight · |G(y) − x|  +  adversarial_weight · ℓ_G(D(G(y)))
        + feature_weight · ‖φ(G(y)) − φ(x)‖²
    through the updated discriminator, reusing the forward pass D's update saw (`jax.vjp`).
    φ is the evaluation's feature network (the in-domain classifier's penultimate features,
    standing in for SRGAN's VGG features); the pixel term is L1 or L2 (`srgan.pixel_loss`).
adversarial_weight = 0 is SRResNet, the paper's pixel-loss pre-training. The generator
(`models/srresnet.py`) outputs a residual over the interpolation baseline, so an untrained
one upscales exactly as bicubic does. Evaluation reports PSNR/SSIM beside that baseline.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import accumulate, families, models, sharding, superres, train_state
from jaxgen.errors import UserError
from jaxgen.evaluators import features as features_lib, fidelity
from jaxgen.families import gan, gan_losses
from jaxgen.train_state import TrainState

G, D = gan.G, gan.D
CAPABILITIES = frozenset()
PIXEL_LOSSES = ("l1", "l2")


def default_options() -> ml_collections.ConfigDict:
  """config.srgan: the generator's objective (config.gan holds the discriminator's)."""
  return ml_collections.ConfigDict(dict(
      pixel_loss="l1",          # 'l1' or 'l2' against the original image.
      pixel_weight=1.0,
      adversarial_weight=1e-3,  # SRGAN's 10⁻³; 0 trains the generator on pixels alone.
      feature_weight=0.0,       # ‖φ(G(y)) − φ(x)‖² with φ evaluation.feature_network; 0 = off.
  ))


def sampling_options() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(weights="ema"))  # 'ema' or 'raw' generator weights.


image_shape = families.model_image_shape


def _check(config) -> ml_collections.ConfigDict:
  """config.superres's options, after every SRGAN knob is checked."""
  if superres.options(config) is None:
    raise UserError("the srgan family upscales: it needs a config.superres section (see "
                    "experiments/srgan_fashion_mnist.py)")
  sr = superres.check_run(config, image_shape(config))
  opts = config.srgan
  if opts.pixel_loss not in PIXEL_LOSSES:
    raise UserError(f"srgan.pixel_loss={opts.pixel_loss!r}: expected one of "
                    f"{', '.join(PIXEL_LOSSES)}")
  for name in ("pixel_weight", "adversarial_weight", "feature_weight"):
    if not opts[name] >= 0:
      raise UserError(f"srgan.{name}={opts[name]!r}: expected a weight ≥ 0 (0: off)")
  gan.check_options(config, config.batch_size)  # D's objective: the GAN family's knobs.
  if config.gan.n_critic != 1:
    raise UserError(f"gan.n_critic={config.gan.n_critic}: the srgan family makes one "
                    "discriminator update per generator update; set gan.n_critic=1")
  if accumulate.steps(config) > 1:  # After the GAN's check, which allows it.
    raise UserError(f"optim.accumulate_steps={accumulate.steps(config)}: the srgan family "
                    "does not accumulate gradients yet; set optim.accumulate_steps=1")
  if config.data.normalize != "symmetric":
    raise UserError(f"data.normalize={config.data.normalize!r}: super-resolution works on "
                    "images in [-1, 1]; set data.normalize='symmetric'")
  return sr


def build_models(config):
  sr = _check(config)
  dtype = models.compute_dtype(config.model.get("dtype", "float32"))
  g_kwargs, d_kwargs = dict(config.model.generator), dict(config.model.discriminator)
  generator = models.get(g_kwargs.pop("name"))(
      factor=sr.factor, channels=config.model.channels, upsample=sr.upsample, dtype=dtype,
      **g_kwargs)
  discriminator = models.get(d_kwargs.pop("name"))(
      image_size=config.model.image_size, channels=config.model.channels, dtype=dtype,
      **d_kwargs)
  return generator, discriminator


def init_state(config, rng, image_shape) -> TrainState:
  generator, discriminator = build_models(config)
  low_shape = superres.low_resolution_shape(superres.options(config), image_shape)
  g_rng, d_rng, run_rng = jax.random.split(rng, 3)
  g_params = generator.init(g_rng, jnp.zeros((1, *low_shape)))["params"]
  d_vars = discriminator.init(d_rng, jnp.zeros((1, *image_shape)), None, train=False)
  return train_state.create_state(
      config, {G: g_params, D: d_vars["params"]}, run_rng,
      model_state={G: {}, D: d_vars.get("batch_stats", {})}, networks=(G, D),
      ema_networks=(G,))


@functools.lru_cache(maxsize=4)
def _feature_network(name: str, root: str):
  return features_lib.load(name, root or None)[0]


def _pixel_loss(kind: str, estimate, original):
  """Per image [b]: the mean absolute (l1) or squared (l2) error."""
  diff = estimate - original
  return jnp.mean(jnp.abs(diff) if kind == "l1" else diff ** 2, axis=(1, 2, 3))


def _generator_loss(config, discriminator, d_params, d_stats, upscaled, original):
  """(the generator's weighted objective, (D's state after the pass, its terms))."""
  opts = config.srgan
  logits, d_stats = gan.apply_discriminator(discriminator, d_params, d_stats, upscaled, None)
  terms = {"pixel_loss": jnp.mean(_pixel_loss(opts.pixel_loss, upscaled, original)),
           "adversarial_loss": gan_losses.generator_loss(config.gan.loss, logits)}
  loss = opts.pixel_weight * terms["pixel_loss"] + opts.adversarial_weight * terms[
      "adversarial_loss"]
  if opts.feature_weight:
    phi = _feature_network(config.evaluation.feature_network, config.evaluation.features_dir)
    terms["feature_loss"] = jnp.mean(jnp.sum((phi(upscaled) - phi(original)) ** 2, -1))
    loss += opts.feature_weight * terms["feature_loss"]
  return loss, (d_stats, terms)


def train_step(config, state: TrainState, batch):
  generator, discriminator = build_models(config)
  sr = superres.options(config)
  d_rng = state.step_rng()
  real = batch["image"].astype(jnp.float32)
  low = superres.low_resolution(sr, real, jax.random.fold_in(d_rng, superres.KEY_STREAM))
  upscaled, g_vjp = jax.vjp(lambda p: generator.apply({"params": p}, low), state.params[G])

  grad_fn = jax.value_and_grad(functools.partial(gan.discriminator_objective, config,
                                                 discriminator), has_aux=True)
  (d_loss, (d_stats, metrics)), d_grads = grad_fn(
      state.params[D], state.model_state[D], real, None, jax.lax.stop_gradient(upscaled), None,
      d_rng, state.step)
  state, d_update = train_state.apply_gradients(config, state, d_grads, network=D,
                                                model_state=d_stats, advance=False,
                                                loss=d_loss)
  metrics.update(d_loss=d_loss, d_grad_norm=d_update["grad_norm"],
                 d_skipped=d_update["skipped"])

  (g_loss, (d_stats, terms)), upscaled_grads = jax.value_and_grad(
      functools.partial(_generator_loss, config, discriminator, state.params[D],
                        state.model_state[D]), has_aux=True)(upscaled, real)
  (g_grads,) = g_vjp(upscaled_grads)
  state, g_update = gan.generator_update(config, state, g_grads, g_loss,
                                         {G: {}, D: d_stats})
  metrics = gan.step_metrics(metrics, g_loss, g_update)
  metrics.update({f"train/{k}": v for k, v in terms.items()})
  return state, metrics


def _upscale(config, params, low):
  generator, _ = build_models(config)
  return jnp.clip(generator.apply({"params": params}, low), -1.0, 1.0)


def sample(config, state: TrainState, rng, num: int, cond=None):
  """The upscalings [num, H, W, C] in [-1, 1] of cond['low_res'] [num, H/f, W/f, C]: one
  deterministic generator pass (`rng` is unused)."""
  del rng
  if cond is None or cond.get("low_res") is None:
    raise UserError("this super-resolution model upscales given images: use `jaxgen upscale "
                    "--workdir DIR --in FILE --out FILE`")
  low = sharding.constrain_batch(jnp.asarray(cond["low_res"], jnp.float32))
  params = train_state.weights_to_sample(state, families.sampling(config).weights, G)
  return _upscale(config, params, low)


def eval_metrics(config, state: TrainState, batch, rng):
  """PSNR/SSIM of the upscaled degraded test images beside the interpolation baseline, the
  pixel loss, and the discriminator's mean logits on the originals and the upscalings."""
  _, discriminator = build_models(config)
  sr = superres.options(config)
  original = batch["image"].astype(jnp.float32)
  low = superres.low_resolution(sr, original, jax.random.fold_in(rng, superres.KEY_STREAM))
  params = train_state.weights_to_sample(state, families.sampling(config).weights, G)
  upscaled = _upscale(config, params, low)
  d_vars = {"params": state.params[D], "batch_stats": state.model_state[D]}
  score = lambda x: discriminator.apply(d_vars, x, None, train=False).astype(jnp.float32)
  return {**fidelity.upscaling_metrics(upscaled, superres.upsample(sr, low, original.shape[1:]),
                                       original),
          "pixel_loss": _pixel_loss(config.srgan.pixel_loss, upscaled, original),
          "d_real_score": score(original), "d_fake_score": score(upscaled)}


def provenance(config) -> dict:
  opts = config.srgan
  weights = families.sampling(config).weights
  return {"generator": "raw" if weights == "raw" else train_state.parameters_provenance(config),
          "objective": (f"{opts.pixel_weight:g}·{opts.pixel_loss} + "
                        f"{opts.adversarial_weight:g}·{config.gan.loss} adversarial"
                        + (f" + {opts.feature_weight:g}·feature MSE "
                           f"({config.evaluation.feature_network})"
                           if opts.feature_weight else "")),
          "pixel_loss": f"per-image mean {opts.pixel_loss} of the clipped upscaling",
          **superres.provenance(superres.options(config))}


def preview_overrides(config) -> dict:
  del config  # One generator pass: previews cost what the real thing costs.
  return {}
