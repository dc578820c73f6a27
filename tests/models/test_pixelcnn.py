"""Autoregressive networks: exact causality, receptive fields (blind spot, triangle), labels.

Causality is read off the Jacobian of every output with respect to every input pixel of
tiny random-weight models: masked taps are exact zeros, so a forbidden dependence must be
exactly 0, not merely small. Images are 5x6 (not square, so a height/width mix-up shows);
PixelCNN++'s U-Net halves them twice, so its are 8x4.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.models import pixelcnn, pixelcnnpp, rowlstm

H, W = 5, 6
NUM_PARAMS = 2

# Small enough to compile fast, deep enough to show each network's receptive field:
# PixelCNN is two 3x3 layers (the blind spot's textbook case); the Gated PixelCNN's reach
# R = 3 + 1 + 1 = 5 covers the whole 5x6 image; the Row LSTM has the 3x3 first layer a = 1.
MODELS = {
    "pixelcnn": functools.partial(pixelcnn.PixelCNN, features=12, num_blocks=1,
                                  first_kernel_size=3, head_features=12),
    "gated_pixelcnn": functools.partial(pixelcnn.GatedPixelCNN, features=6, num_layers=3,
                                        head_features=12),
    "row_lstm": functools.partial(rowlstm.RowLSTM, features=12, num_layers=2,
                                  first_kernel_size=3, head_features=12),
    # Three resolutions (8x4, 4x2, 2x1), one block each way: every path of the paper's
    # network, the strided and transposed shifted convolutions' both row parities included.
    "pixelcnnpp_unet": functools.partial(pixelcnnpp.PixelCNNPPUNet, features=6, num_resnet=1,
                                         levels=3),
}
SIZES = {"pixelcnnpp_unet": (8, 4)}
# Grey images are the one-group case: 'subpixel' and 'pixel' masks coincide there. The U-Net
# predicts whole pixels: 'subpixel' only for grey.
CASES = [(name, mode, channels) for name in MODELS
         for mode, channels in (("subpixel", 3), ("pixel", 3), ("subpixel", 1))
         if name != "pixelcnnpp_unet" or (mode, channels) != ("subpixel", 3)]


def _size(name):
  return SIZES.get(name, (H, W))


def _model(name, channels, mode="subpixel", **kwargs):
  return MODELS[name](channels, num_params=NUM_PARAMS, **{"output_mode": mode, **kwargs})


def _random_params(model, *args, seed=0):
  """Random weights drawn with numpy: compiling `model.init` takes 10+ s on 2 CPU cores.

  Kernels and embeddings are N(0, 1/fan_in) and biases zero, so that which ReLU units are
  active varies from image to image rather than being fixed by a bias.
  """
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key == "bias":
      return jnp.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


@functools.cache
def _dependence(name, mode, channels=3):
  """Σ |∂ output / ∂ input| over parameters and eight random images: [H, W, C', H, W, C].

  C' is the image's channels in 'subpixel' mode and 1 (the whole pixel) in 'pixel' mode.
  """
  model = _model(name, channels, mode)
  images = np.random.default_rng(1).uniform(-1, 1, (8, *_size(name), channels))
  images = images.astype(np.float32)

  @jax.jit
  def dependence(params, images):
    def output(image):
      y = model.apply(params, image[None])[0]
      return y if mode == "subpixel" else y[:, :, None]

    # Reverse mode: the U-Net's strided convolutions have custom VJPs (models/layers.py).
    jacobians = jax.vmap(jax.jacrev(output))(images)  # [8, H, W, C', P, H, W, C]
    return jnp.abs(jacobians).sum(axis=(0, 4))

  return np.asarray(dependence(_random_params(model, images[:1]), images))


def _allowed(mode, channels=3, size=(H, W)):
  """What output (i, j, c') may depend on: [H, W, C', H, W, C] booleans."""
  order = np.arange(size[0] * size[1]).reshape(size)
  earlier = order[:, :, None, None] > order[None, None]
  same = order[:, :, None, None] == order[None, None]
  c = np.arange(channels)
  # 'pixel' mode predicts the whole pixel from earlier pixels only.
  within = c[:, None] > c[None] if mode == "subpixel" else np.zeros((1, channels), bool)
  return (earlier[:, :, None, :, :, None]
          | (same[:, :, None, :, :, None] & within[None, None, :, None, None, :]))


def _seen_pixels(dependence, i, j):
  """The input pixels output (i, j) depends on through any channel: [H, W] booleans."""
  return dependence[i, j].sum(axis=(0, 3)) > 0


@pytest.mark.parametrize("name,mode,channels", CASES)
def test_no_output_depends_on_the_present_or_future(name, mode, channels):
  dependence = _dependence(name, mode, channels)
  allowed = _allowed(mode, channels, _size(name))
  np.testing.assert_array_equal(dependence[~allowed], 0)
  # Not vacuous: every output sees its left neighbour, and G sees R, B sees R and G inside
  # the pixel.
  pixels = dependence.sum(axis=(2, 5))  # [H, W, H, W]
  assert (np.einsum("ijij->ij", pixels[:, 1:, :, :-1]) > 0).all()
  if mode == "subpixel" and channels == 3:
    centre = np.einsum("ijaijb->ijab", dependence)  # [H, W, C', C] at the same pixel
    assert (centre[:, :, [1, 2, 2], [0, 0, 1]] > 0).all()


@pytest.mark.parametrize("mode", pixelcnn.OUTPUT_MODES)
def test_gated_pixelcnn_sees_every_earlier_pixel(mode):
  # Its reach covers the image, so with no blind spot the allowed set is seen exactly.
  np.testing.assert_array_equal(_dependence("gated_pixelcnn", mode) > 0, _allowed(mode))


@pytest.mark.parametrize("mode,channels", [("pixel", 3), ("subpixel", 1)])
def test_pixelcnnpp_unet_sees_every_earlier_pixel(mode, channels):
  # Its coarse levels reach the whole 8x4 image: no blind spot, the allowed set exactly.
  np.testing.assert_array_equal(_dependence("pixelcnnpp_unet", mode, channels) > 0,
                                _allowed(mode, channels, _size("pixelcnnpp_unet")))


def test_pixelcnnpp_unet_drops_out_only_when_given_a_dropout_rng():
  model = _model("pixelcnnpp_unet", 1, "pixel", dropout=0.5)
  x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (2, 8, 4, 1)), jnp.float32)
  params = _random_params(model, x)
  plain = jax.jit(lambda: model.apply(params, x))
  dropped = jax.jit(lambda key: model.apply(params, x, rngs={"dropout": key}))
  np.testing.assert_array_equal(plain(), plain())
  a, b = dropped(jax.random.PRNGKey(0)), dropped(jax.random.PRNGKey(1))
  assert np.abs(a - plain()).max() > 1e-4 and np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize("kwargs,shape,match", [
    (dict(output_mode="subpixel"), (1, 8, 4, 3), "3 channels.*logistic_mixture"),
    (dict(), (1, 6, 4, 3), r"levels=3.*6×4 must divide by 4"),
])
def test_pixelcnnpp_unet_bad_inputs_are_user_errors(kwargs, shape, match):
  model = _model("pixelcnnpp_unet", 3, **{"mode": "pixel", **kwargs})
  with pytest.raises(UserError, match=match):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def test_pixelcnn_has_a_blind_spot():
  # Two masked 3x3 layers: output (3, 2) sees its 5x5 window's past except (2, 4), which
  # no chain of two masked taps reaches (van den Oord et al. 2016b).
  expected = np.zeros((H, W), bool)
  expected[1, 0:5] = expected[2, 0:4] = expected[3, 0:2] = True
  np.testing.assert_array_equal(_seen_pixels(_dependence("pixelcnn", "pixel"), 3, 2), expected)


def test_row_lstm_has_a_triangular_receptive_field():
  # The state at (i, j) reads states (i-1, j-1..j+1): in row i-m the rightmost pixel seen is
  # j + a + m - 1 (a = 1, the 3x3 first layer's half-width), so e.g. (i-1, j+2) is above
  # (i, j) yet unseen, unlike in the Gated PixelCNN.
  dependence = _dependence("row_lstm", "pixel")
  for i in range(1, H):
    for j in range(W):
      seen = _seen_pixels(dependence, i, j)
      for m in range(1, i + 1):
        right = min(W - 1, j + m)
        assert seen[i - m, right] and not seen[i - m, right + 1:].any(), (i, j, m)


@pytest.mark.parametrize("name,mode,channels", CASES)
def test_output_layout(name, mode, channels):
  size = _size(name)
  x = jnp.zeros((2, *size, channels))
  out = jax.eval_shape(lambda: _model(name, channels, mode).init_with_output(
      jax.random.PRNGKey(0), x)[0])
  expected = (2, *size, channels, NUM_PARAMS) if mode == "subpixel" else (2, *size, NUM_PARAMS)
  assert out.shape == expected and out.dtype == jnp.float32


@pytest.mark.parametrize("name", MODELS)
def test_labels_change_the_output_and_calls_repeat_exactly(name):
  model = _model(name, 1, num_classes=3)
  image = np.random.default_rng(1).uniform(-1, 1, (1, *_size(name), 1)).astype(np.float32)
  x = jnp.asarray(np.concatenate([image, image]))
  labels = jnp.array([0, 1])
  params = _random_params(model, x, labels)
  apply = jax.jit(model.apply)
  first, again = apply(params, x, labels), apply(params, x, labels)
  np.testing.assert_array_equal(first, again)
  assert np.abs(first[0] - first[1]).max() > 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_labels_are_required_exactly_when_conditional(name):
  x = jnp.zeros((2, *_size(name), 1))
  with pytest.raises(UserError, match="num_classes=3.*needs labels"):
    jax.eval_shape(lambda: _model(name, 1, num_classes=3).init(jax.random.PRNGKey(0), x))
  with pytest.raises(UserError, match="num_classes=0.*got labels"):
    jax.eval_shape(lambda: _model(name, 1).init(jax.random.PRNGKey(0), x, jnp.zeros(2, int)))


@pytest.mark.parametrize("kwargs,x_shape,match", [
    (dict(), (2, H, W, 3), r"shape \(2, 5, 6, 3\).*channels=1"),
    (dict(output_mode="logits"), (2, H, W, 1), "output_mode='logits'"),
])
def test_bad_inputs_are_user_errors(kwargs, x_shape, match):
  model = _model("pixelcnn", 1, **kwargs)
  with pytest.raises(UserError, match=match):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x_shape)))


def test_a_width_narrower_than_the_channels_is_a_user_error():
  model = pixelcnn.GatedPixelCNN(3, features=2)
  with pytest.raises(UserError, match="width 2.*at least 3"):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, H, W, 3))))


def test_channel_masks_follow_the_paper():
  groups = np.arange(3)
  a = pixelcnn.causal_mask((1, 1), (0, 0), "A", groups, groups)[0, 0]
  b = pixelcnn.causal_mask((1, 1), (0, 0), "B", groups, groups)[0, 0]
  # [in, out]: output G sees input R; B sees R and G (mask A); mask B adds each to itself.
  np.testing.assert_array_equal(a, np.triu(np.ones((3, 3)), 1))
  np.testing.assert_array_equal(b, np.triu(np.ones((3, 3))))
  spatial = pixelcnn.causal_mask((3, 3), (1, 1), "B", groups[:1], groups[:1])[..., 0, 0]
  np.testing.assert_array_equal(spatial, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
  np.testing.assert_array_equal(pixelcnn.channel_groups(8, 3, blocks=2),
                                [0, 0, 1, 2, 0, 0, 1, 2])


@pytest.mark.parametrize("name,mode,channels", CASES)
def test_row_mode_reproduces_the_full_network_row_by_row(name, mode, channels):
  """Rows fed one at a time, each twice (as the sampler revisits a row while it fills in, the
  first time with a stale copy): every row's output equals the full network's row."""
  model = _model(name, channels, mode, num_classes=3)
  labels = jnp.array([0, 2])
  height, width = _size(name)
  params = _random_params(model, np.zeros((2, height, width, channels), np.float32),
                          labels)["params"]

  # One program for the set-up (eager, each apply op compiles on its own), and numpy for the
  # slicing and comparisons below (eager jax slices compile once per row index).
  @jax.jit
  def setup():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, height, width, channels), minval=-1,
                           maxval=1)
    full = model.apply({"params": params}, x, labels)
    _, cache = model.apply({"params": params}, x[:, :1], labels, row=0, mutable=["cache"])
    return x, full, jax.tree.map(jnp.zeros_like, cache["cache"])

  x, full, cache = setup()
  x, full = np.asarray(x), np.asarray(full)
  row_call = jax.jit(lambda c, x_row, i: model.apply({"params": params, "cache": c}, x_row,
                                                      labels, row=i, mutable=["cache"]))
  for i in range(height):
    _, stale = row_call(cache, -x[:, i:i + 1], i)  # Overwritten by the call below.
    out, mutated = row_call(stale["cache"], x[:, i:i + 1], i)
    cache = mutated["cache"]
    np.testing.assert_allclose(np.asarray(out)[:, 0], full[:, i], rtol=1e-5, atol=1e-5)
