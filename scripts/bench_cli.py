"""Benchmark the command line's start-up: ``oathcube --help`` against importing typer.

usage: python scripts/bench_cli.py [--repeat 15]

Each command runs in a fresh interpreter, alternating with the others so that a busy
moment of the machine hits all alike; prints the CPU, the median and the minimum
wall time of each, and the ratio of ``oathcube ... --help`` to ``import typer``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description  # noqa: E402

COMMANDS: dict[str, list[str]] = {
    "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    "oathcube --help": [sys.executable, "-m", "oathcube.cli", "--help"],
    "oathcube build --help": [sys.executable, "-m", "oathcube.cli", "build", "--help"],
    "oathcube classify --help": [sys.executable, "-m", "oathcube.cli", "classify", "--help"],
    "python -c 'import oathcube'": [sys.executable, "-c", "import oathcube"],
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}")
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, argv in COMMANDS.items():
            tic = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times[name].append(time.perf_counter() - tic)
    base = statistics.median(times["python -c 'import typer'"])
    print(f"{'command':<30} {'median s':>9} {'min s':>7} {'x import typer':>15}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<30} {median:>9.3f} {min(values):>7.3f} {median / base:>15.2f}")


if __name__ == "__main__":
    main()
