"""Benchmark static discovery over a real installed Python project (default: pip).

    python3 bench/bench_discovery.py [--package pip] [-n 3]

The package's source tree in site-packages is indexed with `ast` (nothing is
imported), its console scripts come from the dist-info's entry_points.txt, and
each phase is timed: parse and index, name resolution, reachability from the
entry points (unhooked features), and the CLI surface read for docs drift.
"""

from __future__ import annotations

import argparse
import configparser
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.tasks.cli_surface import read_cli  # noqa: E402
from orchestrator.tasks.codebase import Codebase  # noqa: E402
from orchestrator.tasks.drift import find_drift  # noqa: E402
from orchestrator.tasks.unhooked import find_entry_points, find_unhooked  # noqa: E402


def locate(package: str) -> tuple[Path, dict[str, str]]:
    """(site-packages dir holding `package`, its console scripts) without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not an installed package")
    site = Path(list(spec.submodule_search_locations)[0]).parent
    scripts: dict[str, str] = {}
    for info in site.glob("*.dist-info"):
        entry = info / "entry_points.txt"
        if info.name.lower().startswith(package.lower() + "-") and entry.is_file():
            parser = configparser.ConfigParser()
            parser.read(entry)
            if parser.has_section("console_scripts"):
                scripts.update(parser["console_scripts"])
    return site, scripts


class OnlyPackage(Codebase):
    """A Codebase limited to one package of a shared site-packages directory."""

    def __init__(self, site: Path, package: str) -> None:
        self.package = package
        super().__init__(site)

    def _files(self) -> list[Path]:
        return [p for p in (self.root / self.package).rglob("*.py") if "__pycache__" not in p.parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="pip")
    parser.add_argument("-n", type=int, default=3, help="repetitions (median is printed)")
    args = parser.parse_args()
    site, scripts = locate(args.package)
    phases: dict[str, list[float]] = {"index": [], "unhooked": [], "drift": [], "total": []}
    for _ in range(args.n):
        t0 = time.perf_counter()
        code = OnlyPackage(site, args.package)
        t1 = time.perf_counter()
        unhooked = find_unhooked(code, find_entry_points(code, scripts))
        t2 = time.perf_counter()
        drift = find_drift(read_cli(code), [], list(scripts))
        t3 = time.perf_counter()
        for name, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            phases[name].append(value)
    files = len(code.modules)
    lines = sum(len(m.tree.body) for m in code.modules.values())
    print(f"{args.package}: {files} modules, {len(code.symbols())} top-level symbols, {lines} top-level statements, "
          f"{len(scripts)} console scripts")
    print(f"found: {len(unhooked)} unhooked, {len(drift)} drift (no docs given)")
    for name, values in phases.items():
        print(f"  {name:9s} median {statistics.median(values):.2f} s")


if __name__ == "__main__":
    main()
