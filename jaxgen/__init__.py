"""jaxgen: generative image models in JAX/Flax, sharded, resumable and measured."""

__version__ = "0.1.0"
