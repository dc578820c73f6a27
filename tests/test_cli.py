"""The `jaxgen` command as other tools drive it: exit codes, one-line errors, outputs."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from jaxgen import checkpoint, train
from jaxgen import main as jaxgen_main
from tests.helpers import final_params, read_metrics, small_config

VAE = "experiments/vae_fashion_mnist.py:small"
GAN = "experiments/dcgan_fashion_mnist.py:small"


def jaxgen(*args, timeout=300, env=None):
  """`python -m jaxgen ARGS` in a fresh process: what only a process shows (native library
  logs at start-up) is tested through this."""
  return subprocess.run([sys.executable, "-m", "jaxgen", *args], capture_output=True,
                        text=True, timeout=timeout, cwd=os.path.dirname(os.path.dirname(__file__)),
                        env=env)


def user_env(**extra):
  """The environment of a user's shell: without the log level the suite sets for itself, and
  with TSL's verbose logging on, standing in for platforms that log more at start-up."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "JAXGEN_VERBOSE")}
  return dict(env, TF_CPP_MAX_VLOG_LEVEL="1", **extra)


def assert_one_line_error(result, *fragments):
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert "Traceback" not in result.stderr, result.stderr
  assert lines[-1].startswith("jaxgen: error:"), result.stderr
  for fragment in fragments:
    assert fragment in lines[-1], lines[-1]


def assert_only_error_line(result, *fragments):
  """Exit code 2 and stderr exactly one `jaxgen: error:` line: no library log before it."""
  assert_one_line_error(result, *fragments)
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_typo_in_config_key(tmp_path, cli):
  workdir = tmp_path / "run"
  result = cli("train", "--config", VAE, "--workdir", str(workdir), "--config.total_step=3")
  assert_one_line_error(result, "unknown config key 'total_step'", "total_steps")
  assert not workdir.exists()


def test_missing_config_file(tmp_path, cli):
  result = cli("train", "--config", "experiments/nope.py", "--workdir", str(tmp_path / "r"))
  assert_one_line_error(result, "experiments/nope.py", "does not exist")


def test_missing_dataset_writes_nothing(tmp_path, data_dir, cli):
  workdir = tmp_path / "run"
  result = cli("train", "--config", VAE, "--workdir", str(workdir),
               "--config.data.name=no_such_dataset_xyz", f"--config.data.data_dir={data_dir}")
  assert_one_line_error(result, "no_such_dataset_xyz")
  assert not workdir.exists()


def test_unwritable_workdir(data_dir, cli):
  result = cli("train", "--config", VAE, "--workdir", "/etc/hostname/run",
               f"--config.data.data_dir={data_dir}")
  assert_one_line_error(result, "/etc/hostname/run", "not writable")


def test_sample_and_evaluate_need_a_run(tmp_path, cli):
  # In a fresh process with a user's environment: not one line of library log before it.
  assert_only_error_line(jaxgen("sample", "--workdir", str(tmp_path), "--num", "4", "--out",
                                str(tmp_path / "s.npz"), env=user_env()), "no jaxgen run")
  assert_one_line_error(cli("evaluate", "--workdir", str(tmp_path)), "no jaxgen run")
  assert_one_line_error(cli("evaluate", "--workdir", str(tmp_path), "--config.total_steps=3"),
                        "--config.sampling.*, --config.evaluation.* and --config.eval_batch_size "
                        "only", "total_steps")


def test_sample_takes_sampling_overrides_only(tmp_path, cli):
  result = cli("sample", "--workdir", str(tmp_path), "--num", "4", "--out",
                  str(tmp_path / "s.npz"), "--config.model.x=1")
  assert_only_error_line(result, "`jaxgen sample` takes --config.sampling.* only", "model.x")
  assert_only_error_line(cli("train-features", "--config.sampling.t=1"),
                         "`jaxgen train`, `sample`, `upscale` and `evaluate` only")


def test_bad_arguments_are_one_line_too(cli):
  assert_only_error_line(cli("trian"), "invalid choice: 'trian'", "jaxgen -h")
  assert_only_error_line(cli("sample", "--num", "3"), "--workdir", "jaxgen sample -h")


