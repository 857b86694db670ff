"""Exact similarity search (``oathcube.similar``) against the floor of reading its features.

usage: python scripts/bench_similar.py [--rows 1000000] [--stations 1] [--dim 512]
                                       [--chunk-rows 2048] [--batch 100] [--repeats 2]
                                       [--index] [--queries 100] [--factory F]
                                       [--workdir DIR]

Builds, in ``--workdir`` (default: a new temporary folder), a cube of ``--stations``
station groups holding ``--rows`` frames together, 3 s apart, with ``features_aurora_fm``
of ``--dim`` float32 columns (random clusters: 64 centres plus noise), written with the
cube's own writers in chunks of ``--chunk-rows`` rows (zarr's default compressor, as
features are stored).  Then times, best of ``--repeats``, on all cores (threads):

a. the floor: reading and decompressing the whole features array with dask, one task
   per block of the search's own size, doing nothing with it;
b. one query's exact search (``similar(..., k=20)``, 30 s exclusion);
c. a batch of ``--batch`` queries in one pass.

Prints the CPU, the times, rows/s, and the target: floor / one query's search >= 0.5,
PASS or FAIL.  ``--rows 200000`` runs in seconds.

With ``--index`` (needs at least 2 stations for the filtered case; ``--stations 4`` is
used when fewer are asked), also:

d. ``build_index`` (``--factory``, default the library's): seconds, bytes per frame;
e. ``--queries`` random queries, one at a time with the index (candidates re-scored
   exactly from the cube): median and p95 latency; and all of them exactly in one batch
   (its time): recall@10 of the indexed hits against the exact ones (target >= 0.97),
   unfiltered, restricted to half the stations, and to a tenth of the time range.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oathcube import similar
from oathcube.cube.schema import (
    features_spec,
    station_attrs,
    station_group,
    station_specs,
    variable_path,
)
from oathcube.cube.store import Cube
from oathcube.parallel import cores, cpu_description, run_tasks
from oathcube.similarity import BLOCK_BYTES
from oathcube.similarity_index import DEFAULT_FACTORY, build_index

START = np.datetime64("2011-01-01T00:00:00", "ns")
CADENCE = np.timedelta64(3, "s")


def make_cube(path: Path, rows: int, stations: int, dim: int, chunk_rows: int) -> list[str]:
    """A cube of ``stations`` groups of random clustered features; their codes."""
    cube = Cube.open_or_create(path)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(64, dim)).astype(np.float32)
    codes = [f"s{i:02d}" for i in range(stations)]
    per = rows // stations
    for code in codes:
        group = station_group(code)
        cube.create_group(group, station_attrs(code, "synthetic features for bench_similar"))
        cube.create(station_specs(orientation="", raw_orientation="")["time"], (per,), group=group)
        times = START + CADENCE * np.arange(per)
        # stored as the spec's CF units say: microseconds since 1970-01-01
        cube.write_rows(variable_path(group, "time"), 0, times.astype("datetime64[us]").view("i8"))
        spec = features_spec(
            "aurora_fm", dim="time", feature_dim="embedding", rows_per_chunk=chunk_rows
        )
        cube.create(spec, (per, dim), group=group)
        for a in range(0, per, chunk_rows):
            b = min(per, a + chunk_rows)
            # slowly drifting clusters: neighbouring frames look alike, as in a night
            which = (np.arange(a, b) // 500) % len(centres)
            block = centres[which] + 0.5 * rng.normal(size=(b - a, dim)).astype(np.float32)
            cube.write_rows(variable_path(group, spec.name), a, block)
        cube.commit_rows(group, per)
        assert (cube.read_times(group, 3) == times[:3]).all()
    cube.mark_complete()
    return codes


def read_all(cube: Cube, path: str, a: int, b: int) -> int:
    return int(cube.read_rows(path, a, b).shape[0])


def floor(cube: Cube, codes: list[str], dim: int) -> float:
    import dask

    tasks = []
    for code in codes:
        path = variable_path(station_group(code), "features_aurora_fm")
        n = cube.array(path).shape[0]
        chunk = cube.rows_per_chunk(path)
        size = chunk * max(1, BLOCK_BYTES // (chunk * dim * 4))
        tasks += [
            dask.delayed(read_all)(cube, path, a, min(n, a + size)) for a in range(0, n, size)
        ]
    tic = time.perf_counter()
    run_tasks(tasks, "threads")
    return time.perf_counter() - tic


def best(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        run()
        times.append(time.perf_counter() - tic)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stations", type=int, default=1)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--chunk-rows", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--index", action="store_true", help="measure the index too")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--factory", default=DEFAULT_FACTORY)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.index and args.stations < 2:
        args.stations = 4
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_similar_"))
    path = workdir / "bench.zarr"
    tic = time.perf_counter()
    codes = make_cube(path, args.rows, args.stations, args.dim, args.chunk_rows)
    print(
        f"cube of {args.rows} x {args.dim} float32 features in {len(codes)} station(s) "
        f"written in {time.perf_counter() - tic:.1f} s: {path}"
    )
    cube = Cube.open(path)
    n = args.rows // args.stations
    rng = np.random.default_rng(1)

    def query() -> tuple[str, np.datetime64]:
        return codes[int(rng.integers(len(codes)))], START + CADENCE * int(rng.integers(n))

    code, when = query()
    one = lambda: similar(cube, station=code, time=when, k=20, scheduler="threads")  # noqa: E731
    batch = [query() for _ in range(args.batch)]
    many = lambda: similar(cube, queries=batch, k=20, scheduler="threads")  # noqa: E731
    one()  # warm: imports, the first open of each array
    t_floor = min(floor(cube, codes, args.dim) for _ in range(args.repeats))
    t_one = best(args.repeats, one)
    t_many = best(args.repeats, many)
    ratio = t_floor / t_one
    print(f"CPU: {cpu_description()}")
    print(f"{'what':<34} {'seconds':>8} {'rows/s':>12}")
    for what, t in (
        ("floor: read + decompress", t_floor),
        ("exact search, 1 query", t_one),
        (f"exact search, batch of {args.batch}", t_many),
    ):
        print(f"{what:<34} {t:>8.3f} {args.rows / t:>12,.0f}")
    print(
        f"batch of {args.batch}: {t_many / t_one:.2f} x one query's time "
        f"({t_many / args.batch * 1e3:.1f} ms a query)"
    )
    verdict = "PASS" if ratio >= 0.5 else "FAIL"
    print(f"target floor / search >= 0.5 on {cores()} cores: {ratio:.2f} {verdict}")
    if args.index:
        bench_index(cube, codes, args, [query() for _ in range(args.queries)])
    return 0


def recall(exact: pd.DataFrame, indexed: pd.DataFrame, k: int = 10) -> float:
    """Share of the exact top-k hits (station, row) that the indexed search found."""
    want = set(zip(exact["station"].head(k), exact["row"].head(k), strict=True))
    got = set(zip(indexed["station"].head(k), indexed["row"].head(k), strict=True))
    return len(want & got) / max(1, len(want))


def bench_index(
    cube: Cube, codes: list[str], args: argparse.Namespace, queries: list[tuple[str, Any]]
) -> None:
    """Build the index, then latency and recall@10 against exact, filtered or not."""
    tic = time.perf_counter()
    attrs = build_index(cube, "aurora_fm", factory=args.factory, overwrite=True)
    built = time.perf_counter() - tic
    print(
        f"index {attrs['factory']} (nprobe {attrs['nprobe']}): built in {built:.1f} s, "
        f"{attrs['index_bytes'] / attrs['rows_indexed']:.0f} bytes a frame "
        f"(features: {args.dim * 4})"
    )
    n = args.rows // args.stations
    cases = {
        "unfiltered": {},
        f"stations {','.join(codes[: len(codes) // 2])}": {"stations": codes[: len(codes) // 2]},
        "a tenth of the time": {
            "start": START + CADENCE * (n // 2),
            "end": START + CADENCE * (n // 2 + n // 10),
        },
    }
    similar(cube, queries=queries[:1], k=10, use_index=True)  # warm: read the index once
    print(
        f"{'queries (k=10)':<24} {'median ms':>10} {'p95 ms':>8} {'exact batch s':>14} "
        f"{'recall@10':>10}"
    )
    for what, filters in cases.items():
        # The reference: every query's exact hits, in one pass over the features.
        tic = time.perf_counter()
        exact = similar(cube, queries=queries, k=10, use_index=False, **filters)
        t_exact = time.perf_counter() - tic
        t_index, recalls = [], []
        for i, q in enumerate(queries):
            tic = time.perf_counter()
            got = similar(cube, station=q[0], time=q[1], k=10, use_index=True, **filters)
            t_index.append(time.perf_counter() - tic)
            recalls.append(recall(exact[exact["query"] == i], got))
        mean = float(np.mean(recalls))
        med, p95 = np.median(t_index) * 1e3, np.percentile(t_index, 95) * 1e3
        print(f"{what:<24} {med:>10.1f} {p95:>8.1f} {t_exact:>14.2f} {mean:>10.3f}")
    print("target recall@10 >= 0.97 (themisim: 0.937)")


if __name__ == "__main__":
    sys.exit(main())
