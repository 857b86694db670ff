"""Evaluate icechunk as an optional transactional store for oathcube cubes.

usage: python scripts/eval_icechunk.py [--workdir DIR] [--n 600] [--size 128] [--repeats 3]
                                       [--race-trials 20] [--no-dask]

Builds a small synthetic cube the normal way, then measures and checks:

1. versions (icechunk, zarr, xarray, numpy, dask, Python) and icechunk's Requires-Python;
2. write (plain Zarr vs icechunk, ``ds.to_zarr(session.store)`` and
   ``icechunk.xarray.to_icechunk``) and read-back of the pixels: median of --repeats,
   files and bytes on disk;
3. transactions: a reader during an uncommitted write sees the previous snapshot; a writer
   killed with SIGKILL before commit leaves the last snapshot intact (and orphan chunks,
   which garbage collection removes);
4. conflicts: two sessions from one snapshot committing to the same array, in turn and
   racing from two processes on the local-filesystem storage;
5. whether plain ``xarray.open_zarr`` (icechunk not imported) opens a repository folder;
6. dask.distributed writes (LocalCluster, 2 worker processes): ``to_zarr`` on a session's
   store, ``to_icechunk``, and explicit ``Session.fork`` / ``merge`` of region writes.

Exits 0 in every case, and says so plainly when icechunk is not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import multiprocessing as mp
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description  # noqa: E402

try:
    import icechunk
except ImportError:  # reported in main()
    icechunk = None

LOG_FILTER = "error"  # icechunk's Rust logs: keep the table readable (warnings are checked apart)
FINDINGS: list[tuple[str, str, str]] = []  # (question, answer, detail)


def finding(question: str, answer: bool | str, detail: str = "") -> None:
    if isinstance(answer, bool):
        answer = "yes" if answer else "no"
    FINDINGS.append((question, answer, detail))


def version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def tree_stats(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``."""
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            files += 1
            size += (Path(root) / name).stat().st_size
    return files, size


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def digest(values: Any) -> str:
    return hashlib.sha256(values.tobytes()).hexdigest()[:16]


def storage(path: Path) -> Any:
    return icechunk.local_filesystem_storage(str(path))


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ or exc.__context__:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


# ---------------------------------------------------------------- 1. versions


def report_versions() -> None:
    print(f"machine: {cpu_description()}")
    print(f"python: {sys.version.split()[0]} ({sys.executable})")
    for dist in ("icechunk", "zarr", "xarray", "numpy", "pandas", "dask", "distributed"):
        print(f"  {dist:12s} {version(dist)}")
    if icechunk is not None:
        needs = md.metadata("icechunk").get("Requires-Python", "?")
        reqs = ", ".join(md.requires("icechunk") or [])
        print(f"  icechunk Requires-Python {needs}; requires: {reqs}")
        major = int(icechunk.__version__.split(".")[0])
        finding(
            "1. icechunk 2.x installed beside zarr/xarray/numpy of this env",
            major >= 2,
            f"icechunk {icechunk.__version__} (Requires-Python {needs}), zarr {version('zarr')}, "
            f"xarray {version('xarray')}, numpy {version('numpy')}, Python "
            f"{sys.version.split()[0]}",
        )


