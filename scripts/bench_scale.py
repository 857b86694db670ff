"""Benchmark station archives at scale: ingest and classify frames/s, peak memory, read floor.

usage: python scripts/bench_scale.py [--sizes 10000,40000,100000] [--workdir DIR]
                                     [--scheduler threads] [--no-classify]
                                     [--layouts classic,2024]
       python scripts/bench_scale.py --hour [--workdir DIR]

Synthetic hour files of 1,200 frames (256 x 256, uint16) in the real CDF L1 layout
(gzip-compressed in blocks of 7 records, as the Berkeley files) are written once into
``--workdir`` and reused by later runs; each size takes the first ``ceil(size / 1200)``
hours of one station.  ``--layouts classic,2024`` adds a row per size for the same
frames in the 2024 layout (the hour in one record, frames on its last axis, times in
``_time``, one start value in ``_epoch``), written into ``--workdir``/hours-2024; a
2024 hour is one compressed block, so its read floor reads whole hours whatever the
part size, and classify (the same frames) runs on the classic rows only.  For each
size and layout, in a fresh process of its own (so that its peak RSS is its own):

- **read floor**: every core reading and decompressing the same files with
  ``read_cdf`` in a process pool (started before the clock), nothing prepared or
  written: what ingest could reach.  Three ways are timed, about 64 and 256 frames at a
  time in whole compressed blocks, and whole hours; the floor is the fastest.  The same
  three with cdflib alone (``CDF.varget``, as the issue measured its floor) give a
  second floor: oathcube reads the blocks itself (``oathcube.archive.cdf_records``);
- **ingest**: ``oathcube.ingest`` into a new cube (scan, checks, plan, dask tasks that
  read, prepare 16 -> 8 bit and write whole chunks, commit, consolidate);
- **classify**: ``oathcube.classify`` with a ridge model on handcrafted features
  (trained once on a small synthetic OATH-layout archive), features and predictions
  for every frame.

``--hour`` times instead one hour file of each layout read whole both ways: block by
block (``read_cdf``: ``oathcube.archive.cdf_records``, libdeflate, the GIL released)
and with cdflib (``read_cdf`` with the block reader switched off: ``CDF.varget``, then
the frames moved first and turned), in one thread (with the peak of memory allocated,
``tracemalloc``) and in two threads at once (two hours), and 64 frames from the middle
of the hour (what an ingest task that needs a part of a 2024 hour pays).

Figures are frames per second of wall time on this machine; the ratios the issue
sets as targets are printed beneath the table.  Nothing here is real THEMIS data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import cpu_description, peak_rss_mb  # noqa: E402

FRAMES_PER_HOUR = 1200
#: Ways of reading timed for the floor: about this many frames at a time (0: whole hours).
READS = (64, 256, 0)
STATION = "fsmi"
#: The CDF layouts a run may time, and the folder under ``--workdir`` of each one's hours.
LAYOUTS = {"classic": "hours", "2024": "hours-2024"}


def _hour_name(hour: int) -> str:
    import numpy as np

    t = np.datetime64("2020-01-01T00", "h") + np.timedelta64(hour, "h")
    return f"thg_l1_asf_{STATION}_{str(t).replace('-', '').replace('T', '')}_v01.cdf"


def _write_hour(folder: str, hour: int, layout: str = "classic") -> str:
    """Write hour ``hour`` (to a temporary name, renamed when whole); return its path."""
    import numpy as np

    from oathcube.synthetic.themis import write_cdf

    final = Path(folder) / _hour_name(hour)
    if final.exists():
        return str(final)
    start = np.datetime64("2020-01-01T00:00:00") + np.timedelta64(hour, "h")
    tmp = Path(folder) / f".writing-{os.getpid()}-{final.name}"
    # gzip level 1, not the Berkeley files' 6: the same format and the same cost to
    # decompress (what ingest pays), at half the cost to write with cdflib.
    if layout == "classic":
        write_cdf(tmp, STATION, start, FRAMES_PER_HOUR, seed=hour, compress=1)
    else:  # the same frames and times as the 2024 files hold them
        write_cdf(tmp, STATION, start, FRAMES_PER_HOUR, "2024", hour, compress=1, epoch="start")
    tmp.rename(final)
    return str(final)


def hour_files(folder: Path, hours: int, layout: str = "classic") -> list[str]:
    """The first ``hours`` hour files, written (in parallel) where missing."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = [h for h in range(hours) if not (folder / _hour_name(h)).exists()]
    if missing:
        print(
            f"writing {len(missing)} synthetic hour files ({layout} layout) into {folder} ...",
            flush=True,
        )
        tic = time.perf_counter()
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            n = len(missing)
            list(pool.map(_write_hour, [str(folder)] * n, missing, [layout] * n))
        print(f"  took {time.perf_counter() - tic:.0f} s", flush=True)
    return [str(folder / _hour_name(h)) for h in range(hours)]


