"""The unrolled Threefry-2x32 lowering on CPU (kernels/threefry.py): the same bits as JAX's."""

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np

import jaxgen  # noqa: F401  (importing jaxgen registers the lowering)
from jaxgen.kernels import threefry

# Random123's known-answer vectors for Threefry-2x32-20: (key, counter, output).
_KNOWN = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
          ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
          ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]


def test_known_answers_through_jax_and_directly():
  u32 = lambda v: np.asarray(v, np.uint32)
  for key, counter, want in _KNOWN:
    through_jax = jax.jit(jax.extend.random.threefry_2x32)(u32(key), u32(counter))
    direct = jax.jit(threefry.hash_2x32)(*map(u32, (*key, *counter)))
    np.testing.assert_array_equal(through_jax, want)
    np.testing.assert_array_equal(np.stack(direct), want)


def test_cpu_program_has_no_loop_and_jax_random_agrees():
  key = jax.random.key(3)
  mask = jax.jit(lambda k: jax.random.bernoulli(k, 0.9, (4, 5, 7)))
  assert "while" not in mask.lower(key).compile().as_text()
  bits = jax.jit(lambda k: jax.random.bits(k, (6,)))(key)
  # jax.random.bits of a threefry key: the two words' XOR for the counters 0..n-1 (JAX's
  # default, partitionable Threefry).
  data = jax.random.key_data(key)
  hi, lo = threefry.hash_2x32(data[0], data[1], jnp.zeros(6, jnp.uint32),
                              jnp.arange(6, dtype=jnp.uint32))
  np.testing.assert_array_equal(bits, hi ^ lo)
