"""The one training loop every family runs through.

Setup follows big_vision's order: eval_shape → shardings → jitted init → restore-or-init →
jitted step with the state donated. The host runs at most `config.max_inflight_steps`
ahead of the device, so XLA's queues stay bounded (unbounded run-ahead deadlocks CPU
collectives with many fake devices).
"""

import collections
import functools
import os
import signal
import time

import jax
import jax.numpy as jnp
from absl import logging

from jaxgen import checkpoint, config as config_lib, evaluators, families, images, reporting
from jaxgen import sharding
from jaxgen.data import datasets, input_pipeline
from jaxgen.errors import UserError


def create_state_fns(config, family, mesh):
  """(abstract state with shardings, jitted init, state shardings) for this config and mesh."""
  shape = family.image_shape(config)
  init = functools.partial(family.init_state, config, image_shape=shape)
  rng = jax.random.PRNGKey(config.seed)
  abstract = jax.eval_shape(init, rng)
  shardings = sharding.state_shardings(abstract, mesh, config.sharding.rules)
  jitted_init = jax.jit(init, out_shardings=shardings)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
  return abstract, lambda: jitted_init(rng), shardings


def restore_or_init(config, family, mesh, mngr):
  abstract, init, shardings = create_state_fns(config, family, mesh)
  with jax.set_mesh(mesh):
    return checkpoint.restore_or_init(mngr, abstract, init), shardings


def compile_train_step(config, family, mesh, state_shardings):
  return jax.jit(functools.partial(family.train_step, config),
                 in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(state_shardings, sharding.replicated(mesh)),
                 donate_argnums=0)


def check_writable(workdir: str) -> None:
  """Fails before anything is written if WORKDIR cannot be created or written."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f"workdir {workdir!r} is not writable ({path!r} is "
                    f"{'not a directory' if not os.path.isdir(path) else 'read-only'}): "
                    "pass --workdir to a folder you can write")


def load_data(config, family, split):
  source = datasets.load_split(config.data, split, jax.process_index(), jax.process_count())
  expected = tuple(family.image_shape(config))
  if tuple(source.images.shape[1:]) != expected:
    raise UserError(f"dataset {config.data.name!r} gives images of shape "
                    f"{tuple(source.images.shape[1:])} but the model expects {expected}: set "
                    "data.image_size/data.channels or the model's image_size/channels to match")
  return source


def prepare_workdir(config, workdir):
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  if os.path.exists(checkpoint.config_path(workdir)):
    changed = config_lib.differences(checkpoint.read_config(workdir), config)
    if changed:
      logging.warning("resuming %s with a changed config: %s", workdir, ", ".join(changed))
  if jax.process_index() == 0:
    checkpoint.write_config(workdir, config)


class StopSignal:
  """Turns SIGTERM/SIGINT into a flag the loop checks, so it can checkpoint and exit."""

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.signum = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def make_sample_writer(config, family, workdir):
  """A function (state, step) that writes WORKDIR/samples/step_XXXXXXXX.png.

  Conditional models cycle through the classes: one column per class.
  """
  columns = families.num_classes(config) or None
  sample = jax.jit(lambda state, rng: family.sample(config, state, rng, config.num_samples))
  rng = jax.random.PRNGKey(config.seed + 2)  # The same latents every time: progress is visible.

  def write(state, step):
    generated = jax.device_get(sample(state, rng))  # Every process joins the jitted call.
    if jax.process_index() == 0:
      grid = images.grid(images.to_uint8(generated, config.data.normalize), columns)
      images.write_png(os.path.join(workdir, "samples", f"step_{step:08d}.png"), grid)

  return write


def train_and_evaluate(config, workdir: str) -> int | None:
  """Trains to config.total_steps (resuming if WORKDIR has a checkpoint).

  Returns the signal number if a SIGTERM/SIGINT stopped it early (after checkpointing).
  """
  family = families.get(config.family)
  check_writable(workdir)
  mesh = sharding.create_mesh(config.mesh)
  if config.batch_size % mesh.shape[sharding.DATA]:
    raise UserError(f"batch_size={config.batch_size} is not divisible by the "
                    f"{mesh.shape[sharding.DATA]} devices of the data axis")
  train_source = load_data(config, family, config.data.train_split)
  eval_source = load_data(config, family, config.data.eval_split) if config.eval_every else None
  prepare_workdir(config, workdir)

  mngr = checkpoint.manager(workdir, config.keep_checkpoints)
  state, state_shardings = restore_or_init(config, family, mesh, mngr)
  start = int(jax.device_get(state.step))
  step_fn = compile_train_step(config, family, mesh, state_shardings)
  eval_runs = (evaluators.create(config, family, mesh, eval_source, report=False)
               if eval_source else [])
  write_samples = make_sample_writer(config, family, workdir)
  writer = reporting.MetricsWriter(workdir, config.total_steps)
  if jax.process_index() == 0:
    print(f"training {config.family} on {config.data.name} ({len(train_source.images)} images, "
          f"{train_source.num_dropped} corrupt skipped) from step {start} to "
          f"{config.total_steps} on {jax.device_count()} devices, mesh {dict(mesh.shape)}",
          flush=True)

  dataset = input_pipeline.train_dataset(
      config.data, train_source, local_batch_size=config.batch_size // jax.process_count(),
      seed=config.seed, start_step=start, process_index=jax.process_index())
  batches = input_pipeline.global_batches(dataset, mesh, prefetch=config.data.prefetch)
  inflight = collections.deque()
  timer = _Throughput(config.batch_size)
  with StopSignal() as stop, jax.set_mesh(mesh):
    for step in range(start + 1, config.total_steps + 1):
      state, metrics = step_fn(state, next(batches))
      inflight.append(metrics)
      if len(inflight) > config.max_inflight_steps:
        jax.block_until_ready(inflight.popleft())
      if step == start + 1:
        jax.block_until_ready(metrics)  # Compilation happens here; keep it out of img/s.
        timer.reset(step)
      if _due(step, config.log_every, config.total_steps):
        logged = {**jax.device_get(metrics), **timer.read(step)}
        writer.write(step, logged)
        writer.progress(step, logged)
      if _due(step, config.sample_every, config.total_steps):
        write_samples(state, step)
        timer.reset(step)  # Sampling time is not training throughput.
      if eval_runs and _due(step, config.eval_every, config.total_steps):
        writer.write(step, {k: v for e in eval_runs for k, v in e.run(state)})
        timer.reset(step)
      if _due(step, config.checkpoint_every, config.total_steps) or stop.signum:
        checkpoint.save(mngr, state)
      if stop.signum:
        logging.warning("signal %d: saved a checkpoint at step %d, exiting", stop.signum, step)
        break
    mngr.wait_until_finished()
    checkpoint.save(mngr, state)  # No-op when the last step was just saved.
    mngr.wait_until_finished()
  writer.close()
  mngr.close()
  return stop.signum


def _due(step, every, total):
  return step == total or (every > 0 and step % every == 0)


class _Throughput:
  """Images/s and step time over the interval since the last read, compile excluded."""

  def __init__(self, batch_size):
    self.batch_size = batch_size
    self.reset(0)

  def reset(self, step):
    self.step, self.time = step, time.perf_counter()

  def read(self, step):
    now = time.perf_counter()
    steps, seconds = step - self.step, now - self.time
    self.reset(step)
    if steps <= 0 or seconds <= 0:
      return {}
    return {"perf/images_per_s": steps * self.batch_size / seconds,
            "perf/step_ms": 1e3 * seconds / steps, "perf/steps_per_s": steps / seconds}
