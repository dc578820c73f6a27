"""oneDNN's convolutions inside jitted XLA:CPU programs, through XLA's FFI.

On CPU, XLA's own convolution kernels take 1.8-3.6x oneDNN's time at the U-Net's shapes
(benchmarks/README.md); `onednn_conv.cc` runs oneDNN's (what PyTorch runs on CPU) as custom
calls. The library comes from the `onednn-cpu-gomp` wheel and its headers from
`onednn-devel-cpu-gomp`; the custom calls are compiled with g++ on first use (about 4 s)
into a cache folder keyed by the source, the jaxlib version and the install prefix. Not at
install time: a setup.py extension would need jaxlib's and oneDNN's headers inside pip's
isolated build environment, and a machine without a compiler would fail to install rather
than fall back to XLA's convolutions.

`JAXGEN_CPU_CONV` chooses: `auto` (the default: oneDNN when the default backend is CPU,
exactly one device is visible and the library builds), `onednn` (always, an error if it
cannot build) or `xla`. With more than one device XLA keeps the convolutions: a custom call
has no sharding rule, so the partitioner would gather the batch onto every device.
"""

import ctypes
import functools
import hashlib
import logging
import os
import site
import subprocess
import sys
import tempfile

import jax
import jaxlib
import numpy as np

from jaxgen.errors import UserError

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onednn_conv.cc")
_TARGETS = {"forward": "JaxgenConvForward", "backward_data": "JaxgenConvBackwardData",
            "backward_weights": "JaxgenConvBackwardWeights"}
_MODES = ("auto", "onednn", "xla")


def mode() -> str:
  value = os.environ.get("JAXGEN_CPU_CONV", "auto")
  if value not in _MODES:
    raise UserError(f"JAXGEN_CPU_CONV={value!r} is not one of {', '.join(_MODES)}; unset it "
                    "for the default (auto)")
  return value


def _prefix() -> str | None:
  """The install prefix that holds oneDNN's library and headers (pip puts wheel data there)."""
  for prefix in (sys.prefix, site.getuserbase(), sys.base_prefix):
    if (os.path.exists(os.path.join(prefix, "lib", "libdnnl.so.3"))
        and os.path.exists(os.path.join(prefix, "include", "oneapi", "dnnl", "dnnl.hpp"))):
      return prefix
  return None


def _cache_dir() -> str:
  root = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
  return os.path.join(root, "jaxgen")


def _build(prefix: str) -> str:
  """Compiles the custom calls once per source, jaxlib and oneDNN; returns the .so path."""
  with open(_SOURCE, "rb") as f:
    key = hashlib.sha256(f.read() + jaxlib.__version__.encode() + prefix.encode()).hexdigest()
  path = os.path.join(_cache_dir(), f"onednn_conv-{key[:16]}.so")
  if os.path.exists(path):
    return path
  os.makedirs(_cache_dir(), exist_ok=True)
  # Built under a temporary name and renamed: test workers may build at the same time.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=_cache_dir())
  os.close(fd)
  lib = os.path.join(prefix, "lib")
  command = [os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC", "-w",
             f"-I{os.path.join(prefix, 'include')}", f"-I{jax.ffi.include_dir()}", _SOURCE,
             "-o", tmp, f"-L{lib}", "-l:libdnnl.so.3", f"-Wl,-rpath,{lib}"]
  try:
    subprocess.run(command, check=True, capture_output=True, text=True)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


@functools.cache
def _load() -> str | None:
  """Builds and registers the custom calls; None (and one log line) where that fails."""
  prefix = _prefix()
  if prefix is None:
    why = ("oneDNN is not installed (on Linux x86-64: pip install onednn-cpu-gomp "
           "onednn-devel-cpu-gomp)")
  else:
    try:
      lib = ctypes.cdll.LoadLibrary(_build(prefix))
    except (OSError, subprocess.CalledProcessError) as e:
      lines = str(getattr(e, "stderr", None) or e).strip().splitlines() or [repr(e)]
      why = "its custom calls did not build: " + next(
          (line for line in lines if "error" in line), lines[-1])
    else:
      for target in _TARGETS.values():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, target)),
                                    platform="cpu")
      return None
  logging.warning("jaxgen: XLA's own CPU convolutions, not oneDNN's: %s", why.strip())
  return why


def enabled(padding, *arrays) -> bool:
  """Whether a convolution with these pads over these float32 arrays runs through oneDNN."""
  chosen = mode()
  # A negative pad (a transposed conv whose kernel is smaller than its stride crops) is
  # XLA's: oneDNN takes none.
  if (chosen == "xla" or any(a.dtype != np.float32 for a in arrays)
      or min(p for pair in padding for p in pair) < 0):
    return False
  if chosen == "auto" and (jax.default_backend() != "cpu" or jax.device_count() != 1):
    return False
  why = _load()
  if why is not None and chosen == "onednn":
    raise UserError(f"JAXGEN_CPU_CONV=onednn, but {why}; set JAXGEN_CPU_CONV=auto or xla")
  return why is None


def _call(direction, out_shape, a, b, strides, padding):
  (top, bottom), (left, right) = padding
  attrs = dict(stride_h=strides[0], stride_w=strides[1], pad_top=top, pad_bottom=bottom,
               pad_left=left, pad_right=right)
  out = jax.ShapeDtypeStruct(tuple(out_shape), np.float32)
  # Under vmap the custom call runs once per batched element: it takes rank-4 arrays only.
  return jax.ffi.ffi_call(_TARGETS[direction], out, vmap_method="sequential")(
      a, b, **{k: np.int64(v) for k, v in attrs.items()})


def conv(u, kernel, strides, padding):
  """u [b, h, w, c] * HWIO kernel -> [b, h', w', o], as `lax.conv_general_dilated` (NHWC)."""
  out_hw = [(n + lo + hi - k) // s + 1 for n, k, s, (lo, hi)
            in zip(u.shape[1:3], kernel.shape[:2], strides, padding)]
  return _call("forward", (u.shape[0], *out_hw, kernel.shape[3]), u, kernel, strides, padding)


def conv_input_grad(dy, kernel, in_shape, strides, padding):
  """The adjoint of `conv` in its input: dy [b, h', w', o] -> [b, h, w, c] (`in_shape`)."""
  return _call("backward_data", in_shape, dy, kernel, strides, padding)


def conv_kernel_grad(u, dy, kernel_shape, strides, padding):
  """The gradient of <dy, conv(u, kernel)> with respect to the HWIO kernel."""
  return _call("backward_weights", kernel_shape, u, dy, strides, padding)
