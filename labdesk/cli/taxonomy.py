"""`labdesk taxonomy check|diff|show|new`: validate, diff, browse and scaffold the taxonomy.

Exit status: 0 when every checked file is valid, 1 when any has errors, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labdesk.taxonomy import Problem

FORMATS = ("human", "json", "github")


def register(sub: Any) -> None:
    parser = sub.add_parser("taxonomy", help="check, diff, show or scaffold taxonomy leaves")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        verb: argparse.ArgumentParser = verbs.add_parser(name, help=help_)
        verb.add_argument(
            "--taxonomy",
            type=Path,
            metavar="DIR",
            help="taxonomy folder (default: the workspace's)",
        )
        verb.add_argument("--format", choices=FORMATS, default="human", help="output format")
        return verb

    check = add("check", "validate leaves like upstream, plus labdesk's advice")
    check.add_argument("paths", nargs="*", type=Path, help="files or folders (default: all)")
    check.set_defaults(handler=_check)

    diff = add(
        "diff", "list and check leaves changed against a git base (like `ilab taxonomy diff`)"
    )
    diff.add_argument("--base", default="origin/main", help="git ref, or 'empty' for all leaves")
    diff.set_defaults(handler=_diff)

    add("show", "the taxonomy tree with leaf kinds and seed counts").set_defaults(handler=_show)

    new = add("new", "write a leaf skeleton to fill in")
    new.add_argument("kind", choices=("knowledge", "freeform_skill", "grounded_skill"))
    new.add_argument("path", help="leaf folder, e.g. compositional_skills/writing/limerick")
    new.set_defaults(handler=_new)


def _root(args: argparse.Namespace) -> Path:
    if args.taxonomy is not None:
        return Path(args.taxonomy)
    from labdesk.workspace import Workspace

    return Workspace.open().ensure_taxonomy()


def _check(args: argparse.Namespace) -> int:
    from labdesk.taxonomy.load import find_leaf_files, load_taxonomy
    from labdesk.taxonomy.validate import check_file

    root = _root(args)
    if not args.paths:
        taxonomy = load_taxonomy(root)
        files = len(find_leaf_files(root))
        return _report(taxonomy.problems, files, args.format)
    problems: list[Problem] = []
    files = 0
    for target in args.paths:
        for file in find_leaf_files(target) if target.is_dir() else [target]:
            inside = file.resolve().is_relative_to(root.resolve())
            problems += check_file(file, root=root if inside else None).problems
            files += 1
    return _report(problems, files, args.format)


def _diff(args: argparse.Namespace) -> int:
    from labdesk.cli.render import console
    from labdesk.taxonomy import diff_leaves
    from labdesk.taxonomy.validate import check_file

    root = _root(args)
    changed = diff_leaves(root, args.base)
    problems = [p for rel in changed for p in check_file(root / rel, root=root).problems]
    if args.format == "human":
        for rel in changed:
            console.print(rel, highlight=False)
        if not changed:
            console.print(f"no leaves changed against {args.base}")
    elif args.format == "json":
        errors = sum(p.severity == "error" for p in problems)
        print(json.dumps({"changed": changed, **_summary(problems, len(changed))}, indent=2))
        return 1 if errors else 0
    return _report(problems, len(changed), args.format)


def _summary(problems: list[Problem], files: int) -> dict[str, Any]:
    return {
        "files": files,
        "errors": sum(p.severity == "error" for p in problems),
        "warnings": sum(p.severity == "warning" for p in problems),
        "problems": [p.to_dict() for p in problems],
    }


def _report(problems: list[Problem], files: int, fmt: str) -> int:
    from rich.markup import escape

    from labdesk.cli.render import console

    summary = _summary(problems, files)
    if fmt == "json":
        print(json.dumps(summary, indent=2))
    elif fmt == "github":
        for p in problems:
            path = f"[{p.yaml_path}] " if p.yaml_path else ""
            print(f"::{p.severity} file={p.file},line={p.line},col={p.col}::{path}{p.message}")
    else:
        for p in problems:
            colour = "red" if p.severity == "error" else "yellow"
            path = f" [cyan]\\[{escape(p.yaml_path)}][/]" if p.yaml_path else ""
            source = " [dim](labdesk)[/]" if p.source == "labdesk" else ""
            console.print(
                f"{escape(p.where)}: [{colour}]{p.severity}[/]{path} {escape(p.message)}{source}",
                highlight=False,
            )
        verdict = "[red]invalid[/]" if summary["errors"] else "[green]valid[/]"
        console.print(
            f"{files} file(s) checked: {summary['errors']} error(s), "
            f"{summary['warnings']} warning(s) — {verdict}"
        )
    return 1 if summary["errors"] else 0


def _show(args: argparse.Namespace) -> int:
    from rich.tree import Tree

    from labdesk.cli.render import console
    from labdesk.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(_root(args))
    invalid = sorted({p.file for p in taxonomy.errors})
    if args.format == "json":
        leaves = [
            {
                "path": leaf.path,
                "kind": leaf.kind,
                "seeds": len(leaf.seeds),
                "version": leaf.version,
                "content_hash": leaf.content_hash,
            }
            for leaf in taxonomy.leaves
        ]
        print(
            json.dumps({"root": str(taxonomy.root), "leaves": leaves, "invalid": invalid}, indent=2)
        )
        return 1 if invalid else 0
    tree = Tree(f"[bold]{taxonomy.root}[/]")
    branches: dict[tuple[str, ...], Tree] = {(): tree}
    for leaf in taxonomy.leaves:
        parts = tuple(leaf.path.split("/"))
        for depth in range(1, len(parts)):
            key = parts[:depth]
            if key not in branches:
                branches[key] = branches[key[:-1]].add(parts[depth - 1])
        questions = sum(len(seed.qa) for seed in leaf.seeds)
        detail = f"{len(leaf.seeds)} seeds" + (
            f", {questions} Q&A" if leaf.kind == "knowledge" else ""
        )
        branches[parts[:-1]].add(f"[bold]{parts[-1]}[/]  [cyan]{leaf.kind}[/]  [dim]{detail}[/]")
    console.print(tree)
    for file in invalid:
        console.print(f"[red]invalid[/]: {file} (run `labdesk taxonomy check` for details)")
    return 1 if invalid else 0


def _new(args: argparse.Namespace) -> int:
    from labdesk.cli.render import console
    from labdesk.taxonomy import new_leaf

    file = new_leaf(args.kind, args.path, _root(args))
    if args.format == "json":
        print(json.dumps({"created": str(file)}))
    else:
        console.print(f'created {file}; fill in every "" and run `labdesk taxonomy check {file}`')
    return 0
