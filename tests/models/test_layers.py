"""The custom-VJP convolutions equal lax's, in value, gradients and under sharding."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from jaxgen.models import layers

# (kernel, strides, padding): the DCGAN layer, Flax-style 'SAME' with odd and with
# smaller-than-stride kernels, asymmetric explicit pads, and 'VALID'.
CASES = [
    ((4, 4), (2, 2), ((1, 1), (1, 1))),
    ((3, 3), (2, 2), "SAME"),
    ((2, 2), (3, 3), "SAME"),
    ((3, 5), (1, 2), ((0, 2), (1, 1))),
    ((3, 3), (2, 2), "VALID"),
]


# Eager, every jax op compiles a program of its own (50-80 ms each on 2 cores): the tests
# below jit what they compute, share their random inputs, and reduce in numpy.
@functools.cache
def _inputs(kernel_hw, in_features=3, features=4, shape=(2, 5, 6)):
  def draw():
    kx, kk = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (*shape, in_features))
    kernel = jax.random.normal(kk, (*kernel_hw, features, in_features))
    return x, kernel
  return jax.jit(draw)()


def _scale(want):
  return float(np.max(np.abs(want)))


def _reference(x, kernel, strides, padding):
  """lax.conv_transpose with lax's own padding convention and autodiff."""
  if isinstance(padding, str):
    lax_padding = padding
  else:
    lax_padding = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel.shape[:2], padding)]
  return lax.conv_transpose(x, kernel, strides, lax_padding,
                            dimension_numbers=("NHWC", "HWIO", "NHWC"), transpose_kernel=True)


@pytest.mark.parametrize("kernel_hw,strides,padding", CASES)
def test_forward_equals_lax_conv_transpose(kernel_hw, strides, padding):
  x, kernel = _inputs(kernel_hw)
  pads = layers.explicit_padding(kernel_hw, strides, padding)
  ours, reference = jax.jit(lambda x, k: (layers.conv_transpose(x, k, strides, pads),
                                          _reference(x, k, strides, padding)))(x, kernel)
  np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_forward_is_the_adjoint_of_the_strided_conv():
  x, kernel = _inputs((4, 4))
  pads = ((1, 1), (1, 1))

  @jax.jit
  def transposed_and_adjoint(x, kernel):
    y = layers.conv_transpose(x, kernel, (2, 2), pads)
    conv = lambda u: lax.conv_general_dilated(u, kernel, (2, 2), pads,
                                              dimension_numbers=("NHWC", "HWIO", "NHWC"))
    _, conv_vjp = jax.vjp(conv, jnp.zeros(y.shape))
    return y, conv_vjp(x)[0]
  y, adjoint = transposed_and_adjoint(x, kernel)
  assert y.shape == (2, 10, 12, 4)
  np.testing.assert_allclose(y, adjoint, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_hw,strides,padding", CASES)
def test_gradients_equal_autodiff_of_lax(kernel_hw, strides, padding):
  x, kernel = _inputs(kernel_hw)
  pads = layers.explicit_padding(kernel_hw, strides, padding)
  out_shape = jax.eval_shape(lambda x, k: _reference(x, k, strides, padding), x, kernel).shape
  cotangent = jax.jit(lambda: jax.random.normal(jax.random.PRNGKey(1), out_shape))()

  def grads(fn, *args):
    loss = lambda x, k: jnp.sum(fn(x, k, *args) * cotangent)
    return jax.jit(jax.grad(loss, (0, 1)))(x, kernel)

  with jax.default_matmul_precision("highest"):
    ours = grads(layers.conv_transpose, strides, pads)
    expected = grads(_reference, strides, padding)
  for got, want in zip(ours, expected):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * _scale(want))


def _lax_conv(u, kernel, strides, padding):
  return lax.conv_general_dilated(u, kernel, strides, padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


# Odd and even input sizes: with stride 2 an odd one leaves a last row the transposed
# convolution of the output gradient alone would not reach.
@pytest.mark.parametrize("hw", [(10, 12), (7, 9)])
@pytest.mark.parametrize("kernel_hw,strides,padding", [c for c in CASES if c[2] != "SAME"])
def test_strided_conv_and_its_gradients_equal_lax(hw, kernel_hw, strides, padding):
  pads = layers.explicit_padding(kernel_hw, strides, padding)

  @jax.jit
  def inputs_and_outputs():
    key_u, key_k, key_dy = jax.random.split(jax.random.PRNGKey(2), 3)
    u = jax.random.normal(key_u, (2, *hw, 4))
    kernel = jax.random.normal(key_k, (*kernel_hw, 4, 3))
    expected = _lax_conv(u, kernel, strides, pads)
    cotangent = jax.random.normal(key_dy, expected.shape)
    return u, kernel, cotangent, layers.conv(u, kernel, strides, pads), expected
  u, kernel, cotangent, ours, expected = inputs_and_outputs()
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)

  def grads(fn):
    loss = lambda u, k: jnp.sum(fn(u, k, strides, pads) * cotangent)
    return jax.jit(jax.grad(loss, (0, 1)))(u, kernel)

  with jax.default_matmul_precision("highest"):
    for got, want in zip(grads(layers.conv), grads(_lax_conv)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * _scale(want))


