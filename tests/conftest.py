"""Suite-wide setup, applied before anything imports jax.

Four fake CPU devices make the multi-device tests run anywhere. A persistent compilation
cache (shared with the CLI subprocesses through the environment) keeps the many small
runs from recompiling the same steps: compiling dominates these tests on 2 cores.
"""

import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Optimisation level 0: the tests' tiny programs run fast anyway, and compiling them is most
# of the suite's time (a third less at level 0; see the Makefile).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 "
                      "--xla_backend_optimization_level=0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_ROOT, ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import contextlib
import fcntl
import json

import pytest


@contextlib.contextmanager
def _exclusive(path):
  """Holds an exclusive lock on PATH.lock: the suite's two workers build shared things once."""
  with open(f"{path}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    yield


@pytest.fixture
def cli(capsys):
  """`jaxgen ARGS` in this process, through the entry point's `main` (exit code, stdout and
  stderr as a subprocess gives them): several seconds of start-up cheaper per call, and
  compiled functions shared between calls."""
  import subprocess
  from jaxgen import main as jaxgen_main

  def run(*args):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
      jaxgen_main.main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_info.value.code, out, err)
  return run


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory):
  """A folder every worker of this run sees (xdist gives each worker its own basetemp
  below the run's): what is built in it is built once per run, not once per module."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _bundled_data(data_dir):
  from jaxgen import config as config_lib
  data = config_lib.base_config().data
  data.update(dict(name="fashion_mnist_small", data_dir=str(data_dir)))
  return data


@pytest.fixture(scope="session")
def data_dir(shared_tmp):
  """A TFDS data_dir with the bundled fashion_mnist_small prepared, once per run (about 5 s
  each time otherwise). Tests of preparation itself use folders of their own."""
  path = shared_tmp / "bundled_tfds"
  with _exclusive(path):
    if not (path / "done").exists():
      from jaxgen.data import datasets
      datasets.load_split(_bundled_data(path), "test")
      (path / "done").touch()
  return str(path)


@pytest.fixture(scope="session", autouse=True)
def _bundled_splits_decoded_once(shared_tmp):
  """Decodes each split of the shared bundled data once per worker instead of once per
  `train_and_evaluate` (1.7 s each, over a hundred runs). The arrays are made read-only so
  that a test that wrote into a shared split would fail rather than leak into others."""
  from jaxgen.data import datasets
  load_split, cache = datasets.load_split, {}
  shared = str(shared_tmp / "bundled_tfds")

  def cached(data, split, process_index=0, process_count=1):
    if data.name in ("folder", "prepared") or str(data.data_dir) != shared:
      return load_split(data, split, process_index, process_count)
    key = (json.dumps(data.to_dict(), sort_keys=True, default=str), split, process_index,
           process_count)
    if key not in cache:
      source = load_split(data, split, process_index, process_count)
      source.images.flags.writeable = source.labels.flags.writeable = False
      cache[key] = source
    return cache[key]

  datasets.load_split = cached
  yield
  datasets.load_split = load_split


@pytest.fixture(scope="session")
def feature_network(shared_tmp, data_dir):
  """(features root, params, test accuracy) of the in-domain classifier trained briefly
  (FEATURE_STEPS at FEATURE_BATCH) on the bundled data, saved as 'fashion_mnist_small':
  once per run for every test that needs a feature network."""
  from jaxgen.evaluators import features
  from tests.helpers import FEATURE_BATCH, FEATURE_STEPS
  root = shared_tmp / "features"
  with _exclusive(root):
    if not (root / "done").exists():
      data = _bundled_data(data_dir)
      data.normalize = "symmetric"
      params, accuracy = features.train_classifier(data, FEATURE_STEPS, FEATURE_BATCH,
                                                  seed=0)
      features.save(params, "fashion_mnist_small", str(root), dataset="fashion_mnist_small",
                    steps=FEATURE_STEPS, test_accuracy=accuracy)
      (root / "done").touch()
  params, info = features._read_verified("fashion_mnist_small", str(root))
  return str(root), params, info["test_accuracy"]


@pytest.fixture(scope="session")
def small_vqvae(shared_tmp, data_dir):
  """The workdir of a VQ-VAE (vqvae_fashion_mnist.py:small: 16 codes of 4 dimensions) trained
  3 steps, built once per run: the frozen autoencoder of the latent-diffusion and learned-prior
  tests, which only read it."""
  path = shared_tmp / "small_vqvae"
  with _exclusive(path):
    if not (path / "done").exists():
      from jaxgen import train
      from tests.helpers import small_config
      train.train_and_evaluate(small_config("experiments/vqvae_fashion_mnist.py", data_dir,
                                            total_steps=3), str(path / "run"))
      (path / "done").touch()
  return str(path / "run")


# The heaviest files first, by their cold-cache seconds (JAXGEN_COMPILE_REPORT, 2026-12-02);
# the others keep their order after them. With `--dist loadfile --no-loadscope-reorder`
# (the Makefile) the two workers take the longest files first and finish on short ones, so
# neither waits long for the other at the end: 546 s against 565 s for xdist's own order
# (by number of tests) in a replay of the measured times.
_HEAVY_FIRST = (
    "tests/families/test_diffusion_family.py", "tests/test_cli.py",
    "tests/families/test_vae_family.py", "tests/test_train.py",
    "tests/families/test_autoregressive_family.py", "tests/families/test_gan_family.py",
    "tests/test_multiprocess.py", "tests/test_accumulate.py", "tests/test_precision.py",
    "tests/models/test_pixelcnn.py")


def pytest_collection_modifyitems(config, items):
  del config
  rank = {path: i for i, path in enumerate(_HEAVY_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


# JAXGEN_COMPILE_REPORT=FILE: per test, the seconds XLA spent compiling (and how many
# programs), JAX spent tracing and lowering, and the wall time, one JSON line per test
# appended to FILE. For keeping `make test` in budget: compiling is most of it, and a test
# that runs many small eager ops shows up as many programs.
_REPORT = os.environ.get("JAXGEN_COMPILE_REPORT")
_costs = {}


def _listen(event, duration, **kwargs):
  del kwargs
  name = event.rsplit("/", 1)[-1]
  _costs[name] = _costs.get(name, 0.0) + duration
  _costs[name + "_count"] = _costs.get(name + "_count", 0) + 1


if _REPORT:
  from jax import monitoring
  monitoring.register_event_duration_secs_listener(_listen)

  @pytest.hookimpl(hookwrapper=True)
  def pytest_runtest_protocol(item, nextitem):
    import time
    _costs.clear()
    start = time.perf_counter()
    yield
    with open(_REPORT, "a") as f:
      f.write(json.dumps({"test": item.nodeid, "wall": time.perf_counter() - start,
                          **_costs}) + "\n")
