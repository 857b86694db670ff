"""What every extractor that runs a network shares: checks, the engine, batches.

Inception-v4 and Aurora-FM differ in their network and in how cube pixels become its
input; everything else is one procedure, kept here so that the two cannot drift:

* :func:`describe_network` checks the engine and precision (bf16 only where it runs
  as bf16), resolves and hashes the checkpoint, and gives the attributes recorded on
  the features, before TensorFlow is imported;
* :class:`NetworkExtractor` refuses int8 without calibration frames, builds the
  engine (the network's ``tf.function`` on TensorFlow, or converted to OpenVINO),
  runs batches through it (a generator, so that one batch is prepared while the
  engine runs another) and compiles once when built, not inside the first dask task.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import FeatureError
from ..parallel import cores
from . import Calibration, FeatureSpec
from .engines import Engine, OpenVINOEngine, TensorFlowEngine, check_bf16, check_engine

__all__ = ["NetworkExtractor", "configure_threads", "describe_network", "file_list"]


@functools.lru_cache(maxsize=8)
def _sha256_of(key: str, size: int, mtime_ns: int, hasher: Callable[[str], str]) -> str:
    return hasher(key)


def describe_network(
    settings: Any,
    *,
    resolve: Callable[[Any], str],
    files: Callable[[str], list[Path]],
    hasher: Callable[[str], str],
    model: str,
    preprocessing: str,
    warning: str,
) -> tuple[Any, dict[str, Any]]:
    """Check a network extractor's settings; return them resolved, and the attributes.

    Parameters
    ----------
    settings
        ``InceptionV4Settings`` or ``AuroraFMSettings``.
    resolve
        Finds the checkpoint from ``settings.checkpoint`` (raises where there is none).
    files
        The checkpoint's files (raises for a malformed one), whose sizes and times
        key the hash cache.
    hasher
        The checkpoint's SHA-256, computed once per process for unchanged files.
    model, preprocessing, warning
        What is recorded: the network, its input chain, and the random-weights mark.

    Returns
    -------
    tuple
        The settings with the checkpoint resolved, and ``attrs`` for the features.

    Raises
    ------
    CheckpointError
        No checkpoint given or found.
    FeatureError
        An engine that is not installed or lacks the precision, or bf16 that this
        CPU would not run as bf16.
    """
    engine, precision = settings.resolved_engine, settings.precision
    version = check_engine(engine, precision)
    check_bf16(engine, precision)
    resolved: str | None = None
    sha256 = ""
    if not settings.random_weights:
        resolved = resolve(settings.checkpoint)
        stats = [f.stat() for f in files(resolved)]
        sha256 = _sha256_of(
            resolved,
            sum(st.st_size for st in stats),
            max(st.st_mtime_ns for st in stats),
            hasher,
        )
        settings = replace(settings, checkpoint=resolved)
    recorded = settings.attrs()
    attrs: dict[str, Any] = {
        "extractor": settings.extractor,
        "model": model,
        "checkpoint": "" if resolved is None else str(Path(resolved).resolve()),
        "checkpoint_sha256": sha256,
        **{k: recorded[k] for k in ("layer",) if k in recorded},
        "precision": recorded["precision"],
        "engine": recorded["engine"],
        "engine_version": version,
        "oathcube_version": __version__,
        "preprocessing": preprocessing,
        "random_weights": recorded["random_weights"],
    }
    if settings.random_weights:
        attrs["warning"] = warning
    return settings, attrs


class NetworkExtractor:
    """The part of a network extractor that is not its network or its input.

    A subclass sets ``name``, ``dim``, ``n_features``, ``output`` (the endpoint) and
    ``input_shape`` (one image), and calls :meth:`_start` then :meth:`_run_on`.
    """

    name: str
    dim: str
    n_features: int
    output: str
    input_shape: tuple[int, ...]

    #: The settings hold a thread budget (see oathcube.parallel).
    threaded = True

    def _start(self, settings: Any, spec: FeatureSpec, calibration: Calibration | None) -> None:
        """Keep the settings and the attributes; int8 needs the cube's calibration frames."""
        if settings.precision == "int8":
            if calibration is None or not len(calibration.pixels):
                raise FeatureError(
                    "precision int8 calibrates on the cube's own frames, and none were given",
                    parameter="calibration",
                    expected="compute_features(cube, spec) (it reads them from the cube)",
                )
            spec = spec.calibrated(calibration)
        self.settings = settings
        self._attrs = spec.attrs
        self.engine_name: str = settings.resolved_engine
        self.precision: str = settings.precision
        self.batch_size: int = settings.batch_size
        self.random_weights: bool = settings.random_weights
        self.checkpoint: str | None = spec.attrs["checkpoint"] or None

    def _run_on(
        self,
        net: Any,
        prepare: Callable[[np.ndarray, np.ndarray], np.ndarray],
        calibration: Calibration | None,
    ) -> None:
        """Put the loaded network on its engine and compile it once now.

        Parameters
        ----------
        net
            The Keras network, loaded (``function()``, ``predict()``).
        prepare
            Cube pixels and their rotation angles -> the network's input.
        calibration
            The int8 calibration frames (used for int8 only).
        """
        calib = None
        if calibration is not None and self.precision == "int8":
            calib = prepare(calibration.pixels, calibration.rot_angle)
        self.engine: Engine
        if self.engine_name == "tensorflow":
            self.engine = TensorFlowEngine(net, self.output)
        else:
            self.engine = OpenVINOEngine(
                net.function(),
                self.output,
                self.precision,
                threads=self.settings.threads or cores(),
                calibration=calib,
            )
            self.threads = self.engine.threads
        self.network(np.zeros((1, *self.input_shape), np.float32))

    def feature_labels(self) -> None:
        """A network's features have no names."""
        return None

    def attrs(self) -> dict[str, Any]:
        """Provenance recorded on ``features_<name>`` in the cube."""
        return dict(self._attrs)

    def network(self, images: np.ndarray) -> np.ndarray:
        """Run the network alone on images already made its input."""
        step = self.batch_size
        return self._infer((images[i : i + step] for i in range(0, len(images), step)), len(images))

    def _infer(self, batches: Iterator[np.ndarray], n: int) -> np.ndarray:
        out = np.empty((n, self.n_features), np.float32)
        self.engine.infer(batches, out)
        return out


def configure_threads(threads: int | None = None, *, strict: bool = False) -> int:
    """Set TensorFlow's intra-op pool to ``threads`` (default: the usable cores).

    The inter-op pool is kept at 1 to 2 threads: the network runs under a lock,
    one batch at a time, and parallel branches of a block on top of a full
    intra-op pool only oversubscribe the cores.  TensorFlow accepts the setting
    only before it starts its runtime; later calls keep what is set, and warn
    only when ``strict`` (the caller asked for a number explicitly).

    Returns
    -------
    int
        The intra-op thread count in effect (0 = TensorFlow's default, all cores).
    """
    import tensorflow as tf

    want = threads or cores()
    inter = 1 if want <= 2 else 2
    current = tf.config.threading.get_intra_op_parallelism_threads()
    if current == want:
        return current
    try:
        tf.config.threading.set_intra_op_parallelism_threads(want)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        if strict:
            warnings.warn(
                f"TensorFlow is already running; keeping its {current or 'default'} intra-op "
                f"threads instead of {want}",
                UserWarning,
                stacklevel=3,
            )
        return current
    return want


def file_list(path: str | os.PathLike[str]) -> list[Path]:
    """A checkpoint that is one file."""
    return [Path(path)]
