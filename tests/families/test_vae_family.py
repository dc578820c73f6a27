"""The VAE family's maths and learning, on tiny shapes without the data pipeline."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import config as config_lib
from jaxgen.errors import UserError
from jaxgen.families import vae, vae_bounds
from jaxgen.models import likelihoods
from tests import helpers

BINARY = "experiments/vae_binarized_fashion_mnist.py:small"
EIGHT_BIT = "experiments/vae_fashion_mnist.py:small"
TINY = {"model.latent_dim": "8", "model.features": "16"}
GAUSSIAN = {"model.likelihood": "gaussian", "data.normalize": "unit", "data.dequantize": "true"}


# Eager, every jax op compiles a program of its own (50-80 ms each on 2 cores): the tests
# below jit their family and model calls, and share the initial states they only read.
def _state(config):
  return helpers.init_state(vae, config)


@functools.cache
def _loaded_state(spec, *overrides):
  """_state of `spec` with the (name, value) `overrides`, built once for the tests."""
  return _state(config_lib.load(spec, dict(overrides)))


@functools.cache
def _binary_images(n):
  return jax.jit(lambda: (jax.random.uniform(jax.random.PRNGKey(3), (n, 28, 28, 1)) < 0.3
                          ).astype(jnp.float32))()


def _random_batch(config, n=4):
  """Images of the config's shape in its data convention, as the pipeline would give them."""
  shape = (n, *vae.image_shape(config))
  if config.data.normalize == "integer":
    return {"image": jax.jit(lambda: jax.random.randint(jax.random.PRNGKey(0), shape, 0,
                                                        256))()}
  return {"image": jax.jit(lambda: jax.random.uniform(jax.random.PRNGKey(0), shape))()}


def test_kl_matches_closed_form_by_monte_carlo():
  @jax.jit
  def closed_form_and_estimate():
    mean, logvar = jnp.array([[0.5, -1.0]]), jnp.array([[0.2, -0.7]])
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.PRNGKey(1), (200_000, 2))
    log_q = jnp.sum(-0.5 * ((z - mean) ** 2 / jnp.exp(logvar) + logvar
                            + math.log(2 * math.pi)), -1)
    log_p = jnp.sum(-0.5 * (z ** 2 + math.log(2 * math.pi)), -1)
    return vae_bounds.kl_nats(mean, logvar)[0], jnp.mean(log_q - log_p)
  np.testing.assert_allclose(*closed_form_and_estimate(), rtol=1e-2)


def test_bits_per_dim_is_nats_over_dims_ln2():
  assert likelihoods.bits_per_dim(784 * math.log(2.0), (28, 28, 1)) == 1.0


def test_kl_warmup_is_linear_from_zero_to_beta():
  opts = vae.default_options()
  opts.update(beta=4.0, kl_warmup_steps=10)
  assert [float(vae.kl_weight(opts, s)) for s in (0, 5, 10, 25)] == [0.0, 2.0, 4.0, 4.0]
  opts.kl_warmup_steps = 0
  assert float(vae.kl_weight(opts, 0)) == 4.0


def test_free_bits_zero_the_kl_gradient_of_dimensions_below_lambda():
  # Dimension 0 carries ~0.02 nats, dimension 1 ~2 nats; λ = 0.5 clamps dimension 0 only.
  mean = jnp.array([[0.2, 2.0], [-0.2, 2.0]])
  logvar = np.zeros((2, 2), np.float32)
  clamped = lambda m: vae_bounds.free_bits_kl(vae_bounds.kl_per_dim(m, logvar), 0.5)
  kl, grad = jax.device_get(jax.jit(lambda m: (clamped(m), jax.grad(clamped)(m)))(mean))
  np.testing.assert_allclose(kl, 0.5 + 2.0, rtol=1e-6)
  np.testing.assert_array_equal(grad[:, 0], 0.0)
  np.testing.assert_allclose(grad[:, 1], 1.0, rtol=1e-6)  # d/dm of mean(m²/2) over 2 rows.


def test_a_fixed_batch_is_overfit():
  config = config_lib.load(BINARY, TINY)
  images = _binary_images(8)
  step = jax.jit(lambda s, b: vae.train_step(config, s, b))
  state, first = step(_state(config), {"image": images})
  for _ in range(150):
    state, metrics = step(state, {"image": images})
  assert float(metrics["train/loss"]) < 0.5 * float(first["train/loss"])


