"""Named commit points of an epoch's writes, and the test hook that kills the process at one.

`HYBRIDVISION_KILL_AT=<point>[@<epoch>]` kills the process with SIGKILL at that
commit point (of that 0-based epoch): the crash tests use it to check that a
kill at any point of the order of writes (see `hybridvision.common.run`) leaves
a run directory the next invocation can resume.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

KILL_ENV = "HYBRIDVISION_KILL_AT"
COMMIT_POINTS = (
    "mid_backup",  # backup/epoch-<n>.tmp.weights.h5 half written
    "backup",  # backup/epoch-<n>.weights.h5 in place
    "history",  # history.csv has the row
    "mid_checkpoint",  # best.tmp.keras half written
    "best_tmp",  # best.tmp.keras and best.json.tmp complete, neither renamed
    "best_keras",  # best.keras renamed, best.json not yet
    "best",  # best.json renamed
    "counter",  # backup/state.json says n: the epoch is committed
)


def commit_point(name: str, epoch: int | None = None, truncate: Path | None = None) -> None:
    """Kill -9 this process here when `HYBRIDVISION_KILL_AT` names this point (tests only).

    `truncate`: a file to cut to half its size first (a write interrupted midway).
    """
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    point, _, at = spec.partition("@")
    if point != name or (at and (epoch is None or int(at) != epoch)):
        return
    if truncate is not None and truncate.exists():
        with open(truncate, "r+b") as f:
            f.truncate(truncate.stat().st_size // 2)
    _die(name)


def _die(point: str) -> None:
    """SIGKILL this process (tests running in-process replace this with a raise)."""
    os.kill(os.getpid(), signal.SIGKILL)

