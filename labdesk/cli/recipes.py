"""`labdesk recipes list|show`: the packaged recipes and their settings."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("recipes", help="list the recipes or show one's settings")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="the packaged recipes").set_defaults(handler=_list)
    show = verbs.add_parser("show", help="a recipe with every field, defaults filled in")
    show.add_argument("recipe", help="a recipe name or a path to a .yaml file")
    show.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a field"
    )
    show.set_defaults(handler=_show)


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from labdesk.cli.render import console
    from labdesk.recipes import available_recipes, load_recipe

    table = Table("recipe", "hardware", "teacher", "student", "description")
    for name in available_recipes():
        recipe = load_recipe(name)
        table.add_row(
            name,
            recipe.hardware,
            recipe.teacher.label(),
            recipe.student.label(),
            recipe.description,
        )
    console.print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    import yaml

    from labdesk.cli.render import console
    from labdesk.recipes import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    console.print(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False), highlight=False)
    return 0
