"""tf.data pipelines over an in-RAM Source, and the iterator that yields global jax.Arrays.

The training pipeline is stateless: the batch for step s is a pure function of
(seed, s, process_index, source). Epoch e's order is a permutation from
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
from jaxgen.data import augment, datasets
from jaxgen.errors import UserError


def train_dataset(data, source: datasets.Source, *, local_batch_size: int, seed: int,
                  start_step: int, process_index: int = 0) -> tf.data.Dataset:
  """Batches for steps start_step, start_step + 1, ... forever.

  Yields {'image': float32 (int32 for normalize='integer') [batch, height, width, channels],
  'label': int32 [batch]}. Each epoch drops the last n % local_batch_size examples of its
  permutation.
  """
  datasets.check_config(data)
  datasets.keep_tf_off_accelerators()
  n = len(source.images)
  if n < local_batch_size:
    raise UserError(f"the per-process batch of {local_batch_size} is larger than the "
                    f"{n} examples of {source.name!r} split {source.split!r} on this process: "
                    "lower batch_size or use a bigger split")
  # Captured eager tensors: each step gathers its rows from RAM, nothing is re-decoded.
  images, labels = tf.constant(source.images), tf.constant(source.labels)
  steps_per_epoch = n // local_batch_size

  def batch_for_step(step):
    key = _step_key(seed, step, process_index)
    augment_key, noise_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    index = _train_indices(step, n, steps_per_epoch, local_batch_size, seed, process_index,
                           data.shuffle)
    pixels = tf.cast(tf.gather(images, index), tf.float32)
    pixels = augment.augment_batch(pixels, augment_key, data.augment)
    if data.dequantize:
      pixels += tf.random.stateless_uniform(tf.shape(pixels), noise_key)
    return {"image": _normalize(pixels, data), "label": tf.gather(labels, index)}

  steps = tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
  ds = steps.map(batch_for_step, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(data.prefetch)


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

  def batch_at(i):
    position = i * local_batch_size + tf.range(local_batch_size, dtype=tf.int64)
    index = tf.minimum(position, n - 1)
    pixels = tf.cast(tf.gather(images, index), tf.float32)
    if data.dequantize:
      pixels += 0.5
    return {"image": _normalize(pixels, data), "label": tf.gather(labels, index),
            "mask": tf.cast(position < n, tf.float32)}

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
                                       max_index=tf.constant(n - 1, tf.int64), rounds=4)


def _normalize(pixels: tf.Tensor, data) -> tf.Tensor:
  """Float pixel values in [0, 256) to the model's range (data.normalize)."""
  if data.normalize == "integer":
    return tf.cast(tf.round(pixels), tf.int32)
  scale, offset = images_lib.scale_offset(data.normalize, data.dequantize)
  return pixels / scale + offset

