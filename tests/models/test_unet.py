"""UNet shapes, zero-initialised output, class / null / condition-image inputs, dropout, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import unet

_SMALL = dict(features=8, blocks=1)
# Compiling dominates these tests: the smallest U-Net with every kind of layer (down- and
# upsampling, attention at a listed size and in the middle, skips that change the width).
_TINY = dict(image_size=8, multipliers=(1, 2), attention=(4,), **_SMALL)


def _inputs(model, batch=2, seed=0):
  """Random images [batch, H, W, C] and noise levels [batch]."""
  x_key, noise_key = jax.random.split(jax.random.PRNGKey(seed))
  size = model.image_size
  x = jax.random.normal(x_key, (batch, size, size, model.channels))
  return x, jax.random.normal(noise_key, (batch,))


def _params(model, *args, **kwargs):
  """Random parameters of init's shapes, none of them zero: the zero-initialised layers would
  hide every input. Drawn with numpy, since compiling Flax's initialisers takes seconds."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args, **kwargs))["params"]
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    noise = rng.standard_normal(leaf.shape).astype(np.float32)
    name = path[-1].key
    if name == "kernel":
      return noise / np.sqrt(np.prod(leaf.shape[:-1]))
    return 1 + 0.1 * noise if name == "scale" else 0.1 * noise
  return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.mark.parametrize("size,channels,multipliers,attention", [
    (28, 1, (1, 2, 2), (7,)), (32, 3, (1, 2, 2, 2), (8,))])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_output_shape_and_dtype(size, channels, multipliers, attention, dtype):
  model = unet.UNet(size, channels, multipliers=multipliers, attention=attention, dtype=dtype,
                    **_SMALL)
  args, kwargs = models.example_inputs("unet", model)
  out, variables = jax.eval_shape(
      lambda: model.init_with_output(jax.random.PRNGKey(0), *args, **kwargs))
  assert out.shape == (2, size, size, channels) and out.dtype == jnp.float32
  assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}


def test_blocks_start_as_the_identity():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 8))
  emb = jax.random.normal(jax.random.PRNGKey(1), (2, 32))
  block = unet.ResBlock(8, dropout=0.1, dtype=jnp.float32)
  out, _ = jax.jit(lambda: block.init_with_output(jax.random.PRNGKey(2), x, emb, False))()
  np.testing.assert_array_equal(out, x)
  attention = unet.Attention(jnp.float32)
  out, _ = jax.jit(lambda: attention.init_with_output(jax.random.PRNGKey(2), x))()
  np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("embedding", unet.EMBEDDINGS)
def test_noise_embedding_depends_on_the_level(embedding):
  model = unet.UNet(embedding=embedding, **_TINY)
  x, noise = _inputs(model)
  params = _params(model, x, noise)
  embed = jax.jit(lambda level: unet.Embedding(8, 0, embedding, jnp.float32).apply(
      {"params": params["embed"]}, level, None))
  first, second = embed(noise), embed(noise + 0.5)
  assert first.shape == (2, 32) and np.abs(first - second).max() > 1e-2


def test_labels_noise_levels_and_the_null_class_change_the_output():
  model = unet.UNet(num_classes=3, **_TINY)
  x, noise = _inputs(model)
  params = _params(model, x, noise, jnp.zeros((2,), jnp.int32))
  assert params["embed"]["class_embedding"]["embedding"].shape == (4, 32)
  apply = jax.jit(lambda level, k: model.apply({"params": params}, x, level,
                                               jnp.full((2,), k, jnp.int32)))
  zero, one, null, louder = apply(noise, 0), apply(noise, 1), apply(noise, 3), apply(noise + 1, 0)
  assert zero.shape == (2, 8, 8, 1)
  for other in (one, null, louder):
    assert np.abs(zero - other).max() > 1e-3
  # labels=None is the null class for every example.
  embed = jax.jit(lambda labels: unet.Embedding(8, 3, "fourier", jnp.float32).apply(
      {"params": params["embed"]}, noise, labels))
  np.testing.assert_array_equal(embed(None), embed(jnp.full((2,), 3, jnp.int32)))


def test_condition_image_reaches_the_output():
  model = unet.UNet(cond_channels=2, **_TINY)
  x, noise = _inputs(model)
  cond = jax.random.normal(jax.random.PRNGKey(5), (2, 8, 8, 2))
  params = _params(model, x, noise, cond_image=cond)
  apply = jax.jit(lambda c: model.apply({"params": params}, x, noise, cond_image=c))
  out, other = apply(cond), apply(-cond)
  assert out.shape == (2, 8, 8, 1) and np.abs(out - other).max() > 1e-3
  with pytest.raises(UserError, match="cond_channels=2 but cond_image is missing"):
    model.apply({"params": params}, x, noise)
  with pytest.raises(UserError, match=r"cond_image \(2, 8, 8, 3\)"):
    model.apply({"params": params}, x, noise, cond_image=jnp.zeros((2, 8, 8, 3)))
  with pytest.raises(UserError, match="cond_channels=0 but cond_image is given"):
    jax.eval_shape(lambda: unet.UNet(**_TINY).init(jax.random.PRNGKey(0), x, noise,
                                                   cond_image=cond))


def test_dropout_only_in_train_mode():
  model = unet.UNet(dropout=0.5, **_TINY)
  x, noise = _inputs(model)
  params = _params(model, x, noise)
  # Without train no 'dropout' rng is needed, and the output is the same every time.
  evaluate = jax.jit(lambda: model.apply({"params": params}, x, noise))
  np.testing.assert_array_equal(evaluate(), evaluate())
  train = jax.jit(lambda rng: model.apply({"params": params}, x, noise, train=True,
                                          rngs={"dropout": rng}))
  first, second = train(jax.random.PRNGKey(0)), train(jax.random.PRNGKey(1))
  assert np.abs(first - second).max() > 1e-3 and np.abs(first - evaluate()).max() > 1e-3


@pytest.mark.parametrize("channels,expected", [(1, 1), (3, 3), (8, 8), (48, 24), (64, 32),
                                               (96, 32), (40, 20)])
def test_groups_is_the_largest_divisor_up_to_32(channels, expected):
  assert unet.groups(channels) == expected


def test_default_model_size():
  # DIFFUSION-NOTES: 2 CPU cores train a ~2-5M-parameter U-Net at tens of images/s or more.
  assert 2e6 < models.param_count("unet") < 8e6


@pytest.mark.parametrize("fields,call,match", [
    (dict(image_size=30), {}, "image_size=30 with 3 multipliers: expected a multiple of 4"),
    (dict(image_size=32, multipliers=(1, 2, 2, 2)), {}, r"attention=\(7,\): expected .* "
     "among 32, 16, 8, 4"),
    (dict(embedding="learned"), {}, "embedding='learned'"),
    ({}, dict(labels=jnp.zeros((2,), jnp.int32)), "unconditional .* got labels"),
    ({}, dict(x=jnp.zeros((2, 28, 28, 3))), r"images \(2, 28, 28, 3\): expected \[batch, 28, "
     r"28, 1\]"),
])
def test_user_errors(fields, call, match):
  model = unet.UNet(**{**_SMALL, **fields})
  call = dict(call)
  x = call.pop("x", jnp.zeros((2, model.image_size, model.image_size, 1)))
  with pytest.raises(UserError, match=match):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, jnp.zeros((2,)), **call))
