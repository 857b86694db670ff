"""Benchmark Inception-v4 features: the network alone, a plain Keras baseline, the whole pipeline.

usage: python scripts/bench_features.py [--random-weights | --checkpoint PATH]
                                        [--batch-sizes 16,32,64] [--n-images 64]
                                        [--engines openvino,tensorflow]
                                        [--precisions fp32,bf16,int8] [--repeats 3] [--tf-options]

Prints, in this order:

- the CPU (model, family/model numbers, the flags that matter: avx2, avx512f,
  avx512_bf16, avx512_vnni, avx_vnni, amx_bf16, amx_int8, amx_tile), the load
  average (other processes on the machine slow every figure down) and the
  TensorFlow and OpenVINO versions;
- the machine's matrix-multiply rate (``tf.matmul`` of 2048 x 2048) in fp32 and bf16;
- images/s of the network alone (preprocessed input in memory -> features), per
  engine, precision and batch size, and, measured in the same run, a plain Keras
  functional Inception-v4 (Conv2D(use_bias=False) ->
  BatchNormalization(epsilon=1e-3, scale=False) -> ReLU) run with
  ``model.predict``, the simplest way;
- images/s of the whole ``oathcube features`` pipeline (read the cube, rotate,
  preprocess, network, write the cube) on a synthetic OATH cube, per engine,
  precision and batch size, with its ratio to the same engine's network-only rate
  and to the TensorFlow pipeline, and the issue's targets checked;
- with ``--tf-options``: what TensorFlow-side options give (oneDNN off, thread
  pools, XLA, a frozen graph), each in a fresh process;
- peak memory.

Every rate is the best of ``--repeats`` timed runs after one warm-up; ``cpu-s/img``
is the process CPU time per image (all threads), which the load of other processes
disturbs much less than wall time.  bf16 runs only where the CPU has amx_bf16 or
avx512_bf16, unless ``--precisions`` names it; int8 (OpenVINO only, NNCF calibrated
on ``--calibration-size`` frames of the synthetic cube) runs where NNCF is
installed.  One Inception-v4 image (299 x 299) is 24.5 GFLOP.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_description, peak_rss_mb  # noqa: E402

GFLOP_PER_IMAGE = 24.5


def _time(fn: Callable[[], Any], n_images: int, repeats: int) -> tuple[float, float]:
    """(best images/s, least CPU seconds per image) over ``repeats`` runs after a warm-up."""
    fn()
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return n_images / best_wall, best_cpu / n_images


def matmul_gflops(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    """Best ``tf.matmul`` rate on ``size`` x ``size`` matrices, GFLOP/s."""
    import tensorflow as tf

    dtype = tf.bfloat16 if dtype_name == "bf16" else tf.float32
    a = tf.cast(tf.random.uniform((size, size), seed=1), dtype)

    @tf.function
    def product(m: tf.Tensor) -> tf.Tensor:
        return tf.matmul(m, m)

    product(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        product(a).numpy()
        best = min(best, time.perf_counter() - tic)
    return 2 * size**3 / best / 1e9


def _inputs(n: int) -> np.ndarray:
    from oathcube.features.inception_v4 import preprocess

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, 256, 256), dtype=np.uint8)
    return preprocess(pixels, rng.uniform(0, 360, n))


def _extractor_options(
    args: argparse.Namespace, precision: str, batch_size: int, engine: str | None = None
) -> dict:
    options: dict[str, Any] = {"precision": precision, "batch_size": batch_size}
    if engine:
        options["engine"] = engine
    if precision == "int8":  # calibrated on the synthetic cube's frames (``args.cube``)
        options["calibration_size"] = args.calibration_size
    if args.checkpoint:
        options["checkpoint"] = args.checkpoint
    else:
        options["random_weights"] = True
    return options


def _combos(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(engine, precision) pairs to measure: every precision each engine offers."""
    from oathcube.features.engines import PRECISIONS

    # TensorFlow first: the other engines' rows are compared with it.
    engines = sorted(args.engines, key=lambda e: e != "tensorflow")
    return [(e, p) for e in engines for p in args.precisions if p in PRECISIONS[e]]


def _plain_keras(precision: str) -> Any:
    """The plain Keras functional Inception-v4 (BN layers kept), random weights."""
    from oathcube.features.inception_net import build_inception_v4, random_variables

    net = build_inception_v4(["Logits"], precision=precision, fold_batch_norm=False)
    net.load(random_variables(net.variables))
    return net.model


def _row(
    label: str, precision: str, batch: int | str, rate: float, cpu: float, extra: str = ""
) -> None:
    print(
        f"  {label:<34s} {precision:<5s} {batch!s:>5s} {rate:8.2f} {cpu:9.3f} "
        f"{rate * GFLOP_PER_IMAGE:8.0f}  {extra}",
        flush=True,
    )


