"""The browser's views on a station-year: how fast they open, what they read, memory.

usage: python scripts/bench_browse.py [--frames 1000000] [--size 64] [--nights 365]
                                      [--station gill] [--clicks 100] [--similar 3]
                                      [--cores 2] [--profile N] [--workdir DIR] [--keep]
       python scripts/bench_browse.py --cube DIR/browse.zarr [--station gill] [...]

Builds, in ``--workdir`` (default: a new temporary folder, removed at the end unless
``--keep``), a synthetic station-year cube ``browse.zarr``:

1. a small labelled cube (``oathcube.synthetic.synth`` + ``oathcube.build`` with the
   ``handcrafted`` features) and a ridge model trained on it (``oathcube.train``): a
   genuine ``models/handcrafted_class6``;
2. one station group (``--station``, a THEMIS site code, so that its longitude and thus
   its nights are known) of ``--frames`` frames (``pixels(time, y, x)``, ``--size``
   pixels, uint8), written with the cube's own schema writers as ``oathcube ingest``
   lays a station out (its default chunks of ~32 MB, the plan/commit protocol, the
   attributes), 3 s apart, night-time only: ``--nights`` nights centred on local
   midnight, longer in winter than in summer, together exactly ``--frames`` frames.
   Each frame is one of the labelled images (a new one every 150 frames) with a moving
   arc and low-bit noise, outside the preparation's crop 0: cheap to make, about as
   compressible as real frames;
3. ``features_handcrafted`` of the station: the chosen labelled image's own features
   plus 5 % noise (computing them would take half an hour of CPU for 1 M frames), with the
   extractor's settings, so that ``oathcube.classify`` accepts them; then
   ``oathcube.classify(cube, model, station=...)`` writes the predictions exactly as
   the command does.

Then, in a fresh process limited to ``--cores`` cores (what a ``browse`` server is),
measures ``oathcube.browser.answers.Browser`` on it, printing the CPU and every figure:

a. cold start: the import, ``Browser(cube)``, the first ``stations`` and ``nights``;
b. ``night`` of ``--clicks`` nights spread over the year, one after the other in one
   Browser (its per-station cache kept, the app's steady state): median, p95, max;
   target max < 2 s, PASS or FAIL;
c. a frame click on each of those nights: ``frame``, ``frame.png`` (full size) and the
   6 neighbours' thumbnails (``frame.png`` size 96); and ``similar`` (k 12) on
   ``--similar`` of them, separately (an exact search over every frame's features
   unless an index exists; not part of the 2 s target);
d. memory: resident set size after the first night and after all the clicks (night,
   frame, thumbnails); target growth < 100 MB, PASS or FAIL;
e. what each view reads: every ``get`` of the local Zarr store is counted (the store
   class's method wrapped), by array; a night must read exactly the pixel chunks its
   rows span, a frame click those of its frame and neighbours (1, or 2 at a chunk edge).

``--profile N`` prints cProfile's N costliest functions (cumulative) of one more night
and one thumbnail.  ``--cube`` measures a cube this script built and kept (``--keep``)
without building one.  ``--frames 100000`` runs in about a minute; the default
(1,000,000 frames) in about 5 minutes on 2 cores (the build ~30 s), with a 2.2 GB cube.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import io
import json
import math
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from oathcube.parallel import cores, cpu_description

#: Frames per "sky": one labelled image is shown this many frames (7.5 min) in a row.
SKY_FRAMES = 150
#: Frame spacing of the station.
CADENCE = np.timedelta64(3, "s")
#: Labelled images the model is trained on (and the station's frames are drawn from).
LABELLED = 300
#: Noise frames (a prime number, more than zstd level 1's 512 KB window of 64x64 frames).
NOISE_FRAMES = 251
#: Targets of the issue.
NIGHT_TARGET_S = 2.0
GROWTH_TARGET_MB = 100.0
THUMB = 96


# -- the cube -------------------------------------------------------------------------------


def night_lengths(frames: int, nights: int) -> np.ndarray:
    """Frames per night: longer in winter (night 0 is Jan 1), together exactly ``frames``."""
    day = np.arange(nights)
    weight = 1.0 + 0.5 * np.cos(2 * np.pi * (day + 10) / 365.25)  # longest near Dec 21
    counts = np.floor(frames * weight / weight.sum()).astype(np.int64)
    counts[np.argsort(-weight)[: frames - int(counts.sum())]] += 1
    return counts


def station_times(frames: int, nights: int, longitude: float, year: int) -> np.ndarray:
    """UTC times, 3 s apart, of each night's frames, centred on local (solar) midnight."""
    counts = night_lengths(frames, nights)
    offset = np.timedelta64(int(round(-longitude / 15.0 * 3600e9)), "ns")  # local -> UTC
    first = np.datetime64(f"{year}-01-02T00:00", "ns")  # midnight after night 0's evening
    midnights = first + np.arange(nights) * np.timedelta64(1, "D") + offset
    starts = midnights - (counts * CADENCE) // 2
    night = np.repeat(np.arange(nights), counts)
    within = np.arange(frames) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts[night] + within * CADENCE.astype("timedelta64[ns]")