@pytest.mark.slow  # A second fresh process: the one above without --verbose.
def test_verbose_brings_the_library_logs_back(tmp_path, cli, monkeypatch):
  args = ("train", "--config", VAE, "--workdir", str(tmp_path / "run"),
          "--config.data.name=no_such_dataset_xyz")
  result = jaxgen(*args, "--verbose", env=user_env())
  assert_one_line_error(result, "no_such_dataset_xyz")
  assert "INFO:absl:" in result.stderr, result.stderr  # TFDS says where it looked.
  # JAXGEN_VERBOSE=1 is the same switch (in process: what it turns on is tested above).
  switched = []
  monkeypatch.setattr(jaxgen_main, "_configure_logging", switched.append)
  monkeypatch.setenv("JAXGEN_VERBOSE", "1")
  cli(*args)
  monkeypatch.setenv("JAXGEN_VERBOSE", "0")
  cli(*args)
  assert switched == [True, False]


def test_train_sample_evaluate(tmp_path, data_dir, monkeypatch, cli):
  features_dir = str(tmp_path / "features")
  monkeypatch.setenv("JAXGEN_FEATURES_DIR", features_dir)
  workdir = str(tmp_path / "gan")
  trained = cli("train-features", "--dataset", "fashion_mnist_small", "--steps", "15",
                "--batch-size", "32", "--data-dir", data_dir)
  assert trained.returncode == 0, trained.stderr
  assert json.loads(trained.stdout.strip().splitlines()[-1])["test_accuracy"] > 0.3
  # In process: what only a fresh process shows is test_a_fresh_process_logs_only_its_error's.
  trained = cli("train", "--config", GAN, "--workdir", workdir,
                f"--config.data.data_dir={data_dir}")
  assert trained.returncode == 0, trained.stderr
  assert_only_error_line(cli("sample", "--workdir", workdir, "--num", "2", "--out",
                             f"{workdir}/t.npz", "--config.sampling.nonexistent=1"),
                         "unknown config key 'sampling.nonexistent'", "valid keys under 'sampling'")
  result = cli("sample", "--workdir", workdir, "--num", "5", "--out", f"{workdir}/s.npz",
               "--seed", "3", "--config.sampling.truncation=0.5")
  assert result.returncode == 0, result.stderr
  knobs = "(sampling: batch_stats=running, truncation=0.5, weights=ema)"
  assert knobs in result.stderr.splitlines()[-1], result.stderr
  images = np.load(f"{workdir}/s.npz")["images"]
  assert images.shape == (5, 28, 28, 1) and images.dtype == np.uint8
  # Seed determinism and PNG grids: in process, tests/test_train.py.
  monkeypatch.setenv("JAXGEN_FEATURES_DIR", str(tmp_path / "empty"))
  assert_one_line_error(cli("evaluate", "--workdir", workdir), "jaxgen train-features")
  monkeypatch.setenv("JAXGEN_FEATURES_DIR", features_dir)
  result = cli("evaluate", "--workdir", workdir, "--config.evaluation.num_samples=150",
               "--config.sampling.truncation=0.7")
  assert result.returncode == 0, result.stderr
  metrics = json.loads(result.stdout)
  # The sampler's knobs of this call, recorded with both kinds of metric; not saved.
  assert metrics["eval/provenance/sampling/truncation"] == 0.7
  assert metrics["eval/sample_metrics/sampling/truncation"] == 0.7
  assert checkpoint.read_config(workdir).sampling.truncation == 0.0
  assert metrics["step"] == 2 and metrics["eval/num_examples"] == 2000
  assert metrics["eval/split"] == "fashion_mnist_small/test"
  assert metrics["eval/provenance/generator"] == "ema"
  assert np.isfinite(metrics["eval/d_real_score"])
  assert metrics["eval/provenance/loss"] == "non_saturating"
  # An untrained generator is far from the data: large FID, low precision; with provenance.
  assert metrics["eval/fid"] > 1.0 and 0.0 <= metrics["eval/precision"] <= 1.0
  assert metrics["eval/sample_metrics/num_samples"] == 150  # The override, not the run's 200.
  assert checkpoint.read_config(workdir).evaluation.num_samples == 200  # And not saved.
  assert metrics["eval/sample_metrics/reference_split"] == "fashion_mnist_small/test"
  assert len(metrics["eval/sample_metrics/feature_network_sha256"]) == 64


