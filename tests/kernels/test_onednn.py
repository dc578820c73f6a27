"""oneDNN's convolutions (jaxgen.kernels.onednn) against XLA's, and when they are chosen.

The suite runs on four fake devices, where `auto` keeps XLA's convolutions; these tests force
oneDNN with JAXGEN_CPU_CONV=onednn and check in the lowered program that it ran.
"""

import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.kernels import onednn
from jaxgen.models import layers, unet

# setup.cfg installs oneDNN's wheels on Linux x86-64 only; there it must build and load.
pytestmark = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64"),
    reason="oneDNN's wheels are installed on Linux x86-64 only")
_PADS = ((1, 1), (1, 1))
_TARGETS = ("JaxgenConvForward", "JaxgenConvBackwardData", "JaxgenConvBackwardWeights")


def _uses_onednn(fn, *args) -> set[str]:
  text = jax.jit(fn).lower(*args).as_text()
  return {target for target in _TARGETS if target in text}


def _random(*shapes, seed=0):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.standard_normal(shape, np.float32)) for shape in shapes]


# (input [b, h, w, c], HWIO kernel, strides, padding): the U-Net's 3x3 and 1x1 convolutions
# and its stride-2 downsampling, a DCGAN-like 4x4 stride-2 one, uneven pads and sizes.
_CONVS = [((2, 8, 8, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1))),
          ((2, 8, 8, 6), (1, 1, 6, 4), (1, 1), ((0, 0), (0, 0))),
          ((2, 7, 7, 3), (3, 3, 3, 4), (2, 2), ((1, 1), (1, 1))),
          ((2, 9, 8, 3), (4, 4, 3, 5), (2, 2), ((1, 2), (0, 1)))]


@pytest.mark.parametrize("shape,kernel_shape,strides,padding", _CONVS)
def test_conv_and_its_gradients_equal_lax(monkeypatch, shape, kernel_shape, strides, padding):
  monkeypatch.setenv("JAXGEN_CPU_CONV", "onednn")
  u, kernel = _random(shape, kernel_shape)

  def loss(conv, u, kernel):
    y = conv(u, kernel, strides, padding)
    return jnp.sum(jnp.sin(y)), y

  ours = jax.value_and_grad(lambda u, k: loss(layers.conv, u, k), (0, 1), has_aux=True)
  # layers._conv is lax.conv_general_dilated alone, differentiated by JAX.
  want = jax.value_and_grad(lambda u, k: loss(layers._conv, u, k), (0, 1), has_aux=True)
  assert _uses_onednn(ours, u, kernel) == set(_TARGETS)
  (_, y), grads = jax.jit(ours)(u, kernel)
  (_, y_want), grads_want = jax.jit(want)(u, kernel)
  for got, expected in zip((y, *grads), (y_want, *grads_want)):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_transposed_conv_and_its_gradients_equal_lax(monkeypatch):
  monkeypatch.setenv("JAXGEN_CPU_CONV", "onednn")
  strides, padding = (2, 2), ((1, 1), (1, 1))
  x, kernel = _random((2, 4, 5, 6), (4, 4, 3, 6))  # kernel of the forward conv: 3 -> 6

  def loss(transpose, x, kernel):
    y = transpose(x, kernel, strides, padding)
    return jnp.sum(jnp.sin(y)), y

  ours = jax.value_and_grad(lambda x, k: loss(layers.conv_transpose, x, k), (0, 1),
                            has_aux=True)
  want = jax.value_and_grad(lambda x, k: loss(layers._lax_conv_transpose, x, k), (0, 1),
                            has_aux=True)
  assert _uses_onednn(ours, x, kernel) == set(_TARGETS)
  (_, y), grads = jax.jit(ours)(x, kernel)
  (_, y_want), grads_want = jax.jit(want)(x, kernel)
  assert y.shape == (2, 8, 10, 3)
  for got, expected in zip((y, *grads), (y_want, *grads_want)):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_repeated_calls_are_bit_identical_and_vmap_runs_per_element(monkeypatch):
  monkeypatch.setenv("JAXGEN_CPU_CONV", "onednn")
  u, kernel, dy = _random((3, 2, 8, 8, 4), (3, 3, 4, 4), (3, 2, 8, 8, 4))
  pads = ((1, 1), (1, 1))
  grads = jax.jit(jax.vmap(lambda u, dy: jax.vjp(
      lambda a, k: layers.conv(a, k, (1, 1), pads), u, kernel)[1](dy)))
  first, second = grads(u, dy), grads(u, dy)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  du, dkernel = jax.vjp(lambda a, k: layers._conv(a, k, (1, 1), pads), u[1], kernel)[1](dy[1])
  np.testing.assert_allclose(first[0][1], du, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(first[1][1], dkernel, rtol=1e-5, atol=1e-5)


def _unet_params(model, *args):
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args))["params"]
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda leaf: 0.3 * rng.standard_normal(leaf.shape).astype(np.float32),
                      shapes)


