"""Non-finite steps: not applied (decided in the jitted step), counted, and a run that keeps
producing them stops with a one-line error, its last good checkpoint untouched."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import config as config_lib, train, train_state
from jaxgen.errors import UserError
from tests import helpers


def _sgd_state(**model_state):
  config = ml_collections.ConfigDict(dict(total_steps=10, ema_decay=0.9, optim=dict(
      name="sgd", learning_rate=0.1, b1=0.0, b2=0.999, eps=1e-8, weight_decay=0.0,
      warmup_steps=0, schedule="constant", grad_clip=0.0)))
  state = train_state.create_state(config, {"w": jnp.array([1.0, -2.0])},
                                   jax.random.PRNGKey(0), model_state=model_state)
  return config, state


@pytest.mark.parametrize("grads,loss,skipped", [
    ({"w": jnp.array([1.0, 2.0])}, None, False),
    ({"w": jnp.array([1.0, jnp.nan])}, None, True),
    ({"w": jnp.array([jnp.inf, 2.0])}, 1.0, True),
    ({"w": jnp.array([1.0, 2.0])}, jnp.nan, True)])
def test_a_non_finite_update_leaves_the_state_as_it_was_but_advances_the_step(grads, loss,
                                                                             skipped):
  config, state = _sgd_state(stats=jnp.zeros(2))
  new, metrics = jax.jit(lambda s, g, l, m: train_state.apply_gradients(
      config, s, g, loss=l, model_state=m))(state, grads, loss, {"stats": jnp.ones(2)})
  assert int(new.step) == 1 and float(metrics["skipped"]) == float(skipped)
  kept = lambda a, b: np.testing.assert_array_equal(a, b)
  for name in ("params", "opt_state", "ema_params", "model_state"):
    if skipped:
      jax.tree.map(kept, getattr(new, name), getattr(state, name))
  if not skipped:
    np.testing.assert_allclose(new.params["w"], [0.9, -2.2], rtol=1e-6)
    np.testing.assert_array_equal(new.model_state["stats"], 1.0)


# Every family's step from a NaN weight: tests/test_precision.py, on its compiled steps.


def test_the_gan_skips_per_network():
  """A NaN real image makes only the critic's loss NaN: D is kept, G (whose loss sees fakes
  only) is still updated, against the D it was kept at."""
  from jaxgen.families import gan
  config = config_lib.load("experiments/dcgan_fashion_mnist.py:small", {})
  state, batch = helpers.init_state(gan, config), helpers.random_batch(gan, config)
  batch["image"] = batch["image"].at[0, 0, 0, 0].set(jnp.nan)
  new, metrics = jax.jit(lambda s, b: gan.train_step(config, s, b))(state, batch)
  assert float(metrics["train/d_skipped"]) == 1 and float(metrics["train/g_skipped"]) == 0
  assert float(metrics["train/skipped"]) == 1 and int(new.step) == 1
  jax.tree.map(np.testing.assert_array_equal, (new.params[gan.D], new.opt_state[gan.D]),
               (state.params[gan.D], state.opt_state[gan.D]))
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(new.params[gan.G]))
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new.params[gan.G]),
                                                      jax.tree.leaves(state.params[gan.G])))


def test_a_run_that_keeps_diverging_stops_and_keeps_its_last_good_checkpoint(data_dir,
                                                                              tmp_path):
  """A learning rate of 1e30: step 1's update is finite (and huge), every step after it is
  NaN. The skips are counted in metrics.jsonl, and after max_consecutive_skips in a row the
  run stops naming the step and its last good checkpoint, having saved nothing after it."""
  workdir = str(tmp_path)
  config = helpers.small_config("experiments/vae_fashion_mnist.py", data_dir, total_steps=50,
                                checkpoint_every=1, log_every=1, max_consecutive_skips=3, **{
                                    "optim.learning_rate": 1e30, "optim.warmup_steps": 0})
  with pytest.raises(UserError, match=r"step 4: 3 steps in a row had a non-finite loss .* "
                     r"the last good checkpoint is step 1 in "):
    train.train_and_evaluate(config, workdir)
  records = helpers.read_metrics(workdir)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert [r["train/skipped_steps"] for r in records] == [0, 1, 2, 3]
  assert [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit()] == ["1"]