def test_jit_with_a_batch_sharded_over_four_devices():
  if jax.device_count() < 4:
    pytest.skip("needs 4 (fake CPU) devices")
  mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Auto,))
  x, kernel = _inputs((4, 4), shape=(8, 5, 6))
  pads = ((1, 1), (1, 1))

  def loss(x, k):
    y = layers.conv_transpose(x, k, (2, 2), pads)
    return jnp.sum(layers.conv(y, k, (2, 2), pads) ** 2)

  step = jax.jit(jax.value_and_grad(loss, (0, 1)))
  sharded_x = jax.device_put(x, NamedSharding(mesh, P("data")))
  replicated_k = jax.device_put(kernel, NamedSharding(mesh, P()))
  value, (dx, dk) = step(sharded_x, replicated_k)
  want_value, (want_dx, want_dk) = step(x, kernel)
  assert dx.sharding.spec == P("data")
  np.testing.assert_allclose(value, want_value, rtol=1e-5)
  np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(dk, want_dk, rtol=1e-5, atol=1e-3)


def test_module_doubles_resolution_and_stores_the_forward_conv_kernel():
  layer = layers.ConvTranspose(features=4)

  @jax.jit
  def outputs():
    x = jnp.ones((2, 5, 6, 3))
    variables = layer.init(jax.random.PRNGKey(0), x)
    params = variables["params"]
    expected = layers.conv_transpose(x, params["kernel"], (2, 2), ((1, 1), (1, 1)))
    slow = layers.ConvTranspose(features=4, custom_vjp=False).apply(variables, x)
    return params, layer.apply(variables, x), expected + params["bias"], slow
  params, y, expected, slow = outputs()
  assert params["kernel"].shape == (4, 4, 4, 3)
  assert y.shape == (2, 10, 12, 4)
  np.testing.assert_allclose(y, expected, rtol=1e-6)
  np.testing.assert_allclose(y, slow, rtol=1e-5, atol=1e-5)


def test_conv_module_matches_nn_conv():
  x = jax.jit(lambda: jax.random.normal(jax.random.PRNGKey(0), (2, 9, 8, 3)))()
  for padding in (((1, 1), (1, 1)), "SAME"):

    @jax.jit
    def kernel_ours_and_flax(x):
      variables = layers.Conv(features=5, padding=padding).init(jax.random.PRNGKey(1), x)
      ours = layers.Conv(features=5, padding=padding).apply(variables, x)
      flax_conv = nn.Conv(5, (4, 4), strides=(2, 2), padding=padding).apply(variables, x)
      return variables["params"]["kernel"], ours, flax_conv
    kernel, ours, flax_conv = kernel_ours_and_flax(x)
    assert kernel.shape == (4, 4, 3, 5)
    np.testing.assert_allclose(ours, flax_conv, rtol=1e-5, atol=1e-5)


def test_module_computes_in_its_dtype_with_float32_params():
  layer = layers.ConvTranspose(features=4, padding="SAME", dtype=jnp.bfloat16)
  ones = np.ones((1, 3, 3, 2), np.float32)
  variables = jax.jit(layer.init)(jax.random.PRNGKey(0), ones)
  y = jax.jit(layer.apply)(variables, ones)
  assert y.shape == (1, 6, 6, 4) and y.dtype == jnp.bfloat16
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))


def test_stride_one_weight_gradient_in_micro_batches_equals_lax():
  # 28×28 maps are sliced 16 images at a time: 20 images make a full slice and a remainder.
  @jax.jit
  def draw():
    key_u, key_k, key_dy = jax.random.split(jax.random.PRNGKey(3), 3)
    return (jax.random.normal(key_u, (20, 28, 28, 3)), jax.random.normal(key_k, (3, 3, 3, 2)),
            jax.random.normal(key_dy, (20, 28, 28, 2)))
  u, kernel, cotangent = draw()
  pads = ((1, 1), (1, 1))

  def grads(fn):
    loss = lambda u, k: jnp.sum(fn(u, k, (1, 1), pads) * cotangent)
    return jax.jit(jax.grad(loss, (0, 1)))(u, kernel)

  with jax.default_matmul_precision("highest"):
    for got, want in zip(grads(layers.conv), grads(_lax_conv)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * _scale(want))
