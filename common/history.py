"""The history CSV every run writes (one row per epoch), read back.

Its own module so that both `hybridvision.common.run` (which writes it) and
`hybridvision.common.plots` (which draws it) import it at module level, with no circle.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hybridvision.common.cli import UserError


def read_history(path: Path) -> list[dict]:
    """Rows of a history CSV as dicts of floats, `epoch` an int (empty if the file is missing)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        out = []
        for r in rows:
            if None in r or None in r.values():  # a row with more or fewer cells than the header: cut short
                raise ValueError(f"row {len(out) + 1} does not have one cell per column")
            row = {k: (float(v) if v != "" else None) for k, v in r.items()}
            row["epoch"] = int(row["epoch"])
            out.append(row)
    except (ValueError, KeyError, TypeError, csv.Error) as err:
        raise UserError(f"{path} is not a history this harness wrote ({err}); delete the run directory or pass "
                        "a new --run-dir") from None
    return out
