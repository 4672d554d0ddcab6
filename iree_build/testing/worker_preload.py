"""What the run pool's fork server imports once, so that a new run worker is a fork
(milliseconds) rather than an interpreter start and ``iree.runtime`` import (~0.3 s or
more): a worker lost to a crash is replaced before the next test needs it.

Importing creates no device and no runtime thread, which is what makes forking safe.
"""

from iree_build.testing import check_runner, devices, execute, run_worker  # noqa: F401
