"""The tables of docs/classifiers.md: every classifier on the demo's synthetic archive.

usage: python scripts/classifier_table.py [--workdir DIR] [--cube PATH] [--n 5824]
                                          [--features handcrafted,aurora_fm]
                                          [--classifiers ridge,...] [--protocols oath,station]
                                          [--frames 50000] [--out DIR]

1. The cube: ``--cube`` if given (read only: nothing is written into it), else, in
   ``--workdir`` (default: a new temporary folder), the demo's SYNTHETIC archive
   (``oathcube.synthetic.synth(n, size=256, seed=0)``, as ``oathcube demo`` makes it),
   built with the handcrafted features, then ``features_aurora_fm`` of the labelled
   images with RANDOM weights (no Aurora-FM checkpoint can be had here; the network's
   cost is the same).
2. ``oathcube.benchmark`` under each protocol (ridge.py's five splits; one station held
   out at a time): writes ``table_<protocol>.md``, ``.csv`` (and ``.stations.csv``) and
   ``.png`` into ``--out`` (default: the work folder).
3. What each classifier costs at classify time: each is fitted on every labelled image
   (its search included) as ``oathcube train`` fits it, stored as arrays
   (``oathcube.model_arrays.to_arrays``, in memory: nothing is written to a cube), and
   its predictions are computed from those arrays (``model_arrays.predict``, what
   ``classify`` runs per chunk) over ``--frames`` rows in blocks of 4,096 (a station
   chunk's worth), one thread.  Printed as microseconds per frame and as the time of a
   station-year (3.6 M frames: 1,200 an hour over ~3,000 dark hours, as docs/scale.md
   counts them), with the fit time, the stored model's size, and whether the classes
   from the arrays equal the fitted object's on the labelled images.

Everything is printed with the CPU; times mean nothing without it.  On 2 cores the
defaults take about three hours, most of it the station protocol: 22 held-out stations
times every classifier's search (LightGBM's and the linear SVM's on the 512 network
features most of all).  ``--features``, ``--protocols`` and ``--classifiers`` split the
work into runs that go side by side, one per core (every fit uses one thread).
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description  # noqa: E402

#: Frames of a station-year, as docs/scale.md counts them.
STATION_YEAR = 3_600_000
#: Rows per call of the predictions: a station chunk's worth.
BLOCK = 4096


def prepare(work: Path, n: int) -> Path:
    """The demo's synthetic archive as a cube with handcrafted and Aurora-FM features."""
    from oathcube import build, compute_features
    from oathcube.features import AuroraFMSettings
    from oathcube.synthetic import synth

    tic = time.perf_counter()
    archive = synth(work / "oath_synthetic", n=n, size=256, seed=0)
    cube = Path(build(archive, work / "oath.zarr", features=["handcrafted"], progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights
        compute_features(cube, AuroraFMSettings(random_weights=True), scheduler="threads")
    print(f"prepared in {time.perf_counter() - tic:.0f} s: {cube}", flush=True)
    return cube


def tables(cube: Path, args: argparse.Namespace, out: Path) -> None:
    """The benchmark under each protocol, printed and written into ``out``."""
    from oathcube import benchmark

    for protocol in filter(None, args.protocols.split(",")):
        tic = time.perf_counter()
        result = benchmark(cube, args.features, args.classifiers, protocol=protocol, progress=True)
        print(f"\n{result.title()} ({time.perf_counter() - tic:.0f} s)")
        print(result.markdown_table())
        for code, reason in result.skipped:
            print(f"  not held out: {code}: {reason}")
        for suffix in (".md", ".csv", ".png"):
            for path in result.write(out / f"table_{protocol}{suffix}"):
                print(f"  written: {path}")
        sys.stdout.flush()


def _nbytes(model: Any) -> int:
    return int(sum(np.asarray(v.values).nbytes if v.dtype != object else len(str(v.values))
                   for v in model.variables.values()))  # fmt: skip


def classify_cost(cube: Path, args: argparse.Namespace) -> None:
    """Microseconds per frame of each stored kind's predictions, and its fit."""
    from threadpoolctl import threadpool_limits

    from oathcube.classifiers import CLASSIFIERS, fit_classifier
    from oathcube.cube.store import Cube
    from oathcube.labels import class_names
    from oathcube.model import _labels, feature_matrix
    from oathcube.model_arrays import predict, to_arrays

    opened = Cube.open(cube)
    ds = opened.labelled()
    y = _labels(ds, "class6", opened)
    names = list(class_names("class6"))
    wanted = args.classifiers.split(",") if args.classifiers else list(CLASSIFIERS)
    print(f"\nclassify cost: each model fitted on all {len(y)} labelled images, stored as "
          f"arrays; predicting {args.frames} frames, blocks of {BLOCK}, one thread")  # fmt: skip
    print(f"  {'features':<12s} {'classifier':<11s} {'fit s':>7s} {'model MB':>8s} "
          f"{'us/frame':>9s} {'station-year':>12s}  agrees")  # fmt: skip
    for features in args.features.split(","):
        X, _ = feature_matrix(ds, features, opened)
        rows = np.resize(X, (args.frames, X.shape[1]))
        for name in wanted:
            tic = time.perf_counter()
            fitted, _ = fit_classifier(name, X, y)
            fit_s = time.perf_counter() - tic
            model = to_arrays(name, fitted, names)
            with threadpool_limits(limits=1):
                predict(model, rows[:BLOCK])  # warm-up: imports, a first parse
                tic = time.perf_counter()
                for start in range(0, len(rows), BLOCK):
                    predict(model, rows[start : start + BLOCK])
                per_frame = (time.perf_counter() - tic) / len(rows)
            index, _ = predict(model, X)
            agrees = bool(np.array_equal(index, fitted.predict(X)))
            year = per_frame * STATION_YEAR
            shown = f"{year / 3600:.1f} h" if year >= 3600 else f"{year / 60:.1f} min"
            print(f"  {features:<12s} {name:<11s} {fit_s:7.1f} {_nbytes(model) / 1e6:8.2f} "
                  f"{per_frame * 1e6:9.1f} {shown:>12s}  {agrees}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cube", type=Path, default=None, help="a cube that has the features")
    ap.add_argument("--n", type=int, default=5824, help="labelled images (the demo's)")
    ap.add_argument("--features", default="handcrafted,aurora_fm")
    ap.add_argument("--classifiers", default=None, help="default: the whole registry")
    ap.add_argument("--protocols", default="oath,station", help='"" for none')
    ap.add_argument("--frames", type=int, default=50_000, help="rows timed per classifier")
    ap.add_argument("--out", type=Path, default=None, help="default: the work folder")
    args = ap.parse_args()

    print(f"machine: {cpu_description()}", flush=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="classifier_table_"))
    work.mkdir(parents=True, exist_ok=True)
    cube = args.cube or prepare(work, args.n)
    out = args.out or work
    tables(cube, args, out)
    if args.frames > 0:
        classify_cost(cube, args)
    if args.workdir is None and args.out is None:
        print(f"\n(work folder kept for its tables: {work})")
    elif args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
