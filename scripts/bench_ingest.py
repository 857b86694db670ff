"""Benchmark `oathcube ingest` on Berkeley CDF L1 files: frames per second.

usage: python scripts/bench_ingest.py [--hours 3] [--frames 1200] [--workdir DIR]

Writes synthetic hour files in the real CDF L1 layout (classic and 2024+), then
measures (1) reading alone, one file after another in one thread, and (2) the whole
ingest (scan, checks, then dask tasks on all cores that read, prepare 16 -> 8 bit and
write whole chunks, commit, consolidate). Also ingests the real Gakona fragment from
../shared when it is there.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import cpu_description, peak_rss_mb  # noqa: E402

from oathcube import ingest  # noqa: E402
from oathcube.archive.themis_cdf import read_cdf  # noqa: E402
from oathcube.synthetic.themis import write_cdf  # noqa: E402

REAL = HERE.parents[1] / "shared/data/themis/thg_l1_asf_gako_2011010617_v01.cdf"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hours", type=int, default=3)
    ap.add_argument("--frames", type=int, default=1200, help="frames per hour file")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    print(f"machine: {cpu_description()}")
    for layout in ("classic", "2024"):
        folder = work / layout
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        files = [
            write_cdf(
                folder, "fsmi", f"2011-01-06T{4 + h:02d}:00:00", args.frames, layout=layout, seed=h
            )
            for h in range(args.hours)
        ]
        n = args.hours * args.frames
        tic = time.perf_counter()
        for f in files:
            read_cdf(f)
        read_s = time.perf_counter() - tic
        cube = work / f"{layout}.zarr"
        shutil.rmtree(cube, ignore_errors=True)
        tic = time.perf_counter()
        ingest([folder], str(cube), progress=False)
        ingest_s = time.perf_counter() - tic
        print(
            f"{layout:>7} layout, {args.hours} files x {args.frames} frames: "
            f"read {n / read_s:.0f} frames/s; whole ingest {n / ingest_s:.0f} frames/s "
            f"({ingest_s:.1f} s)"
        )
    if REAL.exists():
        cube = work / "real.zarr"
        shutil.rmtree(cube, ignore_errors=True)
        tic = time.perf_counter()
        written = ingest([REAL], str(cube), progress=False)
        print(f"real gako fragment: {written['gako']} frames in {time.perf_counter() - tic:.2f} s")
    print(f"peak memory: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
