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
import numpy as np
from jax.sharding import PartitionSpec as P
from absl import logging

from jaxgen import accumulate, checkpoint, conditioning, config as config_lib, evaluators
from jaxgen import families, images, latents, nonfinite, prompts, reporting, sharding
from jaxgen import superres, warm_start
from jaxgen.data import attributes, datasets, input_pipeline, prepared
from jaxgen.errors import UserError
from jaxgen.kernels import onednn


# The jitted functions of this process by (what, config, mesh): a run started again here
# with the same config (resuming after a stop, a notebook's second call) traces and
# compiles nothing anew; a fresh jax.jit would trace and lower again, ~10 s for the U-Net
# step on 2 cores. Bounded, since each entry holds compiled programs. Keyed also by
# JAXGEN_CPU_CONV, which tracing reads: another choice there is another program.
_JITTED = collections.OrderedDict()
_JITTED_MAX = 24


def _memoised(what, config, mesh, build, *extra):
  key = (what, config_lib.to_json(config), mesh, onednn.mode(), *extra)
  if key in _JITTED:
    _JITTED.move_to_end(key)
  else:
    _JITTED[key] = build()
    if len(_JITTED) > _JITTED_MAX:
      _JITTED.popitem(last=False)
  return _JITTED[key]


def create_state_fns(config, family, mesh):
  """(abstract state with shardings, jitted init, state shardings) for this config and mesh."""
  def build():
    init = warm_start.init_fn(config, family)
    rng = jax.random.PRNGKey(config.seed)
    abstract = jax.eval_shape(init, rng)
    shardings = sharding.state_shardings(abstract, mesh, config.sharding.rules)
    jitted_init = jax.jit(init, out_shardings=shardings)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, shardings)
    return abstract, lambda: jitted_init(rng), shardings
  return _memoised("init", config, mesh, build)


def restore_or_init(config, family, mesh, mngr, move_damaged: bool = False):
  """(state, its shardings): the run's newest checkpoint that restores (see
  `checkpoint.restore_or_init`), else a fresh state (carrying init_from's parameters and
  latent diffusion's autoencoder when set)."""
  abstract, init, shardings = create_state_fns(config, family, mesh)
  if config.get("init_from") or latents.autoencoder(config):
    init = functools.partial(_from_other_runs, config, init, shardings)
  with jax.set_mesh(mesh):
    return checkpoint.restore_or_init(mngr, abstract, init, move_damaged), shardings


def restore_run(workdir: str, mesh=None):
  """(config, family, mesh, state) of the latest checkpoint in WORKDIR, on `mesh` (default:
  the run's own mesh spec over this machine's devices)."""
  config = warm_start.run_config(workdir)
  family = families.get(config.family)
  mesh = mesh if mesh is not None else sharding.create_mesh(config.mesh)
  mngr = checkpoint.manager(workdir, config.keep_checkpoints, async_save=False)
  if mngr.latest_step() is None:
    raise UserError(f"{workdir!r} has no checkpoint yet: let training reach "
                    "checkpoint_every steps (or finish) first")
  state, _ = restore_or_init(config, family, mesh, mngr)
  mngr.close()
  return config, family, mesh, state


def _from_other_runs(config, init, shardings):
  """`init()` carrying config.init_from's arrays and latent diffusion's autoencoder
  (`warm_start`, which vetted both before anything was written)."""
  state = init()
  mesh = next(iter(jax.tree.leaves(shardings))).mesh
  if config.get("init_from"):
    state = warm_start.carry_init_from(state, restore_run(config.init_from, mesh)[3],
                                       shardings)
  if latents.autoencoder(config):
    source = restore_run(latents.source(config), mesh)[3]
    state = warm_start.carry_autoencoder(state, source, shardings)
  return state


def compile_train_step(config, family, mesh, state_shardings):
  return _memoised(
      "train_step", config, mesh,
      lambda: jax.jit(functools.partial(family.train_step, config),
                      in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                      out_shardings=(state_shardings, sharding.replicated(mesh)),
                      donate_argnums=0),
      jax.tree.structure(state_shardings), tuple(jax.tree.leaves(state_shardings)))


