"""Benchmark `oathcube build`: time and cube size for a synthetic OATH-layout archive.

usage: python scripts/bench_build.py [--n 5824] [--size 256] [--workdir DIR] [--tgz]

Prints the CPU, the time to build from the folder (and from a .tgz with --tgz),
the cube's size on disk against the PNGs', and peak memory.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description, peak_rss_mb  # noqa: E402

from oathcube import build, synth  # noqa: E402
from oathcube.views.info import size_on_disk  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5824)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--tgz", action="store_true", help="also build from a .tgz of the archive")
    ap.add_argument("--scheduler", default="threads")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_build_"))
    print(f"machine: {cpu_description()}")
    tic = time.perf_counter()
    archive = synth(work / "oath", n=args.n, size=args.size, seed=0)
    print(f"synth: {args.n} images {args.size}x{args.size} in {time.perf_counter() - tic:.1f} s")
    png_bytes = sum(p.stat().st_size for p in (archive / "images/cropped_scaled").glob("*.png"))
    tic = time.perf_counter()
    cube = build(
        archive, work / "cube.zarr", overwrite=True, scheduler=args.scheduler, progress=False
    )
    seconds = time.perf_counter() - tic
    size = size_on_disk(cube) or 0
    print(f"build from folder ({args.scheduler}): {seconds:.1f} s, {args.n / seconds:.0f} images/s")
    print(
        f"cube size: {size / 2**20:.1f} MB (PNGs: {png_bytes / 2**20:.1f} MB; "
        f"raw uint8 pixels: {args.n * args.size**2 / 2**20:.1f} MB)"
    )
    if args.tgz:
        tgz = work / "oath.tgz"
        with tarfile.open(tgz, "w:gz") as tar:
            tar.add(archive, arcname="oath")
        tic = time.perf_counter()
        build(tgz, work / "cube_tgz.zarr", overwrite=True, progress=False)
        seconds = time.perf_counter() - tic
        print(f"build from .tgz (streamed): {seconds:.1f} s, {args.n / seconds:.0f} images/s")
    print(f"peak memory: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
