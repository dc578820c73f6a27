"""tf.data pipelines over an in-RAM Source, and the iterator that yields global jax.Arrays.

The training pipeline is stateless: the batch for step s is a pure function of
(seed, s, process_index, source), for data in RAM and for prepared data streamed through
Grain alike. Epoch e's order is a permutation from
`RandomIndexShuffle` keyed by (seed, e, process_index), and augmentation and dequantisation
noise are keyed by (seed, s, process_index). Resuming at step k is therefore rebuilding
the pipeline with start_step=k: no iterator state to checkpoint, nothing to skip.
"""

import collections
import itertools
from typing import Iterator

import jax
import tensorflow as tf
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgen import images as images_lib
from jaxgen.data import augment, datasets, prepared
from jaxgen.errors import UserError


# Rounds of the Feistel bijection behind RandomIndexShuffle. TF's default of 4 is not a
# random-looking permutation: on 60,000 images, batch 128, one epoch's batch drew its images
# from 13 of the previous epoch's 468 batches (a random permutation: 112), and batch means
# of the index spread half as much as random ones. Batches then held nearly the same
# images every epoch. 8 rounds already measure as random; 16 cost nothing at 128 indices.
SHUFFLE_ROUNDS = 16


def train_dataset(data, source, *, local_batch_size: int, seed: int, start_step: int,
                  process_index: int = 0, process_count: int = 1) -> tf.data.Dataset:
  """Batches for steps start_step, start_step + 1, ... forever.

  `source` is a `datasets.Source` in RAM, or a `prepared.PreparedSplit` streamed from disk
  (this process reading only every process_count-th record). Yields {'image': float32
  (int32 for normalize='integer') [batch, height, width, channels], 'label': int32
  [batch]}, and 'attributes' float32 [batch, A] when the source has them. In RAM each epoch
  drops the last n % local_batch_size examples of its permutation; streamed, batches run on
  across epochs.
  """
  datasets.check_config(data)
  datasets.keep_tf_off_accelerators()
  finish = _finish_batch(data, seed, process_index)
  if isinstance(source, prepared.PreparedSplit):
    pixels = _streamed_pixels(data, source, local_batch_size, seed, start_step, process_index,
                              process_count)
    ds = pixels.map(lambda step, batch: finish(step, *batch),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(data.prefetch)
  n = len(source.images)
  _check_batch(n, local_batch_size, source.name, source.split)
  # Captured eager tensors: each step gathers its rows from RAM, nothing is re-decoded.
  images, labels = tf.constant(source.images), tf.constant(source.labels)
  attributes = _attributes(source)
  steps_per_epoch = n // local_batch_size

  def batch_for_step(step):
    index = _train_indices(step, n, steps_per_epoch, local_batch_size, seed, process_index,
                           data.shuffle)
    batch = finish(step, tf.gather(images, index), tf.gather(labels, index))
    if attributes is not None:
      batch["attributes"] = tf.gather(attributes, index)
    return batch

  steps = tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
  ds = steps.map(batch_for_step, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(data.prefetch)


def _attributes(source):
  """The source's attributes [n, A] as a captured tensor, or None."""
  found = getattr(source, "attributes", None)
  return None if found is None else tf.constant(found)


def _check_batch(n: int, local_batch_size: int, name: str, split: str) -> None:
  if n < local_batch_size:
    raise UserError(f"the per-process batch of {local_batch_size} is larger than the "
                    f"{n} examples of {name!r} split {split!r} on this process: "
                    "lower batch_size or use a bigger split")


def _finish_batch(data, seed: int, process_index: int):
  """(step, uint8 pixels [b, H, W, C], labels [b]) -> the step's batch: augmentation and
  dequantisation noise keyed by (seed, step, process), then data.normalize. One function
  for both sources, so in RAM and streamed batches follow the same distributions."""
  def finish(step, pixels, labels):
    key = _step_key(seed, step, process_index)
    augment_key, noise_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    pixels = augment.augment_batch(tf.cast(pixels, tf.float32), augment_key, data.augment)
    if data.dequantize:
      pixels += tf.random.stateless_uniform(tf.shape(pixels), noise_key)
    return {"image": _normalize(pixels, data), "label": labels}
  return finish


def shuffled(records, seed: int):
  """A Grain MapDataset reshuffled every epoch from (seed, epoch). Grain's `shuffle` is the
  same 4-round bijection (hard-coded in Grain), whose batches were as uneven as the in-memory
  path's (see SHUFFLE_ROUNDS): batch means of the row spread 0.52 times a random batch's.
  Two shuffles in a row, each with its own seed from `seed`, measure as random (1.00)."""
  return records.seed(seed).shuffle().shuffle()


def _streamed_pixels(data, source, local_batch_size, seed, start_step, process_index,
                     process_count) -> tf.data.Dataset:
  """(step, (uint8 [b, H, W, C], int32 [b])) from Grain: this process's every
  process_count-th record, shuffled per epoch from (seed, epoch), read and decoded by
  data.read_threads threads ahead of the step. Batch s is element s of a random-access
  dataset, so resuming at step k starts reading at batch k: nothing to skip or restore."""
  import grain
  records = grain.MapDataset.source(source)[process_index::process_count]
  _check_batch(len(records), local_batch_size, f"prepared:{source.directory}", source.split)
  if data.shuffle:
    records = shuffled(records, seed)
  batches = records.repeat().batch(local_batch_size, drop_remainder=True)[start_step:]
  stream = batches.to_iter_dataset(grain.ReadOptions(
      num_threads=data.read_threads, prefetch_buffer_size=2 * data.read_threads))
  shape = (local_batch_size, *source.shape)
  pixels = tf.data.Dataset.from_generator(
      lambda: iter(stream), output_signature=(tf.TensorSpec(shape, tf.uint8),
                                              tf.TensorSpec(shape[:1], tf.int32)))
  return tf.data.Dataset.zip(tf.data.Dataset.counter(start=start_step, dtype=tf.int64), pixels)


def eval_dataset(data, source: datasets.Source, *, local_batch_size: int) -> tf.data.Dataset:
  """One ordered pass over the source, padded to whole batches.

  Yields {'image', 'label', 'mask': float32 [batch]} (mask 1 for real examples, 0 for
  padding). Every process runs the same number of batches (padded to
  `source.max_shard_size`), so sharded evaluation never waits on a process that has finished.
  Normalisation matches training, without augmentation; with data.dequantize each pixel sits
  at the centre of its dequantisation bin, the noise's mean.
  """
  datasets.check_config(data)
  datasets.keep_tf_off_accelerators()
  n = len(source.images)
  num_batches = -(-max(n, source.max_shard_size or 0) // local_batch_size)
  images, labels = tf.constant(source.images), tf.constant(source.labels)
  attributes = _attributes(source)

  def batch_at(i):
    position = i * local_batch_size + tf.range(local_batch_size, dtype=tf.int64)
    index = tf.minimum(position, n - 1)
    pixels = tf.cast(tf.gather(images, index), tf.float32)
    if data.dequantize:
      pixels += 0.5
    batch = {"image": _normalize(pixels, data), "label": tf.gather(labels, index),
             "mask": tf.cast(position < n, tf.float32)}
    if attributes is not None:
      batch["attributes"] = tf.gather(attributes, index)
    return batch

  ds = tf.data.Dataset.range(num_batches).map(batch_at, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(data.prefetch)


def global_batches(dataset: tf.data.Dataset, mesh: jax.sharding.Mesh, data_axis: str = "data",
                   prefetch: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Turns each process-local batch into global arrays sharded over `data_axis`.

  The leading dimension is split over `data_axis` and replicated over any other mesh axis.
  Up to `prefetch` batches are transferred ahead, so input overlaps compute.
  """
  sharding = NamedSharding(mesh, P(data_axis))
  local = dataset.as_numpy_iterator()
  queue = collections.deque()

  def enqueue(count):
    for batch in itertools.islice(local, count):
      queue.append(jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(sharding, x), batch))

  enqueue(prefetch)
  while queue:
    yield queue.popleft()
    enqueue(1)


def _step_key(seed: int, step: tf.Tensor, process_index: int) -> tf.Tensor:
  """int64 [2] RNG key unique to (seed, step, process): hosts augment their images apart."""
  key = tf.stack([tf.constant(seed, tf.int64), step])
  return tf.random.experimental.stateless_fold_in(key, process_index)


def _train_indices(step, n, steps_per_epoch, batch_size, seed, process_index, shuffle):
  """int64 [batch] rows of the source for a training step."""
  epoch = step // steps_per_epoch
  position = (step % steps_per_epoch) * batch_size + tf.range(batch_size, dtype=tf.int64)
  if not shuffle:
    return position
  # [batch, 3] seeds: tf.random.experimental.index_shuffle mis-pads [2] seeds.
  seeds = tf.tile(tf.stack([tf.constant(seed, tf.int64), epoch,
                            tf.constant(process_index, tf.int64)])[None], [batch_size, 1])
  return tf.raw_ops.RandomIndexShuffle(index=position, seed=seeds,
                                       max_index=tf.constant(n - 1, tf.int64),
                                       rounds=SHUFFLE_ROUNDS)


def _normalize(pixels: tf.Tensor, data) -> tf.Tensor:
  """Float pixel values in [0, 256) to the model's range (data.normalize)."""
  if data.normalize == "integer":
    return tf.cast(tf.round(pixels), tf.int32)
  scale, offset = images_lib.scale_offset(data.normalize, data.dequantize)
  return pixels / scale + offset

