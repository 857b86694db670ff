"""Benchmark the network extractors (Inception-v4, Aurora-FM): network alone, pipeline, baseline.

usage: python scripts/bench_features.py [--extractors inception_v4,aurora_fm]
                                        [--random-weights | --checkpoint PATH]
                                        [--aurora-fm-checkpoint PATH]
                                        [--batch-sizes 16,32,64] [--n-images 64]
                                        [--pipeline-images N] [--engines openvino,tensorflow]
                                        [--precisions fp32,bf16,int8] [--repeats 3]
                                        [--no-baseline] [--no-pipeline] [--tf-options]

e.g.    python scripts/bench_features.py --batch-sizes 32 --n-images 64 --repeats 2

Prints, in this order:

- the CPU (model, family/model numbers, the flags that matter: avx2, avx512f,
  avx512_bf16, avx512_vnni, avx_vnni, amx_bf16, amx_int8, amx_tile), the load
  average (other processes on the machine slow every figure down) and the
  TensorFlow and OpenVINO versions;
- the machine's matrix-multiply rate (``tf.matmul`` of 2048 x 2048) in fp32 and bf16;
- per extractor of ``--extractors`` (default both), images/s of the network alone
  (preprocessed input in memory -> features), per engine, precision and batch
  size; for Inception-v4 only, measured in the same run, a plain Keras functional
  Inception-v4 (Conv2D(use_bias=False) -> BatchNormalization(epsilon=1e-3,
  scale=False) -> ReLU) run with ``model.predict``, the simplest way;
- per extractor, images/s of the whole ``oathcube features`` pipeline (read the
  cube, prepare the frames, network, write the cube) on one synthetic OATH cube
  (256 x 256 labelled images), per engine, precision and batch size, with its ratio
  to the same engine's network-only rate and to the TensorFlow pipeline, and the
  peak memory of one run in a fresh process;
- Inception-v4's targets (pipeline / own network >= 0.90, pipeline / TensorFlow
  pipeline >= 1.25 on AVX2-only CPUs, int8 / fp32 network >= 1.8 with VNNI or AMX);
- Aurora-FM's targets, on this run's figures, per engine, precision and batch size
  measured for both extractors, one PASS/FAIL line each: (a) Aurora-FM pipeline
  >= 0.85 x Aurora-FM network alone; (b) Aurora-FM pipeline >= 6 x Inception-v4
  pipeline (both extractors on the same cube, engine, precision and batch size);
- with ``--tf-options`` (Inception-v4 only): what TensorFlow-side options give
  (oneDNN off, thread pools, XLA, a frozen graph), each in a fresh process;
- peak memory.

Every rate is the best of ``--repeats`` timed runs after one warm-up; ``cpu-s/img``
is the process CPU time per image (all threads), which the load of other processes
disturbs much less than wall time.  bf16 runs only where the CPU has amx_bf16 or
avx512_bf16, unless ``--precisions`` names it; int8 (OpenVINO only, NNCF calibrated
on ``--calibration-size`` frames of the synthetic cube) runs where NNCF is
installed.  Both networks have random weights unless a checkpoint is given
(``--checkpoint`` is Inception-v4's, ``--aurora-fm-checkpoint`` Aurora-FM's): speed
does not depend on the weights.

GFLOP/s counts 2 FLOP per multiply-add.  One Inception-v4 image (299 x 299) is
24.5 GFLOP (12.25 G multiply-adds).  One Aurora-FM image (ResNet-18, 224 x 224) is
3.47 GFLOP: torchvision's ResNet-18 is 1.82 G multiply-adds (3.64 GFLOP) with its
3-band first convolution, and oathcube feeds it the green band alone, which leaves
1.73 G multiply-adds (both counted over the convolutions of the Keras graphs here).
"""

from __future__ import annotations

import argparse
import functools
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

#: extractor -> GFLOP per image (2 FLOP per multiply-add; see the module docstring).
GFLOP_PER_IMAGE: dict[str, float] = {"inception_v4": 24.5, "aurora_fm": 3.47}
EXTRACTORS = tuple(GFLOP_PER_IMAGE)

