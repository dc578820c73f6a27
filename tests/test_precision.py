"""model.dtype=bfloat16 in every family: the step computes in bfloat16, the state stays float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import config as config_lib, families
from jaxgen.errors import UserError
from tests import helpers

# One experiment per family, and the VQ-VAE (its codebook search must stay float32).
# A one-level U-Net at 8×8: its code paths at a fraction of the compile.
EXPERIMENTS = [("dcgan_fashion_mnist", {}), ("vae_fashion_mnist", {}),
               ("vqvae_fashion_mnist", {}), ("gated_pixelcnn_fashion_mnist", {}),
               ("edm_fashion_mnist", {"model.image_size": "8", "model.multipliers": "(1,)"})]


@pytest.mark.parametrize("experiment,overrides", EXPERIMENTS)
def test_bfloat16_steps_train_with_finite_losses_and_float32_state(experiment, overrides):
  """And, with the same compiled step, a step from a state with a NaN weight is skipped:
  nothing of the state changes but the step (tests/test_nonfinite.py has the rest)."""
  config = config_lib.load(f"experiments/{experiment}.py:small",
                           {"model.dtype": "bfloat16", **overrides})
  family = families.get(config.family)
  batch, state = helpers.random_batch(family, config), helpers.init_state(family, config)
  step = jax.jit(lambda s, b: family.train_step(config, s, b))
  assert "bf16" in step.lower(state, batch).as_text()  # The computation really is bfloat16.
  losses = []
  for _ in range(3):
    state, metrics = step(state, batch)
    losses.append({k: float(v) for k, v in metrics.items()})
  assert all(np.isfinite(v) for m in losses for v in m.values()), losses
  for tree in (state.params, state.opt_state, state.ema_params):
    assert {leaf.dtype for leaf in jax.tree.leaves(tree)
            if jnp.issubdtype(leaf.dtype, jnp.floating)} <= {jnp.dtype(jnp.float32)}
  assert all(m["train/skipped"] == 0 for m in losses)
  bad = helpers.with_a_nan_weight(state)
  after, metrics = step(bad, batch)
  assert float(metrics["train/skipped"]) == 1 and int(after.step) == int(state.step) + 1
  parts = lambda s: (s.params, s.opt_state, s.ema_params, s.model_state)
  jax.tree.map(np.testing.assert_array_equal, parts(after), parts(bad))


def test_an_unknown_dtype_is_a_one_line_error():
  config = config_lib.load("experiments/vae_fashion_mnist.py:small", {"model.dtype": "fp16"})
  with pytest.raises(UserError, match="model.dtype='fp16': expected one of float32, bfloat16"):
    families.get(config.family).init_state(config, jax.random.PRNGKey(0), (28, 28, 1))