def _header(title: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<34s} {'prec':<5s} {'batch':>5s} {'img/s':>8s} {'cpu-s/img':>9s} {'GFLOP/s':>8s}")


Rates = dict[tuple[str, str, int], float]


def bench_network(args: argparse.Namespace) -> Rates:
    """Network-only rates per engine and precision, and of the plain Keras baseline."""
    from oathcube.cube.store import Cube
    from oathcube.features import InceptionV4Settings, get_extractor
    from oathcube.features.compute import read_calibration

    images = _inputs(args.n_images)
    rates: Rates = {}
    _header(f"network only ({args.n_images} preprocessed images in memory)")
    for engine, precision in _combos(args):
        for bs in args.batch_sizes:
            tic = time.perf_counter()
            settings = InceptionV4Settings(**_extractor_options(args, precision, bs, engine))
            calibration = (
                read_calibration(Cube.open(args.cube), None, settings.calibration_size)
                if precision == "int8"
                else None
            )
            ex = get_extractor("inception_v4", settings, calibration=calibration)
            built = time.perf_counter() - tic
            rate, cpu = _time(lambda ex=ex: ex.network(images), args.n_images, args.repeats)
            rates[(engine, precision, bs)] = rate
            extra = f"built in {built:.0f} s"
            fp32 = rates.get((engine, "fp32", bs))
            if precision != "fp32" and fp32:
                extra += f", x{rate / fp32:.2f} {engine} fp32"
            _row(f"{engine} (folded BN)", precision, bs, rate, cpu, extra)
    if args.no_baseline:
        return rates
    for precision in [p for p in args.precisions if p in ("fp32", "bf16")]:
        model = _plain_keras(precision)
        for bs in args.batch_sizes:
            rate, cpu = _time(
                lambda bs=bs, m=model: m.predict(images, batch_size=bs, verbose=0),
                args.n_images,
                args.repeats,
            )
            ours = rates.get(("tensorflow", precision, bs))
            extra = f"oathcube tensorflow x{ours / rate:.2f}" if ours else ""
            _row("plain Keras, model.predict", precision, bs, rate, cpu, extra)
        del model
    return rates


def _synthetic_cube(work: Path, n: int, chunk_images: int) -> str:
    from oathcube import build
    from oathcube.synthetic import synth

    archive = synth(work / "oath", n=n, size=256, seed=0)
    return build(archive, work / "cube.zarr", overwrite=True, chunk_images=chunk_images,
                 progress=False)  # fmt: skip


def _prepare_cube(args: argparse.Namespace) -> None:
    """The synthetic cube of the pipeline runs (and of int8's calibration): ``args.cube``."""
    args.cube = None
    if args.no_pipeline and "int8" not in args.precisions:
        return
    work = Path(tempfile.mkdtemp(prefix="bench_features_"))
    chunk = args.chunk_images or max(args.batch_sizes)
    # At least two chunks, so that one task reads and prepares while another runs the network.
    args.pipeline_n = args.pipeline_images or 2 * chunk
    args.chunk = chunk
    try:
        args.cube = _synthetic_cube(work, args.pipeline_n, chunk)
    except Exception as exc:  # the cube writer may be mid-change; the network figures stand
        print(f"\nsynthetic cube: could not build one ({exc}); no pipeline and no int8 runs")
        args.no_pipeline = True
        args.precisions = [p for p in args.precisions if p != "int8"]


def bench_pipeline(args: argparse.Namespace, network: Rates) -> Rates:
    """Whole-pipeline rates through ``compute_features`` with the threaded scheduler."""
    from oathcube.features import InceptionV4Settings
    from oathcube.features.compute import compute_features

    cube, n, chunk = args.cube, args.pipeline_n, args.chunk
    _header(
        f"whole pipeline: read cube -> rotate -> preprocess -> network -> write "
        f"({n} synthetic images, {chunk} per chunk, dask threads)"
    )
    rates: Rates = {}
    for engine, precision in _combos(args):
        for bs in args.batch_sizes:
            options = _extractor_options(args, precision, bs, engine)

            def run(options: dict = options) -> None:
                compute_features(cube, InceptionV4Settings(**options), scheduler="threads",
                                 progress=False, overwrite=True)  # fmt: skip

            rate, cpu = _time(run, n, args.repeats)
            rates[(engine, precision, bs)] = rate
            extra = f"{rate / network[(engine, precision, bs)]:.2f} of network only"
            tf = rates.get(("tensorflow", "fp32", bs))
            if tf and engine != "tensorflow":
                extra += f", x{rate / tf:.2f} tensorflow fp32 pipeline"
            _row(f"oathcube features, {engine}", precision, bs, rate, cpu, extra)
    # This process holds every model built above; one run holds one.
    bs = max(args.batch_sizes)
    cmd = [sys.executable, __file__, "--_memory", cube, "--batch-sizes", str(bs)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("peak")]
    print(f"  {lines[-1] if lines else 'peak memory run failed: ' + proc.stderr[-300:]}")
    return rates