#: (extractor, engine, precision, batch size) -> images/s
Rates = dict[tuple[str, str, str, int], float]


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


def _inputs(n: int, extractor: str = "inception_v4") -> np.ndarray:
    """``n`` random 256 x 256 frames as the extractor's network takes them."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, 256, 256), dtype=np.uint8)
    if extractor == "aurora_fm":
        from oathcube.features.aurora_fm import preprocess as aurora_preprocess

        return aurora_preprocess(pixels)
    from oathcube.features.inception_v4 import preprocess

    return preprocess(pixels, rng.uniform(0, 360, n))


def _settings(extractor: str, options: dict[str, Any]) -> Any:
    """The extractor's settings object made of ``options``."""
    from oathcube.features import AuroraFMSettings, InceptionV4Settings

    cls = AuroraFMSettings if extractor == "aurora_fm" else InceptionV4Settings
    return cls(**options)


def _extractor_options(
    args: argparse.Namespace,
    precision: str,
    batch_size: int,
    engine: str | None = None,
    extractor: str = "inception_v4",
) -> dict:
    options: dict[str, Any] = {"precision": precision, "batch_size": batch_size}
    if engine:
        options["engine"] = engine
    if precision == "int8":  # calibrated on the synthetic cube's frames (``args.cube``)
        options["calibration_size"] = args.calibration_size
    checkpoint = args.aurora_fm_checkpoint if extractor == "aurora_fm" else args.checkpoint
    if checkpoint:
        options["checkpoint"] = checkpoint
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
    label: str,
    precision: str,
    batch: int | str,
    rate: float,
    cpu: float,
    extra: str = "",
    gflop: float = GFLOP_PER_IMAGE["inception_v4"],
) -> None:
    print(
        f"  {label:<34s} {precision:<5s} {batch!s:>5s} {rate:8.2f} {cpu:9.3f} "
        f"{rate * gflop:8.0f}  {extra}",
        flush=True,
    )


def _header(title: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<34s} {'prec':<5s} {'batch':>5s} {'img/s':>8s} {'cpu-s/img':>9s} {'GFLOP/s':>8s}")


def bench_network(args: argparse.Namespace) -> Rates:
    """Network-only rates per extractor, engine and precision, and the plain Keras baseline."""
    rates: Rates = {}
    for extractor in args.extractors:
        _network_rows(args, extractor, rates)
        if extractor == "inception_v4" and not args.no_baseline:
            _baseline_rows(args, rates)
    return rates


def _network_rows(args: argparse.Namespace, extractor: str, rates: Rates) -> None:
    from oathcube.cube.store import Cube
    from oathcube.features import get_extractor
    from oathcube.features.compute import read_calibration

    gflop = GFLOP_PER_IMAGE[extractor]
    images = _inputs(args.n_images, extractor)
    _header(
        f"{extractor}: network only ({args.n_images} preprocessed images in memory, "
        f"{gflop} GFLOP/image)"
    )
    for engine, precision in _combos(args):
        for bs in args.batch_sizes:
            tic = time.perf_counter()
            options = _extractor_options(args, precision, bs, engine, extractor)
            settings = _settings(extractor, options)
            calibration = (
                read_calibration(Cube.open(args.cube), None, settings.calibration_size)
                if precision == "int8"
                else None
            )
            ex = get_extractor(extractor, settings, calibration=calibration)
            built = time.perf_counter() - tic
            network: Callable[[np.ndarray], np.ndarray] = ex.network  # type: ignore[attr-defined]
            rate, cpu = _time(functools.partial(network, images), args.n_images, args.repeats)
            rates[(extractor, engine, precision, bs)] = rate
            extra = f"built in {built:.0f} s"
            fp32 = rates.get((extractor, engine, "fp32", bs))
            if precision != "fp32" and fp32:
                extra += f", x{rate / fp32:.2f} {engine} fp32"
            _row(f"{engine} (folded BN)", precision, bs, rate, cpu, extra, gflop)


