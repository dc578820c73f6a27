"""The unrolled Threefry-2x32 lowering on CPU (kernels/threefry.py): the same bits as JAX's."""

import jax
import jax.extend.random
import numpy as np

from jaxgen.kernels import threefry

# Random123's known-answer vectors for Threefry-2x32-20: (key, counter, output).
_KNOWN = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
          ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
          ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
# Stock JAX 0.10.2's values for key(3), with its own (rolled) CPU lowering, in a process
# that had not imported jaxgen: bits [2, 3], normal [4] and vmapped bits over split(key, 2).
_BITS = [0x12F51D7E, 0xF02A3AC5, 0xA6220CDE, 0xF9C24C30, 0x4743C5AE, 0x953B6E65]
_NORMAL = [-1.4462569952011108, 1.5393810272216797, 0.38250625133514404, 1.970701813697815]
_VMAPPED = [[37346497, 188929330], [111646283, 2326751859]]


def test_known_answers_through_jax_and_directly():
  threefry.use_unrolled_on_cpu()
  u32 = lambda v: np.asarray(v, np.uint32)
  for key, counter, want in _KNOWN:
    through_jax = jax.jit(jax.extend.random.threefry_2x32)(u32(key), u32(counter))
    direct = jax.jit(threefry.hash_2x32)(*map(u32, (*key, *counter)))
    np.testing.assert_array_equal(through_jax, want)
    np.testing.assert_array_equal(np.stack(direct), want)


def test_lowering_has_no_loop_and_jax_random_keeps_its_values():
  threefry.use_unrolled_on_cpu()
  key = jax.random.key(3)
  mask = jax.jit(lambda k: jax.random.bernoulli(k, 0.9, (4, 5, 7)))
  assert "while" not in mask.lower(key).as_text()
  bits = jax.jit(lambda k: jax.random.bits(k, (2, 3)))(key)
  np.testing.assert_array_equal(np.asarray(bits).ravel(), np.asarray(_BITS, np.uint32))
  np.testing.assert_array_equal(jax.jit(lambda k: jax.random.normal(k, (4,)))(key),
                                np.asarray(_NORMAL, np.float32))
  vmapped = jax.jit(jax.vmap(lambda k: jax.random.bits(k, (2,))))(jax.random.split(key, 2))
  np.testing.assert_array_equal(vmapped, np.asarray(_VMAPPED, np.uint32))
