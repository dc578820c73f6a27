"""Suite-wide setup, applied before anything imports jax.

Four fake CPU devices make the multi-device tests run anywhere. A persistent compilation
cache (shared with the CLI subprocesses through the environment) keeps the many small
runs from recompiling the same steps: compiling dominates these tests on 2 cores.
"""

import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Optimisation level 0: the tests' tiny programs run fast anyway, and compiling them is most
# of the suite's time (a third less at level 0; see the Makefile).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 "
                      "--xla_backend_optimization_level=0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_ROOT, ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
