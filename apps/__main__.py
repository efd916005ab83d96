"""`python -m hybridvision.apps` lists the apps; `python -m hybridvision.apps demo` runs every app's demo.

Each app package declares in its `__init__.py`:
    DESCRIPTION: one line for the listing.
    TOOLS: its command-line tools (modules with a `main`), `hybridvision <app> <tool>`.
    DEMO_ARGS: the flags of a short run of `train.py` on the embedded demo data.
    HEADLINE: (split, metric) of metrics.json to show in the demo table.
    chance(run_dir): that metric's chance level, computed from the demo data the run used
        (the majority-class share of its split, or the mAP of random scores).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hybridvision.common.cli import STARTUP_NOISE
from hybridvision.common.config import OneLineErrorParser

APP_ORDER = ("orientation_light", "attractiveness", "cross_modal", "digit_pairs", "patch_training")


def available_apps() -> dict:
    """App name -> its package module, for every app of `APP_ORDER` (each must have a train.py)."""
    root = Path(__file__).parent
    missing = [name for name in APP_ORDER if not (root / name / "train.py").is_file()]
    if missing:
        raise FileNotFoundError(f"apps without a train.py: {', '.join(missing)}; every app needs one")
    return {name: importlib.import_module(f"hybridvision.apps.{name}") for name in APP_ORDER}


def _lookup(metrics: dict, split: str, key: str):
    value = metrics.get(split, {})
    for part in key.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return value if isinstance(value, (int, float)) else None


def _run_quietly(cmd, verbose: bool = False) -> subprocess.CompletedProcess:
    """Runs `cmd`, passing its output through without TensorFlow's start-up noise (all of it with `verbose`)."""
    env = dict(os.environ)
    if not verbose:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            if verbose or not STARTUP_NOISE.match(line):
                sys.stdout.write(line)
                sys.stdout.flush()
    return subprocess.CompletedProcess(cmd, proc.returncode)


def run_demos(names, out_root: Path, verbose: bool = False) -> list[dict]:
    rows = []
    for name, module in names.items():
        run_dir = out_root / name
        cmd = [sys.executable, "-m", f"hybridvision.apps.{name}.train", *module.DEMO_ARGS, "--run-dir", str(run_dir), "--quiet"]
        print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
        start = time.time()
        proc = _run_quietly(cmd, verbose)
        seconds = time.time() - start
        split, key = module.HEADLINE
        value = None
        metrics_file = run_dir / "metrics.json"
        chance = None
        if proc.returncode == 0 and metrics_file.exists():
            value = _lookup(json.loads(metrics_file.read_text()), split, key)
            chance = module.chance(run_dir)
        rows.append(
            {"app": name, "ok": proc.returncode == 0, "metric": f"{split} {key}", "value": value,
             "chance": chance, "seconds": seconds, "run_dir": str(run_dir)}
        )
    return rows


def print_table(rows) -> None:
    print("\nDemo results (SYNTHETIC demo data: a smoke test that the apps learn, not a benchmark)")
    header = f"{'app':<18} {'status':<7} {'metric':<26} {'value':>7} {'chance':>7} {'time':>7}  run dir"
    print(header)
    print("-" * len(header))
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:.3f}"
        chance = "-" if r["chance"] is None else f"{r['chance']:.3f}"
        status = "ok" if r["ok"] else "FAILED"
        print(f"{r['app']:<18} {status:<7} {r['metric']:<26} {value:>7} {chance:>7} {r['seconds']:>6.0f}s  {r['run_dir']}")


def build_parser(prog: str = "python -m hybridvision.apps") -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog=prog, description="hybridvision task apps")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="list the apps (the default)")
    demo = sub.add_parser("demo", help="run every app on its embedded demo data and print a table")
    demo.add_argument("apps", nargs="*", help="only these apps")
    demo.add_argument("--out", default=None, help="root of the demo run directories (default runs/demo/<timestamp>)")
    demo.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages too")
    return parser


def main(argv=None, prog: str = "python -m hybridvision.apps") -> int:
    """`list` or `demo [APP ...]`; the `hybridvision` command runs its `demo` through here too (prog 'hybridvision')."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    apps = available_apps()
    if args.command in (None, "list"):
        for name, module in apps.items():
            print(f"{name:<18} {module.DESCRIPTION}")
        print("\nRun one: hybridvision <name> train --help   |   all demos: hybridvision demo")
        return 0
    unknown = sorted(set(args.apps) - set(apps))
    if unknown:
        parser.error(f"unknown app(s) {', '.join(unknown)}; available: {', '.join(apps)}")
    chosen = {n: m for n, m in apps.items() if not args.apps or n in args.apps}
    out = Path(args.out or Path("runs") / "demo" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    rows = run_demos(chosen, out, args.verbose)
    print_table(rows)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