def test_sigterm_checkpoints_and_rerun_resumes_exactly(tmp_path, data_dir, cli, monkeypatch,
                                                       caplog):
  """SIGTERM mid-run: a checkpoint, exit code 128 + 15, and a rerun that ends where the
  uninterrupted run does, bit for bit. In process, the signal sent from the loop itself as
  step 5 is logged, so the step it lands on is known (a second process only added its
  start-up; what only a fresh process shows is test_a_fresh_process_logs_only_its_error's)."""
  from jaxgen import reporting
  steps = ["--config.total_steps=40", "--config.checkpoint_every=0", "--config.log_every=1",
           "--config.sample_every=0", "--config.max_inflight_steps=0",
           f"--config.data.data_dir={data_dir}"]
  straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
  assert cli("train", "--config", VAE, "--workdir", straight, *steps).returncode == 0
  write = reporting.MetricsWriter.write

  def write_then_signal(self, step, metrics):
    write(self, step, metrics)
    if step == 5:
      os.kill(os.getpid(), signal.SIGTERM)
  monkeypatch.setattr(reporting.MetricsWriter, "write", write_then_signal)
  stopped = cli("train", "--config", VAE, "--workdir", killed, *steps)
  monkeypatch.undo()
  assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
  assert "signal 15: saved a checkpoint at step 5" in caplog.text
  assert read_metrics(killed)[-1]["step"] == 5
  assert os.listdir(f"{killed}/checkpoints") == ["5"]
  assert cli("train", "--config", VAE, "--workdir", killed, *steps).returncode == 0
  import jax
  jax.tree.map(np.testing.assert_array_equal, final_params(straight), final_params(killed))


def test_a_fresh_process_logs_only_its_error(tmp_path):
  """A fresh process, as a user's shell starts it (TSL's verbose logging on): a run that
  starts JAX's devices and imports TensorFlow before it fails on the dataset puts its error
  line on stderr and nothing else, no native library log at start-up."""
  assert_only_error_line(jaxgen("train", "--config", VAE, "--workdir", str(tmp_path / "run"),
                                "--config.data.name=no_such_dataset_xyz", env=user_env()),
                         "no_such_dataset_xyz")


def test_conditional_gan_samples_a_class_and_interpolates(tmp_path, data_dir, cli):
  workdir = str(tmp_path / "cgan")
  train.train_and_evaluate(small_config("experiments/cdcgan_fashion_mnist.py", data_dir,
                                        total_steps=1), workdir)
  assert cli("sample", "--workdir", workdir, "--num", "3", "--label", "7", "--out",
             f"{workdir}/s.npz").returncode == 0
  assert np.load(f"{workdir}/s.npz")["images"].shape == (3, 28, 28, 1)
  # By name: class 7 is Fashion-MNIST's 'Sneaker'; the same samples as --label 7.
  assert cli("sample", "--workdir", workdir, "--num", "3", "--prompt", "SNEAKER", "--out",
             f"{workdir}/p.npz").returncode == 0
  np.testing.assert_array_equal(np.load(f"{workdir}/p.npz")["images"],
                                np.load(f"{workdir}/s.npz")["images"])
  assert_one_line_error(cli("sample", "--workdir", workdir, "--prompt", "boots", "--out",
                            f"{workdir}/x.png"), "'boots' is not a class name", "'Ankle boot'")
  os.remove(f"{workdir}/labels.json")  # As runs trained before it was written: metadata.
  assert cli("sample", "--workdir", workdir, "--num", "3", "--prompt", "sneaker", "--out",
             f"{workdir}/p.npz").returncode == 0
  result = cli("sample", "--workdir", workdir, "--num", "2", "--interpolate", "spherical",
               "--steps", "4", "--out", f"{workdir}/strips.png")
  assert result.returncode == 0, result.stderr
  from PIL import Image
  # 2 strips x 4 images of 28 px with 2 px padding: 62 x 122.
  assert Image.open(f"{workdir}/strips.png").size == (4 * 30 + 2, 2 * 30 + 2)


