"""`labdesk` entry point: builds the sub-command parser and runs one command.

Each sub-command lives in its own module in this package with a `register(subparsers)` function;
modules are discovered, so adding a command touches no other file. Modules import the heavy parts
of the core inside their handlers, so `labdesk --help` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from labdesk import __version__
from labdesk.errors import LabdeskError, disk_full

# The order `--help` lists command modules in (discovered ones not named here come last).
# Commands are found automatically: nothing needs registering here.
COMMAND_ORDER = [
    "run",
    "taxonomy",
    "documents",
    "models",
    "generate",
    "mix",
    "train",
    "export",
    "chat",
    "serve",
    "evaluate",
    "runs",
    "doctor",
    "recipes",
]


def command_modules() -> list[str]:
    import labdesk.cli

    helpers = {"main", "render", "quiet", "runargs"}
    names = {m.name for m in pkgutil.iter_modules(labdesk.cli.__path__)} - helpers
    return sorted(names, key=lambda n: (COMMAND_ORDER.index(n) if n in COMMAND_ORDER else 99, n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labdesk",
        description="Teach a local model new knowledge and skills with the LAB method, offline.",
        epilog="Run `labdesk` with no command to open the terminal app.",
    )
    parser.add_argument("--version", action="version", version=f"labdesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        module = importlib.import_module(f"labdesk.cli.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    _add_verbose(parser, top=True)
    return parser


def _add_verbose(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """`--verbose` on every command and verb, wherever the user puts it."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="also show the libraries' own warnings, logs and progress bars",
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _add_verbose(child)


def main(argv: Sequence[str] | None = None) -> int:
    if not (sys.argv[1:] if argv is None else argv):
        return open_app()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from labdesk.cli.quiet import quiet_libraries
    from labdesk.cli.render import console_err

    try:
        with contextlib.nullcontext() if args.verbose else quiet_libraries():
            return int(args.handler(args) or 0)
    except LabdeskError as exc:
        console_err.print(f"[bold red]error[/]: {exc}", highlight=False, markup=True)
        return 1
    except KeyboardInterrupt:
        console_err.print(
            "[yellow]interrupted[/]: everything written so far is kept; run again to resume."
        )
        return 130
    except BrokenPipeError:  # output piped into `head` & co.: not an error worth a traceback
        # Python flushes stdout again at exit; point it at /dev/null so that flush is silent too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a library's own write (weights, caches) on a full disk
        if (full := disk_full(exc)) is None:
            raise
        console_err.print(f"[bold red]error[/]: {full}", highlight=False, markup=True)
        return 1


def open_app() -> int:
    """No command: the terminal app (imported here only, so `--help` never loads Textual)."""
    from labdesk.cli.quiet import quiet_libraries
    from labdesk.cli.render import console_err

    try:
        from labdesk.tui import run_app

        # anything a library prints would land in the middle of the app's screen
        with quiet_libraries():
            return run_app()
    except LabdeskError as exc:
        console_err.print(f"[bold red]error[/]: {exc}", highlight=False, markup=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
