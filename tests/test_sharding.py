"""Mesh creation and the regex placement rules."""

import jax
import ml_collections
import pytest
from jax.sharding import PartitionSpec as P

from jaxgen import sharding
from jaxgen.errors import UserError

needs_4 = pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")


@needs_4
def test_mesh_shapes():
  mesh = sharding.create_mesh(ml_collections.ConfigDict(dict(data=-1, model=2)))
  assert dict(mesh.shape) == {"data": 2, "model": 2}
  assert dict(sharding.create_mesh(ml_collections.ConfigDict(dict(data=1, model=1))).shape) == {
      "data": 1, "model": 1}
  with pytest.raises(UserError, match="mesh.model=3"):
    sharding.create_mesh(ml_collections.ConfigDict(dict(data=-1, model=3)))


def test_rules_first_match_wins_and_unmatched_fails():
  rules = ((r"generator/.*kernel", "fsdp"), (r"bias", "replicate"))
  spec = sharding.spec_for("params/generator/Dense_0/kernel", (100, 784), rules, 2)
  assert spec == P(None, "model")
  assert sharding.spec_for("params/generator/Dense_0/bias", (784,), rules, 2) == P()
  assert sharding.spec_for("step", (), rules, 2) == P()  # scalars never need a rule
  with pytest.raises(UserError, match="no sharding rule matches 'params/discriminator/kernel'"):
    sharding.spec_for("params/discriminator/kernel", (3, 3), rules, 2)


def test_fsdp_leaves_indivisible_leaves_replicated():
  assert sharding.spec_for("k", (3, 5), (("k", "fsdp"),), 2) == P()
  assert sharding.spec_for("k", (4, 4, 1, 64), (("k", "fsdp"),), 2) == P(None, None, None, "model")
  assert sharding.spec_for("k", (4, 4, 1, 64), (("k", "fsdp"),), 1) == P()
