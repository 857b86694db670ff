"""How far bf16 Inception-v4 features are from fp32: cosine and ridge accuracy.

usage: python scripts/bench_bf16_accuracy.py [--n 1200] [--checkpoint PATH | --random-weights]
                                             [--engine openvino|tensorflow]

Builds a synthetic OATH-layout archive, computes ``features_inception_v4`` in fp32
and in bf16 (two cubes), and prints the per-image cosine between them and the
change in ``oathcube evaluate`` accuracy (ridge.py's protocol). Without a
checkpoint the network has RANDOM weights: the figures then measure bf16
round-off on a random network, not the accuracy of real Inception features.
``scripts/bench_int8.py`` compares every engine and precision (int8 included) with
TensorFlow fp32 on one cube.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description  # noqa: E402

from oathcube import build, compute_features, evaluate, synth  # noqa: E402
from oathcube.features.inception_v4 import bf16_native  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--engine", default=None, help="default: oathcube's default engine")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_bf16_"))
    print(f"machine: {cpu_description()}")
    archive = synth(work / "oath", n=args.n, seed=0)
    options = {"checkpoint": args.checkpoint} if args.checkpoint else {"random_weights": True}
    if args.engine:
        options["engine"] = args.engine
    elif not bf16_native():
        # OpenVINO (the default engine) refuses bf16 without native support; TensorFlow
        # emulates it, which is what this accuracy comparison needs.
        options["engine"] = "tensorflow"
    print("weights:", args.checkpoint or "RANDOM (no checkpoint given)")
    features, accuracy = {}, {}
    for precision in ("fp32", "bf16"):
        cube = build(archive, work / f"{precision}.zarr", overwrite=True, progress=False)
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the non-native bf16 warning
            compute_features(cube, "inception_v4", precision=precision, progress=False, **options)
        seconds = time.perf_counter() - tic
        features[precision] = xr.open_zarr(cube).features_inception_v4.values
        result = evaluate(cube, features="inception_v4")
        accuracy[precision] = result.accuracy_mean
        print(
            f"{precision}: {args.n / seconds:.2f} images/s through the pipeline; "
            f"ridge accuracy {result.accuracy_mean:.4f} +- {result.accuracy_std:.4f}"
        )
    a, b = features["fp32"], features["bf16"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"per-image cosine bf16 vs fp32: min {cosine.min():.6f}, median {np.median(cosine):.6f}")
    change = 100 * (accuracy["bf16"] - accuracy["fp32"])
    print(f"accuracy change bf16 - fp32: {change:+.2f} percentage points")


if __name__ == "__main__":
    main()
