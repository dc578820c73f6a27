"""FID, KID and k-NN precision/recall of a family's samples against a real split.

Computed in the space of a named feature network (`jaxgen.evaluators.features`), with the
reference split's statistics cached on disk beside that network, keyed by its checksum.
Means and covariances stream over batches; KID and precision/recall need the feature
vectors themselves, so at most `evaluation.max_stored_features` of each side are kept.
A super-resolution model's "samples" are its upscalings of the degraded split itself, scored
beside the `superres.upsample` baseline of the same images (`baseline_*`). A model
conditioned on attributes draws sample i with the attributes (and class) of the reference
split's example i (of each process's shard, on several), so its samples follow the data's
mix of attributes, not one at a time.
"""

import functools
import os
import sys
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import conditioning, families, files, images as images_lib, sharding, superres
from jaxgen.data import input_pipeline
from jaxgen.evaluators import class_balance, feature_stats, feature_store, features, kid_pr


def _to_model_range(images, normalize: str):
  """Samples in the data's normalised range → the 8-bit image a user sees → [-1, 1]."""
  return features.to_model_range(images_lib.to_pixels(images, normalize, jnp))


class _Streamer:
  """Feeds feature batches into streaming stats and a capped store of vectors.

  Features must be fully addressable on this host (replicated when sharded): they are small,
  and every host then holds the same statistics and stored vectors.
  """

  def __init__(self, max_stored: int):
    self.stats, self.stored, self.max_stored = None, [], max_stored
    self._sums = jax.jit(feature_stats.batch_sums)

  def add(self, feats, mask):
    if self.stats is None:
      self.stats = feature_stats.init_stats(feats.shape[-1])
    self.stats = feature_stats.accumulate(self.stats, jax.device_get(self._sums(feats, mask)))
    kept = sum(len(s) for s in self.stored)
    if kept < self.max_stored:
      valid = np.asarray(feats)[np.asarray(mask) > 0]
      self.stored.append(valid[:self.max_stored - kept])

  def result(self):
    mean, cov = feature_stats.mean_cov(self.stats)
    return dict(mean=mean, cov=cov, count=np.float64(self.stats["count"]),
                features=np.concatenate(self.stored))


def image_statistics(images: np.ndarray, features_fn, max_stored: int) -> dict:
  """Feature mean/cov/count and up to `max_stored` feature vectors of uint8 [n, H, W, C]."""
  streamer = _Streamer(max_stored)
  for start in range(0, len(images), features.EVAL_BATCH_SIZE):
    batch = images[start:start + features.EVAL_BATCH_SIZE]
    streamer.add(features_fn(features.to_model_range(jnp.asarray(batch))),
                 np.ones(len(batch), np.float32))
  return streamer.result()


