"""Console logging of the `hybridvision` logger (a run adds its run.log to it)."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("hybridvision")


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now, not to the stream it was created with.

    A handler that kept the stream of its creation would write into a closed
    one after a redirection ended (pytest's capture, a notebook cell).
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property ignores it
        pass


def setup_logging(quiet: bool = False) -> None:
    """Console logging for the `hybridvision` logger (INFO, or WARNING when quiet)."""
    log.setLevel(logging.INFO)
    if not any(getattr(h, "_hybridvision_console", False) for h in log.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._hybridvision_console = True
        log.addHandler(handler)
    for h in log.handlers:
        if getattr(h, "_hybridvision_console", False):
            h.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False