def model_cube(work: Path) -> tuple[Path, str]:
    """A small cube with a handcrafted ridge model, built once and reused."""
    from oathcube import build, synth, train

    cube = work / "model.zarr"
    marker = work / "model.json"
    if marker.exists():
        return cube, json.loads(marker.read_text())["model"]
    shutil.rmtree(cube, ignore_errors=True)
    archive = work / "oath_synthetic"
    shutil.rmtree(archive, ignore_errors=True)
    synth(archive, n=600, size=128, seed=0, progress=False)
    build(archive, cube, features=["handcrafted"], progress=False)
    name = train(cube, "handcrafted", target="class6")
    marker.write_text(json.dumps({"model": name}))
    return cube, name


def _read_parts(path: str, want: int) -> int:
    """Read and decompress every frame of one file, about ``want`` frames at a time.

    In whole compressed blocks (``part_step``), as ingest reads; ``want=0``, or a file
    of one block (the 2024 layout): the whole hour in one array.
    """
    from oathcube.archive.themis_cdf import part_step, read_cdf, scan_cdf

    step = part_step(path, want) if want else 0
    if not step:
        return read_cdf(path).n
    n = scan_cdf(path).n
    return sum(read_cdf(path, rows=(lo, min(lo + step, n))).n for lo in range(0, n, step))


def _read_cdflib(path: str, want: int) -> int:
    """Decompress every frame of one file with cdflib alone (``CDF.varget``), as the issue
    measured its floor: about ``want`` records at a time (0: the whole variable)."""
    import cdflib

    from oathcube.archive.themis_cdf import part_step, scan_cdf

    block = scan_cdf(path)
    name = f"thg_asf_{block.station}"
    frame = block.frames[0].size
    cdf = cdflib.CDF(path)
    step = part_step(path, want) if want else 0
    if not step:  # (frames of the 2024 layout: all in one record, not one per record)
        return int(cdf.varget(name).size // frame)
    n = block.n
    return sum(
        int(cdf.varget(name, startrec=lo, endrec=min(lo + step, n) - 1).shape[0])
        for lo in range(0, n, step)
    )


def read_hour_both_ways(work: Path, reps: int = 5) -> None:
    """Print the seconds to read one hour of each layout block by block and with cdflib."""
    import contextlib
    import tracemalloc
    from concurrent.futures import ThreadPoolExecutor
    from unittest import mock

    import numpy as np

    import oathcube.archive.themis_cdf as themis_cdf

    @contextlib.contextmanager
    def block_reader_off() -> Iterator[None]:
        # read_cdf as it reads files its block reader does not take: cdflib's varget.
        # (Switched off around whole measurements: mock.patch is not thread-safe.)
        with (
            mock.patch.object(themis_cdf, "_packed_index", return_value=None),
            mock.patch.object(themis_cdf, "_frame_index", return_value=None),
        ):
            yield

    ways: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
        "block by block": contextlib.nullcontext,
        "cdflib": block_reader_off,
    }
    read = themis_cdf.read_cdf
    print("seconds, the fastest of", reps, "(hours of 1,200 frames, 256 x 256, gzip level 1)")
    for layout, folder in LAYOUTS.items():
        files = hour_files(work / folder, 2, layout)
        seen = []
        for name, setting in ways.items():
            one, two, part = [], [], []
            with setting(), ThreadPoolExecutor(2) as pool:
                seen.append(read(files[0]).frames)
                for _ in range(reps):
                    tic = time.perf_counter()
                    read(files[0])
                    one.append(time.perf_counter() - tic)
                    tic = time.perf_counter()
                    list(pool.map(read, files))
                    two.append(time.perf_counter() - tic)
                    tic = time.perf_counter()
                    read(files[0], rows=(600, 664))
                    part.append(time.perf_counter() - tic)
                tracemalloc.start()
                read(files[0])
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            print(
                f"  {layout:>7} layout, {name:>14}: one hour {min(one):.2f} s in one thread "
                f"(peak {peak:.0f} MiB allocated); two hours in two threads {min(two):.2f} s; "
                f"64 frames {min(part):.3f} s"
            )
        assert np.array_equal(seen[0], seen[1])
        del seen