def _baseline_rows(args: argparse.Namespace, rates: Rates) -> None:
    """The plain Keras Inception-v4 (``model.predict``), beside oathcube's TensorFlow rows."""
    images = _inputs(args.n_images)
    for precision in [p for p in args.precisions if p in ("fp32", "bf16")]:
        model = _plain_keras(precision)
        for bs in args.batch_sizes:
            run = functools.partial(model.predict, images, batch_size=bs, verbose=0)
            rate, cpu = _time(run, args.n_images, args.repeats)
            ours = rates.get(("inception_v4", "tensorflow", precision, bs))
            extra = f"oathcube tensorflow x{ours / rate:.2f}" if ours else ""
            _row("plain Keras, model.predict", precision, bs, rate, cpu, extra)
        del model


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
    rates: Rates = {}
    for extractor in args.extractors:
        _pipeline_rows(args, extractor, network, rates)
    return rates


def _pipeline_rows(args: argparse.Namespace, extractor: str, network: Rates, rates: Rates) -> None:
    from oathcube.features.compute import compute_features

    cube, n, chunk = args.cube, args.pipeline_n, args.chunk
    gflop = GFLOP_PER_IMAGE[extractor]
    steps = "rotate -> preprocess" if extractor == "inception_v4" else "turn -> resize"
    _header(
        f"{extractor}: whole pipeline: read cube -> {steps} -> network -> write "
        f"({n} synthetic images, {chunk} per chunk, dask threads)"
    )
    for engine, precision in _combos(args):
        for bs in args.batch_sizes:
            settings = _settings(
                extractor, _extractor_options(args, precision, bs, engine, extractor)
            )

            def run(settings: Any = settings) -> None:
                compute_features(cube, settings, scheduler="threads", progress=False,
                                 overwrite=True)  # fmt: skip

            rate, cpu = _time(run, n, args.repeats)
            rates[(extractor, engine, precision, bs)] = rate
            extra = f"{rate / network[(extractor, engine, precision, bs)]:.2f} of network only"
            tf = rates.get((extractor, "tensorflow", "fp32", bs))
            if tf and engine != "tensorflow":
                extra += f", x{rate / tf:.2f} tensorflow fp32 pipeline"
            iv4 = rates.get(("inception_v4", engine, precision, bs))
            if extractor != "inception_v4" and iv4:
                extra += f", x{rate / iv4:.1f} inception_v4 pipeline"
            _row(f"oathcube features, {engine}", precision, bs, rate, cpu, extra, gflop)
    # This process holds every model built above; one run holds one.
    bs = max(args.batch_sizes)
    cmd = [sys.executable, __file__, "--_memory", cube, "--batch-sizes", str(bs),
           "--extractors", extractor]  # fmt: skip
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if args.aurora_fm_checkpoint:
        cmd += ["--aurora-fm-checkpoint", args.aurora_fm_checkpoint]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("peak")]
    print(f"  {lines[-1] if lines else 'peak memory run failed: ' + proc.stderr[-300:]}")


def check_targets(args: argparse.Namespace, network: Rates, pipeline: Rates) -> None:
    """The issue's targets, on this run's figures (same run, same machine)."""
    if "inception_v4" in args.extractors:
        _inception_targets(args, network, pipeline)
    if "aurora_fm" in args.extractors:
        _aurora_fm_targets(args, network, pipeline)


def _inception_targets(args: argparse.Namespace, network: Rates, pipeline: Rates) -> None:
    from oathcube.features.engines import DEFAULT_ENGINE
    from oathcube.features.inception_v4 import cpu_flags

    flags = cpu_flags()
    iv4 = "inception_v4"
    print(f"\ninception_v4 targets (default engine {DEFAULT_ENGINE}):")
    if not any((iv4, DEFAULT_ENGINE, "fp32", bs) in network for bs in args.batch_sizes):
        print(f"  no {DEFAULT_ENGINE} fp32 figures (--engines, --precisions): nothing to check")
    for bs in args.batch_sizes:
        own = pipeline.get((iv4, DEFAULT_ENGINE, "fp32", bs))
        net = network.get((iv4, DEFAULT_ENGINE, "fp32", bs))
        tf = pipeline.get((iv4, "tensorflow", "fp32", bs))
        if own and net:
            verdict = "met" if own >= 0.9 * net else "NOT met"
            print(f"  batch {bs}: pipeline / own network = {own / net:.2f} (>= 0.90: {verdict})")
        if own and tf:
            verdict = "met" if own >= 1.25 * tf else "NOT met"
            print(f"  batch {bs}: pipeline / tensorflow pipeline = {own / tf:.2f} "
                  f"(>= 1.25 on AVX2-only CPUs: {verdict})")  # fmt: skip
        int8 = network.get((iv4, "openvino", "int8", bs))
        fp32 = network.get((iv4, "openvino", "fp32", bs))
        if int8 and fp32:
            native = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
            verdict = ("met" if int8 >= 1.8 * fp32 else "NOT met") if native else "n/a, no VNNI"
            print(f"  batch {bs}: openvino int8 / fp32 network = {int8 / fp32:.2f} "
                  f"(>= 1.8 with VNNI or AMX: {verdict}; accuracy: bench_int8.py)")  # fmt: skip


