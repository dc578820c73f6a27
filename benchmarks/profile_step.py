"""Where an experiment's train step spends its time, by kind of XLA operation, as JSON lines.

  python benchmarks/profile_step.py --config experiments/edm_fashion_mnist.py
      [--steps 3] [--top 15] [--config.KEY=VALUE ...]

Runs the jitted step as `throughput.py` builds it under `jax.profiler`, then charges every
XLA:CPU thunk's time to the HLO instruction it ran and sorts it into a kind: convolutions
on activations (forward and input gradients), convolutions that produce a kernel (weight
gradients, whose window spans the feature map), oneDNN's convolutions (all three
directions, `jaxgen.kernels.onednn`), dots, reductions, transposes and copies,
concatenations, and other element-wise fusions. Prints one line per kind (ms per step and
share of the thunks' total), then the `--top` most expensive thunks with their shapes and
source op names. Made to find what separates a step from its PyTorch peer
(`vs_torch.py`): per-kind times on one machine, not a speed target.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import shutil
import sys
import tempfile

import jax

import throughput
from jaxgen import families, sharding, train

KINDS = ("conv_activations", "conv_weight_grads", "conv_onednn", "dot", "reduce", "transpose_copy",
         "concatenate", "elementwise")


def _computations(hlo_text: str) -> tuple[dict, dict]:
  """(instruction name -> its HLO line, computation name -> its body lines)."""
  instructions, bodies, current = {}, {}, None
  for line in hlo_text.splitlines():
    if not line.startswith(" ") and "{" in line and "(" in line:
      current = re.match(r"(?:ENTRY )?%?([\w.\-]+)", line).group(1)
      bodies[current] = []
      continue
    match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (.*)", line)
    if match:
      instructions.setdefault(match.group(1), match.group(2))
    if current:
      bodies[current].append(line)
  return instructions, bodies


def _kind(line: str, body: str) -> str:
  """The kind of one thunk from its instruction line and (for fusions) its body."""
  if "custom_call_target=\"JaxgenConv" in line:
    return "conv_onednn"
  conv = next((l for l in body.splitlines() if " convolution(" in l), None)
  if conv:
    # A weight gradient contracts over the feature map: its window is the map's size, not
    # the kernel's, and its output has the kernel's spatial shape.
    window = re.search(r"window=\{size=(\d+)x(\d+)", conv)
    out = re.search(r"(?:^|= )\w+\[\d+,(\d+),(\d+),\d+\]", conv.strip())
    big = window and out and int(window.group(1)) > int(out.group(1))
    return "conv_weight_grads" if big else "conv_activations"
  for op, kind in ((" dot(", "dot"), (" reduce(", "reduce"), (" transpose(", "transpose_copy"),
                   (" copy(", "transpose_copy"), (" concatenate(", "concatenate")):
    if op in body:
      return kind
  return "elementwise"


def profile(config, steps: int, top: int) -> list[dict]:
  family = families.get(config.family)
  mesh = sharding.create_mesh(config.mesh)
  _, init, shardings = train.create_state_fns(config, family, mesh)
  with jax.set_mesh(mesh):
    state = init()
    batch = throughput.synthetic_batch(config, family, mesh)
    compiled = train.compile_train_step(config, family, mesh, shardings).lower(
        state, batch).compile()
    for _ in range(2):  # Warm up outside the trace.
      state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics)
    trace_dir = tempfile.mkdtemp(prefix="jaxgen_profile_")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(steps):
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
  (trace,) = glob.glob(os.path.join(trace_dir, "plugins/profile/*/perfetto_trace.json.gz"))
  with gzip.open(trace) as f:
    events = json.load(f)["traceEvents"]
  shutil.rmtree(trace_dir)
  instructions, bodies = _computations(compiled.as_text())
  per_thunk = collections.defaultdict(float)
  for event in events:
    if event.get("ph") == "X" and event["name"] in instructions:
      per_thunk[event["name"]] += event["dur"] / 1e3 / steps
  total = sum(per_thunk.values())
  by_kind, rows = collections.defaultdict(float), []
  for name, ms in per_thunk.items():
    line = instructions[name]
    callee = re.search(r"calls=%?([\w.\-]+)", line)
    body = "\n".join(bodies.get(callee.group(1), [])) if callee else line
    kind = _kind(line, body)
    by_kind[kind] += ms
    op = re.search(r'op_name="([^"]*)"', line) or re.search(r'op_name="([^"]*)"', body)
    rows.append({"thunk": name, "kind": kind, "ms_per_step": round(ms, 2),
                 "shape": re.match(r"(\S+)", line).group(1),
                 "op_name": op.group(1) if op else ""})
  out = [{"family": config.family, "batch_size": config.batch_size,
          "thunks_ms_per_step": round(total, 1), "steps_traced": steps}]
  out += [{"kind": k, "ms_per_step": round(by_kind[k], 1),
           "share": round(by_kind[k] / total, 3)} for k in KINDS if k in by_kind]
  out += sorted(rows, key=lambda r: -r["ms_per_step"])[:top]
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--top", type=int, default=15)
  args, config = throughput.parse_config(parser, argv)
  for row in profile(config, args.steps, args.top):
    print(json.dumps(row))


if __name__ == "__main__":
  sys.exit(main())
