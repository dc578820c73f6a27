"""The training loop end to end: steps, outputs, device-count invariance, exact resume."""

import os

import jax
import numpy as np
import pytest

from jaxgen import train, warm_start
from tests.helpers import EXPERIMENTS, final_params, read_metrics, small_config


# The module's reference runs, each trained once on first use and shared by the tests below:
# name -> (the total_steps of each call, overrides). "four" runs on the :small mesh (all 4
# devices), "resumed" stops at 2 and is restarted, "one" runs on one device.
RUNS = {"four": ((4,), {"sample_every": 4}), "resumed": ((2, 4), {}),
        "one": ((4,), {"mesh.data": 1})}


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
  """run(experiment, name) -> the workdir of RUNS[name] of `experiment`."""
  workdirs = {}

  def get(experiment, name):
    if (experiment, name) not in workdirs:
      workdir = str(tmp_path_factory.mktemp(name))
      stops, overrides = RUNS[name]
      for total in stops:
        train.train_and_evaluate(small_config(experiment, data_dir, total_steps=total,
                                              **overrides), workdir)
      workdirs[experiment, name] = workdir
    return workdirs[experiment, name]

  return get


def _train_metrics(workdir):
  return [{k: v for k, v in r.items() if k.startswith("train/")} for r in read_metrics(workdir)]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_one_run_writes_metrics_samples_checkpoints(experiment, run):
  workdir = run(experiment, "four")
  records = read_metrics(workdir)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert all(np.isfinite(v) for r in records for v in r.values())
  assert os.path.exists(os.path.join(workdir, "samples", "step_00000004.png"))
  assert os.path.exists(os.path.join(workdir, "config.json"))
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1].endswith("4")
  assert os.listdir(os.path.join(workdir, "tb"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_resume_equals_uninterrupted_bit_for_bit(experiment, run):
  straight, resumed = run(experiment, "four"), run(experiment, "resumed")
  assert [r["step"] for r in read_metrics(resumed)] == [1, 2, 3, 4]
  jax.tree.map(np.testing.assert_array_equal, final_params(straight), final_params(resumed))
  assert _train_metrics(straight) == _train_metrics(resumed)


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_one_device_and_four_devices_agree(experiment, run):
  one, four = run(experiment, "one"), run(experiment, "four")
  for on_one, on_four in zip(_train_metrics(one), _train_metrics(four), strict=True):
    for key in on_one:
      np.testing.assert_allclose(on_one[key], on_four[key], rtol=2e-4, atol=1e-5, err_msg=key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5),
               final_params(one), final_params(four))


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_parameter_sharded_mesh_matches_data_parallel(data_dir, run, tmp_path):
  train.train_and_evaluate(small_config(EXPERIMENTS[0], data_dir, total_steps=4, **{
      "mesh.model": 2, "sharding.rules": "(('.*', 'fsdp'),)"}), str(tmp_path))
  # The 1-vs-4-device test's rtol: Adam scales a near-zero gradient to a full step, so
  # rounding in another reduction order moves a rare parameter by ~1e-3 of itself (1 of
  # 200,704, 5.9e-4, once the shuffle changed which rows the 4 steps see).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5),
               final_params(str(tmp_path)), final_params(run(EXPERIMENTS[0], "four")))


# Slow: the loop's 1-vs-4 agreement is the fast tier's for the VAE, the GAN and
# prepared data; the exact likelihood's sharded step is tests/test_accumulate.py's.
@pytest.mark.slow
@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
@pytest.mark.parametrize("experiment", ["experiments/vqvae_fashion_mnist.py",
                                        "experiments/gated_pixelcnn_fashion_mnist.py"])
def test_one_and_four_devices_evaluate_and_sample_alike(experiment, data_dir, tmp_path):
  """The VQ-VAE (state beside its parameters) and the autoregressive family through the
  loop: the same test NLL and, seed for seed, the same samples on 1 and 4 devices."""
  from jaxgen import inference
  results = []
  for devices in (1, 4):
    workdir = str(tmp_path / f"d{devices}")
    train.train_and_evaluate(small_config(experiment, data_dir, total_steps=2,
                                          **{"mesh.data": devices,
                                             "data.eval_split": "test[:512]"}), workdir)
    restored = inference.restore(workdir)
    metrics = inference.evaluate(*restored)
    samples = inference.sample_uint8(*restored, num=5, seed=3)
    np.testing.assert_array_equal(samples, inference.sample_uint8(*restored, num=5, seed=3))
    results.append((metrics, samples))
  (one, one_samples), (four, four_samples) = results
  assert one["eval/num_examples"] == four["eval/num_examples"] == 512
  nll = "eval/nll_nats" if "pixel" in experiment else "eval/nelbo_nats"
  np.testing.assert_allclose(one[nll], four[nll], rtol=1e-5)
  assert one_samples.shape == (5, 28, 28, 1) and one_samples.dtype == np.uint8
  np.testing.assert_array_equal(one_samples, four_samples)
  inference.write_samples(str(tmp_path / "grid.png"), one_samples)
  assert os.path.getsize(tmp_path / "grid.png") > 0


