"""Results tables: the same rows as CSV (every value as computed) and as Markdown (rounded, for reading).

Rows are dicts; their columns are the keys in the order first seen. In the
Markdown table a `<name>_mean` / `<name>_std` pair is one column `<name>`
("mean ± std") and a `<name>_ci95_low` / `<name>_ci95_high` pair one column
`<name> 95% CI` ("[low, high]"), as `hybridvision.common.repeat.summarise` writes them.
Missing values (None, "", NaN) show as "-".
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

_PAIRS = (("_mean", "_std", "{} ± {}", ""), ("_ci95_low", "_ci95_high", "[{}, {}]", " 95% CI"))


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _pair(key: str, columns: list[str]):
    """The `_PAIRS` entry that `key` is half of (its other half among `columns`), or None."""
    for first, second, pattern, label in _PAIRS:
        if key.endswith(first) and key[: -len(first)] + second in columns:
            return first, second, pattern, label
        if key.endswith(second) and key[: -len(second)] + first in columns:
            return first, second, pattern, label
    return None


def _missing(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _cell(value, fmt: str) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        return fmt.format(value)
    return str(value)


def markdown_table(rows: list[dict], columns: list[str] | None = None, headers: dict | None = None,
                   formats: dict | None = None, digits: int = 3, title: str = "", notes=()) -> str:
    """A Markdown table of `rows`: `# title`, the table, then each of `notes` as a paragraph.

    `columns`: the keys shown (default: all); `headers`: a header per shown column
    (a merged pair under its `<name>` or `<name> 95% CI`); `formats`: a format string
    per key (default `{:.<digits>f}` for floats).
    """
    columns = list(columns or _columns(rows))
    headers, formats = headers or {}, formats or {}

    def fmt(key):
        return formats.get(key, f"{{:.{digits}f}}")

    shown = []  # (header, render(row), right-aligned)
    for key in columns:
        pair = _pair(key, columns)
        if pair is None:
            numbers = all(_missing(r.get(key)) or isinstance(r.get(key), (int, float)) for r in rows)
            shown.append((headers.get(key, key), lambda row, key=key: _cell(row.get(key), fmt(key)), numbers))
        elif key.endswith(pair[0]):  # the pair's first key places its column; the second is drawn with it
            first, second, pattern, label = pair
            name = key[: -len(first)]

            def render(row, a=key, b=name + second, pattern=pattern):
                if _missing(row.get(a)):
                    return "-"
                return pattern.format(_cell(row.get(a), fmt(a)), _cell(row.get(b), fmt(b)))

            shown.append((headers.get(name + label, name + label), render, True))
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(header for header, _, _ in shown) + " |",
              "|" + "".join("---:|" if right else "---|" for _, _, right in shown)]
    lines += ["| " + " | ".join(render(row) for _, render, _ in shown) + " |" for row in rows]
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    """`rows` as CSV text (a header row, then one line per row; keys outside `columns` are left out)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(columns or _columns(rows)), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(rows: list[dict], path: str | Path, columns: list[str] | None = None) -> Path:
    """`rows` as a CSV file (see `csv_text`)."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        f.write(csv_text(rows, columns))
    return path


def write_table(rows: list[dict], stem: str | Path, columns: list[str] | None = None,
                shown: list[str] | None = None, **markdown) -> tuple[Path, Path]:
    """`<stem>.csv` (the `columns`) and `<stem>.md` (the `shown` ones, default the same; see `markdown_table`)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(rows, stem.with_name(stem.name + ".csv"), columns)
    md_path = stem.with_name(stem.name + ".md")
    md_path.write_text(markdown_table(rows, shown or columns, **markdown))
    return csv_path, md_path
