"""CRUXEval's own scorer as a test oracle, run in a worker process of its own.

A module with no heavy import, because the reference forks twice per check (a
`multiprocessing.Manager` and the check's process): a worker that had imported the test module
(scipy, pytest) would make each fork slower.
"""

from __future__ import annotations

import multiprocessing
import sys


def reference_check(program: str, evaluation: str) -> bool:
    """`utils_execute.check_correctness(program, 3)` from the folder `evaluation`, starting its
    processes as it does when run itself on Linux (fork; a spawned worker would pass spawn on,
    and each check would start two interpreters)."""
    multiprocessing.set_start_method("fork", force=True)
    sys.dont_write_bytecode = True
    if evaluation not in sys.path:
        sys.path.insert(0, evaluation)
    import utils_execute

    return bool(utils_execute.check_correctness(program, 3))
