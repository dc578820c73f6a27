"""Evaluators: built once from config, each `run(state)` yields (name, value) pairs."""

from absl import logging

from jaxgen import families
from jaxgen.errors import UserError


def create(config, family, mesh, source, *, report: bool) -> list:
  """The per-example means, plus sample metrics when config.evaluation.sample_metrics.

  `report` is `jaxgen evaluate`: it uses the config as it is and treats a missing feature
  network as an error. During training the family's cheaper settings apply
  (`preview_overrides`, e.g. the VAE's iwae_k_during_training), and a missing feature
  network only turns sample metrics off, with a warning.
  """
  from jaxgen.evaluators.mean import MeanEvaluator
  from jaxgen.evaluators.sample_quality import SampleQualityEvaluator
  if not report:
    config = families.preview_config(family, config)
  evaluators = [MeanEvaluator(config, family, mesh, source)]
  if config.evaluation.sample_metrics:
    try:
      evaluators.append(SampleQualityEvaluator(config, family, mesh, source))
    except UserError as e:
      if report:
        raise
      logging.warning("sample metrics are off for this run: %s", e)
  return evaluators
