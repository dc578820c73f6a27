"""Evaluators: built once from config, each `run(state)` yields (name, value) pairs."""

from absl import logging

from jaxgen.errors import UserError


def create(config, family, mesh, source, *, require_sample_metrics: bool) -> list:
  """The per-example means, plus sample metrics when config.evaluation.sample_metrics.

  During training a missing feature network only turns sample metrics off (with a warning);
  `jaxgen evaluate` asks for them by name, so there it is an error.
  """
  from jaxgen.evaluators.mean import MeanEvaluator
  from jaxgen.evaluators.sample_quality import SampleQualityEvaluator
  evaluators = [MeanEvaluator(config, family, mesh, source)]
  if config.evaluation.sample_metrics:
    try:
      evaluators.append(SampleQualityEvaluator(config, family, mesh, source))
    except UserError as e:
      if require_sample_metrics:
        raise
      logging.warning("sample metrics are off for this run: %s", e)
  return evaluators
