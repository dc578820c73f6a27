"""`python -m jaxgen` is the `jaxgen` command."""

from jaxgen.main import main

# Guarded: `jaxgen prepare-data`'s spawned workers import this module again.
if __name__ == "__main__":
  main()