def test_iwae_bounds_are_below_the_elbo_and_the_k1_objective_is_the_elbo(monkeypatch):
  config = config_lib.load(BINARY, TINY)
  images = _binary_images(16)
  step = jax.jit(lambda s, b: vae.train_step(config, s, b))
  state = _state(config)
  for _ in range(60):
    state, _ = step(state, {"image": images})
  rng = jax.random.PRNGKey(7)
  elbo_fn = jax.jit(lambda p: vae.negative_elbo(config, p, images, rng)[0])
  iwae_fn = jax.jit(lambda p, k: vae.negative_iwae(config, p, images, rng, k), static_argnums=1)
  nelbo = float(jnp.mean(elbo_fn(state.params)))
  nll = {k: float(jnp.mean(iwae_fn(state.params, k))) for k in (1, 8, 256)}
  # Bounds on −log p(x): IWAE-k ≤ ELBO, decreasing in k; k=1 is the ELBO up to noise.
  assert nll[256] < nll[8] < nelbo
  np.testing.assert_allclose(nll[1], nelbo, rtol=0.05)
  # The training objective: train_k = 1 is exactly the ELBO, train_k = 8 the IWAE-8 bound.
  iwae_config = config_lib.load(BINARY, {**TINY, "vae.train_k": "8"})
  for cfg, expected in ((config, nelbo), (iwae_config, nll[8])):
    loss, (stats, _) = jax.jit(lambda p: vae.objective(cfg, p, images, rng, beta=1.0))(
        state.params)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(stats["nelbo"]) == pytest.approx(nelbo, rel=1e-5)
  assert nll[8] < nelbo
  # k samples in several chunks (a scan, as IWAE-1000 on full batches runs) bound as tightly
  # as one chunk (what small training k take): other draws, the same bound up to noise.
  monkeypatch.setattr(vae_bounds, "iwae_chunk", lambda k, floats: k // 4)
  chunked = float(jnp.mean(jax.jit(lambda p: vae.negative_iwae(config, p, images, rng, 256))(
      state.params)))
  assert chunked < nll[8]
  np.testing.assert_allclose(chunked, nll[256], rtol=0.01)


def test_iwae_chunks_are_divisors_within_budget():
  assert vae_bounds.iwae_chunk(1000, 256 * 784) == 250  # 250·256·784 ≤ 2^26 < 500·256·784
  assert vae_bounds.iwae_chunk(7, 1 << 30) == 1
  # A pixel head's feature maps count: 1 + 2·2·16 floats per pixel, not the 1 of the output.
  config = config_lib.load(BINARY, {"model.pixel_layers": "2"})
  assert vae_bounds.floats_per_sample(config, vae.build_model(config), (28, 28, 1)) == 784 * 65


def _samples(config, state):
  return jax.jit(lambda s, r: vae.sample(config, s, r, 3))(state, jax.random.PRNGKey(1))


# Traced, not compiled: full widths, and CIFAR-10's RGB shapes through the 8-bit VAE's code.
TRACED = ("experiments/vae_binarized_fashion_mnist.py:long", "experiments/vae_cifar10.py:small")


# Slow: IWAE training without a head (with one below), and the hierarchical VAE and VQ-VAE
# experiments (their models train in the tests after this one and in tests/test_precision.py).
@pytest.mark.parametrize("spec,overrides", [
    pytest.param(BINARY, {"vae.train_k": "2"}, marks=pytest.mark.slow),
    (BINARY, {"vae.train_k": "2", "model.pixel_layers": "2"}),  # IWAE through a pixel head.
    ("experiments/vae_binarized_fashion_mnist.py:long", {}),  # Full widths.
    (EIGHT_BIT, {"vae.free_bits": "0.25", "vae.beta": "2.0"}),
    ("experiments/vae_mnist.py:small", {"vae.kl_warmup_steps": "100", "vae.free_bits": "1.0"}),
    ("experiments/vae_cifar10.py:small", {}),
    pytest.param("experiments/hvae_binarized_fashion_mnist.py:small", {"vae.free_bits": "0.1"},
                 marks=pytest.mark.slow),
    pytest.param("experiments/vqvae_fashion_mnist.py:small", {}, marks=pytest.mark.slow),
])
def test_one_step_per_experiment_and_samples_in_the_data_range(spec, overrides):
  config = config_lib.load(spec, overrides)
  if spec in TRACED:  # Shapes and config only: the code paths are the compiled cases'.
    step = jax.eval_shape(lambda b: vae.train_step(config, _state(config), b),
                          _random_batch(config))
    samples = jax.eval_shape(lambda s: vae.sample(config, s, jax.random.PRNGKey(1), 3),
                             step[0])
    assert {"train/loss", "train/nelbo"} <= set(step[1])
    assert samples.shape == (3, *vae.image_shape(config))
    return
  state, metrics = jax.jit(lambda s, b: vae.train_step(config, s, b))(_state(config),
                                                                      _random_batch(config))
  assert {"train/loss", "train/nelbo", "train/kl", "train/reconstruction",
          "train/beta"} <= set(metrics)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  np.testing.assert_allclose(metrics["train/nelbo"],
                             metrics["train/reconstruction"] + metrics["train/kl"], rtol=1e-6)
  if config.vae.kl_warmup_steps:  # Step 0 of the warm-up: β = 0, reconstruction only.
    assert float(metrics["train/beta"]) == 0.0
    np.testing.assert_allclose(metrics["train/loss"], metrics["train/reconstruction"], rtol=1e-6)
  samples = _samples(config, state)
  assert samples.shape == (3, *vae.image_shape(config))
  if config.model.likelihood == "bernoulli":
    assert samples.dtype == jnp.float32
    assert 0.0 <= float(samples.min()) <= float(samples.max()) <= 1.0
  else:
    assert samples.dtype == jnp.int32
    assert 0 <= int(samples.min()) <= int(samples.max()) <= 255
    # Untrained, a discrete 8-bit likelihood spreads its mass: roughly 8 bits per dimension.
    assert 7.0 < float(metrics["train/bits_per_dim"]) < 11.0


def test_categorical_samples_are_8_bit():
  config = config_lib.load(EIGHT_BIT, {"model.likelihood": "categorical"})
  samples = _samples(config, _state(config))
  assert samples.shape == (3, 28, 28, 1) and samples.dtype == jnp.int32
  assert 0 <= int(samples.min()) and int(samples.max()) <= 255


def test_gaussian_samples_are_8_bit_values_in_the_unit_range():
  config = config_lib.load(EIGHT_BIT, GAUSSIAN)
  samples = _samples(config, _state(config))
  assert samples.dtype == jnp.float32
  assert 0.0 <= float(samples.min()) <= float(samples.max()) <= 1.0
  # k/255, so images.to_uint8 (·255, round) gives back the sampled bin k exactly.
  np.testing.assert_allclose(samples * 255, jnp.round(samples * 255), atol=1e-4)


def test_gaussian_evaluation_dequantises_bin_centres_afresh():
  config = config_lib.load(EIGHT_BIT, GAUSSIAN)
  k = jax.random.randint(jax.random.PRNGKey(0), (4, 28, 28, 1), 0, 256)
  centres = (k + 0.5) / 256.0  # What input_pipeline.eval_dataset gives with dequantize.
  x, target = vae_bounds.inputs(config, centres, jax.random.PRNGKey(1))
  np.testing.assert_array_equal(jnp.floor(x * 256.0), k)
  assert float(jnp.std(x * 256.0 - k)) > 0.2  # Uniform noise (std 0.29), not 0.5 everywhere.
  assert x is target


@pytest.mark.parametrize("overrides,message", [
    ({"model.likelihood": "logistic_mixture", "data.normalize": "unit"},
     "logistic_mixture likelihood needs data.normalize='integer'"),
    ({"model.likelihood": "gaussian", "data.normalize": "unit"},
     "gaussian likelihood needs data.normalize='unit' and data.dequantize=True"),
    ({"model.likelihood": "bernoulli", "data.normalize": "integer"},
     "bernoulli likelihood needs data.normalize='unit'"),
    ({"model.likelihood": "poisson"}, "likelihood='poisson'"),
    ({"vae.train_k": "4", "vae.beta": "2.0"}, "vae.train_k=4 trains the IWAE bound"),
    ({"vae.train_k": "0"}, "vae.train_k=0"),
    ({"vae.free_bits": "-1.0"}, "vae.free_bits=-1.0"),
])
def test_inconsistent_configs_are_one_line_user_errors(overrides, message):
  config = config_lib.load(EIGHT_BIT, overrides)
  with pytest.raises(UserError, match=message) as error:
    vae.build_model(config)
  assert "\n" not in str(error.value)


def test_provenance_states_the_data_convention_objective_and_k():
  described = vae.provenance(config_lib.load(BINARY, {}))
  assert described["likelihood"] == "bernoulli" and "binarised" in described["data_convention"]
  assert described["train_objective"] == "ELBO" and described["train_k"] == 1
  config = config_lib.load(EIGHT_BIT, {"vae.beta": "4.0", "vae.kl_warmup_steps": "50"})
  described = vae.provenance(config)
  assert described["iwae_k"] == config.evaluation.iwae_k
  assert "discretised mixture of 2 logistics" in described["data_convention"]
  assert "no dequantisation" in described["data_convention"]
  assert described["train_objective"] == "reconstruction + β·KL"
  assert described["train_beta"] == 4.0 and described["train_kl_warmup_steps"] == 50
  described = vae.provenance(config_lib.load(EIGHT_BIT, {**GAUSSIAN, "vae.train_k": "5"}))
  assert "dequantised" in described["data_convention"] and "ln 256" in described["data_convention"]
  assert described["train_objective"] == "IWAE-5 bound"
  described = vae.provenance(config_lib.load(EIGHT_BIT, {"model.likelihood": "categorical"}))
  assert "256-way" in described["data_convention"]


def test_configs_saved_before_the_objective_knobs_load_with_defaults():
  config = config_lib.load(BINARY, {})
  config.unlock()
  del config["vae"]
  assert vae.options(config) == vae.default_options()


def test_reconstructions_decode_the_posterior_mean():
  config = config_lib.load(BINARY, {})
  model = vae.build_model(config)

  @jax.jit
  def reconstructed_and_expected(state):
    image = jax.random.uniform(jax.random.PRNGKey(1), (3, 28, 28, 1))
    rng = jax.random.PRNGKey(2)
    recon = vae.reconstruct(config, state, image, rng)
    input_rng, _ = jax.random.split(rng)
    x, _ = vae_bounds.inputs(config, image, input_rng)
    mean, _ = model.apply({"params": state.params}, x, method=model.encode)
    return recon, jax.nn.sigmoid(model.apply({"params": state.params}, mean,
                                             method=model.decode))
  recon, expected = reconstructed_and_expected(_loaded_state(BINARY))
  np.testing.assert_allclose(recon, expected, rtol=1e-5, atol=1e-6)


def test_traversal_rows_move_one_latent_dimension_each():
  config = config_lib.load(BINARY, {})
  rng = jax.random.PRNGKey(3)
  traverse = lambda s, span: vae.traverse(config, s, rng, num_dims=3, steps=4, span=span)
  rows, still = map(np.asarray, jax.jit(lambda s: (
      traverse(s, 3.0).reshape(3, 4, 28, 28, 1), traverse(s, 0.0).reshape(3, 4, -1)))(
          _loaded_state(BINARY)))
  assert not np.allclose(rows[0, 0], rows[0, -1])  # Moving along the row changes the image.
  # Span 0: row d sets dimension d to 0 at every step, so a row repeats one image.
  np.testing.assert_allclose(still, np.broadcast_to(still[:, :1], still.shape), rtol=1e-6)
  # Rows for different dimensions differ at the same step.
  assert not np.allclose(rows[0, -1], rows[1, -1])


def test_uint8_conversion_round_trips():
  from jaxgen import images
  pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  for normalize in ("symmetric", "unit", "integer"):
    np.testing.assert_array_equal(
        images.to_uint8(images.from_uint8(pixels, normalize), normalize), pixels)


HVAE = "experiments/hvae_binarized_fashion_mnist.py:small"
VQVAE = "experiments/vqvae_fashion_mnist.py:small"


def test_hierarchical_iwae_is_below_its_elbo_and_tightens_with_k():
  config = config_lib.load(HVAE, {})
  images, rng = _binary_images(16), jax.random.PRNGKey(7)

  @jax.jit
  def bounds(p):
    nelbo = jnp.mean(vae.negative_elbo(config, p, images, rng)[0])
    nll = {k: jnp.mean(vae.negative_iwae(config, p, images, rng, k)) for k in (16, 128)}
    return nelbo, nll, vae_bounds.elbo_terms(config, p, images, rng)[1]
  nelbo, nll, kl_dims = jax.device_get(bounds(_loaded_state(HVAE).params))
  nelbo, nll = float(nelbo), {k: float(v) for k, v in nll.items()}
  # (That its log weights and its closed-form KLs describe the same densities is
  # tests/models/test_hvae.py's check.)
  assert nll[128] < nll[16] < nelbo
  # Its KL per dimension: z2's 4 then z1's 7·7·2, each ≥ 0.
  assert kl_dims.shape == (16, 4 + 7 * 7 * 2) and float(kl_dims.min()) >= 0.0


def test_vqvae_bound_is_reconstruction_plus_log_k_per_code_and_training_moves_the_codebook():
  config = config_lib.load(VQVAE, {})
  state = _loaded_state(VQVAE)
  batch = _random_batch(config, n=8)
  rng = jax.random.PRNGKey(2)
  (nelbo, recon, kl), iwae = jax.device_get(jax.jit(lambda s, x: (
      vae.negative_elbo(config, s.params, x, rng, s.model_state),
      vae.negative_iwae(config, s.params, x, rng, 64, s.model_state)))(state, batch["image"]))
  np.testing.assert_allclose(kl, 49 * math.log(16), rtol=1e-6)  # 7x7 codes, K = 16.
  np.testing.assert_allclose(nelbo, recon + kl, rtol=1e-6)
  # A deterministic posterior: IWAE-k is the ELBO whatever k.
  np.testing.assert_array_equal(iwae, nelbo)
  new_state, metrics = jax.jit(lambda s, b: vae.train_step(config, s, b))(state, batch)
  metrics = jax.device_get(metrics)
  assert 1.0 <= float(metrics["train/perplexity"]) <= 16.0
  assert 1 <= int(metrics["train/codes_used"]) <= 16 and float(metrics["train/commitment"]) > 0
  moved = jax.tree.map(lambda a, b: not np.allclose(a, b), state.model_state,
                       new_state.model_state)
  assert moved["batch_stats"]["quantizer"]["codebook"]
  # The loss is the bound plus the weighted commitment term.
  np.testing.assert_allclose(metrics["train/loss"], metrics["train/nelbo"]
                             + 0.25 * metrics["train/commitment"], rtol=1e-5)


def test_vqvae_rejects_iwae_training_and_traversals():
  with pytest.raises(UserError, match="deterministic"):
    vae.build_model(config_lib.load(VQVAE, {"vae.train_k": "4"}))
  config = config_lib.load(VQVAE, {})
  with pytest.raises(UserError, match="traversals need one Gaussian latent vector"):
    vae.traverse(config, _loaded_state(VQVAE), jax.random.PRNGKey(0), 2, 3)


@pytest.mark.parametrize("spec", [HVAE, VQVAE])
def test_reconstructions_of_every_model_have_the_image_shape(spec):
  config = config_lib.load(spec, {})
  batch = _random_batch(config, n=3)
  recon = jax.jit(lambda s, x: vae.reconstruct(config, s, x, jax.random.PRNGKey(1)))(
      _loaded_state(spec), batch["image"])
  assert recon.shape == batch["image"].shape


def _active_pixel_head(layers=2):
  """A small binary config with a pixel head whose parameters are perturbed (a fresh head's
  output layer is zero, which would make every head test pass vacuously), and its state
  with those parameters."""
  config = config_lib.load(BINARY, {"model.pixel_layers": str(layers)})
  state = _active_pixel_head_state(layers)
  return config, vae.build_model(config), {"params": state.params}, state


@functools.cache
def _active_pixel_head_state(layers):
  state = _loaded_state(BINARY, ("model.pixel_layers", str(layers)))

  @jax.jit
  def perturb(params):
    keys = iter(jax.random.split(jax.random.PRNGKey(7), len(jax.tree.leaves(params["head"]))))
    head = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(next(keys), p.shape),
                        params["head"])
    return dict(params, head=head)
  return state.replace(params=perturb(state.params))