def local_fs_warning(work: Path) -> str:
    """What icechunk logs (at its default level) when a local-filesystem repo is created."""
    code = (
        "import icechunk, sys\n"
        "icechunk.Repository.create(icechunk.local_filesystem_storage(sys.argv[1]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(fresh(work / "warn.icechunk"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "not safe for concurrent commits" if "not safe for concurrent" in out.stderr else ""


# ---------------------------------------------------------------- 2. write / read


def bench_write_read(ds: Any, work: Path, cube: Path, repeats: int) -> Path:
    import xarray as xr
    from icechunk.xarray import to_icechunk

    plain = work / "plain.zarr"
    repo_path = work / "bench.icechunk"
    repo_zarr_path = work / "bench_to_zarr.icechunk"

    def write_plain() -> None:
        ds.to_zarr(fresh(plain), mode="w", zarr_format=3)

    def write_ice_to_zarr() -> None:
        repo = icechunk.Repository.create(storage(fresh(repo_zarr_path)))
        session = repo.writable_session("main")
        ds.to_zarr(session.store, mode="w", zarr_format=3, consolidated=False)
        session.commit("oathcube cube via Dataset.to_zarr")

    def write_ice() -> None:
        repo = icechunk.Repository.create(storage(fresh(repo_path)))
        session = repo.writable_session("main")
        to_icechunk(ds, session, mode="w")
        session.commit("oathcube cube via to_icechunk")

    def read_plain() -> Any:
        return xr.open_zarr(plain).pixels.values

    def read_ice() -> Any:
        session = icechunk.Repository.open(storage(repo_path)).readonly_session("main")
        return xr.open_zarr(session.store, consolidated=False).pixels.values

    rows = []
    t_plain = median_time(write_plain, repeats)
    t_read_plain = median_time(read_plain, repeats)
    files_plain = tree_stats(plain)
    t_ice_zarr = median_time(write_ice_to_zarr, repeats)
    t_ice = median_time(write_ice, repeats)  # leaves the to_icechunk repo in place
    t_read_ice = median_time(read_ice, repeats)
    files_ice = tree_stats(repo_path)

    same = digest(read_ice()) == digest(ds.pixels.values) == digest(read_plain())
    session = icechunk.Repository.open(storage(repo_path)).readonly_session("main")
    back = xr.open_zarr(session.store, consolidated=False).load()
    identical = True
    try:
        xr.testing.assert_identical(back, ds.load())
    except AssertionError:
        identical = False

    mb = ds.pixels.nbytes / 2**20
    rows.append(("oathcube.build cube (reference)", None, None, tree_stats(cube)))
    rows.append(("plain Zarr  ds.to_zarr(path)", t_plain, t_read_plain, files_plain))
    rows.append(
        (
            "icechunk    ds.to_zarr(session.store)+commit",
            t_ice_zarr,
            None,
            tree_stats(repo_zarr_path),
        )
    )
    rows.append(("icechunk    to_icechunk(ds, session)+commit", t_ice, t_read_ice, files_ice))
    print(f"\n2. write / read ({repeats} repeats, median; pixels {mb:.1f} MB uncompressed)")
    print(f"  {'store':45s} {'write s':>8s} {'read s':>8s} {'files':>6s} {'MB':>7s}")
    for name, w, r, stats in rows:
        ws = f"{w:8.3f}" if w is not None else f"{'-':>8s}"
        rs = f"{r:8.3f}" if r is not None else f"{'-':>8s}"
        fs = f"{stats[0]:6d} {stats[1] / 2**20:7.2f}" if stats else f"{'-':>6s} {'-':>7s}"
        print(f"  {name:45s} {ws} {rs} {fs}")
    print(f"  pixels read back identical in both stores: {same}; Dataset identical: {identical}")
    finding(
        "2. icechunk write/read works with an oathcube Dataset",
        same and identical,
        f"write {t_ice:.3f}s vs plain {t_plain:.3f}s; read {t_read_ice:.3f}s vs "
        f"{t_read_plain:.3f}s; files {files_ice[0]} vs {files_plain[0]}",
    )
    finding(
        "2. ds.to_zarr(session.store) works without to_icechunk (threaded scheduler)",
        True,
        "no pickling with threads; under dask.distributed see 6.",
    )
    return repo_path


# ---------------------------------------------------------------- 3. transactions


KILLED_WRITER = """
import os, signal, sys
import numpy as np, zarr, icechunk
icechunk.set_logs_filter("error")
repo = icechunk.Repository.open(icechunk.local_filesystem_storage(sys.argv[1]))
session = repo.writable_session("main")
root = zarr.open_group(session.store, mode="r+")
n = root["pixels"].shape[0]
ghost = root.create_array("ghost", shape=(n, 128, 128), chunks=(100, 128, 128), dtype="uint8",
                          dimension_names=["image", "gy", "gx"])
ghost[:] = np.random.default_rng(0).integers(0, 255, size=ghost.shape, dtype="uint8")
root["pixels"][:100] = 0          # clobber committed pixels too (uncommitted)
root.attrs["oathcube_status"] = "half-written"
print("written, killing myself before commit", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
session.commit("never reached")
"""


def transactions(repo_path: Path, work: Path) -> None:
    import xarray as xr
    from icechunk.xarray import to_icechunk

    print("\n3. transactions")
    repo = icechunk.Repository.open(storage(repo_path))
    before = repo.lookup_branch("main")
    old_reader = repo.readonly_session("main")
    pixels_digest = digest(xr.open_zarr(old_reader.store, consolidated=False).pixels.values)

    # 3a. reader during an uncommitted write
    writer = repo.writable_session("main")
    ds = xr.open_zarr(writer.store, consolidated=False)
    brightness = ds.pixels.astype("float32").mean(("y", "x")).rename("brightness")
    # mode="a" replaces the root attributes with the Dataset's: carry them over
    to_icechunk(brightness.to_dataset().assign_attrs(ds.attrs), writer, mode="a")
    during = repo.readonly_session("main")
    seen_during = "brightness" in xr.open_zarr(during.store, consolidated=False)
    seen_by_writer = "brightness" in xr.open_zarr(writer.store, consolidated=False)
    after_id = writer.commit("add brightness")
    seen_after = "brightness" in xr.open_zarr(
        repo.readonly_session("main").store, consolidated=False
    )
    seen_old = "brightness" in xr.open_zarr(old_reader.store, consolidated=False)
    print(f"  snapshot before {before} -> after commit {after_id}")
    print(f"  'brightness' seen by the writer itself before commit: {seen_by_writer}")
    print(f"  'brightness' seen by a reader opened before commit:   {seen_during}")
    print(f"  'brightness' seen by a reader opened after commit:    {seen_after}")
    print(f"  'brightness' seen by a reader opened before the write: {seen_old} (snapshot pinned)")
    finding(
        "3. reader during uncommitted write sees previous snapshot; after commit sees new",
        (not seen_during) and seen_after and not seen_old,
        f"during={seen_during} after={seen_after} pinned-old-reader={seen_old}",
    )

    # 3b. writer killed with SIGKILL before commit
    tip = repo.lookup_branch("main")
    status_before = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).attrs.get(
        "oathcube_status"
    )
    files_before = tree_stats(repo_path)
    chunk_files_before = tree_stats(repo_path / "chunks")[0]
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(repo_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    killed = proc.returncode == -9
    repo = icechunk.Repository.open(storage(repo_path))
    tip_after = repo.lookup_branch("main")
    reader = repo.readonly_session("main")
    group = xr.open_zarr(reader.store, consolidated=False)
    ghost = "ghost" in group
    intact = digest(group.pixels.values) == pixels_digest
    status = group.attrs.get("oathcube_status")
    has_brightness = "brightness" in group
    files_after = tree_stats(repo_path)
    orphans = tree_stats(repo_path / "chunks")[0] - chunk_files_before
    print(f"  killed writer: rc {proc.returncode} ({'SIGKILL' if killed else 'NOT KILLED'})")
    print(f"  branch tip before {tip}, after {tip_after}; 'ghost' visible: {ghost}")
    print(f"  committed pixels intact: {intact}; brightness kept: {has_brightness}")
    print(f"  root attr oathcube_status before {status_before!r}, after {status!r}")
    print(
        f"  files on disk {files_before[0]} -> {files_after[0]} "
        f"({orphans} orphan chunk objects, {(files_after[1] - files_before[1]) / 2**20:.2f} MB)"
    )
    gc = repo.garbage_collect(datetime.now(UTC))
    files_gc = tree_stats(repo_path)
    intact_gc = (
        digest(
            xr.open_zarr(
                icechunk.Repository.open(storage(repo_path)).readonly_session("main").store,
                consolidated=False,
            ).pixels.values
        )
        == pixels_digest
    )
    print(
        f"  garbage_collect(now): chunks_deleted={gc.chunks_deleted} "
        f"manifests_deleted={gc.manifests_deleted} snapshots_deleted={gc.snapshots_deleted}; "
        f"files -> {files_gc[0]}; data intact after GC: {intact_gc}"
    )
    finding(
        "3. SIGKILLed writer: last snapshot intact, variable absent",
        killed and tip == tip_after and not ghost and intact and status == status_before,
        f"tip unchanged={tip == tip_after}; {orphans} orphan chunk files until garbage_collect",
    )


# ---------------------------------------------------------------- 4. conflicts


def _race_worker(repo_path: str, who: int, trials: int, barrier: Any, queue: Any) -> None:
    import icechunk as ic
    import zarr

    ic.set_logs_filter(LOG_FILTER)
    repo = ic.Repository.open(ic.local_filesystem_storage(repo_path))
    for trial in range(trials):
        barrier.wait()
        session = repo.writable_session("main")
        parent = session.snapshot_id
        zarr.open_array(session.store, path="race", mode="r+")[:] = 10 * trial + who
        barrier.wait()
        try:
            outcome, sid = "ok", session.commit(f"writer {who} trial {trial}")
        except ic.ConflictError:
            outcome, sid = "conflict", None
        except Exception as exc:  # anything else is a finding too
            outcome, sid = first_line(exc), None
        queue.put((trial, who, parent, outcome, sid))
        barrier.wait()  # both done before the next trial reads the tip


def conflicts(work: Path, race_trials: int) -> None:
    import numpy as np
    import zarr

    print("\n4. conflicts (two writers race)")
    repo_path = fresh(work / "conflict.icechunk")
    repo = icechunk.Repository.create(storage(repo_path))
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="w")
    for name in ("pixels", "features"):
        root.create_array(name, shape=(600, 16), chunks=(100, 16), dtype="float32")[:] = 0
    root.create_array("race", shape=(4,), chunks=(4,), dtype="int64")[:] = -1
    session.commit("base")

    def write(name: str, rows: slice, value: float) -> Any:
        s = repo.writable_session("main")
        zarr.open_array(s.store, path=name, mode="r+")[rows] = value
        return s

    def attempt(label: str, b: Any, **kw: Any) -> str:
        try:
            b.commit(label, **kw)
            return "committed"
        except icechunk.ConflictError as exc:
            return first_line(exc)

    # same array, same chunk
    a, b = write("pixels", slice(0, 10), 1.0), write("pixels", slice(0, 10), 2.0)
    a.commit("A writes pixels[0:10]")
    same = attempt("B writes pixels[0:10]", b)
    try:
        b.rebase(icechunk.ConflictDetector())
        rebased = "rebase succeeded"
    except icechunk.RebaseFailedError as exc:
        kinds = sorted({str(c.conflict_type).split(".")[-1] for c in exc.conflicts})
        rebased = f"RebaseFailedError {kinds}"
    solver = icechunk.BasicConflictSolver(on_chunk_conflict=icechunk.VersionSelection.UseOurs)
    b.rebase(solver)
    b.commit("B wins after rebase(UseOurs)")
    value = zarr.open_array(repo.readonly_session("main").store, path="pixels")[0, 0]
    print(f"  same array, same chunk: second commit -> {same}")
    print(f"    rebase(ConflictDetector) -> {rebased}")
    print(f"    rebase(BasicConflictSolver UseOurs) + commit -> pixels[0,0] = {value}")

    # same array, different chunks; different arrays
    a, b = write("pixels", slice(0, 100), 3.0), write("pixels", slice(500, 600), 4.0)
    a.commit("A chunk 0")
    plain = attempt("B chunk 5", b)
    auto = attempt("B chunk 5", b, rebase_with=icechunk.ConflictDetector())
    print(f"  same array, disjoint chunks: commit -> {plain}")
    print(f"    commit(rebase_with=ConflictDetector()) -> {auto}")
    a, b = write("pixels", slice(0, 100), 5.0), write("features", slice(0, 100), 6.0)
    a.commit("A pixels")
    auto2 = attempt("B features", b, rebase_with=icechunk.ConflictDetector())
    print(f"  different arrays: commit(rebase_with=ConflictDetector()) -> {auto2}")
    finding(
        "4. two sessions, same snapshot, same array: second commit raises ConflictError",
        same.startswith("ConflictError"),
        f"{rebased}; disjoint chunks/arrays merge with rebase_with=ConflictDetector(): "
        f"{auto == auto2 == 'committed'}",
    )

    # real race: two processes commit at the same moment, local filesystem storage
    if race_trials <= 0:
        return
    history_before = sum(1 for _ in repo.ancestry(branch="main"))
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(str(repo_path), w, race_trials, barrier, queue))
        for w in (1, 2)
    ]
    tic = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in range(2 * race_trials)]
    for p in procs:
        p.join(timeout=60)
    elapsed = time.perf_counter() - tic
    ancestry = {s.id for s in repo.ancestry(branch="main")}
    grown = len(ancestry) - history_before
    by_trial: dict[int, list[tuple[Any, ...]]] = {}
    for r in results:
        by_trial.setdefault(r[0], []).append(r)
    tally = {"one ok, one ConflictError": 0, "both ok": 0, "both failed": 0, "other": 0}
    lost = 0
    other: list[str] = []
    same_parent = sum(1 for rows in by_trial.values() if rows[0][2] == rows[1][2])
    for rows in by_trial.values():
        oks = [r for r in rows if r[3] == "ok"]
        lost += sum(1 for r in oks if r[4] not in ancestry)
        if len(oks) == 1 and any(r[3] == "conflict" for r in rows):
            tally["one ok, one ConflictError"] += 1
        elif len(oks) == 2:
            tally["both ok"] += 1
        elif all(r[3] == "conflict" for r in rows):
            tally["both failed"] += 1
        else:
            tally["other"] += 1
            other += [r[3] for r in rows if r[3] not in ("ok", "conflict")]
    final = zarr.open_array(repo.readonly_session("main").store, path="race")[:]
    print(f"  process race, {race_trials} trials on local_filesystem_storage ({elapsed:.1f} s):")
    for k, v in tally.items():
        print(f"    {k:28s} {v}")
    print(f"    trials whose two sessions started from the same snapshot: {same_parent}")
    print(
        f"    commits reported ok: {sum(1 for r in results if r[3] == 'ok')}; main grew by {grown}"
    )
    print(f"    'ok' commits missing from main's history (lost updates): {lost}")
    if other:
        print(f"    other errors: {sorted(set(other))[:3]}")
    print(f"    final race array {np.asarray(final).tolist()}")
    finding(
        "4. simultaneous commits from 2 processes (local FS): exactly one wins, none lost",
        tally["one ok, one ConflictError"] == race_trials and lost == 0,
        f"{tally}; lost={lost}",
    )