def test_unet_loss_and_gradients_equal_xla_convolutions(monkeypatch):
  """The whole network, skips and downsampling included: same outputs and gradients."""
  model = unet.UNet(image_size=8, channels=1, features=8, multipliers=(1, 2), blocks=1,
                    attention=())
  x, noise = _random((2, 8, 8, 1), (2,))
  params = _unet_params(model, x, noise)

  def loss(params, x):
    return jnp.mean(jnp.square(model.apply({"params": params}, x, noise)))

  results = {}
  for mode in ("xla", "onednn"):
    monkeypatch.setenv("JAXGEN_CPU_CONV", mode)
    grad_fn = jax.value_and_grad(loss, (0, 1))
    assert bool(_uses_onednn(grad_fn, params, x)) == (mode == "onednn")
    results[mode] = jax.jit(grad_fn)(params, x)
  for got, want in zip(jax.tree.leaves(results["onednn"]), jax.tree.leaves(results["xla"])):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_auto_keeps_xla_on_several_devices_and_for_other_dtypes(monkeypatch):
  x, kernel = _random((1, 4, 4, 2), (3, 3, 2, 2))
  monkeypatch.setenv("JAXGEN_CPU_CONV", "auto")
  assert jax.device_count() > 1  # The suite's fake devices.
  assert not onednn.enabled(_PADS, x, kernel)
  with monkeypatch.context() as one_device:
    one_device.setattr(jax, "device_count", lambda: 1)
    assert onednn.enabled(_PADS, x, kernel)
  monkeypatch.setenv("JAXGEN_CPU_CONV", "onednn")
  assert onednn.enabled(_PADS, x, kernel)
  assert not onednn.enabled(_PADS, x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16))
  assert not onednn.enabled(((1, -1), (1, 1)), x, kernel)  # A cropping transposed conv's.
  monkeypatch.setenv("JAXGEN_CPU_CONV", "xla")
  assert not onednn.enabled(_PADS, x, kernel)


def test_an_unknown_mode_is_a_one_line_error(monkeypatch):
  monkeypatch.setenv("JAXGEN_CPU_CONV", "mkldnn")
  x, kernel = _random((1, 4, 4, 2), (3, 3, 2, 2))
  with pytest.raises(UserError, match="JAXGEN_CPU_CONV='mkldnn' is not one of auto, onednn"):
    layers.conv(x, kernel, (1, 1), ((1, 1), (1, 1)))


def test_without_onednn_auto_falls_back_and_onednn_is_a_one_line_error(monkeypatch):
  monkeypatch.setattr(onednn, "_prefix", lambda: None)
  onednn._load.cache_clear()
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  x, kernel = _random((1, 4, 4, 2), (3, 3, 2, 2))
  try:
    monkeypatch.setenv("JAXGEN_CPU_CONV", "auto")
    assert not onednn.enabled(_PADS, x, kernel)
    monkeypatch.setenv("JAXGEN_CPU_CONV", "onednn")
    with pytest.raises(UserError, match="oneDNN is not installed.*pip install onednn-cpu-gomp"):
      onednn.enabled(_PADS, x, kernel)
  finally:
    monkeypatch.undo()
    onednn._load.cache_clear()