def test_pixel_head_sampler_draws_what_the_parallel_head_scores():
  """The windowed raster-order sampler's logits equal `refine` on the image it drew: each
  window sees what the whole image shows its pixel (incl. the first rows, at the top)."""
  config, model, variables, state = _active_pixel_head()

  @jax.jit
  def drawn(variables):
    decoded = model.apply(variables, jax.random.PRNGKey(1), 2, method=model.sample_params)
    logits, bits = vae._draw_pixels(model, variables, decoded, jax.random.PRNGKey(2))
    parallel = model.apply(variables, bits, decoded, method=model.refine)
    z_rng, pixel_rng = jax.random.split(jax.random.PRNGKey(0))
    expected = vae._draw_pixels(model, variables, model.apply(
        variables, z_rng, 2, method=model.sample_params), pixel_rng)[0]
    return decoded, logits, bits, parallel, jax.nn.sigmoid(expected)
  decoded, logits, bits, parallel, expected = drawn(variables)
  assert set(np.unique(bits)) == {0.0, 1.0}
  np.testing.assert_allclose(logits, parallel, atol=1e-5)
  assert not np.allclose(parallel, decoded, atol=1e-3)  # The head is in play.
  # The drawn pixels are the image `sample` shows the probabilities of.
  shown = jax.jit(lambda s, r: vae.sample(config, s, r, 2))(state, jax.random.PRNGKey(0))
  np.testing.assert_allclose(shown, expected, atol=1e-6)