def check_writable(workdir: str) -> None:
  """Fails before anything is written if WORKDIR cannot be created or written."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f"workdir {workdir!r} is not writable ({path!r} is "
                    f"{'not a directory' if not os.path.isdir(path) else 'read-only'}): "
                    "pass --workdir to a folder you can write")


def load_data(config, family, split, stream: bool = False):
  """This process's part of `split`: in RAM, or with `stream` and prepared data, the split
  opened for streaming (`prepared.PreparedSplit`)."""
  expected = tuple(family.image_shape(config))
  if stream and config.data.name == "prepared":
    source = prepared.open_split(config.data.prepared_dir, split)
    _check_shape(config, source.shape, expected)
    conditioning.check_attributes(config, source)
    return source
  # A TFDS dataset's shape from its metadata first: a mismatch is found before the whole
  # split is decoded (6.5 s for the bundled data resized to 32×32, more on real data). Not
  # a folder's: what is wrong with its files (none, one class) is the better first error.
  if config.data.name != "folder":
    _check_shape(config, tuple(datasets.dataset_info(config.data)["shape"]), expected)
  source = datasets.load_split(config.data, split, jax.process_index(), jax.process_count())
  _check_shape(config, tuple(source.images.shape[1:]), expected)
  conditioning.check_attributes(config, source)
  return source


def _check_shape(config, shape, expected) -> None:
  if shape != expected:
    raise UserError(f"dataset {config.data.name!r} gives images of shape {shape} but the "
                    f"model expects {expected}: set data.image_size/data.channels (for "
                    "prepared data, --image-size/--channels of prepare-data) or the model's "
                    "image_size/channels to match")


def _num_images(source) -> int:
  return len(source) if isinstance(source, prepared.PreparedSplit) else len(source.images)


def prepare_workdir(config, workdir):
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  changed = None  # A fresh run.
  if os.path.exists(checkpoint.config_path(workdir)):
    changed = config_lib.differences(checkpoint.read_config(workdir), config)
    if changed:
      logging.warning("resuming %s with a changed config: %s", workdir, ", ".join(changed))
  if jax.process_index() == 0:
    checkpoint.write_config(workdir, config)
    # Class names once per run (a folder dataset is rescanned to find them), again only
    # if the data changed; so `jaxgen sample --prompt NAME` works without the data.
    if (changed is None or any(k.startswith("data.") for k in changed)
        or not os.path.exists(prompts.labels_path(workdir))):
      names = datasets.label_names(config.data)
      attribute_names = attributes.attribute_names(config.data)
      if names or attribute_names:
        prompts.write_label_names(workdir, names, attribute_names)


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


def make_sample_writer(config, family, workdir, source=None):
  """A function (state, step) that writes WORKDIR/samples/step_XXXXXXXX.png, drawn with the
  family's training-time sampling settings (`preview_overrides`).

  Conditional models cycle through the classes (or, without classes, the attributes): one
  column per class. A super-resolution model upscales the first num_samples images of
  `source`, degraded as in training (`_make_upscaling_writer`).
  """
  columns = conditioning.grid_columns(config)
  config = families.preview_config(family, config)
  rng = jax.random.PRNGKey(config.seed + 2)  # The same latents every time: progress is visible.
  if superres.options(config) is not None:
    return _make_upscaling_writer(config, family, workdir, source, rng)
  # Replicated outputs: on several processes each can then read the whole grid.
  sample = _memoised("preview", config, None, lambda: jax.jit(
      lambda state, rng: family.sample(config, state, rng, config.num_samples),
      out_shardings=P()))

  def write(state, step):
    generated = jax.device_get(sample(state, rng))  # Every process joins the jitted call.
    _write_grid(workdir, step, lambda: images.grid(
        images.to_uint8(generated, config.data.normalize), columns))

  return write


def _write_grid(workdir: str, step: int, make_grid) -> None:
  """Writes make_grid() to WORKDIR/samples/step_XXXXXXXX.png on process 0 only (the grid is
  built there alone: the others have joined the jitted call and have nothing to write)."""
  if jax.process_index() == 0:
    images.write_png(os.path.join(workdir, "samples", f"step_{step:08d}.png"), make_grid())


def _make_upscaling_writer(config, family, workdir, source, rng):
  """The sample writer of a super-resolution model: rows of up to 8 of the same fixed
  images (`_preview_originals`) as the `superres.upsample` baseline, the model's upscaling
  and the original, each degraded from the same key every time."""
  sr = superres.options(config)
  originals = _preview_originals(source, config.num_samples)
  columns = min(8, len(originals))

  def draw(state, rng, x):
    low = superres.low_resolution(sr, x, jax.random.fold_in(rng, superres.KEY_STREAM))
    upscaled = family.sample(config, state, rng, len(x), {"low_res": low})
    return superres.upsample(sr, low, x.shape[1:]), upscaled

  run = _memoised("upscaling preview", config, None, lambda: jax.jit(draw, out_shardings=P()))
  x = images.from_uint8(originals, "symmetric")

  def write(state, step):
    baseline, upscaled = jax.device_get(run(state, rng, x))  # Every process joins.
    _write_grid(workdir, step, lambda: images.grid(superres.preview_grid_order(
        images.to_uint8(baseline, "symmetric"), images.to_uint8(upscaled, "symmetric"),
        originals, columns), columns))

  return write


def _preview_originals(source, num: int):
  """uint8 [num, H, W, C]: the first images of `source` (this process's in-RAM shard, or a
  prepared split), cycled if it holds fewer; process 0's on every process, so all join
  one jitted call on the same images."""
  count = _num_images(source)
  if not count:
    raise UserError(f"split {source.split!r} has no images on process {jax.process_index()} "
                    "to preview upscalings of; set sample_every=0 or use more data")
  index = np.arange(num) % count
  if isinstance(source, prepared.PreparedSplit):
    originals = np.stack([source[int(i)][0] for i in index])
  else:
    originals = np.asarray(source.images[index])
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    originals = multihost_utils.broadcast_one_to_all(originals)
  return originals


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
  accumulate.check(config, config.batch_size, mesh.shape[sharding.DATA])
  train_source = load_data(config, family, config.data.train_split, stream=True)
  local_batch = config.batch_size // jax.process_count()
  if local_batch > _num_images(train_source):
    raise UserError(f"batch_size={config.batch_size} is larger than the training split "
                    f"{config.data.train_split!r} ({_num_images(train_source)} images on this "
                    "process): lower batch_size or use more data")
  eval_source = load_data(config, family, config.data.eval_split) if config.eval_every else None
  new_arrays = warm_start.check(config, workdir)
  # The family's model checks run in its abstract init (memoised for restore_or_init): a
  # bad model config is an error before anything is written.
  create_state_fns(config, family, mesh)
  prepare_workdir(config, workdir)

  mngr = checkpoint.manager(workdir, config.keep_checkpoints)
  state, state_shardings = restore_or_init(config, family, mesh, mngr, move_damaged=True)
  start = int(jax.device_get(state.step))
  step_fn = compile_train_step(config, family, mesh, state_shardings)
  eval_runs = (evaluators.create(config, family, mesh, eval_source, report=False)
               if eval_source else [])
  write_samples = make_sample_writer(
      config, family, workdir, train_source if eval_source is None else eval_source)
  writer = reporting.MetricsWriter(workdir, config.total_steps)
  if jax.process_index() == 0:
    print(f"training {config.family} on {config.data.name} ({_num_images(train_source)} images, "
          f"{train_source.num_dropped} corrupt skipped) from step {start} to "
          f"{config.total_steps} on {jax.device_count()} devices, mesh {dict(mesh.shape)}"
          + (f", parameters from {config.init_from}" if start == 0 and config.get("init_from")
             else ""), flush=True)
    if new_arrays:
      print(f"  {len(new_arrays)} arrays are new to this model and start at their "
            f"initialisation: {', '.join(new_arrays)}", flush=True)

  dataset = input_pipeline.train_dataset(
      config.data, train_source, local_batch_size=config.batch_size // jax.process_count(),
      seed=config.seed, start_step=start, process_index=jax.process_index(),
      process_count=jax.process_count())
  batches = input_pipeline.global_batches(dataset, mesh, prefetch=config.data.prefetch)
  inflight = collections.deque()
  timer = _Throughput(config.batch_size)
  skips = nonfinite.SkipCounter(config.max_consecutive_skips, workdir, start)
  with StopSignal() as stop, jax.set_mesh(mesh):
    for step in range(start + 1, config.total_steps + 1):
      state, metrics = step_fn(state, next(batches))
      inflight.append((step, metrics))
      if len(inflight) > config.max_inflight_steps:
        skips.observe(*inflight.popleft())  # Waits for that step: the bounded run-ahead.
      if step == start + 1:
        jax.block_until_ready(metrics)  # Compilation happens here; keep it out of img/s.
        timer.reset(step)
      if _due(step, config.log_every, config.total_steps):
        logged = {**jax.device_get(metrics), **timer.read(step)}
        while inflight:  # All finished with this one: the count below is exact.
          skips.observe(*inflight.popleft())
        logged["train/skipped_steps"] = skips.total
        writer.write(step, logged)
        writer.progress(step, logged)
      if skips.streak >= skips.limit:
        checkpoint.wait(mngr)  # Earlier, good saves complete; nothing newer is saved.
        writer.close()
        skips.check(mngr.latest_step(), mngr.directory)
      if config.sample_every and _due(step, config.sample_every, config.total_steps):
        write_samples(state, step)
        timer.reset(step)  # Sampling time is not training throughput.
      if eval_runs and _due(step, config.eval_every, config.total_steps):
        writer.write(step, {k: v for e in eval_runs for k, v in e.run(state)})
        timer.reset(step)
      # Not during a streak of skipped steps: a run that never recovers must not rotate its
      # last good checkpoints out.
      if (_due(step, config.checkpoint_every, config.total_steps) or stop.signum) and \
          not skips.streak:
        checkpoint.save(mngr, state)
      if stop.signum:
        logging.warning("signal %d: saved a checkpoint at step %d, exiting", stop.signum, step)
        break
    checkpoint.wait(mngr)
    checkpoint.save(mngr, state)  # No-op when the last step was just saved.
    checkpoint.wait(mngr)
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