def check_targets(args: argparse.Namespace, network: Rates, pipeline: Rates) -> None:
    """The issue's targets, on this run's figures (same run, same machine)."""
    from oathcube.features.engines import DEFAULT_ENGINE
    from oathcube.features.inception_v4 import cpu_flags

    flags = cpu_flags()
    print(f"\ntargets (default engine {DEFAULT_ENGINE}):")
    for bs in args.batch_sizes:
        own = pipeline.get((DEFAULT_ENGINE, "fp32", bs))
        net = network.get((DEFAULT_ENGINE, "fp32", bs))
        tf = pipeline.get(("tensorflow", "fp32", bs))
        if own and net:
            verdict = "met" if own >= 0.9 * net else "NOT met"
            print(f"  batch {bs}: pipeline / own network = {own / net:.2f} (>= 0.90: {verdict})")
        if own and tf:
            verdict = "met" if own >= 1.25 * tf else "NOT met"
            print(f"  batch {bs}: pipeline / tensorflow pipeline = {own / tf:.2f} "
                  f"(>= 1.25 on AVX2-only CPUs: {verdict})")  # fmt: skip
        int8 = network.get(("openvino", "int8", bs))
        fp32 = network.get(("openvino", "fp32", bs))
        if int8 and fp32:
            native = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
            verdict = ("met" if int8 >= 1.8 * fp32 else "NOT met") if native else "n/a, no VNNI"
            print(f"  batch {bs}: openvino int8 / fp32 network = {int8 / fp32:.2f} "
                  f"(>= 1.8 with VNNI or AMX: {verdict}; accuracy: bench_int8.py)")  # fmt: skip


def _memory_worker(args: argparse.Namespace) -> None:
    """One ``compute_features`` run in a fresh process; print its peak memory."""
    from oathcube.features import InceptionV4Settings
    from oathcube.features.compute import compute_features

    bs = args.batch_sizes[0]
    settings = InceptionV4Settings(**_extractor_options(args, "fp32", bs))
    compute_features(args._memory, settings, scheduler="threads", progress=False,
                     overwrite=True)  # fmt: skip
    print(f"peak memory of one features run (fresh process, default engine, fp32, batch {bs}): "
          f"{_own_peak_mb():.0f} MB")  # fmt: skip