def _aurora_fm_targets(args: argparse.Namespace, network: Rates, pipeline: Rates) -> None:
    """(a) pipeline >= 0.85 x own network; (b) pipeline >= 6 x Inception-v4's pipeline."""
    print("\naurora_fm targets (this run's figures; same engine, precision and batch size):")
    if not pipeline:
        print("  no pipeline figures (--no-pipeline or no synthetic cube): nothing to check")
        return
    afm, iv4 = "aurora_fm", "inception_v4"
    for engine, precision in _combos(args):
        for bs in args.batch_sizes:
            what = f"{engine} {precision} batch {bs}"
            own = pipeline.get((afm, engine, precision, bs))
            net = network.get((afm, engine, precision, bs))
            other = pipeline.get((iv4, engine, precision, bs))
            if own and net:
                verdict = "PASS" if own >= 0.85 * net else "FAIL"
                print(f"  {verdict} (a) {what}: aurora_fm pipeline {own:.2f} img/s / network "
                      f"{net:.2f} img/s = {own / net:.2f} (>= 0.85)")  # fmt: skip
            if own and other:
                verdict = "PASS" if own >= 6 * other else "FAIL"
                print(f"  {verdict} (b) {what}: aurora_fm pipeline {own:.2f} img/s / "
                      f"inception_v4 pipeline {other:.2f} img/s = {own / other:.2f} "
                      "(>= 6)")  # fmt: skip
            elif own and iv4 not in args.extractors:
                print(f"  n/a  (b) {what}: inception_v4 not measured (--extractors)")


def _memory_worker(args: argparse.Namespace) -> None:
    """One ``compute_features`` run in a fresh process; print its peak memory."""
    from oathcube.features.compute import compute_features

    bs = args.batch_sizes[0]
    extractor = args.extractors[0]
    settings = _settings(extractor, _extractor_options(args, "fp32", bs, extractor=extractor))
    compute_features(args._memory, settings, scheduler="threads", progress=False,
                     overwrite=True)  # fmt: skip
    print(f"peak memory of one {extractor} features run (fresh process, default engine, fp32, "
          f"batch {bs}): {_own_peak_mb():.0f} MB")  # fmt: skip


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
    ap.add_argument(
        "--aurora-fm-checkpoint",
        default=None,
        help="aurora-fm-no-finetune.tar (default: random weights)",
    )
    ap.add_argument(
        "--extractors",
        default=",".join(EXTRACTORS),
        help=f"comma-separated, of {', '.join(EXTRACTORS)} (default: both)",
    )
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
    args.extractors = [e for e in str(args.extractors).split(",") if e]
    unknown = [e for e in args.extractors if e not in EXTRACTORS]
    if unknown or not args.extractors:
        ap.error(f"--extractors: {', '.join(unknown) or '(none)'}; of {', '.join(EXTRACTORS)}")
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
    random = "random (deterministic; figures only)"
    for extractor in args.extractors:
        checkpoint = args.aurora_fm_checkpoint if extractor == "aurora_fm" else args.checkpoint
        print(f"{extractor} weights: {checkpoint or random}")
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
    if args.tf_options and "inception_v4" in args.extractors:
        bench_tf_options(args)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    print(f"peak memory (this process, every model above held at once): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
