"""Datasets, augmentation and the tf.data → jax.Array input pipeline."""