def _warm(_: int) -> None:
    """Start a pool's process: imports, so that the reads timed after are reads alone."""
    import oathcube.ingestion.stations  # noqa: F401

    time.sleep(0.5)


def child(
    work: Path, size: int, scheduler: str, classify_too: bool, layout: str = "classic"
) -> dict[str, float | str]:
    """Measure one size of one layout in this (fresh) process; return its figures."""
    from oathcube import classify, ingest
    from oathcube.parallel import cores

    hours = -(-size // FRAMES_PER_HOUR)
    files = hour_files(work / LAYOUTS[layout], hours, layout)
    frames = hours * FRAMES_PER_HOUR
    out: dict[str, float | str] = {"size": size, "frames": frames, "files": hours}
    out["layout"] = layout

    with ProcessPoolExecutor(cores()) as pool:
        list(pool.map(_warm, range(2 * cores())))
        for reader, label in ((_read_parts, "read"), (_read_cdflib, "cdflib")):
            for want in READS:
                tic = time.perf_counter()
                assert sum(pool.map(partial(reader, want=want), files)) == frames
                out[f"{label}_{want}"] = frames / (time.perf_counter() - tic)
    # Each floor is the fastest way of reading seen with that reader.
    out["read_floor"] = max(out[f"read_{want}"] for want in READS)
    out["cdflib_floor"] = max(out[f"cdflib_{want}"] for want in READS)

    template, model = model_cube(work)
    cube = work / f"scale_{layout}_{size}.zarr"
    shutil.rmtree(cube, ignore_errors=True)  # made by an earlier run of this benchmark
    shutil.copytree(template, cube)
    tic = time.perf_counter()
    written = ingest(files, str(cube), scheduler=scheduler, progress=False)
    out["ingest"] = written[STATION] / (time.perf_counter() - tic)
    out["rss_ingest_mb"] = peak_rss_mb()
    if classify_too:
        tic = time.perf_counter()
        done = classify(str(cube), model, station=STATION, scheduler=scheduler, progress=False)
        out["classify"] = sum(done.values()) / (time.perf_counter() - tic)
    out["rss_mb"] = peak_rss_mb()
    shutil.rmtree(cube)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,40000,100000", help="frames, comma-separated")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_scale")
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--no-classify", action="store_true")
    ap.add_argument(
        "--layouts",
        default="classic",
        help="CDF layouts to time, comma-separated: classic, 2024 (e.g. classic,2024)",
    )
    ap.add_argument(
        "--hour", action="store_true", help="time one hour of each layout read both ways"
    )
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--layout", default="classic", choices=LAYOUTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.child is not None:
        classify_too = not args.no_classify and args.layout == "classic"
        result = child(work, args.child, args.scheduler, classify_too, args.layout)
        print("RESULT " + json.dumps(result), flush=True)
        return

    if args.hour:
        print(f"machine: {cpu_description()}", flush=True)
        read_hour_both_ways(work)
        return

    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    if not layouts or any(name not in LAYOUTS for name in layouts):
        ap.error(f"--layouts: {args.layouts!r}: choose from {', '.join(LAYOUTS)}")
    print(f"machine: {cpu_description()}", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    for layout in layouts:
        hour_files(work / LAYOUTS[layout], -(-max(sizes) // FRAMES_PER_HOUR), layout)
    model_cube(work)
    every: dict[str, list[dict]] = {}
    for layout in layouts:
        every[layout] = _run_sizes(work, sizes, layout, args.scheduler, args.no_classify)
    for layout in layouts:
        _report(every[layout], args.scheduler, layout)
    if "classic" in every and len(every) > 1:
        print("\nlayouts side by side (frames/s; the 2024 layout's ratio to the classic one's):")
        print(
            "| frames | layout | read_cdf floor | cdflib floor | ingest | ingest / read_cdf floor |"
        )
        print("|" + "---|" * 6)
        for i, size in enumerate(sizes):
            base = every["classic"][i]
            for layout in every:
                r = every[layout][i]
                ratio = "" if layout == "classic" else f" ({r['ingest'] / base['ingest']:.2f})"
                print(
                    f"| {size:,} | {layout} | {r['read_floor']:.0f} | {r['cdflib_floor']:.0f} | "
                    f"{r['ingest']:.0f}{ratio} | {r['ingest'] / r['read_floor']:.2f} |"
                )


def _run_sizes(
    work: Path, sizes: list[int], layout: str, scheduler: str, no_classify: bool
) -> list[dict]:
    """Each size of one layout in a fresh process; print a line for each, return them."""
    rows = []
    for size in sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--workdir", str(work)]
        cmd += ["--scheduler", scheduler, "--layout", layout]
        cmd += ["--no-classify"] if no_classify else []
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            sys.exit(f"size {size} ({layout} layout) failed:\n{proc.stdout}\n{proc.stderr}")
        rows.append(json.loads(lines[-1][len("RESULT ") :]))
        r = rows[-1]
        print(
            f"{r['frames']:>7} frames ({r['files']} {layout} files): "
            f"read floor {r['read_floor']:.0f}, "
            f"ingest {r['ingest']:.0f}"
            + (f", classify {r['classify']:.0f}" if "classify" in r else "")
            + f" frames/s; peak RSS {r['rss_mb']:.0f} MB"
            + f" ({r['rss_ingest_mb']:.0f} MB after ingest)",
            flush=True,
        )
    return rows


def _report(rows: list[dict], scheduler: str, layout: str) -> None:
    """The table and the targets of one layout's sizes."""
    print(f"\n{layout} layout; scheduler: {scheduler}")
    print("read floors: the fastest of reading about 64 or 256 frames at a time or whole")
    print("hours, with oathcube's read_cdf (its own block reader) and with cdflib alone")
    print("(both inflate with libdeflate: cdflib uses the deflate package when installed)")
    head = "| frames | hour files | read_cdf floor fr/s | cdflib floor fr/s | ingest fr/s |"
    head += " ingest / read_cdf floor | ingest / cdflib floor | classify fr/s |"
    head += " peak RSS MB (after ingest / after classify) |"
    print(head)
    print("|" + "---|" * 9)
    for r in rows:
        print(
            f"| {r['frames']:,} | {r['files']} | {r['read_floor']:.0f} | {r['cdflib_floor']:.0f} | "
            f"{r['ingest']:.0f} | {r['ingest'] / r['read_floor']:.2f} | "
            f"{r['ingest'] / r['cdflib_floor']:.2f} | {r.get('classify', float('nan')):.0f} | "
            f"{r['rss_ingest_mb']:.0f} / {r['rss_mb']:.0f} |"
        )
    print("\nevery way of reading, frames/s (about 64 / 256 / whole hours at a time):")
    for r in rows:
        ours = " / ".join(f"{r[f'read_{want}']:.0f}" for want in READS)
        theirs = " / ".join(f"{r[f'cdflib_{want}']:.0f}" for want in READS)
        print(f"  {r['frames']:>7,} frames: read_cdf {ours}; cdflib {theirs}")
    small, large = rows[0], rows[-1]
    print(f"\ntargets (largest {large['frames']:,} vs smallest {small['frames']:,} frames):")
    floor = large["ingest"] / large["read_floor"]
    print(f"  ingest / read floor (read_cdf) at the largest: {floor:.2f} >= 0.8")
    floor = large["ingest"] / large["cdflib_floor"]
    print(f"  ingest / read floor (cdflib, the issue's) at the largest: {floor:.2f} >= 0.8")
    print(f"  peak RSS largest / smallest: {large['rss_mb'] / small['rss_mb']:.2f} <= 1.1")
    ratio = large["rss_ingest_mb"] / small["rss_ingest_mb"]
    print(f"    (ingest alone: {ratio:.2f})")
    print(f"  peak RSS largest: {large['rss_mb']:.0f} MB <= 1500")
    print(f"  ingest frames/s largest / smallest: {large['ingest'] / small['ingest']:.2f} >= 0.9")
    if "classify" in large:
        ratio = large["classify"] / small["classify"]
        print(f"  classify frames/s largest / smallest: {ratio:.2f} >= 0.9")


if __name__ == "__main__":
    main()