def reference_statistics(config, mesh, source, features_fn) -> dict:
  """`image_statistics` of a split, streamed through the eval pipeline sharded over `mesh`.

  Every process reads its own shard; the padded last batch is masked out.
  """
  data = config.data.copy_and_resolve_references()
  data.update(dict(normalize="symmetric", dequantize=False))  # Exactly to_model_range(uint8).
  dataset = input_pipeline.eval_dataset(
      data, source, local_batch_size=config.eval_batch_size // jax.process_count())
  streamer = _Streamer(config.evaluation.max_stored_features)
  with jax.set_mesh(mesh):
    for batch in input_pipeline.global_batches(dataset, mesh):
      streamer.add(features_fn(batch["image"]), batch["mask"])
  return streamer.result()


def compare(real: dict, fake: dict, cfg, seed: int) -> dict:
  """FID, KID (± standard error) and precision/recall between two `image_statistics`."""
  fid = feature_stats.frechet_distance(real["mean"], real["cov"], fake["mean"], fake["cov"])
  kid, kid_se = kid_pr.kid(real["features"], fake["features"], cfg.kid_subsets,
                           cfg.kid_subset_size, seed=seed)
  precision, recall = kid_pr.precision_recall(real["features"], fake["features"], k=cfg.pr_k)
  return dict(fid=fid, kid=kid, kid_standard_error=kid_se, precision=precision, recall=recall)


class SampleQualityEvaluator:
  """Built once; `run(state)` yields FID/KID/precision/recall and what they were computed on."""

  def __init__(self, config, family, mesh, real_source, prefix: str = "eval/"):
    cfg = config.evaluation
    self.config, self.family, self.mesh, self.prefix = config, family, mesh, prefix
    root = cfg.features_dir or feature_store.default_root()
    features_fn, self.info = features.load(cfg.feature_network, root)
    # Computed sharded, then gathered to every host: [batch, feature_dim] is small. A separate
    # identity jit, so the network's weights stay arguments rather than compiled-in constants.
    gather = jax.jit(lambda x: x, out_shardings=sharding.replicated(mesh))
    self.features_fn = lambda images: gather(features_fn(images))
    self.checksum = self.info["params_sha256"]
    self.logits_fn = self._classifier(cfg.feature_network, root, real_source, gather)
    cache = os.path.join(root, cfg.feature_network, "reference",
                         f"{real_source.name}_{real_source.split}_{self.checksum[:16]}_"
                         f"{cfg.max_stored_features}.npz")
    self.reference = self._reference(real_source, cache)
    self.real_split = f"{real_source.name}/{real_source.split}"
    chunk = config.eval_batch_size
    self._sample = jax.jit(lambda state, rng, cond: _to_model_range(
        family.sample(config, state, rng, chunk, cond), config.data.normalize))
    self.superres, self.source = superres.options(config), real_source
    if self.superres is not None:
      self._upscale = jax.jit(functools.partial(self._upscaled_pair, config, family))

  @staticmethod
  def _upscaled_pair(config, family, state, rng, image):
    """The model's and the baseline's upscaling of the degraded `image`, in [-1, 1]."""
    degrade_rng, sample_rng = jax.random.split(rng)
    sr = superres.options(config)
    low = superres.low_resolution(sr, image, degrade_rng)
    upscaled = family.sample(config, state, sample_rng, image.shape[0], {"low_res": low})
    return tuple(_to_model_range(x, config.data.normalize)
                 for x in (upscaled, superres.upsample(sr, low, image.shape[1:])))

  def _upscaled_statistics(self, state, rng):
    """Streamed statistics of the first evaluation.num_samples images of the split, upscaled
    by the model and by the baseline."""
    cfg = self.config.evaluation
    dataset = input_pipeline.eval_dataset(
        self.config.data, self.source,
        local_batch_size=self.config.eval_batch_size // jax.process_count())
    model, baseline = (_Streamer(cfg.max_stored_features) for _ in range(2))
    seen = 0
    for i, batch in enumerate(input_pipeline.global_batches(dataset, self.mesh)):
      if seen >= cfg.num_samples:
        break
      mask = np.asarray(jax.device_get(batch["mask"]))
      mask = mask * (seen + np.cumsum(mask) <= cfg.num_samples)
      seen += int(mask.sum())
      upscaled, upsampled = self._upscale(state, jax.random.fold_in(rng, i), batch["image"])
      model.add(self.features_fn(upscaled), mask)
      baseline.add(self.features_fn(upsampled), mask)
    return model.result(), baseline.result()

  def _classifier(self, name, root, source, gather):
    """The feature network's logits when it classifies the data's own classes (for
    `class_balance`), else None (Inception, unlabelled data, other classes)."""
    if (self.info["architecture"] != features.ARCHITECTURE or not source.num_classes
        or self.info["num_classes"] != source.num_classes):
      return None
    logits_fn, _ = features.load_classifier(name, root)
    self.data_labels = source.labels
    return lambda images: gather(logits_fn(images))

  def _reference(self, source, cache):
    if os.path.exists(cache):
      with np.load(cache) as f:
        return dict(f)
    reference = reference_statistics(self.config, self.mesh, source, self.features_fn)
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(cache), exist_ok=True)
      with files.atomic_write(cache) as tmp:
        np.savez(tmp, **reference)
    return reference

  def run(self, state) -> Iterator[tuple[str, object]]:
    rng = jax.random.PRNGKey(self.config.seed + 3)  # The same latents at every evaluation.
    if self.superres is not None:
      yield from self._run_upscaled(state, rng)
      return
    cfg = self.config.evaluation
    chunk = self.config.eval_batch_size
    streamer = _Streamer(cfg.max_stored_features)
    classes = (class_balance.ClassCounter(self.data_labels, self.info["num_classes"])
               if self.logits_fn else None)
    start = time.perf_counter()
    with jax.set_mesh(self.mesh):
      for i in range(-(-cfg.num_samples // chunk)):
        images = self._sample(state, jax.random.fold_in(rng, i),
                              self._global(self._conditions(i, chunk)))
        mask = (i * chunk + np.arange(chunk) < cfg.num_samples).astype(np.float32)
        streamer.add(self.features_fn(images), mask)  # Sharded like the samples.
        if classes:
          classes.add(self.logits_fn(images), mask)
        if jax.process_index() == 0 and (i + 1) % 10 == 0:  # Pixel-by-pixel samplers are slow.
          done = min((i + 1) * chunk, cfg.num_samples)
          print(f"sampling for FID/KID/P/R: {done} of {cfg.num_samples}, "
                f"{done / (time.perf_counter() - start):,.0f} samples/s", file=sys.stderr,
                flush=True)
    fake = streamer.result()
    yield from self._compared(fake)
    if classes:
      yield from classes.metrics(self.prefix + "classes/")
    yield from self._provenance(fake)

  def _conditions(self, i: int, chunk: int) -> dict | None:
    """Chunk i's `cond`: the reference examples' attributes and labels (cycling through the
    split) for a model with attributes; None otherwise (classes cycle in `sample`).

    Each process holds its own shard of the split, so each gives its part of the chunk
    from its shard (`_global`): one process's run draws sample i with example i.
    """
    if not self._conditioned():
      return None
    found = self.source.attributes
    local = chunk // jax.process_count()
    index = (i * local + np.arange(local)) % len(found)
    cond = {"attributes": found[index]}
    if conditioning.num_classes(self.config):
      cond["label"] = np.asarray(self.source.labels)[index]
    return cond

  def _conditioned(self) -> bool:
    """Whether samples take the reference examples' attributes (`_conditions`)."""
    return (bool(conditioning.num_attributes(self.config))
            and getattr(self.source, "attributes", None) is not None)

  def _global(self, cond: dict | None) -> dict | None:
    """Processes' parts of a `cond` as global arrays sharded over the batch; one process's
    as they are."""
    if cond is None or jax.process_count() == 1:
      return cond
    batch = sharding.batch_sharding(self.mesh)
    return {k: jax.make_array_from_process_local_data(batch, v) for k, v in cond.items()}

  def _run_upscaled(self, state, rng):
    with jax.set_mesh(self.mesh):
      fake, baseline = self._upscaled_statistics(state, rng)
    yield from self._compared(fake)
    yield from self._compared(baseline, "baseline_")
    yield from self._provenance(fake)
    yield (self.prefix + "sample_metrics/samples",
           f"the first {int(fake['count'])} images of {self.real_split}, degraded and upscaled")

  def _compared(self, fake, name_prefix: str = ""):
    scores = compare(self.reference, fake, self.config.evaluation, self.config.seed)
    return ((self.prefix + name_prefix + name, value) for name, value in scores.items())

  def _provenance(self, fake):
    p, cfg, real = self.prefix, self.config.evaluation, self.reference
    return ((p + "sample_metrics/num_samples", int(fake["count"])),
            (p + "sample_metrics/num_reference", int(real["count"])),
            (p + "sample_metrics/num_kid_pr_features", len(fake["features"])),
            (p + "sample_metrics/reference_split", self.real_split),
            (p + "sample_metrics/feature_network", cfg.feature_network),
            (p + "sample_metrics/feature_network_sha256", self.checksum),
            (p + "sample_metrics/pr_k", cfg.pr_k),
            *(((p + "sample_metrics/conditions",
                f"attributes and classes of {self.real_split}'s examples, in order"
                + (" (each process's shard)" if jax.process_count() > 1 else "")),)
              if self._conditioned() else ()),
            *((p + "sample_metrics/" + k, v)
              for k, v in families.sampling_provenance(self.config).items()))
