"""The family seam: the protocol every family meets, the one state path, sampling options,
training-time preview settings, and an import graph without cycles."""

import ast
import os
import types

import jax
import ml_collections
import numpy as np
import optax
import pytest

from jaxgen import conditioning, config as config_lib, families, train_state
from jaxgen.families import autoregressive as ar, gan, protocol
from jaxgen.models import likelihoods
from tests import helpers

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name", families.names())
def test_every_family_meets_the_protocol_and_declares_what_it_can_do(name):
  family = families.get(name)  # Runs protocol.check.
  for capability in protocol.CAPABILITIES:
    assert families.supports(family, capability) == (capability in family.CAPABILITIES)
  assert isinstance(family.sampling_options(), ml_collections.ConfigDict)


def test_capabilities_must_match_their_functions():
  module = types.SimpleNamespace(**{f: lambda *a: None for f in protocol._functions(
      protocol.Family)})
  module.CAPABILITIES = frozenset({"reconstruct"})
  with pytest.raises(TypeError, match="'reconstruct' is declared but its functions"):
    protocol.check("fake", module)
  module.CAPABILITIES, module.traverse = frozenset(), lambda *a: None
  with pytest.raises(TypeError, match="'traverse' is not declared but its functions"):
    protocol.check("fake", module)
  del module.sample
  with pytest.raises(TypeError, match="lacks.*sample"):
    protocol.check("fake", module)


def _tiny_config(ema_decay=0.9):
  return ml_collections.ConfigDict(dict(total_steps=10, ema_decay=ema_decay, optim=dict(
      generator=_adam(0.1), discriminator=_adam(0.2))))


def _adam(lr):
  return dict(name="adam", learning_rate=lr, b1=0.9, b2=0.999, weight_decay=0.0,
              schedule="constant", warmup_steps=0, grad_clip=0.0)


# Eager, every jax op compiles a program of its own (50-80 ms each on 2 cores): the tests
# below jit their state, family and likelihood calls, and compare in numpy.
def test_apply_gradients_is_one_optimizer_step_with_ema_and_metrics():
  config = ml_collections.ConfigDict(dict(total_steps=10, ema_decay=0.9, optim=_adam(0.1)))
  params = {"w": np.array([1.0, -2.0], np.float32)}
  grads = {"w": np.array([3.0, 4.0], np.float32)}

  @jax.jit
  def step_and_reference(params, grads):
    state = train_state.create_state(config, params, jax.random.PRNGKey(0))
    new, metrics = train_state.apply_gradients(config, state, grads)
    tx = optax.adam(0.1)
    updates, _ = tx.update(grads, tx.init(params), params)
    return (state, new, metrics, optax.apply_updates(params, updates),
            train_state.ema_decay_at(0.9, 0))
  state, new, metrics, expected, d = step_and_reference(params, grads)
  assert int(state.step) == 0 and set(state.ema_params) == {"w"}
  np.testing.assert_allclose(new.params["w"], expected["w"], rtol=1e-6)
  d = float(d)  # Warm-up: 1/10 at step 0.
  np.testing.assert_allclose(new.ema_params["w"], d * params["w"] + (1 - d) * expected["w"],
                             rtol=1e-6)
  assert int(new.step) == 1
  np.testing.assert_allclose(metrics["grad_norm"], 5.0, rtol=1e-6)
  np.testing.assert_allclose(metrics["learning_rate"], 0.1, rtol=1e-6)


def test_apply_gradients_per_network_advances_only_when_asked():
  config = _tiny_config()
  ones = lambda n: np.ones(n, np.float32)
  params = {"generator": {"w": ones(2)}, "discriminator": {"w": ones(3)}}
  create = lambda config: jax.jit(lambda p: train_state.create_state(
      config, p, jax.random.PRNGKey(0), model_state={"generator": {},
                                                     "discriminator": {"stats": ones(1)}},
      networks=("generator", "discriminator"), ema_networks=("generator",)))(params)
  state = create(config)
  assert set(state.ema_params) == {"generator"}
  d_state, d_metrics = jax.jit(lambda s: train_state.apply_gradients(
      config, s, {"w": ones(3)}, network="discriminator",
      model_state={"stats": np.zeros(1, np.float32)}, advance=False))(state)
  assert int(d_state.step) == 0
  np.testing.assert_array_equal(d_state.params["generator"]["w"], params["generator"]["w"])
  assert not np.allclose(d_state.params["discriminator"]["w"], 1.0)
  assert set(d_state.model_state["discriminator"]) == {"stats"}
  np.testing.assert_allclose(d_metrics["learning_rate"], 0.2, rtol=1e-6)
  g_state, _ = jax.jit(lambda s: train_state.apply_gradients(config, s, {"w": ones(2)},
                                                             network="generator"))(d_state)
  assert int(g_state.step) == 1
  assert not np.allclose(g_state.ema_params["generator"]["w"], 1.0)
  np.testing.assert_array_equal(g_state.params["discriminator"]["w"],
                                d_state.params["discriminator"]["w"])
  # No EMA kept: every network samples with its live parameters.
  off = jax.jit(lambda p: train_state.create_state(
      _tiny_config(ema_decay=0.0), p, jax.random.PRNGKey(0),
      networks=("generator", "discriminator"), ema_networks=("generator",)))(params)
  assert off.ema_params == {}
  assert train_state.sampling_params(off, "generator") is off.params["generator"]


