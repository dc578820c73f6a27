"""The diffusion family: schedules in closed form, targets that give x₀ back, samplers against
the analytic optimal denoiser, classifier-free guidance, training, one-line errors."""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import conditioning, config as config_lib, train
from jaxgen.errors import UserError
from jaxgen.families import diffusion, diffusion_bound, diffusion_samplers as samplers

SMALL = "experiments/edm_fashion_mnist.py:small"


def _opts(**values):
  opts = diffusion.default_options()
  opts.update(values)
  return opts


def test_vp_schedules_match_their_alpha_bar_in_closed_form():
  t = jnp.linspace(0.01, 0.99, 9)
  linear = _opts(schedule="vp_linear")
  alpha_bar = np.exp(-(0.1 * t + 0.5 * 19.9 * t ** 2))  # exp(−∫₀ᵗ β), β from 0.1 to 20.
  np.testing.assert_allclose(1.0 / (1.0 + diffusion._vp_sigma(linear, t) ** 2), alpha_bar,
                             rtol=1e-5)
  cosine = _opts(schedule="vp_cosine")
  f = lambda u: np.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
  np.testing.assert_allclose(1.0 / (1.0 + diffusion._vp_sigma(cosine, t) ** 2), f(t) / f(0.0),
                             rtol=1e-5)


def test_edm_training_sigmas_are_log_normal():
  sigma = diffusion.training_sigmas(_opts(), jax.random.PRNGKey(0), 20_000)
  log_sigma = np.log(np.asarray(sigma))
  assert abs(log_sigma.mean() + 1.2) < 0.03 and abs(log_sigma.std() - 1.2) < 0.03


@pytest.mark.parametrize("target", diffusion.TARGETS)
def test_each_target_gives_x0_back_from_a_perfect_prediction(target):
  opts = _opts(target=target)
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  x0 = jax.random.uniform(keys[0], (4, 3, 3, 1), minval=-1, maxval=1)
  eps = jax.random.normal(keys[1], x0.shape)
  sigma = jnp.array([0.01, 0.3, 2.0, 50.0])
  s = sigma[:, None, None, None]
  x = x0 + s * eps
  alpha, sd = 1.0 / jnp.sqrt(1.0 + s ** 2), opts.sigma_data
  c_skip, c_out, _, _ = (c[:, None, None, None] for c in diffusion.preconditioning(opts, sigma))
  perfect = {"eps": eps, "x0": x0, "v": alpha * eps - s * alpha * x0,
             "F": (x0 - sd ** 2 / (s ** 2 + sd ** 2) * x) / (s * sd / jnp.sqrt(s ** 2 + sd ** 2))
             }[target]
  np.testing.assert_allclose(c_skip * x + c_out * perfect, x0, atol=2e-4)
  # 'uniform' weighting is the target's own MSE: λ·‖D − x₀‖² = ‖F − target‖².
  np.testing.assert_allclose(diffusion.loss_weight(_opts(target=target, weighting="uniform"),
                                                   sigma) * c_out[:, 0, 0, 0] ** 2, 1.0,
                             rtol=1e-5)


_DATA = jnp.array([[-0.8, 0.5], [0.6, -0.2], [0.1, 0.9]]).reshape(3, 1, 2, 1)


def _optimal_denoiser(x, sigma):
  """E[x₀ | x] for x₀ uniform over _DATA: softmax(−‖x − yᵢ‖²/2σ²)-weighted images."""
  d2 = jnp.sum((x[:, None] - _DATA[None]) ** 2, axis=(2, 3, 4))
  w = jax.nn.softmax(-d2 / (2.0 * sigma ** 2), axis=1)
  return jnp.einsum("bn,nhwc->bhwc", w, _DATA)


def _distance_to_data(x):
  return jnp.sqrt(jnp.min(jnp.sum((x[:, None] - _DATA[None]) ** 2, axis=(2, 3, 4)), axis=1))


@pytest.mark.parametrize("sampler", samplers.SAMPLERS)
def test_samplers_converge_to_the_data_under_the_optimal_denoiser(sampler):
  noise = jax.random.normal(jax.random.PRNGKey(2), (64, 1, 2, 1))
  errors = []
  for steps in (4, 32):
    opts = ml_collections.ConfigDict({**diffusion.sampling_options(), "sampler": sampler,
                                      "steps": steps, "sigma_max": 20.0})
    run = jax.jit(lambda n, r: samplers.sample(opts, _optimal_denoiser, n, r))
    errors.append(float(jnp.median(_distance_to_data(run(noise, jax.random.PRNGKey(3))))))
  assert errors[1] < 0.02 and errors[1] <= errors[0] + 1e-6, errors