def labelled_part(work: Path, size: int) -> tuple[Path, str]:
    """A small labelled cube with handcrafted features and a ridge model; its model name."""
    from oathcube import build, train
    from oathcube.synthetic import synth

    archive = synth(work / "oath_synthetic", n=LABELLED, size=size, seed=0)
    path = Path(build(archive, work / "browse.zarr", features=["handcrafted"]))
    model = train(path, "handcrafted", target="class6")
    shutil.rmtree(archive)
    return path, model


def add_station(
    path: Path, model: str, code: str, frames: int, nights: int, size: int, year: int
) -> dict[str, Any]:
    """Write station ``code`` as ingest lays it out, its features, and classify it."""
    from oathcube import classify
    from oathcube.archive.orientation import ORIENTATION, RAW_ORIENTATION
    from oathcube.cube.schema import (
        features_spec,
        images_per_chunk,
        station_attrs,
        station_group,
        station_specs,
        variable_path,
    )
    from oathcube.cube.store import Cube
    from oathcube.model import model_spec
    from oathcube.rawprep import RawPreparation
    from oathcube.sites import STATION_LONGITUDES, site_of

    if site_of(code) not in STATION_LONGITUDES:
        raise SystemExit(f"--station {code}: not a THEMIS site code (oathcube/sites.py)")
    cube = Cube.open(path, "r+")
    spec = model_spec(cube.model(model), None)  # the extractor the model was trained on
    base = cube.read_rows("pixels")  # (LABELLED, size, size) uint8
    feats = cube.read_rows(spec.variable).astype(np.float32)
    spread = (0.05 * feats.std(axis=0)).astype(np.float32)
    times = station_times(frames, nights, STATION_LONGITUDES[site_of(code)], year)

    # The frames as a THEMIS ingest with --prep '{"out_size": size}' would record them.
    prep = RawPreparation(out_size=size)
    prep_attrs = json.dumps(prep.attrs(), sort_keys=True)
    keep = prep.stored_mask((256, 256))
    rng = np.random.default_rng(0)
    base = base * keep  # outside the crop: 0, as ingest stores it
    rows = np.arange(size, dtype=np.float32)[:, None]
    arcs = np.stack(
        [80 * np.exp(-0.5 * ((rows - p) / 2.0) ** 2) * np.ones((1, size)) for p in range(size)]
    )
    arcs = (arcs * keep).astype(np.uint8)
    noise = (rng.integers(0, 4, (NOISE_FRAMES, size, size), dtype=np.uint8) * keep).astype(np.uint8)
    skies = rng.integers(0, len(base), -(-frames // SKY_FRAMES))

    group = station_group(code)
    chunk = images_per_chunk((size, size))  # ingest's default chunk_frames
    specs = station_specs(
        orientation=ORIENTATION, raw_orientation=RAW_ORIENTATION["cdf"], rows_per_chunk=chunk
    )
    fspec = features_spec(
        spec.name, dim="time", feature_dim=spec.dim, rows_per_chunk=chunk, settings=spec.attrs
    )
    sources = [f"synthetic://bench_browse/{code}/{year}"]
    plan = {"start": 0, "end": frames, "sources": sources, "preparation": prep_attrs}
    with cube.writing("bench_browse"):
        cube.create_group(group, station_attrs(code, prep_attrs))
        cube.create(specs["time"], (0,), group=group)
        cube.create(specs["pixels"], (0, size, size), group=group)
        attrs = cube.group(group).attrs
        attrs["raw_frames"] = {"raw": True, "shape": [256, 256]}
        attrs["instrument"] = "themis"
        cube.plan_rows(group, {**plan, "layout": [None, None]})
        cube.extend_rows(group, frames)
        cube.write_rows(
            variable_path(group, "time"), 0, times.astype("datetime64[us]").astype(np.int64)
        )

        def write_chunk(a: int) -> int:
            b = min(frames, a + chunk)
            i = np.arange(a, b)
            block = base[skies[i // SKY_FRAMES]]
            arc = arcs[(i // 20) % size]  # the arc moves one row a minute
            block = np.minimum(block, 255 - arc)
            block += arc
            block ^= noise[i % NOISE_FRAMES]
            cube.write_rows(variable_path(group, "pixels"), a, block)
            return b - a

        with ThreadPoolExecutor(max(1, cores())) as pool:
            assert sum(pool.map(write_chunk, range(0, frames, chunk))) == frames
        cube.commit_rows(group, frames, sources=sources)

        # The features, as `oathcube features` would leave them (values: see above).
        cube.create(fspec, (frames, spec.n_features), group=group)
        if spec.labels is not None:
            cube.write_labels(group, spec.dim, list(spec.labels))

        def write_features(a: int) -> int:
            b = min(frames, a + chunk)
            r = np.random.default_rng([1, a])
            block = feats[skies[np.arange(a, b) // SKY_FRAMES]]
            block += r.standard_normal(block.shape, dtype=np.float32) * spread
            cube.write_rows(variable_path(group, fspec.name), a, block)
            return b - a

        with ThreadPoolExecutor(max(1, cores())) as pool:
            assert sum(pool.map(write_features, range(0, frames, chunk))) == frames
        cube.publish()
    tic = time.perf_counter()
    classify(path, model, station=code)
    return {
        "chunk": chunk,
        "classify_s": time.perf_counter() - tic,
        "first": times[0],
        "last": times[-1],
    }


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- what the store reads -------------------------------------------------------------------


class StoreReads:
    """Every ``get`` of zarr's LocalStore in this process, by array and chunk."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.on = False

    def install(self) -> None:
        from zarr.storage import LocalStore

        original = LocalStore.get
        reads = self

        async def get(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
            if reads.on:
                reads.keys.append(key)
            return await original(self, key, *args, **kwargs)

        LocalStore.get = get  # type: ignore[method-assign]

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        out: list[str] = []
        self.keys, self.on = out, True
        try:
            yield out
        finally:
            self.on = False


def chunk_reads(keys: list[str], array: str) -> list[int]:
    """Row-chunk indices of ``array``'s chunks among ``keys`` (one per get, repeats kept)."""
    prefix = f"{array}/c/"
    return [int(k[len(prefix) :].split("/")[0]) for k in keys if k.startswith(prefix)]


def by_array(keys: list[str]) -> dict[str, int]:
    """Gets per array (chunks) or ``metadata``."""
    out: Counter[str] = Counter()
    for k in keys:
        if "/c/" in k or k.startswith("c/"):
            out[k.split("/c/")[0].rpartition("/")[2] if "/c/" in k else "(root)"] += 1
        else:
            out["metadata"] += 1
    return dict(sorted(out.items()))


def mean_gets(logged: list[Any], count: int) -> dict[str, float]:
    """Store gets per array, averaged over ``count`` logged views (keys last in each)."""
    total = Counter[str]()
    for *_, keys in logged:
        total.update(by_array(keys))
    return {a: round(v / count, 1) for a, v in total.items()}


def spanned(lo: int, hi: int, chunk: int) -> set[int]:
    return set(range(lo // chunk, (hi - 1) // chunk + 1))


# -- measuring ------------------------------------------------------------------------------


def rss_mb() -> float:
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024
    return math.nan


def _ms(t: Any) -> list[int]:
    return [int(np.asarray(t, dtype="datetime64[ms]").astype(np.int64))]


def iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms")) + "Z"


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    tic = time.perf_counter()
    out = run()
    return time.perf_counter() - tic, out


def stats(values: list[float]) -> str:
    v = np.asarray(values)
    return (
        f"median {np.median(v):.3f} s, p95 {np.percentile(v, 95):.3f} s, "
        f"max {v.max():.3f} s (n={v.size})"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def profile(run: Callable[[], Any], top: int, what: str) -> None:
    prof = cProfile.Profile()
    prof.enable()
    run()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"\n--- cProfile of {what} (top {top}, cumulative) ---")
    print(out.getvalue().rstrip())


def browser_module() -> Any:
    """The module of ``Browser``, imported when measured (its import is timed)."""
    return importlib.import_module("oathcube.browser.answers")


def measure(args: argparse.Namespace) -> int:
    """Measure the Browser on the cube at ``args.cube`` (this process: a fresh one)."""
    if args.cores and cores() > args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    print(f"CPU: {cpu_description()}")
    reads = StoreReads()
    reads.install()
    path, code = str(args.cube), args.station
    failures: list[str] = []

    def ask(route: str, **params: Any) -> Any:
        answer = browser.answer(route, {k: str(v) for k, v in params.items()})
        if answer.status != 200:
            failures.append(f"{route} {params}: {answer.status} {answer.body[:200]!r}")
        return answer

    def timed_ask(route: str, **params: Any) -> tuple[float, Any]:
        tic = time.perf_counter()
        answer = ask(route, **params)
        return time.perf_counter() - tic, answer

    # a. cold start
    rss0 = rss_mb()
    t_import, answers = timed(browser_module)
    from oathcube.cube.schema import station_group, variable_path
    from oathcube.cube.store import Cube

    t_open, browser = timed(lambda: answers.Browser(path))
    with reads.counting() as keys_stations:
        t_stations, ans = timed_ask("stations")
    listed = {s["station"]: s for s in ans.json()}
    if code not in listed:
        print(f"no station {code} in {path}: {', '.join(listed)}")
        return 2
    with reads.counting() as keys_nights:
        t_nights, ans = timed_ask("nights", station=code)
    nights = ans.json()
    s = listed[code]
    print(
        f"cube {path}: station {code}, {s['n_frames']:,} frames, {s['n_nights']} nights, "
        f"{s['first']} .. {s['last']}, model {s['model']}"
    )
    cube = Cube.open(path)
    group = station_group(code)
    pixels = variable_path(group, "pixels")
    chunk = cube.rows_per_chunk(pixels)
    times = cube.read_times(group)
    print(
        f"pixels {tuple(cube.array(pixels).shape)} in chunks of {chunk} frames "
        f"({chunk * math.prod(cube.array(pixels).shape[1:]) / 2**20:.0f} MB uncompressed); "
        f"frames per night {min(n['n_frames'] for n in nights)} .. "
        f"{max(n['n_frames'] for n in nights)}"
    )
    print("\na. cold start (fresh process)")
    print(f"   import {answers.__name__:<25} {t_import:7.3f} s")
    print(f"   Browser(cube)                    {t_open:7.3f} s")
    print(f"   first stations                   {t_stations:7.3f} s")
    print(f"     gets: {by_array(keys_stations)}")
    print(f"   first nights ({len(nights)} nights)       {t_nights:7.3f} s")
    print(f"     gets: {by_array(keys_nights)}")
    total = t_import + t_open + t_stations + t_nights
    print(f"   total                            {total:7.3f} s")

    # b-e. clicking through nights: a night, then a frame of it (and its neighbours)
    row_arrays = {
        name: variable_path(group, name)
        for name in cube.group(group).array_keys()
        if cube.dims(variable_path(group, name))[:1] == ("time",)
    }
    sizes = {name: cube.array(p).chunks[0] for name, p in row_arrays.items()}
    picks = np.unique(np.linspace(0, len(nights) - 1, args.clicks).round().astype(int))
    count = len(picks)
    t_night: list[float] = []
    t_frame: list[float] = []
    t_full: list[float] = []
    t_thumbs: list[float] = []
    rss: list[float] = []
    night_log: list[tuple[str, int, int, list[str]]] = []  # night, lo, hi, store keys got
    click_log: list[tuple[str, int, list[str]]] = []  # time, row, store keys got
    clicked: list[str] = []
    for k in picks:
        info = nights[int(k)]
        lo = int(np.searchsorted(times, np.datetime64(info["first"].rstrip("Z"), "ns")))
        hi = lo + int(info["n_frames"])
        with reads.counting() as keys:
            t, ans = timed_ask("night", station=code, night=info["night"])
        t_night.append(t)
        night_log.append((info["night"], lo, hi, keys))
        stamps = ans.json()["times"] if ans.status == 200 else _ms(times[lo])
        when = iso(stamps[len(stamps) // 2])
        clicked.append(when)
        with reads.counting() as keys:
            tf, fr = timed_ask("frame", station=code, time=when)
            tp, _ = timed_ask("frame.png", station=code, time=when)
            shown: dict[str, Any] = (
                fr.json() if fr.status == 200 else {"before": [], "after": [], "row": lo}
            )
            around = [r["time"] for r in (*shown["before"], *shown["after"])]
            tt = sum(timed_ask("frame.png", station=code, time=a, size=THUMB)[0] for a in around)
        t_frame.append(tf)
        t_full.append(tp)
        t_thumbs.append(tt)
        click_log.append((when, int(shown["row"]), keys))
        gc.collect()
        rss.append(rss_mb())
    t_click = [a + b + c for a, b, c in zip(t_frame, t_full, t_thumbs, strict=True)]

    print(f"\nb. night: {count} nights spread over the year, one Browser, one after the other")
    print(f"   first night                      {t_night[0]:7.3f} s")
    print(f"   all                              {stats(t_night)}")
    if count > 1:
        print(f"   without the first                {stats(t_night[1:])}")
    worst, p95 = max(t_night), float(np.percentile(t_night, 95))
    print(
        f"   target < {NIGHT_TARGET_S:g} s on {cores()} cores: max {worst:.3f} s "
        f"{verdict(worst < NIGHT_TARGET_S)}; p95 {p95:.3f} s {verdict(p95 < NIGHT_TARGET_S)}"
    )

    print(f"\nc. a frame click (the night's middle frame) on each of the {count} nights")
    print(f"   frame (JSON)                     {stats(t_frame)}")
    print(f"   frame.png, full size             {stats(t_full)}")
    print(f"   6 thumbnails (size {THUMB}), together {stats(t_thumbs)}")
    print(f"   the click: all 8 answers         {stats(t_click)}")
    t_similar: list[float] = []
    similar_reads: Counter[str] = Counter()
    how = ""
    for when in clicked[: args.similar]:
        with reads.counting() as keys:
            t, ans = timed_ask("similar", station=code, time=when, k=12)
        t_similar.append(t)
        similar_reads.update(by_array(keys))
        if ans.status == 200:
            got = ans.json()
            how = f"{'index' if got['index'] else 'exact'}, {len(got['hits'])} hits"
    if t_similar:
        print(f"   similar (k=12; {how})    {stats(t_similar)}")
        print(f"     (not part of the {NIGHT_TARGET_S:g} s target) reads a query: ", end="")
        print({a: v // len(t_similar) for a, v in similar_reads.items()})

    print(f"\nd. memory (RSS) while clicking through {count} nights (night, frame, thumbnails)")
    print(f"   before the Browser               {rss0:7.0f} MB")
    marks = sorted({0, count // 4, count // 2, 3 * count // 4, count - 1})
    print("   " + ", ".join(f"after night {i + 1}: {rss[i]:.0f} MB" for i in marks))
    growth = rss[-1] - rss[0]
    print(
        f"   growth from night 1 to night {count}: {growth:+.0f} MB; target < "
        f"{GROWTH_TARGET_MB:g} MB {verdict(growth < GROWTH_TARGET_MB)}"
    )
    half = count // 2
    if half:
        print(
            f"   (growth over the last {count - half} nights alone: "
            f"{rss[-1] - rss[half - 1]:+.0f} MB; peak {max(rss):.0f} MB)"
        )

    print("\ne. what the views read (every get of the local Zarr store, counted)")
    print(f"   the station's time-indexed arrays, rows per chunk: {sizes}")

    def check(lo: int, hi: int, keys: list[str]) -> dict[str, tuple[int, int, int]]:
        """Per array: gets, distinct chunks got, chunks rows lo:hi lie in."""
        out = {}
        for name, p in row_arrays.items():
            got = chunk_reads(keys, p)
            out[name] = (len(got), len(set(got)), len(spanned(lo, hi, sizes[name])))
        return out

    def table(title: str, rows: dict[str, tuple[int, int, int]], what: str) -> None:
        print(f"   {title}")
        print(f"     {'array':<30} {'gets':>5} {'chunks':>7} {what:>16}")
        for name, (gets, distinct, span) in rows.items():
            if gets or name == "pixels":
                print(f"     {name:<30} {gets:>5} {distinct:>7} {span:>16}")

    nights_checked = [(n, check(lo, hi, keys)) for n, lo, hi, keys in night_log]
    two = [c for c in nights_checked if c[1]["pixels"][2] > 1]
    first = nights_checked[0]
    for night, rows in [first, *two[:1]]:
        frames = next(hi - lo for n, lo, hi, _ in night_log if n == night)
        table(f"a night ({night}, {frames} frames)", rows, "night's rows in")
        p = rows["pixels"]
        print(
            f"     pixel chunks read by a night: {p[1]} (the night spans {p[2]} "
            f"chunk{'s' if p[2] > 1 else ''})"
        )
    exact = [n for n, rows in nights_checked if rows["pixels"][0] == rows["pixels"][2]]
    print(
        f"   nights that read exactly the pixel chunks they span, once each: {len(exact)} of "
        f"{count} {verdict(len(exact) == count)}"
    )
    only = [n for n, rows in nights_checked if all(d <= sp for _, d, sp in rows.values())]
    print(
        f"   nights that read no chunk outside their rows, of any time-indexed array: "
        f"{len(only)} of {count} {verdict(len(only) == count)}"
    )
    print("   gets per night, mean, every array:", mean_gets(night_log, count))

    clicks_checked = [
        (when, check(max(0, row - 3), min(times.size, row + 4), keys))
        for when, row, keys in click_log
    ]
    when, rows = clicks_checked[0]
    table(f"a frame click ({when}: frame, full PNG, 6 thumbnails)", rows, "shown rows in")
    p = rows["pixels"]
    print(f"     pixel chunks read by a frame click: {p[1]} (its 7 frames lie in {p[2]})")
    ok = [w for w, rows in clicks_checked if all(d <= sp for _, d, sp in rows.values())]
    print(
        f"   clicks that read no chunk outside their frames' rows: {len(ok)} of {count} "
        f"{verdict(len(ok) == count)}"
    )
    print("   gets per click, mean, every array:", mean_gets(click_log, count))

    if args.profile:
        seen = set(picks.tolist())
        spare = [i for i in range(len(nights)) if i not in seen] or [0]
        other = nights[spare[len(spare) // 2]]["night"]
        profile(lambda: ask("night", station=code, night=other), args.profile, "a night")
        when = clicked[len(clicked) // 2]
        profile(
            lambda: ask("frame.png", station=code, time=when, size=THUMB),
            args.profile,
            "a thumbnail",
        )
    if failures:
        print(f"\n{len(failures)} request(s) failed; the first: {failures[0]}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=64, help="frame side, pixels")
    parser.add_argument("--nights", type=int, default=365)
    parser.add_argument("--year", type=int, default=2011)
    parser.add_argument("--station", default="gill", help="a THEMIS site code")
    parser.add_argument("--clicks", type=int, default=100, help="nights clicked through")
    parser.add_argument("--similar", type=int, default=3, help="similar-skies queries")
    parser.add_argument(
        "--cores", type=int, default=2, help="cores the measuring process may use (0: all)"
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the cube")
    parser.add_argument("--cube", type=Path, default=None, help="measure this cube, build none")
    args = parser.parse_args(argv)
    if args.cube is not None:
        return measure(args)
    if args.frames < args.nights or args.size < 16:
        parser.error("--frames must be at least --nights, --size at least 16")

    made = args.workdir is None or not args.workdir.exists()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_browse_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        tic = time.perf_counter()
        path, model = labelled_part(workdir, args.size)
        t_labelled = time.perf_counter() - tic
        built = add_station(
            path, model, args.station, args.frames, args.nights, args.size, args.year
        )
        t_build = time.perf_counter() - tic
        size = disk_bytes(path)
        pixels = disk_bytes(path / "stations" / args.station / "pixels")
        print(
            f"cube built in {t_build:.1f} s (labelled images and model {t_labelled:.1f} s, "
            f"classify {built['classify_s']:.1f} s) on {cores()} cores: {path}"
        )
        print(
            f"   {args.frames:,} frames of {args.size}x{args.size} px, {args.nights} nights "
            f"{str(built['first'])[:19]} .. {str(built['last'])[:19]} UTC, chunks of "
            f"{built['chunk']} frames; {size / 1e9:.2f} GB on disk "
            f"(pixels {pixels / 1e9:.2f} GB, {pixels / args.frames:.0f} bytes a frame)"
        )
        sys.stdout.flush()
        # A fresh process measures: cold start and memory as a server's, on --cores cores.
        cpus = sorted(os.sched_getaffinity(0))
        limit = cpus[: args.cores] if args.cores else cpus
        command = [sys.executable, str(Path(__file__).resolve()), "--cube", str(path)]
        for flag in ("station", "clicks", "similar", "cores", "profile"):
            command += [f"--{flag}", str(getattr(args, flag))]
        return subprocess.run(
            command, preexec_fn=lambda: os.sched_setaffinity(0, limit), check=False
        ).returncode
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        elif made:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            shutil.rmtree(workdir / "browse.zarr", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