def test_temperature_sharpens_categorical_and_mixture_draws():
  logits = np.log(np.array([[0.5, 0.3, 0.2]], np.float32))
  assert likelihoods.temper("categorical", logits, 1, 1.0) is logits
  cold = np.asarray(jax.jit(lambda l: jax.nn.softmax(likelihoods.temper("categorical", l, 1,
                                                                        0.5)))(logits))
  expected = np.array([0.25, 0.09, 0.04]) / 0.38  # p^(1/t), renormalised.
  np.testing.assert_allclose(cold[0], expected, rtol=1e-5)
  # Logistic mixture (K=2, grey): component logits / t, log-scales + log t, means unchanged.
  params = np.arange(6, dtype=np.float32)[None, None, None] * np.float32(0.1)
  tempered = np.asarray(jax.jit(lambda p: likelihoods.temper("logistic_mixture", p, 1, 2.0))(
      params))
  np.testing.assert_allclose(tempered[..., :2], params[..., :2] / 2.0, rtol=1e-6)
  np.testing.assert_allclose(tempered[..., 2:4], params[..., 2:4], rtol=1e-6)
  np.testing.assert_allclose(tempered[..., 4:], params[..., 4:] + np.log(2.0), rtol=1e-6)
  with pytest.raises(Exception, match="sampling.temperature=0"):
    likelihoods.temper("categorical", logits, 1, 0.0)


def test_autoregressive_temperature_reaches_the_sampler():
  config = config_lib.load("experiments/pixelcnn_fashion_mnist.py:small", {})
  with config.unlocked():
    config.model.image_size = 3
  state = helpers.init_state(ar, config)
  rng = jax.random.PRNGKey(1)
  # Traced anew at each call: with config's temperature at that time.
  draw = lambda: jax.jit(lambda s: ar.sample_with_log_probs(config, s, rng, 2))(state)
  default, default_lp = draw()
  with config.unlocked():
    config.sampling.temperature = 0.05  # Near-greedy: every draw is close to certain.
  cold, cold_lp = draw()
  assert not np.array_equal(default, cold)
  assert np.all(np.asarray(cold_lp) > np.asarray(default_lp))


def test_gan_truncation_bounds_the_sampling_latents_only():
  @jax.jit
  def truncated_plain_and_normal(rng):
    return (gan._latents(rng, 256, 8, truncation=0.5), gan._latents(rng, 4, 8),
            jax.random.normal(rng, (4, 8)))
  z, plain, normal = map(np.asarray, truncated_plain_and_normal(jax.random.PRNGKey(0)))
  assert float(np.max(np.abs(z))) <= 0.5
  np.testing.assert_array_equal(plain, normal)
  config = config_lib.load("experiments/dcgan_fashion_mnist.py:small",
                           {"sampling.truncation": "0.5"})
  state = helpers.init_state(gan, config)
  rng = jax.random.PRNGKey(3)

  @jax.jit
  def sampled_and_generated(state):
    z = gan._latents(rng, 4, gan.latent_dim(config), 0.5)
    return gan.sample(config, state, rng, 4), gan.generate_from(config, state, z)
  np.testing.assert_allclose(*sampled_and_generated(state), rtol=1e-6)
  with pytest.raises(Exception, match="sampling.truncation=-1"):
    gan._latents(rng, 4, 8, -1.0)


def test_preview_settings_apply_to_a_copy_and_only_where_declared():
  vae_config = config_lib.load("experiments/vae_fashion_mnist.py:small",
                               {"evaluation.iwae_k_during_training": "2"})
  preview = families.preview_config(families.get("vae"), vae_config)
  assert preview.evaluation.iwae_k == 2 and vae_config.evaluation.iwae_k == 8
  gan_config = config_lib.load("experiments/dcgan_fashion_mnist.py:small", {})
  assert families.preview_config(families.get("gan"), gan_config) is gan_config


def test_old_runs_get_the_sampling_defaults_and_provenance_names_them():
  config = config_lib.load("experiments/pixelcnn_fashion_mnist.py:small", {})
  with config.unlocked():
    config.sampling = ml_collections.ConfigDict()  # As saved before config.sampling existed.
  config.lock()
  filled = families.with_sampling_defaults(config)
  assert filled.sampling.temperature == 1.0
  assert families.sampling_provenance(filled) == {"sampling/temperature": 1.0}


def test_conditioning_is_one_dict_for_every_family():
  config = config_lib.load("experiments/cdcgan_fashion_mnist.py:small", {})
  cond = conditioning.for_sampling(config, 4, 3)
  np.testing.assert_array_equal(cond["label"], [3, 3, 3, 3])
  np.testing.assert_array_equal(conditioning.labels(config, None, 12), np.arange(12) % 10)
  unconditional = config_lib.load("experiments/dcgan_fashion_mnist.py:small", {})
  assert conditioning.for_sampling(unconditional, 4) is None


def _module_imports(path, package):
  """Modules `path` imports at module level (function-local imports run later: no cycle)."""
  tree = ast.parse(open(path).read())
  found = set()
  for node in tree.body:
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      base = node.module if node.level == 0 else package
      found.add(base)
      found.update(f"{base}.{alias.name}" for alias in node.names)
  return {name for name in found if name.startswith("jaxgen")}


def test_no_import_cycles_in_jaxgen():
  graph = {}
  for folder, _, files in os.walk(os.path.join(_ROOT, "jaxgen")):
    for file in files:
      if not file.endswith(".py"):
        continue
      path = os.path.join(folder, file)
      module = os.path.relpath(path, _ROOT)[:-3].replace(os.sep, ".")
      package = module if file == "__init__.py" else module.rpartition(".")[0]
      graph[module.removesuffix(".__init__")] = _module_imports(path, package)
  graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
  state, cycles = {}, []

  def visit(node, path):
    state[node] = "open"
    for dep in sorted(graph[node]):
      if state.get(dep) == "open":
        cycles.append(path[path.index(dep):] + [dep])
      elif dep not in state:
        visit(dep, path + [dep])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, cycles