def _images(folder, count, **kinds):
  """Writes COUNT 8x8 grey PNGs into each FOLDER/<split>/<label>/ given as kinds[label] =
  splits."""
  from PIL import Image
  rng = np.random.default_rng(0)
  for label, splits in kinds.items():
    for split in splits:
      os.makedirs(folder / split / label, exist_ok=True)
      for i in range(count):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
            folder / split / label / f"{i}.png")
  return str(folder)


@pytest.mark.parametrize("overrides,fragments", [
    (["--config.batch_size=abc"], ["--config.batch_size"]),
    (["--config.batch_size=0"], ["batch_size=0"]),
    (["--config.total_steps=-5"], ["total_steps=-5"]),
    (["--config.optim.learning_rate=-1"], ["optim.learning_rate=-1", "positive finite"]),
    (["--config.ema_decay=1.5"], ["ema_decay=1.5"]),
    (["--config.keep_checkpoints=0"], ["keep_checkpoints=0"]),
    (["--config.batch_size=6"], ["batch_size=6 is not divisible", "4 devices"]),
    (["--config.data.image_size=32"], ["(32, 32, 1)", "model expects (28, 28, 1)"]),
    (["--config.batch_size=100000"], ["batch_size=100000 is larger than the training split"]),
    (["--config.data.name=folder", "--config.data.image_size=28"], ["data.folder=''"]),
    (["--config.data.name=folder", "--config.data.image_size=28", "--config.data.folder=EMPTY"],
     ["EMPTY"]),
    (["--config.data.exclude=/no/such/list.txt"], ["data.exclude='/no/such/list.txt'"]),
])
def test_bad_inputs_are_one_line_errors_that_write_nothing(overrides, fragments, tmp_path,
                                                          data_dir, cli):
  """Wrong types, zero, negative and absurd values, a batch the devices cannot split, an
  image size the model does not take, a missing or empty folder: each one line naming the
  value, before the workdir exists."""
  empty = tmp_path / "empty"
  os.makedirs(empty / "train")
  overrides = [o.replace("EMPTY", str(empty)) for o in overrides]
  workdir = tmp_path / "run"
  result = cli("train", "--config", VAE, "--workdir", str(workdir),
               f"--config.data.data_dir={data_dir}", *overrides)
  assert_one_line_error(result, *(f.replace("EMPTY", str(empty)) for f in fragments))
  assert not workdir.exists()


def test_odd_images_are_converted_as_documented(tmp_path):
  """16-bit PNGs scaled to 8 bits, RGBA without its alpha, CMYK JPEGs to RGB, palette
  images expanded, a 10,000 x 10,000 image resized like any other, a text file named .png
  skipped and counted, a folder of one class read as one class."""
  from PIL import Image
  from jaxgen import config as config_lib
  from jaxgen.data import datasets
  root = _images(tmp_path / "odd", 4, only=("train",))
  folder = tmp_path / "odd" / "train" / "only"
  grey = (np.add.outer(np.arange(8), np.arange(8)) * 16).astype(np.uint8)  # Smooth: JPEG-safe.
  Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "deep.png")
  Image.fromarray(np.dstack([grey] * 3 + [np.zeros_like(grey)]), "RGBA").save(
      folder / "alpha.png")
  Image.fromarray(np.dstack([grey] * 3)).convert("CMYK").save(folder / "cmyk.jpg")
  Image.fromarray(grey).convert("P").save(folder / "palette.png")
  Image.new("L", (10_000, 10_000), 128).save(folder / "huge.png")
  (folder / "notes.png").write_text("not an image")
  data = config_lib.base_config().data
  data.update(dict(name="folder", folder=root, image_size=8, channels=3))
  source = datasets.load_split(data, "train")
  assert source.images.shape == (4 + 5, 8, 8, 3) and source.images.dtype == np.uint8
  assert source.num_dropped == 1 and source.num_classes == 1
  as_rgb = np.dstack([grey] * 3).astype(int)
  close = [np.abs(image.astype(int) - as_rgb).max() for image in source.images]
  assert sum(c <= 1 for c in close) >= 3  # 16-bit, RGBA and palette: the same picture.
  assert sorted(close)[3] <= 12  # The CMYK JPEG: the picture, up to JPEG's loss.
  assert any((image == 128).all() for image in source.images)  # The huge one, resized.
