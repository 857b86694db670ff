"""Benchmark Zarr v3 sharding for station pixels: objects, bytes, write/read time, requests.

usage: python scripts/bench_sharding.py [--frames 20000] [--workdir DIR] [--s3] [--s3-frames N]

A THEMIS station records one 256x256 frame every 3 s, about 3.6e6 frames a year at
night-time duty.  oathcube stores ``pixels(time, y, x)`` uint8 with zarr's default codec
(zstd level 0) in chunks of 512 frames, and per-frame features chunked the same way.
On an object store every chunk is one object; a shard packs many chunks into one.

For each layout this script appends ``--frames`` synthetic all-sky frames in blocks of
1200 (one CDF hour file: resize, then write the new rows, as ``oathcube ingest`` does),
to the local file system and, with ``--s3``, to moto's S3 server started in-process.
A store wrapper counts every request and byte, so the cost of rewriting a partially
filled shard at each append shows up as PUT bytes above the stored bytes.

Layouts:
  a  chunks 512, no shards (today)
  b  chunks 64, no shards
  c  chunks 64 in shards of 4096 (64 inner chunks; ~25 min of frames per object)
  d  chunks 512 in shards of 8192 (today's read unit; a shard ~ one station-night)
  e  layout c, but the ingester buffers 4096 frames and writes whole shards only
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import FsspecStore, LocalStore, WrapperStore

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description, peak_rss_mb  # noqa: E402

SIZE = 256
HOUR = 1200  # frames in one CDF hour file (one every 3 s)
STATION_YEAR = 3.6e6  # frames per station-year at night-time duty
ARCHIVE = 1e9  # frames in the whole THEMIS archive, about
FEATURE_WIDTH = 1536  # widest per-frame feature vector, float32
TIME_CHUNK = 65536
READ_BLOCK = 8192  # full reads go in blocks of 8192 frames (a multiple of every chunk/shard)
RANDOM_FRAMES = 100


@dataclass(frozen=True)
class Layout:
    name: str
    chunk: int
    shard: int | None
    block: int = HOUR  # frames per append

    @property
    def object_frames(self) -> int:
        """Frames in one stored object (a chunk, or a shard)."""
        return self.shard or self.chunk

    def describe(self) -> str:
        text = f"chunk {self.chunk}" + (f" / shard {self.shard}" if self.shard else "")
        return text + (f", appends of {self.block}" if self.block != HOUR else "")


LAYOUTS = (
    Layout("a", 512, None),
    Layout("b", 64, None),
    Layout("c", 64, 4096),
    Layout("d", 512, 8192),
    Layout("e", 64, 4096, block=4096),
)


# ---------------------------------------------------------------- synthetic all-sky frames


def sky_frames(n: int, seed: int = 0) -> np.ndarray:
    """``n`` 256x256 uint8 fisheye frames: dark corners, an airglow disc brightening towards
    the horizon, a drifting auroral arc that waxes and wanes, 40 stars turning about the
    zenith at 15 deg/hour, and gaussian noise (sigma 3 DN on the sky, 1.2 off it).

    Deterministic given ``seed``.  The arc is drawn from a per-frame 1-D profile and the
    noise from 256 gaussian quantiles, so that 20000 frames take seconds, not minutes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cy = cx = (SIZE - 1) / 2
    r = np.hypot(yy - cy, xx - cx) / (0.47 * SIZE)
    disc = r <= 1.0
    base = np.where(disc, 38.0 + 28.0 * r**2, 6.0).astype(np.float32)
    sigma = np.where(disc, 3.0, 1.2).astype(np.float32)
    bend = np.rint(4 * (yy - 0.004 * (xx - cx) ** 2)).astype(np.intp)  # a bent east-west arc
    grid = np.arange(bend.min(), bend.max() + 1, dtype=np.float32) / 4
    bend -= bend.min()
    quantiles = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)
    n_stars = 40
    star_r = 0.95 * 0.47 * SIZE * np.sqrt(rng.random(n_stars))
    star_phi = rng.random(n_stars) * 2 * np.pi
    star_amp = rng.uniform(60, 200, n_stars).astype(np.float32)
    out = np.empty((n, SIZE, SIZE), np.uint8)
    step = 400
    for start in range(0, n, step):
        t = np.arange(start, min(start + step, n), dtype=np.float32)
        m = t.size
        centre = cy + 70 * np.sin(2 * np.pi * t / 9000) + 15 * np.sin(2 * np.pi * t / 700)
        width = 8 + 5 * (1 + np.sin(2 * np.pi * t / 1300))
        amp = 25 + 90 * np.clip(np.sin(2 * np.pi * t / 5000), 0, None) ** 2
        profile = amp[:, None] * np.exp(-(((grid - centre[:, None]) / width[:, None]) ** 2))
        frames = profile[:, bend] * disc
        frames += base
        frames += sigma * quantiles[rng.integers(0, 256, (m, SIZE, SIZE), dtype=np.uint8)]
        phi = star_phi[None, :] + t[:, None] * (2 * np.pi / (24 * HOUR))  # sidereal turn
        sy = np.rint(cy + star_r[None, :] * np.sin(phi)).astype(np.intp)
        sx = np.rint(cx + star_r[None, :] * np.cos(phi)).astype(np.intp)
        frame_index = np.broadcast_to(np.arange(m)[:, None], sy.shape)
        np.add.at(frames, (frame_index, sy, sx), np.broadcast_to(star_amp, sy.shape))
        out[start : start + m] = np.clip(frames, 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------- a store that counts


@dataclass
class Counts:
    puts: int = 0
    put_bytes: int = 0
    gets: int = 0
    get_bytes: int = 0
    meta: int = 0  # requests on zarr.json (one PUT per resize, same for every layout)
    other: int = 0  # exists / delete / list


class CountingStore(WrapperStore[Store]):
    """Counts the data requests zarr makes, and their bytes (zarr.json counted apart)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.counts = Counts()

    def _with_store(self, store: Store) -> CountingStore:
        twin = type(self)(store)
        twin.counts = self.counts  # zarr.open_array(mode="r") wraps a read-only copy
        return twin

    def reset(self) -> Counts:
        """The counts so far; zero them."""
        counts = replace(self.counts)
        self.counts.__init__()  # type: ignore[misc]
        return counts

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        value = await self._store.get(key, prototype, byte_range)
        if key.endswith("zarr.json"):
            self.counts.meta += 1
        else:
            self.counts.gets += 1
            self.counts.get_bytes += len(value) if value is not None else 0
        return value

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, rng) for key, rng in key_ranges]

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, rng in requests:
            yield key, await self.get(key, prototype, rng)

    async def set(self, key: str, value: Buffer) -> None:
        await self._store.set(key, value)
        if key.endswith("zarr.json"):
            self.counts.meta += 1
        else:
            self.counts.puts += 1
            self.counts.put_bytes += len(value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        await asyncio.gather(*(self.set(key, value) for key, value in values))

    async def exists(self, key: str) -> bool:
        self.counts.other += 1
        return await self._store.exists(key)

    async def delete(self, key: str) -> None:
        self.counts.other += 1
        await self._store.delete(key)


# ---------------------------------------------------------------- back ends


@dataclass
class Backend:
    name: str
    store: Callable[[str], Store]  # layout name -> fresh store
    inventory: Callable[[str], tuple[int, int]]  # layout name -> (data objects, bytes)
    remove: Callable[[str], None]


def local_backend(work: Path, keep: bool) -> Backend:
    def store(name: str) -> Store:
        path = work / f"{name}.zarr"
        shutil.rmtree(path, ignore_errors=True)
        return LocalStore(path)

    def inventory(name: str) -> tuple[int, int]:
        files = [p for p in (work / f"{name}.zarr").rglob("*") if p.is_file()]
        data = [p for p in files if p.name != "zarr.json"]
        return len(data), sum(p.stat().st_size for p in data)

    def remove(name: str) -> None:
        if not keep:
            shutil.rmtree(work / f"{name}.zarr", ignore_errors=True)

    return Backend("local", store, inventory, remove)


def s3_backend() -> tuple[Backend, Any]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    fs.mkdir("bench")

    def store(name: str) -> Store:
        return FsspecStore.from_url(f"s3://bench/{name}.zarr", read_only=False)

    def inventory(name: str) -> tuple[int, int]:
        fs.invalidate_cache()
        found = fs.find(f"bench/{name}.zarr", detail=True)
        data = [v for k, v in found.items() if not k.endswith("zarr.json")]
        return len(data), sum(int(v["size"]) for v in data)

    def remove(name: str) -> None:
        fs.rm(f"bench/{name}.zarr", recursive=True)  # moto keeps objects in memory

    return Backend("s3 (moto)", store, inventory, remove), server


# ---------------------------------------------------------------- one measurement


@dataclass
class Result:
    layout: Layout
    backend: str
    frames: int
    objects: int = 0
    stored: int = 0
    write_s: float = 0.0
    append_s: list[float] = field(default_factory=list)
    write: Counts = field(default_factory=Counts)
    read_s: float = 0.0
    read: Counts = field(default_factory=Counts)
    random_ms: float = 0.0
    random: Counts = field(default_factory=Counts)


def measure(layout: Layout, backend: Backend, frames: np.ndarray, seed: int) -> Result:
    n = len(frames)
    result = Result(layout, backend.name, n)
    store = CountingStore(backend.store(layout.name))
    shape = (SIZE, SIZE)
    pixels = zarr.create_array(
        store,
        shape=(0, *shape),
        chunks=(layout.chunk, *shape),
        shards=(layout.shard, *shape) if layout.shard else None,
        dtype="uint8",
        fill_value=0,
        dimension_names=["time", "y", "x"],
    )
    store.reset()
    tic = time.perf_counter()
    for start in range(0, n, layout.block):
        end = min(start + layout.block, n)
        t0 = time.perf_counter()
        pixels.resize((end, *shape))  # as oathcube's _append: resize, then write the rows
        pixels[start:end] = frames[start:end]
        result.append_s.append(time.perf_counter() - t0)
    result.write_s = time.perf_counter() - tic
    result.write = store.reset()
    result.objects, result.stored = backend.inventory(layout.name)

    reader = zarr.open_array(store, mode="r")
    store.reset()
    tic = time.perf_counter()
    for start in range(0, n, READ_BLOCK):
        block = reader[start : start + READ_BLOCK]
        if not np.array_equal(block, frames[start : start + READ_BLOCK]):
            raise AssertionError(f"{layout.name}: frames {start}.. read back differ")
    result.read_s = time.perf_counter() - tic
    result.read = store.reset()

    picks = np.random.default_rng(seed + 1).choice(n, RANDOM_FRAMES, replace=False)
    tic = time.perf_counter()
    for i in picks:
        if not np.array_equal(reader[int(i)], frames[i]):
            raise AssertionError(f"{layout.name}: frame {i} read back differs")
    result.random_ms = (time.perf_counter() - tic) / RANDOM_FRAMES * 1e3
    result.random = store.reset()
    backend.remove(layout.name)
    return result


# ---------------------------------------------------------------- report


def si(x: float) -> str:
    """A count in a few characters: 7032, 56.2k, 1.95M, 278M."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= 10 * scale or (unit != "k" and abs(x) >= scale):
            return f"{x / scale:.3g}{unit}"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.2g}"


