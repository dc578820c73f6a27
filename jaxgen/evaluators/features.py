"""Feature networks for FID/KID/precision-recall: stored by name, loaded with a checksum.

Inception, the usual FID network, has never seen 28×28 grey clothes; a classifier trained on
the dataset itself gives features that separate its classes. RGB datasets use the FID
Inception (`jaxgen.evaluators.inception`) instead, from weights the user supplies. Either is
stored by name (`feature_store`) as `<root>/<name>/params.msgpack` plus `info.json`, which
holds the architecture and the params file's sha256 so that no score is ever computed with a
corrupt or swapped network.

Create the classifier with `jaxgen train-features --dataset fashion_mnist`, import Inception
with `jaxgen import-inception --weights FILE`.
"""

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import config as config_lib, images as images_lib
from jaxgen.data import datasets
from jaxgen.errors import UserError
from jaxgen.evaluators import feature_store, inception

ARCHITECTURE = "fashion_classifier_v1"  # Bump on any change that alters the params or features.
FEATURE_DIM = 128
EVAL_BATCH_SIZE = 500
TRAIN_COMMAND = "jaxgen train-features --dataset fashion_mnist"
_CREATE_COMMANDS = {ARCHITECTURE: TRAIN_COMMAND, inception.ARCHITECTURE: inception.IMPORT_COMMAND}


class FashionClassifier(nn.Module):
  """Conv32-pool-Conv64-pool-Dense128-Dense(classes), ReLU, no BatchNorm.

  One conv per resolution, not two: a third of the compute, so a CPU trains it for several
  epochs in minutes, which is worth more accuracy than the extra depth. Without BatchNorm
  the features are a pure function of the params: no batch statistics, and an image's
  features do not depend on the rest of its batch. Inputs are [batch, height, width, 1] in
  [-1, 1].
  """
  num_classes: int = 10

  def setup(self):
    self.convs = [nn.Conv(width, (3, 3)) for width in (32, 64)]
    self.hidden = nn.Dense(FEATURE_DIM)
    self.head = nn.Dense(self.num_classes)

  def features(self, x: jax.Array) -> jax.Array:
    """Penultimate activations [batch, FEATURE_DIM]: the feature space for FID and friends."""
    for conv in self.convs:
      x = nn.max_pool(nn.relu(conv(x)), (2, 2), strides=(2, 2))
    return nn.relu(self.hidden(x.reshape(x.shape[0], -1)))

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits [batch, num_classes]."""
    return self.head(self.features(x))


def to_model_range(images: jax.Array) -> jax.Array:
  """uint8 [batch, height, width, channels] → float32 in [-1, 1], as data.normalize='symmetric'."""
  return images_lib.from_uint8(images, "symmetric", jnp)


def train_classifier(data_config, steps: int, batch_size: int, seed: int, *,
                     learning_rate: float = 1e-3, log_every: int = 0) -> tuple[dict, float]:
  """Trains a FashionClassifier on data_config's train split with Adam.

  Returns:
    (params, accuracy on the test split). With `log_every` > 0, prints a progress line to
    stderr every `log_every` steps.
  """
  _check_training_args(data_config, steps, batch_size)
  train = datasets.load_split(data_config, data_config.train_split)
  test = datasets.load_split(data_config, data_config.eval_split)
  if train.num_classes is None:
    raise UserError(f"dataset {data_config.name!r} has no class labels: the feature network "
                    "is a classifier and needs a labelled dataset such as fashion_mnist")
  model = FashionClassifier(num_classes=train.num_classes)
  params = model.init(jax.random.key(seed), jnp.zeros((1,) + train.images.shape[1:]))
  params = params["params"]
  # Cosine decay to zero: a run of a few epochs ends markedly more accurate than at a flat rate.
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  opt_state = optimizer.init(params)
  step_fn = jax.jit(_train_step(model, optimizer), donate_argnums=(0, 1))
  images, labels = jax.device_put(train.images), jax.device_put(train.labels)
  order = _batch_indices(len(train.images), batch_size, seed)
  start = time.perf_counter()
  for step in range(1, steps + 1):
    params, opt_state, loss = step_fn(params, opt_state, images, labels, next(order))
    if log_every and (step % log_every == 0 or step == steps):
      loss = float(loss)  # Blocks, so the rate below counts finished steps only.
      rate = step * batch_size / (time.perf_counter() - start)
      print(f"train-features step {step}/{steps} loss {loss:.4f} {rate:.0f} images/s",
            file=sys.stderr, flush=True)
  return params, accuracy(model, params, test.images, test.labels)


def _check_training_args(data_config, steps, batch_size) -> None:
  if not isinstance(steps, int) or steps < 1:
    raise UserError(f"steps={steps!r}: expected a positive integer number of training steps")
  if not isinstance(batch_size, int) or batch_size < 1:
    raise UserError(f"batch_size={batch_size!r}: expected a positive integer")
  if data_config.normalize != "symmetric":
    raise UserError(f"data.normalize={data_config.normalize!r}: the feature network works on "
                    "pixels in [-1, 1]; set data.normalize='symmetric'")


def _train_step(model: FashionClassifier, optimizer: optax.GradientTransformation):
  """A step taking the whole train set on device and this step's [batch] example indices."""
  def loss_fn(params, images, labels):
    logits = model.apply({"params": params}, to_model_range(images))
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  def step(params, opt_state, all_images, all_labels, indices):
    loss, grads = jax.value_and_grad(loss_fn)(params, all_images[indices], all_labels[indices])
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