def test_ddim_with_eta_zero_is_deterministic_and_eta_adds_noise():
  noise = jax.random.normal(jax.random.PRNGKey(4), (8, 1, 2, 1))
  opts = ml_collections.ConfigDict({**diffusion.sampling_options(), "sampler": "ddim",
                                    "steps": 6})
  run = lambda o, seed: samplers.sample(o, _optimal_denoiser, noise, jax.random.PRNGKey(seed))
  np.testing.assert_array_equal(run(opts, 0), run(opts, 1))
  opts.eta = 1.0
  assert not np.allclose(run(opts, 0), run(opts, 1))
  assert samplers.num_evaluations("heun", 18) == 35 and samplers.num_evaluations("ddim", 18) == 18


def test_the_bound_under_the_optimal_denoiser_is_the_entropy_of_the_data():
  # Three 2×2 8-bit images, equally likely: −log p(x) = ln 3 nats each. Under the exact
  # posterior mean the continuous-time bound is tight apart from its end points, which are
  # negligible at σ_min ≪ the 8-bit spacing (2/255) and σ_max ≫ the data.
  data = ml_collections.ConfigDict(dict(normalize="symmetric", dequantize=False))
  grid = jnp.array([[10, 200, 90, 40], [250, 5, 128, 77], [60, 60, 180, 220]]) / 127.5 - 1.0
  images = grid.reshape(3, 2, 2, 1)

  def optimal(x, sigma):
    d2 = jnp.sum((x[:, None] - images[None]) ** 2, axis=(2, 3, 4))
    w = jax.nn.softmax(-d2 / (2.0 * sigma[:, None] ** 2), axis=1)
    return jnp.einsum("bn,nhwc->bhwc", w, images)

  x0 = jnp.tile(images, (20_000, 1, 1, 1))
  terms = jax.jit(lambda r: diffusion_bound.bound_terms(
      ml_collections.ConfigDict({"data": data}), optimal, x0, r, 5e-4, 80.0))(
          jax.random.PRNGKey(0))
  per_image = np.asarray(terms["bound_bits_per_dim"]) * 4 * math.log(2.0)
  nats, error = per_image.mean(), per_image.std() / math.sqrt(per_image.size)
  # Within 4 standard errors (about ±0.1 nats here: the noise draws dominate the variance).
  assert error < 0.05 and abs(nats - math.log(3.0)) < 4 * error, (nats, error)
  assert float(jnp.mean(terms["bound_reconstruction_bits_per_dim"])) < 1e-3
  # A denoiser that knows nothing (D = 0) pays ∫‖x₀‖²/σ² d ln σ: far more.
  blind = diffusion_bound.bound_terms(ml_collections.ConfigDict({"data": data}),
                                      lambda x, s: jnp.zeros_like(x), x0,
                                      jax.random.PRNGKey(1), 5e-4, 80.0)
  assert float(jnp.mean(blind["bound_bits_per_dim"])) > 100 * nats


def _init(config):
  # Jitted: a U-Net's eager init is slow (16 s against 6 s at the :small size).
  return jax.jit(lambda rng: diffusion.init_state(config, rng, diffusion.image_shape(config)))(
      jax.random.PRNGKey(0))


# One resolution: the family's code paths (the U-Net's levels are tests/models/test_unet.py's)
# at about half the compile time of the :small U-Net's two.
ONE_LEVEL = {"model.multipliers": "(1,)"}
# And at 8×8, for the tests that run many steps or the loop: the same programs' size (compile
# time follows the number of operations, not the image size), a fraction of their run time.
EIGHT_BY_EIGHT = {**ONE_LEVEL, "model.image_size": "8"}


@pytest.fixture(scope="module")
def small():
  config = config_lib.load(SMALL, ONE_LEVEL)
  state = _init(config)
  # A trained-looking network: scaled-up weights make conditional and unconditional differ.
  state = state.replace(params=jax.tree.map(lambda p: p + 0.05, state.params))
  return config, state


