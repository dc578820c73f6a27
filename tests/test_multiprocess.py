"""Two processes × two CPU devices (jax.distributed on localhost), as on a multi-host pod.

Per-host data sharding means 2 processes draw different batches than 1 process, so
training is not compared number for number; evaluation over a whole split is, and must
agree up to the per-example noise draws (which follow the global batch layout).
"""

import os
import socket
import subprocess
import sys

import numpy as np

from jaxgen import inference
from tests.helpers import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAE = "experiments/vae_fashion_mnist.py"


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _two_processes(*args):
  port = _free_port()
  # Level 0 as in the Makefile: these tiny programs compile a third faster.
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2 "
         "--xla_backend_optimization_level=0"}
  procs = [subprocess.Popen(
      [sys.executable, "-m", "jaxgen", *args, "--distributed",
       f"--coordinator=127.0.0.1:{port}", "--num-processes=2", f"--process-id={i}"],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outputs = []
  for proc in procs:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    outputs.append(stdout)
  return outputs


def test_two_processes_train_and_evaluate_like_one(tmp_path, data_dir):
  """One launch of two processes trains 3 steps and evaluates at the end; one process
  evaluating the checkpoint they wrote gets the same bound. (The data_dir fixture has
  prepared the bundled dataset: the two processes never race to.) A quarter of the test
  split keeps the IWAE evaluations short."""
  multi = str(tmp_path / "multi")
  _two_processes("train", "--config", VAE + ":small", "--workdir", multi,
                 f"--config.data.data_dir={data_dir}", "--config.total_steps=3",
                 "--config.checkpoint_every=0", "--config.sample_every=3",
                 "--config.max_inflight_steps=0", "--config.eval_every=3",
                 "--config.data.eval_split=test[:512]")
  records = read_metrics(multi)
  assert [r["step"] for r in records] == [1, 2, 3, 3]  # Process 0 alone writes metrics.
  assert all(np.isfinite(r["train/loss"]) for r in records[:3])
  assert sorted(os.listdir(os.path.join(multi, "checkpoints")))[-1].endswith("3")
  assert os.listdir(os.path.join(multi, "samples")) == ["step_00000003.png"]
  sharded = records[-1]
  expected = inference.evaluate(*inference.restore(multi))
  assert expected["eval/iwae8_nll_nats"] < expected["eval/nelbo_nats"]  # The tighter bound.
  assert sharded["eval/num_examples"] == expected["eval/num_examples"] == 512
  np.testing.assert_allclose(sharded["eval/nelbo_nats"], expected["eval/nelbo_nats"], rtol=1e-2)