def _own_peak_mb() -> float:
    """This process's peak RSS from /proc (VmHWM).

    ``getrusage`` is no use in a child: Linux carries the parent's high-water
    mark into a forked-and-exec'd process's ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


# ------------------------------------------------------------------ TensorFlow options

_VARIANTS: dict[str, tuple[dict[str, str], str]] = {
    # name: (environment, what runs)
    "ours": ({}, "folded BN, tf.function with a fixed input signature"),
    "ours, oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "TF_ENABLE_ONEDNN_OPTS=0"),
    "ours, intra 2 / inter 2": ({"BENCH_INTER": "2"}, "inter-op pool 2 instead of 1"),
    "ours, intra = 2 x cores": ({"BENCH_INTRA_X": "2"}, "oversubscribed intra-op pool"),
    "ours, XLA": ({"BENCH_XLA": "1"}, "tf.function(jit_compile=True)"),
    "ours, frozen graph": ({"BENCH_FROZEN": "1"}, "variables -> constants"),
    "plain Keras, predict": ({"BENCH_PLAIN": "predict"}, "model.predict"),
    "plain Keras, tf.function": ({"BENCH_PLAIN": "function"}, "model in tf.function"),
    "plain Keras, oneDNN off": (
        {"BENCH_PLAIN": "predict", "TF_ENABLE_ONEDNN_OPTS": "0"},
        "model.predict, TF_ENABLE_ONEDNN_OPTS=0",
    ),
    "ours bf16 via grappler AMP": (
        {"BENCH_AMP": "1"},
        "fp32 graph + auto_mixed_precision_onednn_bfloat16",
    ),
}


def _variant_worker(args: argparse.Namespace) -> None:
    """One measurement in a fresh process (thread pools and oneDNN are per process)."""
    import tensorflow as tf

    from oathcube.features.inception_net import (
        build_inception_v4,
        random_variables,
    )
    from oathcube.features.inception_v4 import configure_threads

    cores = len(os.sched_getaffinity(0))
    configure_threads(cores * int(os.environ.get("BENCH_INTRA_X", "1")))
    if os.environ.get("BENCH_INTER"):
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["BENCH_INTER"]))
    if os.environ.get("BENCH_AMP"):
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    bs = args.batch_sizes[0]
    images = _inputs(bs)
    plain = os.environ.get("BENCH_PLAIN")
    net = build_inception_v4(["Logits"], fold_batch_norm=not plain)
    net.load(random_variables(net.variables))
    if plain == "predict":
        fn: Callable[[], Any] = lambda: net.model.predict(images, batch_size=bs, verbose=0)  # noqa: E731
    elif os.environ.get("BENCH_XLA"):
        compiled = net.function(jit_compile=True)
        fn = lambda: compiled(images)["Logits"].numpy()  # noqa: E731
    elif os.environ.get("BENCH_FROZEN"):
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        frozen = convert_variables_to_constants_v2(net.function().get_concrete_function())
        fn = lambda: frozen(tf.constant(images))[0].numpy()  # noqa: E731
    else:
        fn = lambda: net.predict(images)["Logits"]  # noqa: E731
    rate, cpu = _time(fn, bs, args.repeats)
    print(json.dumps({"rate": rate, "cpu": cpu}))


def bench_tf_options(args: argparse.Namespace) -> None:
    bs = args.batch_sizes[0]
    _header(f"TensorFlow options (fp32 unless named, batch {bs}, each in a fresh process)")
    for name, (env, what) in _VARIANTS.items():
        cmd = [sys.executable, __file__, "--_variant", "--batch-sizes", str(bs),
               "--repeats", str(args.repeats)]  # fmt: skip
        proc = subprocess.run(
            cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            print(f"  {name:<34s} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        result = json.loads(lines[-1])
        _row(name, "bf16" if "bf16" in name else "fp32", bs, result["rate"], result["cpu"], what)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    weights = ap.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", help="inception_v4.ckpt (default: random weights)")
    weights.add_argument("--random-weights", action="store_true", help="the default")
    ap.add_argument("--batch-sizes", default="16,32,64", help="comma-separated")
    ap.add_argument("--n-images", type=int, default=64, help="images per network-only run")
    ap.add_argument(
        "--pipeline-images", type=int, default=None, help="images in the cube (default: 2 chunks)"
    )
    ap.add_argument(
        "--precisions",
        default=None,
        help="default: fp32, bf16 where native, int8 where NNCF is installed",
    )
    ap.add_argument("--engines", default=None, help="default: every engine installed")
    ap.add_argument("--calibration-size", type=int, default=128, help="int8 calibration frames")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--chunk-images", type=int, default=None, help="cube chunk (default: max batch)"
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain Keras baseline")
    ap.add_argument("--no-pipeline", action="store_true", help="skip the whole-pipeline runs")
    ap.add_argument("--tf-options", action="store_true", help="also try TensorFlow options")
    ap.add_argument("--_variant", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_memory", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    if args._variant:
        _variant_worker(args)
        return
    if args._memory:
        _memory_worker(args)
        return

    from oathcube.features.engines import ENGINES, engine_installed, engine_version
    from oathcube.features.inception_v4 import bf16_native, configure_threads

    threads = configure_threads()
    import tensorflow as tf

    print(f"machine: {cpu_description()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")
    print(f"tensorflow {tf.__version__}, oneDNN {onednn}, intra-op threads {threads}")
    installed = [e for e in ENGINES if engine_installed(e)]
    print("engines: " + ", ".join(f"{e} {engine_version(e)}" for e in installed))
    print(f"weights: {args.checkpoint or 'random (deterministic; figures only)'}")
    args.engines = args.engines.split(",") if args.engines else installed
    if args.precisions:
        args.precisions = args.precisions.split(",")
    else:
        args.precisions = ["fp32", "bf16"] if bf16_native() else ["fp32"]
        if engine_installed("nncf") and "openvino" in args.engines:
            args.precisions.append("int8")
    if not bf16_native():
        print("bf16: not native on this CPU (no amx_bf16 / avx512_bf16): it would be slower")
    print(f"matmul 2048^2: fp32 {matmul_gflops('fp32'):.0f} GFLOP/s, "
          f"bf16 {matmul_gflops('bf16'):.0f} GFLOP/s")  # fmt: skip

    _prepare_cube(args)
    network = bench_network(args)
    pipeline: Rates = {}
    if not args.no_pipeline:
        pipeline = bench_pipeline(args, network)
    check_targets(args, network, pipeline)
    if args.tf_options:
        bench_tf_options(args)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    print(f"peak memory (this process, every model above held at once): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
