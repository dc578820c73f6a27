"""Writing files so that a crash or a concurrent reader never sees half of one."""

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`, moved onto `path` once the block succeeds.

  The temporary name keeps `path`'s extension (`np.savez` appends '.npz' to a name without
  it), and on an exception it is removed, leaving whatever was at `path` untouched.
  """
  tmp = path + ".tmp" + os.path.splitext(path)[1]
  try:
    yield tmp
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
  os.replace(tmp, path)
