"""A small project with known gaps, for discovery's tests and demos.

`shop` has a console script and an argparse CLI. Planted: `export_csv` is
implemented (and tested) but no command reaches it; `pricing.discount` runs
from the CLI but no test executes it; the README omits the `report` command
and the `--discount` option, and still documents a `remove` command.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.sample import commit_project

FILES = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0.1"\n\n[project.scripts]\nshop = "shop.cli:main"\n',
    "README.md": (
        "# shop\n\nKeeps a list of items.\n\n"
        "```\nshop list --verbose\nshop add pear --price 3\nshop remove pear\n```\n"
    ),
    "shop/__init__.py": "",
    "shop/errors.py": 'class ShopError(Exception):\n    """Something the user did wrong."""\n',
    "shop/inventory.py": (
        '"""The items and what can be done with them."""\n\n'
        "ITEMS: dict[str, float] = {}\n\n\n"
        "def list_items() -> list[str]:\n"
        '    """Names in order."""\n'
        "    return sorted(ITEMS)\n\n\n"
        "def add_item(name: str, price: float) -> None:\n"
        "    ITEMS[name] = price\n\n\n"
        "def format_header() -> str:\n"
        "    return 'name,price'\n\n\n"
        "def export_csv(path: str) -> int:\n"
        '    """Write every item to a CSV file; returns how many rows."""\n'
        "    lines = [format_header()]\n"
        "    for name in list_items():\n"
        "        lines.append(f'{name},{ITEMS[name]}')\n"
        "    with open(path, 'w') as handle:\n"
        "        handle.write('\\n'.join(lines) + '\\n')\n"
        "    return len(lines) - 1\n"
    ),
    "shop/pricing.py": (
        "def discount(price: float, percent: float) -> float:\n"
        '    """The price after a discount."""\n'
        "    if not 0 <= percent <= 100:\n"
        "        raise ValueError(percent)\n"
        "    return round(price * (100 - percent) / 100, 2)\n"
    ),
    "shop/report.py": (
        "from shop.inventory import ITEMS\n\n\n"
        "def render() -> str:\n"
        "    return '\\n'.join(f'{n}: {p}' for n, p in sorted(ITEMS.items()))\n"
    ),
    "shop/cli.py": (
        "import argparse\n\n"
        "from shop import inventory\n"
        "from shop.pricing import discount\n"
        "from shop.report import render\n\n\n"
        "def main(argv: list[str] | None = None) -> int:\n"
        "    parser = argparse.ArgumentParser(prog='shop')\n"
        "    parser.add_argument('--verbose', action='store_true')\n"
        "    sub = parser.add_subparsers(dest='command', required=True)\n"
        "    sub.add_parser('list')\n"
        "    p_add = sub.add_parser('add')\n"
        "    p_add.add_argument('name')\n"
        "    p_add.add_argument('--price', type=float, default=1.0)\n"
        "    p_add.add_argument('--discount', type=float)\n"
        "    sub.add_parser('report')\n"
        "    args = parser.parse_args(argv)\n"
        "    if args.command == 'list':\n"
        "        print('\\n'.join(inventory.list_items()))\n"
        "    elif args.command == 'add':\n"
        "        price = args.price if args.discount is None else discount(args.price, args.discount)\n"
        "        inventory.add_item(args.name, price)\n"
        "    else:\n"
        "        print(render())\n"
        "    return 0\n"
    ),
    "tests/test_shop.py": (
        "from shop import inventory\n"
        "from shop.cli import main\n\n\n"
        "def test_commands(capsys):\n"
        "    assert main(['add', 'pear', '--price', '2']) == 0\n"
        "    assert main(['list']) == 0\n"
        "    assert main(['report']) == 0\n"
        "    assert 'pear: 2.0' in capsys.readouterr().out\n\n\n"
        "def test_export(tmp_path):\n"
        "    inventory.add_item('fig', 1.5)\n"
        "    assert inventory.export_csv(str(tmp_path / 'out.csv')) >= 1\n"
    ),
}


def make_shop_repo(root: Path) -> Path:
    """Create the `shop` project at `root/shop` (committed, with a bare origin at `root/shop.git`)."""
    return commit_project(root, "shop", FILES, "shop: items, prices, a report").path