# ---------------------------------------------------------------- 5. plain xarray


PLAIN_OPEN = """
import sys, warnings
warnings.simplefilter("ignore")
import xarray as xr, zarr
openers = (
    ("xarray.open_zarr", lambda p: xr.open_zarr(p)),
    ("zarr.open_group(mode='r')", lambda p: zarr.open_group(p, mode="r")),
)
for name, fn in openers:
    try:
        fn(sys.argv[1])
        print(name, "OPENED")
    except Exception as exc:
        print(name, "FAILED", type(exc).__name__, str(exc).splitlines()[0][:120])
print("icechunk imported:", "icechunk" in sys.modules)
"""


def plain_xarray(repo_path: Path) -> None:
    print("\n5. plain xarray (no icechunk import) on the repository folder")
    zarr_json = sum(1 for p in repo_path.rglob("zarr.json"))
    print(f"  zarr.json files in the repository folder: {zarr_json}")
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_OPEN, str(repo_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in out.stdout.strip().splitlines():
        print(f"  {line}")
    opened = "xarray.open_zarr OPENED" in out.stdout
    finding(
        "5. plain xarray.open_zarr(repo folder) works without icechunk",
        opened,
        "readers need `pip install icechunk` and Repository/readonly_session code",
    )


# ---------------------------------------------------------------- 6. dask.distributed


def _write_block(fork: Any, cube: str, start: int, stop: int) -> Any:
    """Worker task: copy pixel rows [start, stop) of a plain cube into a forked session."""
    import icechunk as ic
    import zarr

    ic.set_logs_filter(LOG_FILTER)
    block = zarr.open_array(cube, path="pixels", mode="r")[start:stop]
    zarr.open_array(fork.store, path="pixels", mode="r+")[start:stop] = block
    return fork


def distributed_writes(ds: Any, work: Path, cube: Path, rows: int) -> None:
    import xarray as xr
    from distributed import Client, LocalCluster
    from icechunk.xarray import to_icechunk

    print("\n6. dask.distributed writes (LocalCluster n_workers=2, processes=True)")
    chunked = ds.chunk(image=rows)
    for var in chunked.variables.values():
        var.encoding.pop("chunks", None)
        var.encoding.pop("preferred_chunks", None)
    n = ds.sizes["image"]
    truth = digest(ds.pixels.values)
    tic = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        print(f"  cluster up in {time.perf_counter() - tic:.1f} s; {n // rows} blocks of {rows}")

        # 6a. Dataset.to_zarr on a writable session's store
        repo = icechunk.Repository.create(storage(fresh(work / "dist_to_zarr.icechunk")))
        session = repo.writable_session("main")
        try:
            chunked.to_zarr(session.store, mode="w", zarr_format=3, consolidated=False)
            session.commit("to_zarr under distributed")
            a = "worked"
        except Exception as exc:
            a = first_line(root_cause(exc))
        print(f"  ds.to_zarr(session.store): {a}")

        # 6b. to_icechunk (forks per task, merges in the graph)
        repo_b = icechunk.Repository.create(storage(fresh(work / "dist_to_icechunk.icechunk")))
        session = repo_b.writable_session("main")
        tic = time.perf_counter()
        to_icechunk(chunked, session, mode="w")
        session.commit("to_icechunk under distributed")
        t_b = time.perf_counter() - tic
        back = repo_b.readonly_session("main").store
        ok_b = digest(xr.open_zarr(back, consolidated=False).pixels.values) == truth
        print(f"  to_icechunk(ds, session): {t_b:.2f} s, pixels identical: {ok_b}")

        # 6c. explicit fork/merge: template commit, then region writes by worker tasks
        repo_c = icechunk.Repository.create(storage(fresh(work / "dist_fork.icechunk")))
        session = repo_c.writable_session("main")
        chunked.to_zarr(session.store, mode="w", zarr_format=3, consolidated=False, compute=False)
        session.commit("template")
        session = repo_c.writable_session("main")
        try:
            pickle.dumps(session)
            pickled = "pickled"
        except Exception as exc:
            pickled = first_line(exc)
        tic = time.perf_counter()
        starts = range(0, n, rows)
        forks = [session.fork() for _ in starts]
        futures = [
            client.submit(_write_block, f, str(cube), s, min(s + rows, n), pure=False)
            for f, s in zip(forks, starts, strict=True)
        ]
        returned = client.gather(futures)
        session.merge(*returned)
        sid = session.commit("pixels by region from worker forks")
        t_c = time.perf_counter() - tic
        back = repo_c.readonly_session("main").store
        ok_c = digest(xr.open_zarr(back, consolidated=False).pixels.values) == truth
        workers = len(client.scheduler_info()["workers"])
        print(f"  pickle.dumps(writable Session): {pickled}")
        print(
            f"  fork x{len(forks)} -> {workers} workers -> merge -> commit {sid}: "
            f"{t_c:.2f} s, pixels identical: {ok_c}"
        )
    finding(
        "6. ds.to_zarr(session.store) under dask.distributed",
        a == "worked",
        a if a != "worked" else "",
    )
    finding(
        "6. distributed writes via to_icechunk / Session.fork+merge",
        ok_b and ok_c,
        "writable Session refuses pickling; ForkSessions go to workers and come back "
        "to be merged, one commit by the coordinator",
    )


# ---------------------------------------------------------------- main


def repo_of(state: dict[str, Path]) -> Path:
    if "repo" not in state:
        raise RuntimeError("skipped: needs the repository that section 2 writes")
    return state["repo"]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--race-trials", type=int, default=20)
    ap.add_argument("--rows", type=int, default=100, help="images per block in section 6")
    ap.add_argument("--no-dask", action="store_true", help="skip section 6 (dask.distributed)")
    args = ap.parse_args()

    print("1. versions")
    report_versions()
    if icechunk is None:
        print(
            "\nicechunk is NOT INSTALLED in this environment: nothing to evaluate.\n"
            "  pip install icechunk   (2.x needs Python >= 3.12; on 3.11 pip picks 1.x)"
        )
        return 0
    icechunk.set_logs_filter(LOG_FILTER)
    warnings.filterwarnings("ignore", message=".*consolidated.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="zarr")

    import xarray as xr

    import oathcube

    work = args.workdir or Path(tempfile.mkdtemp(prefix="eval_icechunk_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {work}")
    warned = local_fs_warning(work)
    if warned:
        print(f"  icechunk logs a WARN on local_filesystem_storage: '{warned}'")

    tic = time.perf_counter()
    archive = oathcube.synth(fresh(work / "arch"), n=args.n, size=args.size)
    cube = oathcube.build(archive, fresh(work / "cube.zarr"), progress=False)
    print(f"synth + build: {args.n} images {args.size}px in {time.perf_counter() - tic:.1f} s")
    ds = xr.open_zarr(cube)

    sections: list[tuple[str, Callable[[], Any]]] = []
    state: dict[str, Path] = {}
    sections.append(
        ("2", lambda: state.update(repo=bench_write_read(ds, work, Path(cube), args.repeats)))
    )
    sections.append(("3", lambda: transactions(repo_of(state), work)))
    sections.append(("4", lambda: conflicts(work, args.race_trials)))
    sections.append(("5", lambda: plain_xarray(repo_of(state))))
    if not args.no_dask:
        sections.append(("6", lambda: distributed_writes(ds, work, Path(cube), args.rows)))
    for name, run in sections:
        try:
            run()
        except Exception as exc:  # report and go on: every section is a finding
            print(f"  section {name} FAILED: {first_line(exc)}")
            finding(f"{name}. section ran", False, first_line(exc))

    print("\nfindings")
    for question, answer, detail in FINDINGS:
        print(f"  [{answer:>3s}] {question}")
        if detail:
            print(f"        {detail}")
    if warned:
        print(f"  [ - ] icechunk's own WARN for local_filesystem_storage: {warned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
