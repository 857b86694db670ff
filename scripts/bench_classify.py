"""Frames/s of ``oathcube classify`` on a station: Aurora-FM against Inception-v4.

usage: python scripts/bench_classify.py [--frames 96] [--size 256] [--labelled 64]
                                        [--repeats 2] [--engine openvino]
                                        [--precision fp32] [--batch-size 32]
                                        [--chunk-frames N] [--workdir DIR]

Builds, in ``--workdir`` (default: a new temporary folder):

1. a synthetic OATH cube of ``--labelled`` images (``oathcube.synthetic.synth`` +
   ``oathcube.build``);
2. one synthetic THEMIS station, ``fsmi``, of ``--frames`` frames of ``--size`` pixels
   (``oathcube.synthetic.themis.write_cdf``), ingested with
   ``RawPreparation.aurora_fm()`` (themisim's preparation of Aurora-FM's input);
3. ``features_inception_v4`` and ``features_aurora_fm`` of the labelled images, with
   RANDOM weights (speed does not depend on the weights), and one ridge model per
   extractor: ``iv4`` and ``afm`` (``oathcube.train``).

Then, per model, times ``oathcube.classify(cube, model, station="fsmi",
scheduler="threads")`` from nothing: each run is on a fresh copy of that cube (the
copy is not timed), where the station has no features yet, so the time covers
reading the frames, preparing them, the network, writing the features, and the
predictions.  One untimed warm-up run first (it builds the extractor, which this
process then keeps, as a long-running worker does; its time is printed as
``first run``), then the best of ``--repeats``.

Prints the CPU (model, family/model numbers, cores, the flags that matter), the
engine, precision and batch size the models' features are computed with, a table
of frames/s (and CPU seconds per frame, and the warm-up's time) per model, and the
target: Aurora-FM classify >= 5 x Inception-v4 classify, PASS or FAIL.

Inception-v4 runs about 6 frames/s on 2 cores, so the defaults take 1-2 minutes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description  # noqa: E402

#: extractor -> model name
MODELS = {"inception_v4": "iv4", "aurora_fm": "afm"}
STATION = "fsmi"
TARGET = 5.0


def _settings(extractor: str, args: argparse.Namespace) -> Any:
    from oathcube.features import AuroraFMSettings, InceptionV4Settings

    cls = AuroraFMSettings if extractor == "aurora_fm" else InceptionV4Settings
    options: dict[str, Any] = {"random_weights": True, "precision": args.precision}
    if args.engine:
        options["engine"] = args.engine
    if args.batch_size:
        options["batch_size"] = args.batch_size
    return cls(**options)


def prepare(args: argparse.Namespace, work: Path) -> Path:
    """The cube: labelled images with both extractors' features, one station, two models."""
    from oathcube import build, compute_features, ingest, train
    from oathcube.cube.store import Cube
    from oathcube.rawprep import RawPreparation
    from oathcube.synthetic import synth
    from oathcube.synthetic.themis import write_cdf

    tic = time.perf_counter()
    archive = synth(work / "oath", n=args.labelled, size=256, seed=0)
    cube = Path(build(archive, work / "cube.zarr", overwrite=True, progress=False))
    folder = work / "themis"
    folder.mkdir()
    write_cdf(folder, STATION, "2011-01-06T05:00:00", args.frames, size=args.size, seed=1)
    ingest(
        [folder],
        cube,
        preparation=RawPreparation.aurora_fm(),
        chunk_frames=args.chunk_frames,
    )
    for extractor, model in MODELS.items():
        compute_features(cube, _settings(extractor, args), scheduler="threads")
        train(cube, extractor, name=model)
    models = ", ".join(MODELS.values())
    chunk = Cube.open(cube).rows_per_chunk(f"stations/{STATION}/pixels")
    print(f"prepared in {time.perf_counter() - tic:.0f} s: {args.labelled} labelled images, "
          f"station {STATION} of {args.frames} frames ({chunk} per chunk), "
          f"models {models}")  # fmt: skip
    return cube


def _classify_once(
    cube: Path, model: str, args: argparse.Namespace, run: int
) -> tuple[float, float]:
    """(wall, CPU) seconds of one classify on a fresh copy of ``cube``."""
    from oathcube import classify

    copy = cube.parent / f"run_{model}_{run}.zarr"
    shutil.copytree(cube, copy)
    extractor = next(e for e, m in MODELS.items() if m == model)
    local = _settings(extractor, args)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        done = classify(copy, model, station=STATION, scheduler="threads", features=local)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    if done.get(f"stations/{STATION}", sum(done.values())) != args.frames:
        raise SystemExit(f"classify {model}: {done}, not {args.frames} frames")
    return wall, cpu


def bench(cube: Path, args: argparse.Namespace) -> dict[str, float]:
    """frames/s of classify per extractor."""
    print(
        f"\nclassify --station {STATION} ({args.frames} frames of {args.size} x {args.size}, "
        "dask threads; features computed inside, from nothing)"
    )
    print(f"  {'extractor':<13s} {'model':<5s} {'frames/s':>9s} {'cpu-s/frame':>11s} "
          f"{'first run s':>11s}")  # fmt: skip
    rates: dict[str, float] = {}
    for extractor, model in MODELS.items():
        first, _ = _classify_once(cube, model, args, 0)
        best_wall, best_cpu = float("inf"), float("inf")
        for run in range(1, args.repeats + 1):
            wall, cpu = _classify_once(cube, model, args, run)
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        rates[extractor] = args.frames / best_wall
        print(f"  {extractor:<13s} {model:<5s} {rates[extractor]:9.2f} "
              f"{best_cpu / args.frames:11.4f} {first:11.1f}", flush=True)  # fmt: skip
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=96, help="frames of the station")
    ap.add_argument("--size", type=int, default=256, help="station frame size")
    ap.add_argument("--labelled", type=int, default=64, help="labelled images to train on")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs after a warm-up")
    ap.add_argument("--engine", default=None, help="openvino or tensorflow (default: default)")
    ap.add_argument("--precision", default="fp32", help="fp32, bf16 or int8")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the extractor's")
    ap.add_argument("--chunk-frames", type=int, default=None, help="default: ingest's")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from oathcube.features.engines import DEFAULT_ENGINE

    print(f"machine: {cpu_description()}")
    batch = args.batch_size or "default (32)"
    print(f"features: {args.engine or DEFAULT_ENGINE}, {args.precision}, batch {batch}, "
          "RANDOM weights (speed only)")  # fmt: skip
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_classify_"))
    work.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights, non-native bf16
        cube = prepare(args, work)
        rates = bench(cube, args)
    ratio = rates["aurora_fm"] / rates["inception_v4"]
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"\n{verdict}: aurora_fm / inception_v4 classify = {rates['aurora_fm']:.2f} / "
          f"{rates['inception_v4']:.2f} frames/s = {ratio:.2f} (>= {TARGET:g})")  # fmt: skip
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