def report(results: list[Result]) -> None:
    mb = 2**20
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("frames written", lambda r: str(r.frames)),
        ("data objects", lambda r: str(r.objects)),
        ("stored MB", lambda r: f"{r.stored / mb:.0f}"),
        ("compression ratio", lambda r: f"{r.frames * SIZE * SIZE / r.stored:.2f}"),
        ("write s", lambda r: f"{r.write_s:.1f}"),
        ("write frames/s", lambda r: f"{r.frames / r.write_s:.0f}"),
        ("append s: mean", lambda r: f"{np.mean(r.append_s):.2f}"),
        ("append s: max", lambda r: f"{max(r.append_s):.2f}"),
        ("write PUTs", lambda r: str(r.write.puts)),
        ("write GETs (read-modify-write)", lambda r: str(r.write.gets)),
        ("MB PUT", lambda r: f"{r.write.put_bytes / mb:.0f}"),
        ("write amplification (PUT/stored)", lambda r: f"{r.write.put_bytes / r.stored:.2f}"),
        ("MB GET while writing", lambda r: f"{r.write.get_bytes / mb:.0f}"),
        ("full read frames/s", lambda r: f"{r.frames / r.read_s:.0f}"),
        ("full read GETs", lambda r: str(r.read.gets)),
        ("random frame ms", lambda r: f"{r.random_ms:.1f}"),
        ("random frame GETs/frame", lambda r: f"{r.random.gets / RANDOM_FRAMES:.2f}"),
        (
            "random frame MB fetched/frame",
            lambda r: f"{r.random.get_bytes / RANDOM_FRAMES / mb:.2f}",
        ),
        ("-- station-year (3.6e6 frames) --", lambda r: ""),
        ("pixel objects", lambda r: si(math.ceil(STATION_YEAR / r.layout.object_frames))),
        (
            "feature objects (1536 f32)",
            lambda r: si(math.ceil(STATION_YEAR / r.layout.object_frames)),
        ),
        (
            "feature object MB (raw)",
            lambda r: f"{r.layout.object_frames * FEATURE_WIDTH * 4 / mb:.1f}",
        ),
        ("pixel GB stored", lambda r: f"{r.stored / r.frames * STATION_YEAR / 2**30:.0f}"),
        ("pixel PUTs (appends as above)", lambda r: si(r.write.puts / r.frames * STATION_YEAR)),
        ("pixel GB PUT", lambda r: f"{r.write.put_bytes / r.frames * STATION_YEAR / 2**30:.0f}"),
        (
            "pixel GETs to read all (model)",
            lambda r: si(math.ceil(STATION_YEAR / r.layout.object_frames)),
        ),
        ("-- archive (1e9 frames) --", lambda r: ""),
        ("pixel objects", lambda r: si(ARCHIVE / r.layout.object_frames)),
        ("pixel+feature objects", lambda r: si(2 * ARCHIVE / r.layout.object_frames)),
        ("pixel PUTs to ingest", lambda r: si(r.write.puts / r.frames * ARCHIVE)),
        (
            "pixel TB PUT to ingest",
            lambda r: f"{r.write.put_bytes / r.frames * ARCHIVE / 2**40:.1f}",
        ),
    ]
    label = max(len(name) for name, _ in rows) + 1
    width = 11
    heads = [f"{r.layout.name} {'s3' if r.backend.startswith('s3') else 'local'}" for r in results]
    print()
    print("layouts: " + "; ".join(f"{lay.name} = {lay.describe()}" for lay in LAYOUTS))
    print("".ljust(label) + "".join(h.rjust(width) for h in heads))
    print("-" * (label + width * len(results)))
    for name, cell in rows:
        print(name.ljust(label) + "".join(cell(r).rjust(width) for r in results))
    time_objects = math.ceil(STATION_YEAR / TIME_CHUNK)
    print(
        f"time (int64, chunks of {TIME_CHUNK}): {time_objects} objects per station-year in every "
        "layout; predicted int8 / scores f32 chunked like pixels: as many as the pixel objects "
        "each.  zarr.json requests (one PUT per resize) are not counted above."
    )


