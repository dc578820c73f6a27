"""Datasets, augmentation and the tf.data → jax.Array input pipeline."""

import os

# TensorFlow's oneDNN kernels switch themselves on only on CPUs with AVX-512 VNNI/BF16 or AMX,
# and then its ops' results differ from the Eigen kernels every other CPU runs ("slightly
# different numerical results", says the notice it logs at start-up, past any log level).
# The pipeline's batches must be the same on every machine a run resumes on, so jaxgen asks
# for the Eigen kernels everywhere unless TF_ENABLE_ONEDNN_OPTS is set; TensorFlow reads it
# once, when it loads, which in jaxgen is always below this package.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