def test_pixel_head_counts_in_the_iwae_bound_and_a_closed_head_is_the_plain_model():
  """Every IWAE sample is scored through refine(x, decode(z)): with the head's output layer
  zeroed, the bound is exactly the factorised model's on the same parameters; open, it moves."""
  config, _, variables, _ = _active_pixel_head(1)
  plain = config_lib.load(BINARY, {})

  @jax.jit
  def bounds(params):
    image = jax.random.uniform(jax.random.PRNGKey(4), (3, 28, 28, 1))
    bound = lambda c, p: vae.negative_iwae(c, p, image, jax.random.PRNGKey(5), 4)
    head = dict(params["head"], MaskedConv_1=jax.tree.map(jnp.zeros_like,
                                                         params["head"]["MaskedConv_1"]))
    closed = dict(params, head=head)
    without = {name: value for name, value in params.items() if name != "head"}
    return bound(config, closed), bound(plain, without), bound(config, params)
  closed, without, open_ = bounds(variables["params"])
  np.testing.assert_allclose(closed, without, rtol=1e-6)
  assert not np.allclose(open_, without, rtol=1e-3)


def test_pixel_head_reconstructions_and_traversals_draw_through_the_head():
  """Reconstructions and traversals with a pixel head are each pixel's probability given a
  drawn past: in [0, 1], of the image's shape, and not the factorised decoder's mean."""
  config, model, _, state = _active_pixel_head()

  @jax.jit
  def reconstructed(state):
    image = jax.random.uniform(jax.random.PRNGKey(1), (3, 28, 28, 1))
    x, _ = vae_bounds.inputs(config, image, jax.random.split(jax.random.PRNGKey(2))[0])
    return (image, vae.reconstruct(config, state, image, jax.random.PRNGKey(2)),
            jax.nn.sigmoid(model.apply({"params": state.params}, x,
                                       method=model.reconstruct_params)))
  image, recon, mean = jax.device_get(reconstructed(state))
  assert recon.shape == image.shape and 0.0 <= float(recon.min()) <= float(recon.max()) <= 1.0
  assert not np.allclose(recon, mean, atol=1e-3)
  rows = np.asarray(jax.jit(lambda s: vae.traverse(config, s, jax.random.PRNGKey(3), 2, 3))(
      state))
  assert rows.shape == (6, 28, 28, 1) and 0.0 <= float(rows.min()) <= float(rows.max()) <= 1.0