def _batch_indices(n: int, batch_size: int, seed: int):
  """Endless int32 [batch_size] index batches over shuffled epochs of n examples."""
  rng = np.random.default_rng(seed)
  pending = np.zeros([0], np.int32)
  while True:
    while len(pending) < batch_size:
      pending = np.concatenate([pending, rng.permutation(n).astype(np.int32)])
    yield pending[:batch_size]
    pending = pending[batch_size:]


def accuracy(model: FashionClassifier, params: dict, images: np.ndarray,
             labels: np.ndarray) -> float:
  """Top-1 accuracy on uint8 images [n, height, width, channels] with int labels [n]."""
  @jax.jit
  def correct(params, images, labels, mask):
    predicted = jnp.argmax(model.apply({"params": params}, to_model_range(images)), axis=-1)
    return jnp.sum((predicted == labels) & mask)

  total = 0
  for batch in _padded_batches(images, labels):
    total += int(correct(params, *batch))
  return total / len(images)


def _padded_batches(images, labels):
  """(images, labels, mask) of EVAL_BATCH_SIZE each; the last is zero-padded and masked."""
  for start in range(0, len(images), EVAL_BATCH_SIZE):
    chunk_images = images[start:start + EVAL_BATCH_SIZE]
    chunk_labels = labels[start:start + EVAL_BATCH_SIZE]
    pad = EVAL_BATCH_SIZE - len(chunk_images)
    # One batch shape for every call: the jitted function compiles once.
    yield (np.pad(chunk_images, [(0, pad)] + [(0, 0)] * (images.ndim - 1)),
           np.pad(chunk_labels, (0, pad)), np.arange(EVAL_BATCH_SIZE) < len(chunk_images))


def save(params: dict, name: str, root: str | None = None, **info) -> dict:
  """Writes `<root>/<name>/params.msgpack` and its `info.json`.

  Args:
    params: a FashionClassifier's params.
    info: recorded as they are (dataset, steps, test_accuracy, …) next to the architecture,
      the number of classes and the params file's sha256.

  Returns:
    The info written.
  """
  info = dict(info, architecture=ARCHITECTURE, num_classes=_num_classes(params))
  return feature_store.write(flax.serialization.to_bytes(params), name, root, info)


def _num_classes(params: dict) -> int:
  return int(params["head"]["bias"].shape[0])