def test_guidance_zero_is_unconditional_and_one_conditional(small):
  config, state = small
  x = jax.random.normal(jax.random.PRNGKey(5), (3, 28, 28, 1))
  labels = jnp.array([0, 3, 7])
  null = jnp.full((3,), 10)
  at = lambda w: jax.jit(diffusion.guided_denoiser(config, state.params, labels, w))(x, 1.5)
  sigma = jnp.full((3,), 1.5)
  denoise = jax.jit(lambda y: diffusion.denoise(config, state.params, x, sigma, y))
  uncond, cond = denoise(null), denoise(labels)
  np.testing.assert_allclose(at(0.0), uncond, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(at(1.0), cond, rtol=1e-4, atol=1e-5)
  assert not np.allclose(cond, uncond, atol=1e-4)
  np.testing.assert_allclose(at(3.0), uncond + 3.0 * (cond - uncond), rtol=1e-3, atol=1e-4)


def test_sampling_is_deterministic_per_seed_and_in_range(small):
  config, state = small
  draw = jax.jit(lambda rng: diffusion.sample(config, state, rng, 4))
  a, b = draw(jax.random.PRNGKey(6)), draw(jax.random.PRNGKey(6))
  assert a.shape == (4, 28, 28, 1) and float(jnp.max(jnp.abs(a))) <= 1.0
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, draw(jax.random.PRNGKey(7)))


def test_raw_weights_sample_as_an_ema_equal_to_them_does(small):
  """sampling.weights='raw' samples the live parameters: exactly what the default (EMA)
  draws once the EMA is set to them. The fixture's EMA is the unshifted init."""
  config, state = small
  raw = config.copy_and_resolve_references()
  raw.sampling.weights = "raw"
  draw = lambda c: jax.jit(lambda s, rng: diffusion.sample(c, s, rng, 4))
  key = jax.random.PRNGKey(6)
  from_raw, from_ema = draw(raw)(state, key), draw(config)
  np.testing.assert_array_equal(from_raw, from_ema(state.replace(ema_params=state.params), key))
  assert not np.array_equal(from_raw, from_ema(state, key))


def test_training_overfits_a_batch_and_label_dropout_uses_the_null_class():
  config = config_lib.load(SMALL, EIGHT_BY_EIGHT)
  with config.unlocked():
    config.optim.warmup_steps = 0
    config.optim.learning_rate = 2e-3
  state = _init(config)
  # Two images (a bright square on dark, and its negative), four copies each: a batch a
  # small network can learn to denoise in a few dozen steps.
  square = -jnp.ones((8, 8, 1)).at[2:6, 2:6].set(1.0)
  images = jnp.stack([square, -square] * 4)
  batch = {"image": images, "label": jnp.arange(8) % 2}
  step = jax.jit(lambda s, b: diffusion.train_step(config, s, b))
  fixed = jax.jit(lambda p: jnp.mean(diffusion.per_example_loss(
      config, p, images, jax.random.PRNGKey(9), batch["label"])))
  sampling = diffusion.sampling_options()
  bound = jax.jit(lambda p: jnp.mean(diffusion_bound.bound_terms(
      config, lambda x, s: diffusion.denoise(config, p, x, s, batch["label"]), images,
      jax.random.PRNGKey(11), sampling.sigma_min, sampling.sigma_max)["bound_bits_per_dim"]))
  before, bound_before = float(fixed(state.params)), float(bound(state.params))
  for _ in range(80):  # The zero-initialised output layers make the first steps slow.
    state, metrics = step(state, batch)
  assert np.isfinite(float(metrics["train/loss"])) and float(fixed(state.params)) < 0.6 * before
  # An untrained denoiser is the identity plus noise-level scaling: a bound of a few bits/dim
  # (uniform over the 256 values is 8); fitting the batch lowers it.
  assert 1.0 < bound_before < 20.0 and float(bound(state.params)) < 0.9 * bound_before, (
      bound_before, float(bound(state.params)))
  dropped, _ = conditioning.drop(config, jnp.zeros(10_000, jnp.int32), None,
                                 jax.random.PRNGKey(10), config.diffusion.label_dropout)
  assert abs(float(jnp.mean(dropped == 10)) - config.diffusion.label_dropout) < 0.02


@pytest.mark.parametrize("experiment,run", [("ddpm_fashion_mnist", True),
                                            ("edm_cifar10", False)])
