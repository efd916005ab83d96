"""`hybridvision`: one command for the apps, their tools and the data tools.

    hybridvision list                      the apps and tools, one line each
    hybridvision demo [APP ...]            every app (or these) on its demo data, then a table
    hybridvision inspect MODEL.keras       what an exported model is, takes, and how it was trained
    hybridvision <app> <tool> [flags]      e.g. hybridvision attractiveness train --epochs 3
    hybridvision <data tool> [flags]       label, views, propose, split, agreement
    hybridvision --version

Each command runs the `main` of one module (`hybridvision.apps.<app>.<tool>`,
`hybridvision.data_prep.<tool>`), which still runs as `python -m <module>` too.

`--help` answers without importing TensorFlow: an app's `config.py` builds
the parsers of all its tools (`<tool>_parser()`), and imports nothing heavy;
the tools' modules import Keras at the top.
TensorFlow's start-up noise is kept off unless `--verbose` comes before the
command or TF_CPP_MIN_LOG_LEVEL is set.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import sys

from hybridvision import __version__
from hybridvision.common.cli import UserError, main_entry, quiet_tensorflow

PROG = "hybridvision"
DATA_TOOLS = ("label", "views", "propose", "split", "agreement")
COMMANDS = {"list": "the apps and their tools, one line each", "demo": "run every app (or the named ones) on its "
            "embedded demo data and print a table",
            "inspect": "what an exported model is, what it takes and how it was trained"}

USAGE = f"""usage: {PROG} [--verbose] <command> [flags]
       {PROG} --version | --help

Keras 3 layers and apps for images with side information.

commands:
  list                       {COMMANDS["list"]}
  demo [APP ...] [--out DIR] {COMMANDS["demo"]}
  inspect MODEL.keras        {COMMANDS["inspect"]}
  <app> <tool> [flags]       a tool of an app; apps: {{apps}}
  <data tool> [flags]        {", ".join(DATA_TOOLS)}

options:
  -h, --help                 this help; `{PROG} <app> <tool> --help` shows a tool's flags
  --version                  the version
  --verbose                  (before the command) keep TensorFlow's start-up messages

examples:
  {PROG} attractiveness train --help
  {PROG} digit_pairs train --epochs 3
  {PROG} split labelled/ --out dataset/
"""


def _apps() -> dict:
    """App name -> its package (light: DESCRIPTION, TOOLS, ...)."""
    from hybridvision.apps.__main__ import available_apps

    return available_apps()


def _module_name(app: str | None, tool: str) -> str:
    return f"hybridvision.apps.{app}.{tool}" if app else f"hybridvision.data_prep.{tool}"


def tool_parser(app: str, tool: str):
    """The argparse parser of an app's tool, built without importing TensorFlow (by the app's config.py)."""
    return getattr(importlib.import_module(f"hybridvision.apps.{app}.config"), f"{tool}_parser")()


def summary(module: str) -> str:
    """The first line of a module's docstring, read from its source (no import, so no TensorFlow)."""
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as source:
        doc = ast.get_docstring(ast.parse(source.read())) or ""
    return doc.split("\n")[0].strip()


def list_commands(apps: dict) -> None:
    print(f"apps ({PROG} <app> <tool> --help):")
    for name, package in apps.items():
        print(f"  {name:<20} {package.DESCRIPTION}")
        for tool in package.TOOLS:
            print(f"    {tool:<18} {summary(_module_name(name, tool))}")
    print(f"\ndata tools ({PROG} <tool> --help):")
    for tool in DATA_TOOLS:
        print(f"  {tool:<20} {summary(_module_name(None, tool))}")
    print("\nother commands:")
    print(f"  {'demo [APP ...]':<20} {COMMANDS['demo']}")
    print(f"  {'inspect MODEL.keras':<20} {COMMANDS['inspect']}")


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def run_tool(app: str | None, tool: str, argv: list[str], verbose: bool = False):
    """Run one tool's `main(argv)`; for an app's tool with -h/--help only its parser is built.

    (The data tools import no TensorFlow: their `main` answers --help itself, subcommands included.)
    """
    if app:
        if "-h" in argv or "--help" in argv:
            # Prints the help and exits; returns only when -h was the value of a flag.
            tool_parser(app, tool).parse_args(argv)
        quiet_tensorflow(verbose)  # every app tool trains or loads a Keras model
    else:
        quiet_tensorflow(verbose, load=None)  # TensorFlow loads only if the tool needs it (propose's mtcnn)
    return importlib.import_module(_module_name(app, tool)).main(argv)


def run(argv=None):
    """Dispatch `hybridvision ...`: the command's return value (an int is the exit code)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = False
    while argv and argv[0].startswith("-"):
        flag = argv.pop(0)
        if flag in ("-h", "--help"):
            print(USAGE.format(apps=", ".join(_apps())), end="")
            return 0
        if flag == "--version":
            print(f"{PROG} {__version__}")
            return 0
        if flag == "--verbose":
            verbose = True
            continue
        raise UserError(f"unknown option {flag}; the options before a command are --help, --version, --verbose")
    if not argv:
        print(USAGE.format(apps=", ".join(_apps())), end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "list":
        if rest:
            raise UserError(f"'{PROG} list' takes no arguments (got {' '.join(rest)})")
        list_commands(_apps())
        return 0
    if command == "demo":
        from hybridvision.apps.__main__ import main as apps_main

        return apps_main(["demo", *rest, *(["--verbose"] if verbose else [])], prog=PROG)
    if command == "inspect":  # reads the .keras file's config.json: no TensorFlow
        from hybridvision.common.inspect_model import main as inspect_main

        return inspect_main(rest, prog=f"{PROG} inspect")
    if command in DATA_TOOLS:
        return run_tool(None, command, rest, verbose)
    apps = _apps()
    if command not in apps:
        raise UserError(
            f"unknown command '{command}'; {_suggest(command, [*COMMANDS, *apps, *DATA_TOOLS])}"
            f"commands: list, demo, inspect, an app ({', '.join(apps)}) or a data tool ({', '.join(DATA_TOOLS)})"
        )
    tools = apps[command].TOOLS
    if not rest:
        raise UserError(f"'{PROG} {command}' needs a tool: {', '.join(tools)} (e.g. {PROG} {command} {tools[0]} --help)")
    if rest[0] in ("-h", "--help"):
        print(f"usage: {PROG} {command} <tool> [flags]\n\n{apps[command].DESCRIPTION}\n\ntools:")
        for tool in tools:
            print(f"  {tool:<14} {summary(_module_name(command, tool))}")
        print(f"\n{PROG} {command} <tool> --help shows a tool's flags")
        return 0
    tool = rest[0]
    if tool not in tools:
        raise UserError(f"app '{command}' has no tool '{tool}'; {_suggest(tool, tools)}its tools: {', '.join(tools)}")
    return run_tool(command, tool, rest[1:], verbose)


def main(argv=None) -> None:
    """The console script: `run`, with expected errors as one line `error: ...` and exit code 2."""
    main_entry(run, argv)


if __name__ == "__main__":
    main()
