"""Evaluators: built once from config, each `run(state)` yields (name, value) pairs."""