def load(name: str, root: str | None = None
         ) -> tuple[Callable[[jax.Array], jax.Array], dict]:
  """The stored network `name` as (features_fn, info), after checking its sha256.

  `features_fn` maps float images in [-1, 1] to features: [batch, 28, 28, 1] to
  [batch, FEATURE_DIM] for the classifier, [batch, height, width, 1 or 3] to
  [batch, inception.FEATURE_DIM] for Inception. It is jitted once, with the params as an
  argument rather than baked-in constants.
  """
  params, info = _read_verified(name, root)
  if info["architecture"] == inception.ARCHITECTURE:
    return inception.features_fn(params, info["image_size"]), info
  model = FashionClassifier(num_classes=info["num_classes"])
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x, method=FashionClassifier.features))
  return lambda images: apply(params, images), info


def load_classifier(name: str, root: str | None = None
                    ) -> tuple[Callable[[jax.Array], jax.Array], dict]:
  """A stored classifier as (logits_fn, info): images [batch, 28, 28, 1] in [-1, 1] ->
  [batch, num_classes]. For checking which classes a generator produces."""
  params, info = _read_verified(name, root)
  if info["architecture"] != ARCHITECTURE:
    raise UserError(f"feature network {name!r} is {info['architecture']!r}, not a classifier "
                    f"({ARCHITECTURE!r})")
  model = FashionClassifier(num_classes=info["num_classes"])
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
  return lambda images: apply(params, images), info


def _read_verified(name: str, root: str | None) -> tuple[dict, dict]:
  """(params, info) of the stored network `name`, after checking the params' sha256."""
  directory = feature_store.directory(name, root)
  info_path, params_path = (os.path.join(directory, f)
                            for f in (feature_store.INFO_FILE, feature_store.PARAMS_FILE))
  if not (os.path.isfile(info_path) and os.path.isfile(params_path)):
    raise UserError(f"no feature network {name!r} at {directory} (expected "
                    f"{feature_store.INFO_FILE} and {feature_store.PARAMS_FILE}): create it "
                    f"with `{TRAIN_COMMAND}` (Inception: `{inception.IMPORT_COMMAND}`), or "
                    "point $JAXGEN_FEATURES_DIR at the folder that holds it")
  with open(info_path) as f:
    try:
      info = json.load(f)
    except json.JSONDecodeError as e:
      raise UserError(f"{info_path} is not valid JSON ({e}): re-create it with "
                      f"`{TRAIN_COMMAND}` or `{inception.IMPORT_COMMAND}`") from e
  command = _CREATE_COMMANDS.get(info.get("architecture"))
  if command is None:
    raise UserError(f"{info_path} describes architecture {info.get('architecture')!r}, this "
                    f"jaxgen reads {sorted(_CREATE_COMMANDS)}: re-create it with "
                    f"`{TRAIN_COMMAND}` or `{inception.IMPORT_COMMAND}`")
  with open(params_path, "rb") as f:
    data = f.read()
  actual = hashlib.sha256(data).hexdigest()
  if actual != info["params_sha256"]:
    raise UserError(f"{params_path} has sha256 checksum {actual}, but {info_path} records "
                    f"{info['params_sha256']}: the file is corrupt or was replaced; re-create "
                    f"it with `{command}`")
  return flax.serialization.msgpack_restore(data), info


def main_train_features(dataset: str, steps: int, batch_size: int, seed: int,
                        data_dir: str | None, root: str | None) -> dict:
  """`jaxgen train-features`: trains on `dataset`, saves it under that name, returns its info."""
  data_config = config_lib.base_config().data
  data_config.update(dict(name=dataset, data_dir=data_dir, normalize="symmetric"))
  start = time.perf_counter()
  params, test_accuracy = train_classifier(data_config, steps, batch_size, seed,
                                           log_every=max(1, min(100, steps // 10)))
  info = save(params, dataset, root, dataset=dataset, steps=steps, batch_size=batch_size,
              seed=seed, test_accuracy=test_accuracy,
              train_seconds=round(time.perf_counter() - start, 1))
  info["path"] = feature_store.directory(dataset, root)
  return info
