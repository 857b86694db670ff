"""How far each engine and precision is from TensorFlow fp32: cosine, ridge accuracy, speed.

usage: python scripts/bench_int8.py [--extractor inception_v4 | --extractor aurora_fm]
                                    [--n 1200] [--size 256] [--checkpoint PATH]
                                    [--runs openvino:int8,openvino:bf16,...]
                                    [--calibration-size 128] [--workdir DIR]

Builds a synthetic OATH-layout archive and its cube, computes the features of
``--extractor`` (``features_inception_v4``, the default, or ``features_aurora_fm``,
Aurora-FM's ResNet-18) with the reference (TensorFlow, fp32) and then with every
other ``ENGINE:PRECISION`` of ``--runs`` (default: OpenVINO fp32, and bf16 and
int8 where they are offered; TensorFlow bf16 where native), each over the whole
cube with dask threads, and prints per run:

- images/s through the pipeline (``oathcube features``),
- the per-image cosine to the reference features (min, median, mean),
- the largest absolute difference relative to the largest reference value,
- ridge.py's accuracy (``oathcube evaluate``) and its change from the reference,
  in percentage points,
- for int8, the calibration frames (cube rows and hash) recorded on the features.

Without a checkpoint the network has RANDOM weights: the figures then measure
round-off and quantisation on a random network, not the accuracy of real Inception
or Aurora-FM features; with ``--checkpoint`` (the released inception_v4.ckpt, or
aurora-fm-no-finetune.tar with ``--extractor aurora_fm``) they are the real
figures.  The synthetic classes are easy: an accuracy change says more than the
accuracy itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.linalg import LinAlgWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description  # noqa: E402

from oathcube import build, compute_features, evaluate, synth  # noqa: E402


def _default_runs() -> list[tuple[str, str]]:
    from oathcube.features.engines import engine_installed
    from oathcube.features.inception_v4 import bf16_native

    runs: list[tuple[str, str]] = []
    if engine_installed("openvino"):
        runs.append(("openvino", "fp32"))
        if bf16_native():
            runs.append(("openvino", "bf16"))
        if engine_installed("nncf"):
            runs.append(("openvino", "int8"))
    if bf16_native():
        runs.append(("tensorflow", "bf16"))
    return runs


def _compute(cube: str, engine: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"engine": engine, "precision": precision}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    options.update({"checkpoint": args.checkpoint} if args.checkpoint else {"random_weights": True})
    if precision == "int8":
        options.update(calibration_size=args.calibration_size)
    # Building the engine (and int8's calibration) is not part of the rate.
    from oathcube.cube.store import Cube
    from oathcube.features import AuroraFMSettings, InceptionV4Settings, feature_spec
    from oathcube.features.compute import calibrate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the non-native bf16 warning
        cls = AuroraFMSettings if args.extractor == "aurora_fm" else InceptionV4Settings
        spec = calibrate(Cube.open(cube), feature_spec(cls(**options)))
        tic = time.perf_counter()
        spec.build()
        built = time.perf_counter() - tic
        tic = time.perf_counter()
        compute_features(cube, spec, progress=False, overwrite=True)
        seconds = time.perf_counter() - tic
    var = xr.open_zarr(cube, consolidated=False)[f"features_{args.extractor}"]
    with warnings.catch_warnings():
        # Random weights give ill-conditioned ridge systems: scipy says so on every fold.
        warnings.simplefilter("ignore", LinAlgWarning)
        result = evaluate(cube, features=args.extractor)
    return {
        "values": var.values,
        "attrs": dict(var.attrs),
        "rate": var.shape[0] / seconds,
        "built": built,
        "accuracy": result.accuracy_mean,
        "std": result.accuracy_std,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1200, help="images in the synthetic archive")
    ap.add_argument("--size", type=int, default=256, help="image size")
    ap.add_argument("--extractor", choices=("inception_v4", "aurora_fm"), default="inception_v4")
    ap.add_argument("--checkpoint", default=None, help="the extractor's (default: random)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the extractor's")
    ap.add_argument("--runs", default=None, help="ENGINE:PRECISION,... (default: see above)")
    ap.add_argument("--calibration-size", type=int, default=128)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_int8_"))
    runs = [tuple(r.split(":", 1)) for r in args.runs.split(",")] if args.runs else _default_runs()
    print(f"machine: {cpu_description()}")
    print(f"extractor: {args.extractor}")
    print("weights:", args.checkpoint or "RANDOM (no checkpoint given)")
    archive = synth(work / "oath", n=args.n, size=args.size, seed=0, progress=False)
    cube = build(archive, work / "cube.zarr", overwrite=True, progress=False)
    ref = _compute(cube, "tensorflow", "fp32", args)
    print(
        f"\n{'engine':<11s} {'prec':<5s} {'img/s':>7s} {'build s':>7s} {'cos min':>9s} "
        f"{'cos med':>9s} {'cos mean':>9s} {'max|d|/max':>10s} {'accuracy':>9s} {'change pp':>9s}"
    )
    print(
        f"{'tensorflow':<11s} {'fp32':<5s} {ref['rate']:7.2f} {ref['built']:7.1f} {'ref':>9s} "
        f"{'ref':>9s} {'ref':>9s} {'ref':>10s} {ref['accuracy']:9.4f} {'ref':>9s}",
        flush=True,
    )
    a = ref["values"]
    scale = float(np.abs(a).max())
    for engine, precision in runs:
        got = _compute(cube, engine, precision, args)
        b = got["values"]
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        change = 100 * (got["accuracy"] - ref["accuracy"])
        rel = float(np.abs(a - b).max()) / scale
        print(
            f"{engine:<11s} {precision:<5s} {got['rate']:7.2f} {got['built']:7.1f} "
            f"{cosine.min():9.6f} {np.median(cosine):9.6f} {cosine.mean():9.6f} {rel:10.2e} "
            f"{got['accuracy']:9.4f} {change:+9.2f}",
            flush=True,
        )
        calib = got["attrs"].get("int8_calibration")
        if calib:
            where = f"{calib['cube']} {calib['group'] or '(labelled images)'}"
            print(f"  int8 calibration: {len(calib['rows'])} rows of {where}, "
                  f"sha256 {calib['sha256'][:16]}...")  # fmt: skip


if __name__ == "__main__":
    main()