def conclusion(results: list[Result]) -> None:
    local = {r.layout.name: r for r in results if r.backend == "local"}
    a, b, c, d, e = (local[k] for k in "abcde")
    year = lambda lay: math.ceil(STATION_YEAR / lay.object_frames)  # noqa: E731
    amp = lambda r: r.write.put_bytes / r.stored  # noqa: E731
    print()
    print("conclusion:")
    print(
        f"- objects per station-year (pixels; features the same): a {year(a.layout)}, "
        f"b {year(b.layout)}, c {year(c.layout)}, d {year(d.layout)}: shards of 4096 cut today's "
        f"count {year(a.layout) / year(c.layout):.0f}x, shards of 8192 "
        f"{year(a.layout) / year(d.layout):.0f}x (archive: {si(ARCHIVE / 512)} -> "
        f"{si(ARCHIVE / 8192)} pixel objects)."
    )
    print(
        f"- hourly appends into shards rewrite the open shard: PUT bytes {amp(c):.1f}x (c) and "
        f"{amp(d):.1f}x (d) the stored bytes vs {amp(a):.2f}x today; local write "
        f"{c.frames / c.write_s:.0f} (c) / {d.frames / d.write_s:.0f} (d) vs "
        f"{a.frames / a.write_s:.0f} frames/s today; buffering whole shards (e) brings it to "
        f"{amp(e):.2f}x and {e.frames / e.write_s:.0f} frames/s."
    )
    print(
        f"- single-frame reads: 64-frame inner chunks fetch {c.random.get_bytes / 100 / 2**20:.1f}"
        f" MB in {c.random.gets / 100:.0f} GETs ({c.random_ms:.1f} ms local) vs "
        f"{a.random.get_bytes / 100 / 2**20:.1f} MB ({a.random_ms:.1f} ms) for 512-frame chunks; "
        f"full reads: {a.frames / a.read_s:.0f} (a), {c.frames / c.read_s:.0f} (c), "
        f"{d.frames / d.read_s:.0f} (d) frames/s."
    )
    print(
        f"- so: on object stores shard (c: {year(c.layout)} objects/station-year, 2 GETs of "
        f"{c.random.get_bytes / 100 / 2**20:.1f} MB per frame) but write whole shards (e), e.g. "
        f"buffer hours until a shard fills; zstd ratio here {a.frames * SIZE**2 / a.stored:.2f} "
        "(noise-dominated frames)."
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--s3", action="store_true", help="also write to moto's S3, in-process")
    ap.add_argument("--s3-frames", type=int, default=None, help="frames for S3 (default --frames)")
    ap.add_argument("--keep", action="store_true", help="keep the local cubes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_sharding_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {cpu_description()}")
    print(f"zarr {zarr.__version__}, numpy {np.__version__}; local store in {work}")
    tic = time.perf_counter()
    frames = sky_frames(max(args.frames, args.s3_frames or 0), seed=args.seed)
    blocks = [frames[i : i + 512] for i in range(0, min(len(frames), 2048), 512)]
    print(
        f"synthetic frames: {len(frames)} x {SIZE}x{SIZE} uint8 in "
        f"{time.perf_counter() - tic:.1f} s; mean {frames[:1000].mean():.1f} DN; zstd-0 ratio of "
        f"512-frame chunks {sum(b.nbytes for b in blocks) / sum(map(len, map(zstd, blocks))):.2f}"
    )
    results = []
    local = local_backend(work, args.keep)
    for layout in LAYOUTS:
        results.append(measure(layout, local, frames[: args.frames], args.seed))
        print(f"  done {layout.name} local in {results[-1].write_s + results[-1].read_s:.0f} s")
    if args.s3:
        backend, server = s3_backend()
        try:
            for layout in LAYOUTS:
                results.append(
                    measure(layout, backend, frames[: args.s3_frames or args.frames], args.seed)
                )
                print(
                    f"  done {layout.name} s3 in {results[-1].write_s + results[-1].read_s:.0f} s"
                )
        finally:
            server.stop()
    report(results)
    conclusion(results)
    print(f"peak RSS {peak_rss_mb():.0f} MB")


def zstd(block: np.ndarray) -> bytes:
    """``block`` compressed as zarr's default codec does (zstd level 0 = zstd's default)."""
    from numcodecs import Zstd

    return bytes(Zstd(level=0).encode(np.ascontiguousarray(block)))


if __name__ == "__main__":
    main()