def test_one_step_and_an_evaluation_per_experiment_config(experiment, run):
  """The experiments the other tests do not train (edm_fashion_mnist is trained above): one
  step, then eval metrics with a bound in a sane range. CIFAR-10's 32×32 RGB U-Net takes
  the code paths edm_fashion_mnist does, so it is traced (shapes, config), not compiled."""
  config = config_lib.load(f"experiments/{experiment}.py:small", ONE_LEVEL if run else {})
  shape = diffusion.image_shape(config)
  pixels = jax.random.randint(jax.random.PRNGKey(1), (4, *shape), 0, 256)
  batch = {"image": pixels / 127.5 - 1.0, "label": jnp.arange(4) % 10}

  def step_and_evaluate(batch):
    state = diffusion.init_state(config, jax.random.PRNGKey(0), shape)
    state, metrics = diffusion.train_step(config, state, batch)
    return state.step, metrics, diffusion.eval_metrics(config, state, batch,
                                                       jax.random.PRNGKey(2))
  run_or_trace = jax.jit(step_and_evaluate) if run else functools.partial(
      jax.eval_shape, step_and_evaluate)
  step, metrics, evaluated = run_or_trace(batch)
  assert all(v.shape == (4,) for v in evaluated.values()), evaluated
  assert "bound_bits_per_dim" in evaluated and metrics["train/loss"].shape == ()
  if run:
    assert int(step) == 1 and np.isfinite(float(metrics["train/loss"]))
    assert 1.0 < float(jnp.mean(evaluated["bound_bits_per_dim"])) < 30.0, evaluated


def _train(data_dir, workdir, devices, *stops):
  from tests.helpers import small_config
  for total in stops:
    train.train_and_evaluate(small_config(
        "experiments/edm_fashion_mnist.py", data_dir, total_steps=total,
        **{"mesh.data": devices, "sampling.guidance": 2.0, "data.image_size": 8,
           "sample_every": 3, **EIGHT_BY_EIGHT}), str(workdir))


def _grid(workdir):
  from PIL import Image
  return np.asarray(Image.open(workdir / "samples" / "step_00000003.png"), int)


def test_a_resumed_run_equals_the_uninterrupted_one_bit_for_bit(tmp_path, data_dir):
  """Through the loop on the bundled data, on one device: 3 steps against 2 then a restart to
  3: the same losses, parameters and guided samples (one class per column) in the loop's last
  sample grid. Both runs share one set of compiled programs."""
  from tests.helpers import final_params, read_metrics
  _train(data_dir, tmp_path / "uninterrupted", 1, 3)
  _train(data_dir, tmp_path / "resumed", 1, 2, 3)
  losses = {name: [r["train/loss"] for r in read_metrics(tmp_path / name)]
            for name in ("uninterrupted", "resumed")}
  assert len(losses["resumed"]) == 3 and losses["resumed"] == losses["uninterrupted"]
  jax.tree.map(np.testing.assert_array_equal, final_params(tmp_path / "uninterrupted"),
               final_params(tmp_path / "resumed"))
  grid = _grid(tmp_path / "resumed")
  assert grid.shape == (8 + 2 * 2, 10 * (8 + 2) + 2)  # 4 samples in the 10 classes' columns.
  np.testing.assert_array_equal(grid, _grid(tmp_path / "uninterrupted"))


# Slow: a second mesh's compile of every program. The fast tier checks 1 against 4 devices
# through the loop on the GAN and the VAE (tests/test_train.py) and on streamed data.
@pytest.mark.slow
@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_one_device_and_four_devices_train_and_sample_alike(tmp_path, data_dir):
  """3 steps on 1 device against 3 on 4: the same losses and the same guided samples in the
  loop's last sample grid (σ, noise and label dropout all come from the step's key)."""
  from tests.helpers import read_metrics
  _train(data_dir, tmp_path / "one", 1, 3)
  _train(data_dir, tmp_path / "four", 4, 3)
  losses = {name: [r["train/loss"] for r in read_metrics(tmp_path / name)]
            for name in ("one", "four")}
  assert len(losses["one"]) == 3
  np.testing.assert_allclose(losses["one"], losses["four"], rtol=2e-4)
  np.testing.assert_allclose(_grid(tmp_path / "one"), _grid(tmp_path / "four"), atol=1)


@pytest.mark.parametrize("overrides,message", [
    ({"sampling.sampler": "plms"}, "sampling.sampler='plms'"),
    ({"sampling.steps": "0"}, "sampling.steps=0"),
    ({"model.num_classes": "0", "sampling.guidance": "2.0"},
     "guidance needs a conditional model"),
    ({"diffusion.target": "score"}, "diffusion.target='score'"),
])
def test_bad_configs_are_one_line_errors(overrides, message):
  config = config_lib.load(SMALL, overrides)
  with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
    # Traced, not run: the checks fire while the sampler is built.
    jax.eval_shape(lambda rng: diffusion.sample(config, diffusion.init_state(
        config, rng, diffusion.image_shape(config)), rng, 2), jax.random.PRNGKey(0))