def test_init_from_starts_a_fresh_run_from_another_runs_parameters(data_dir, run, tmp_path):
  """Fine-tuning: step 0, a fresh optimizer, the source's latest parameters; once the new
  run has its own checkpoint, resuming continues it instead of starting over."""
  from jaxgen import checkpoint, families, sharding
  from jaxgen.errors import UserError
  experiment = EXPERIMENTS[0]
  source, tuned = run(experiment, "four"), str(tmp_path / "tuned")
  config = small_config(experiment, data_dir, total_steps=2, init_from=source)
  family, mesh = families.get(config.family), sharding.create_mesh(config.mesh)
  mngr = checkpoint.manager(str(tmp_path / "empty"), 1, async_save=False)
  state, _ = train.restore_or_init(config, family, mesh, mngr)
  _, init, _ = train.create_state_fns(config, family, mesh)
  fresh = init()
  assert int(state.step) == 0
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params),
               final_params(source))
  assert not np.allclose(*(jax.tree.leaves(p)[0] for p in (fresh.params, state.params)))
  jax.tree.map(np.testing.assert_array_equal, state.opt_state, fresh.opt_state)
  # Through the loop: one step from the carried parameters, then a resume to step 2.
  train.train_and_evaluate(small_config(experiment, data_dir, total_steps=1,
                                        init_from=source), tuned)
  train.train_and_evaluate(config, tuned)
  assert [r["step"] for r in read_metrics(tuned)] == [1, 2]
  assert checkpoint.read_config(tuned).init_from == source
  # A source that does not fit is refused before anything is written, naming what differs.
  with pytest.raises(UserError, match="do not fit this model"):
    train.train_and_evaluate(small_config(experiment, data_dir, total_steps=1,
                                          init_from=source, **{"model.features": 4}),
                             str(tmp_path / "wider"))
  assert not os.path.exists(tmp_path / "wider")
  with pytest.raises(UserError, match="holds no jaxgen run"):
    train.train_and_evaluate(small_config(experiment, data_dir, total_steps=1,
                                          init_from=str(tmp_path / "nothing")),
                             str(tmp_path / "other"))


@pytest.mark.slow  # init_from itself is the test above's.
def test_init_from_grows_a_model_by_new_parts_and_refuses_to_drop_any(data_dir, tmp_path):
  """A pixel head grown onto a trained VAE: the source's arrays carried, the head's new ones
  at the initialisation a fresh run would give them; the reverse would drop the head."""
  from jaxgen import checkpoint, families, sharding
  from jaxgen.errors import UserError
  experiment = "experiments/vae_binarized_fashion_mnist.py"
  source, headed = str(tmp_path / "source"), str(tmp_path / "headed")
  train.train_and_evaluate(small_config(experiment, data_dir, total_steps=1), source)
  config = small_config(experiment, data_dir, total_steps=1, init_from=source,
                        **{"model.pixel_layers": 1})
  new = warm_start.check(config, headed)
  assert new and all(name.startswith("params['head']") for name in new)
  family, mesh = families.get(config.family), sharding.create_mesh(config.mesh)
  mngr = checkpoint.manager(str(tmp_path / "empty"), 1, async_save=False)
  state = jax.device_get(train.restore_or_init(config, family, mesh, mngr)[0].params)
  fresh = jax.device_get(train.create_state_fns(config, family, mesh)[1]().params)
  carried = {name: value for name, value in state.items() if name != "head"}
  jax.tree.map(np.testing.assert_array_equal, carried, final_params(source))
  jax.tree.map(np.testing.assert_array_equal, state["head"], fresh["head"])
  train.train_and_evaluate(config, headed)
  with pytest.raises(UserError, match=r"params\['head'\].*there, missing here"):
    warm_start.check(small_config(experiment, data_dir, init_from=headed),
                          str(tmp_path / "dropped"))


def test_a_second_run_of_one_config_reuses_its_jitted_functions(data_dir):
  """A run started again in the same process (a resume, a notebook's second call) gets the
  jitted init and step it traced before, so it neither traces nor compiles them again;
  another config or mesh gets its own."""
  from jaxgen import families, sharding
  config = small_config(EXPERIMENTS[0], data_dir, total_steps=3)
  family, mesh = families.get(config.family), sharding.create_mesh(config.mesh)
  abstract, init, shardings = train.create_state_fns(config, family, mesh)
  again = train.create_state_fns(small_config(EXPERIMENTS[0], data_dir, total_steps=3),
                                 family, mesh)
  assert again[1] is init and again[0] is abstract
  step = train.compile_train_step(config, family, mesh, shardings)
  assert train.compile_train_step(config, family, mesh, shardings) is step
  longer = small_config(EXPERIMENTS[0], data_dir, total_steps=4)  # A schedule of its own.
  assert train.compile_train_step(longer, family, mesh, shardings) is not step
  one_device = sharding.create_mesh(small_config(EXPERIMENTS[0], data_dir, total_steps=3,
                                                 **{"mesh.data": 1}).mesh)
  assert train.create_state_fns(config, family, one_device)[1] is not init


def test_onednn_convolutions_train_and_resume_bit_for_bit(data_dir, run, tmp_path, monkeypatch):
  """The DCGAN on one device with oneDNN's convolutions (jaxgen/kernels): resumed equals
  uninterrupted bit for bit, and it trains as XLA's convolutions do, to float32 rounding."""
  monkeypatch.setenv("JAXGEN_CPU_CONV", "onednn")
  experiment = EXPERIMENTS[1]
  workdirs = {}
  for name, stops in (("straight", (4,)), ("resumed", (2, 4))):
    workdirs[name] = str(tmp_path / name)
    for total in stops:
      train.train_and_evaluate(small_config(experiment, data_dir, total_steps=total,
                                            **{"mesh.data": 1}), workdirs[name])
  straight, resumed = final_params(workdirs["straight"]), final_params(workdirs["resumed"])
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)
  assert _train_metrics(workdirs["straight"]) == _train_metrics(workdirs["resumed"])
  monkeypatch.setenv("JAXGEN_CPU_CONV", "auto")  # The shared "one" run is XLA's (4 devices).
  xla = final_params(run(experiment, "one"))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5), straight, xla)
  # Not the same program: oneDNN's sums round differently somewhere in 4 steps.
  assert any(not np.array_equal(a, b)
             for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(xla)))
