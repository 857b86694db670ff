"""Engines that run the Inception-v4 network: TensorFlow, or OpenVINO converted in-process.

The network is always built and loaded from the slim checkpoint by
:mod:`oathcube.features.inception_net`, in Keras/TensorFlow, exactly as the
equality tests prove it.  An engine is only where that graph then runs:

``tensorflow``
    The ``tf.function`` itself, one batch at a time under a lock, on
    TensorFlow's intra-op pool (which oathcube sizes to the thread budget).
``openvino``
    The same ``tf.function`` converted with ``openvino.convert_model`` in this
    process (no file is written), compiled for the CPU with the THROUGHPUT hint
    and ``INFERENCE_NUM_THREADS`` = the thread budget, and fed through an
    ``AsyncInferQueue`` of the compiled model's optimal number of requests
    (one per CPU stream), so that the dask threads of a worker share one queue
    and no more threads compute than the budget allows.  ``bf16`` asks the CPU
    plugin for bfloat16 inference (``INFERENCE_PRECISION_HINT``), ``int8``
    quantises the converted model with NNCF's post-training quantisation,
    calibrated on frames of the cube itself, which the feature computation reads
    (:func:`oathcube.features.compute.read_calibration`) and hands to the extractor.

The engine is a setting of speed: it changes feature values only by round-off
(fp32), and its name and version are recorded with the features but not
compared when a run resumes or a model checks its features
(:data:`oathcube.features.IGNORED_SETTINGS`).  Compiled engines are built once
per worker process, with the extractor that owns them
(:func:`oathcube.features.get_extractor`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import FeatureError
from ..parallel import cores
from .settings import CALIBRATION_SIZE, DEFAULT_ENGINE, ENGINES

__all__ = [
    "CALIBRATION_SIZE",
    "DEFAULT_ENGINE",
    "ENGINES",
    "EXTRAS",
    "INT8_EXTRA",
    "PRECISIONS",
    "Engine",
    "OpenVINOEngine",
    "TensorFlowEngine",
    "bf16_native",
    "calibration_rows",
    "check_bf16",
    "check_engine",
    "check_inference_precision",
    "cpu_flags",
    "engine_installed",
    "engine_version",
]

log = logging.getLogger(__name__)

# ENGINES (in the order of preference) and DEFAULT_ENGINE (the fastest on every CPU
# kind measured, docs/features.md "Engines"; a default dependency of oathcube) are
# defined with the settings, which import nothing heavy.

#: What installs each engine (named in the error when one is missing).  Both are
#: dependencies of oathcube; an environment may still lack one (a conda env made
#: by hand, a ``pip uninstall``, a platform without wheels).
EXTRAS: dict[str, str] = {
    "tensorflow": "pip install tensorflow (a dependency of oathcube), or `engine` openvino",
    "openvino": "pip install openvino (a dependency of oathcube), or `engine` tensorflow",
}

#: What installs NNCF, which ``int8`` needs.
INT8_EXTRA = "pip install nncf (a dependency of oathcube)"

#: Distributions whose version is the engine's version.
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-nightly"),
    "openvino": ("openvino",),
}

#: Precisions each engine offers.
PRECISIONS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("fp32", "bf16"),
    "openvino": ("fp32", "bf16", "int8"),
}


def engine_installed(engine: str) -> bool:
    """Whether the Python package of ``engine`` can be imported (nothing is imported)."""
    return importlib.util.find_spec(engine) is not None


def engine_version(engine: str) -> str:
    """The installed version of ``engine``'s package ("" when unknown), without importing it."""
    for dist in _DISTRIBUTIONS.get(engine, (engine,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""


def check_engine(engine: str, precision: str) -> str:
    """Refuse an unknown or missing engine, or a precision it lacks; return its version.

    Raises
    ------
    FeatureError
        One line that names the engines, the precisions, or what installs the engine.
    """
    if engine not in ENGINES:
        raise FeatureError(
            f"unknown engine {engine!r}", parameter="engine", expected=" or ".join(ENGINES)
        )
    if precision not in PRECISIONS[engine]:
        hint = [e for e in ENGINES if precision in PRECISIONS[e]]
        raise FeatureError(
            f"precision {precision!r} is not offered by engine {engine}",
            parameter="precision",
            expected=" or ".join(PRECISIONS[engine])
            + (f" (or `engine` {hint[0]} for {precision})" if hint else ""),
        )
    if not engine_installed(engine):
        raise FeatureError(
            f"engine {engine} is not installed", parameter="engine", expected=EXTRAS[engine]
        )
    if precision == "int8" and not engine_installed("nncf"):
        raise FeatureError(
            "precision int8 needs NNCF, which is not installed",
            parameter="precision",
            expected=INT8_EXTRA,
        )
    return engine_version(engine)


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_native() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AMX or AVX-512 BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def check_bf16(engine: str, precision: str) -> None:
    """Refuse bf16 that OpenVINO would silently run as fp32; warn of TensorFlow's emulation.

    Raises
    ------
    FeatureError
        ``bf16`` on the OpenVINO engine on a CPU without native bfloat16.
    """
    if precision == "bf16" and not bf16_native():
        # The label must say what ran.  OpenVINO's CPU plugin without native bf16
        # silently runs fp32, so "bf16" would be recorded over fp32 features.  It is
        # refused rather than run as fp32 and recorded as fp32: the user asked for
        # bf16 (its round-off, or its speed) and would get neither without knowing,
        # and "precision" is a setting ignored on resume (IGNORED_SETTINGS), so a
        # silent fallback would let one variable mix fp32 and bf16 rows under one
        # label.  The refusal names the settings and the two ways on.  TensorFlow
        # emulates bfloat16 (its kernels round to bf16 on any x86 CPU): the label
        # is then true and only the speed suffers, which is warned.
        if engine != "tensorflow":
            raise FeatureError(
                "precision bf16 needs a CPU with native bfloat16 (flag avx512_bf16 or "
                "amx_bf16), and this one has neither: OpenVINO would run fp32",
                parameter="precision",
                expected="`precision` fp32 here, or `engine` tensorflow for emulated "
                "bf16 (slower than fp32)",
            )
        warnings.warn(
            "precision bf16: this CPU has neither amx_bf16 nor avx512_bf16, so "
            "TensorFlow emulates bfloat16 and will be slower than fp32",
            UserWarning,
            stacklevel=5,
        )


def check_inference_precision(asked: str, compiled: str) -> None:
    """Refuse a compiled model whose inference precision is not the one recorded.

    Parameters
    ----------
    asked
        The precision the features will be recorded with (``fp32``, ``bf16``, ``int8``).
    compiled
        The compiled model's ``INFERENCE_PRECISION_HINT`` (``f32``, ``bf16``, ...).

    Raises
    ------
    FeatureError
        ``bf16`` was asked and the CPU plugin chose another precision (a CPU
        without avx512_bf16 or amx_bf16), or ``fp32`` was asked and it did not
        keep f32.
    """
    if asked == "bf16" and compiled != "bf16":
        raise FeatureError(
            f"precision bf16: OpenVINO compiled the network for {compiled} on this CPU "
            "(no avx512_bf16 or amx_bf16), and nothing is computed under a wrong label",
            parameter="precision",
            expected="`precision` fp32, or `engine` tensorflow for emulated bf16",
        )
    if asked == "fp32" and compiled not in ("f32", "fp32"):
        raise FeatureError(
            f"precision fp32: OpenVINO compiled the network for {compiled}",
            parameter="precision",
            expected="f32 inference (INFERENCE_PRECISION_HINT)",
        )


# --------------------------------------------------------------------------- calibration


def calibration_rows(n_rows: int, size: int = CALIBRATION_SIZE) -> list[int]:
    """``size`` rows spread evenly over ``n_rows`` (all of them when there are fewer)."""
    if n_rows <= size:
        return list(range(n_rows))
    return [int(i) for i in np.linspace(0, n_rows - 1, size).round().astype(np.int64)]


# --------------------------------------------------------------------------- engines


class Engine(Protocol):
    """Runs the network on preprocessed batches; built once per worker process."""

    name: str
    version: str
    precision: str

    def infer(self, batches: Iterable[np.ndarray], out: np.ndarray) -> None:
        """Fill ``out`` (n, features) with the features of ``batches``, in order.

        ``batches`` may be a generator that prepares each batch when asked: an
        asynchronous engine runs one batch while the next is prepared.
        """
        ...


class TensorFlowEngine:
    """The Keras network's ``tf.function``, one batch at a time under a lock.

    Parameters
    ----------
    net
        An :class:`~oathcube.features.inception_net.InceptionV4Net`, loaded.
    layer
        The endpoint to return.
    """

    name = "tensorflow"

    def __init__(self, net: Any, layer: str) -> None:
        self.version = engine_version("tensorflow")
        self.precision = str(net.precision)
        self._net = net
        self._layer = layer
        # TensorFlow's intra-op pool already uses every budgeted core for one batch.
        self._lock = threading.Lock()

    def run(self, images: np.ndarray) -> np.ndarray:
        """Features of one batch of preprocessed images."""
        with self._lock:
            return self._net.predict(images)[self._layer]

    def infer(self, batches: Iterable[np.ndarray], out: np.ndarray) -> None:
        """See :meth:`Engine.infer`."""
        start = 0
        for batch in batches:
            stop = start + len(batch)
            out[start:stop] = self.run(batch)
            start = stop


class _Job:
    """The requests one :meth:`OpenVINOEngine.infer` call has in the queue."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending = 0
        self.submitted = False
        self.done = threading.Event()
        self.error: BaseException | None = None

    def finish_one(self) -> None:
        with self.lock:
            self.pending -= 1
            if self.submitted and self.pending == 0:
                self.done.set()

    def all_submitted(self) -> None:
        with self.lock:
            self.submitted = True
            if self.pending == 0:
                self.done.set()


class OpenVINOEngine:
    """The network's ``tf.function`` converted to OpenVINO and compiled for the CPU.

    Parameters
    ----------
    function
        The network's ``tf.function`` (fixed input signature, dict of endpoints),
        or its conversion (an ``openvino.Model``).
    layer
        The endpoint to return.
    precision
        ``fp32``, ``bf16`` (the CPU plugin's bfloat16 inference: native only
        with AMX or AVX-512 BF16) or ``int8`` (NNCF post-training quantisation).
    threads
        Inference threads in all (default: the usable cores).  The CPU plugin
        splits them into streams; the queue holds one request per stream.
    calibration
        Preprocessed float32 images for ``int8``.
    """

    name = "openvino"

    def __init__(
        self,
        function: Any,
        layer: str,
        precision: str = "fp32",
        threads: int | None = None,
        calibration: np.ndarray | None = None,
    ) -> None:
        import openvino as ov

        self.version = engine_version("openvino")
        self.precision = precision
        self.threads = int(threads or cores())
        # An already converted model (tests compile one conversion for two endpoints).
        model = (
            function
            if isinstance(function, ov.Model)
            # share_weights=False: by default the converted model reads its weights from
            # TensorFlow's variables, which the extractor then frees; their memory is
            # reused by later allocations and the network silently computes garbage
            # (seen: NaN and 1e37 Logits after a second network was built).
            else ov.convert_model(function.get_concrete_function(), share_weights=False)
        )
        if precision == "int8":
            if calibration is None or not len(calibration):
                raise FeatureError("int8 needs calibration images", expected="cube frames")
            model = _quantize(model, calibration)
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_NUM_THREADS": self.threads,
            # f32 explicitly: on CPUs with AMX the plugin would pick bf16 by itself.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            # Pinning threads to cores is right only for the one process that owns them all.
            "ENABLE_CPU_PINNING": self.threads >= cores(),
        }
        self._compiled = _core().compile_model(model, "CPU", config)
        del model
        self._output = self._compiled.output(layer)
        self.streams = int(self._compiled.get_property("NUM_STREAMS"))
        self.jobs = max(1, int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = str(getattr(hint, "to_string", lambda: hint)())
        # Checked where the network runs: a dask worker on another CPU than the
        # driver that checked the options must not compute under a wrong label.
        check_inference_precision(precision, self.inference_precision)
        self._queue = ov.AsyncInferQueue(self._compiled, self.jobs)
        self._queue.set_callback(self._done)
        self._submit_lock = threading.Lock()
        log.info(
            "OpenVINO %s: %s, %d threads in %d streams, %d requests, inference precision %s",
            self.version,
            precision,
            self.threads,
            self.streams,
            self.jobs,
            self.inference_precision,
        )

    def _done(self, request: Any, userdata: tuple[_Job, np.ndarray]) -> None:
        # Runs on an OpenVINO thread when a request completes.
        job, target = userdata
        try:
            target[...] = request.get_tensor(self._output).data
        except Exception as err:  # handed to the thread that waits for the job
            job.error = err
        finally:
            job.finish_one()

    def infer(self, batches: Iterable[np.ndarray], out: np.ndarray) -> None:
        """See :meth:`Engine.infer`; each batch is split over the streams."""
        job = _Job()
        start = 0
        for batch in batches:
            if not len(batch):
                continue
            # One batch in as many requests as there are streams: a single task then
            # keeps every stream busy, and several tasks share the queue.
            step = -(-len(batch) // self.jobs)
            for lo in range(0, len(batch), step):
                piece = np.ascontiguousarray(batch[lo : lo + step], dtype=np.float32)
                target = out[start + lo : start + lo + len(piece)]
                with job.lock:
                    job.pending += 1
                with self._submit_lock:  # start_async waits for an idle request
                    self._queue.start_async({0: piece}, (job, target))
            start += len(batch)
        job.all_submitted()
        while not job.done.wait(10.0):
            # A request that failed inside OpenVINO never calls back; wait_all raises
            # its error.  Once every request is idle, this job has finished.
            try:
                self._queue.wait_all()
            except Exception as err:
                raise FeatureError(f"OpenVINO inference failed: {err}") from err
            if not job.done.is_set():
                raise FeatureError("OpenVINO returned no result for a batch")
        if job.error is not None:
            raise FeatureError(f"OpenVINO inference failed: {job.error}") from job.error

    def run(self, images: np.ndarray) -> np.ndarray:
        """Features of one batch of preprocessed images."""
        shape = [int(d.get_length()) for d in list(self._output.get_partial_shape())[1:]]
        out = np.empty((len(images), *shape), np.float32)
        self.infer([images], out)
        return out


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def _core() -> Any:
    """One ``openvino.Core`` per process."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            import openvino as ov

            _CORE = ov.Core()
        return _CORE


def _quantize(model: Any, images: np.ndarray) -> Any:
    """NNCF post-training int8 quantisation calibrated on ``images`` (preprocessed)."""
    import nncf

    items = [images[i : i + 1] for i in range(len(images))]
    log.info("quantising Inception-v4 to int8 on %d calibration frames (NNCF)", len(items))
    return nncf.quantize(
        model,
        nncf.Dataset(items),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(items),
    )
