"""oathcube: auroral all-sky image archives as chunked Zarr cubes.

The public API is flat; each function is a stage of the one-way flow
archive -> cube -> features -> model -> predictions.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("oathcube")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "open_cube",
    "open_station",
    "build",
    "compute_features",
    "evaluate",
    "train",
    "ingest",
    "classify",
    "timeline",
    "synth",
    "OathcubeError",
]

# Eager on purpose: the modules `oathcube.build` and `oathcube.synth` share their
# function's name, and only binding the functions here keeps `oathcube.build` a function.
# None of these imports TensorFlow (only the inception_v4 extractor does, on demand).
from .build import build  # noqa: E402
from .cube.read import open_cube, open_station  # noqa: E402
from .errors import OathcubeError  # noqa: E402
from .features.compute import compute_features  # noqa: E402
from .model import evaluate, train  # noqa: E402
from .synth import synth  # noqa: E402
from .timeseries import classify, ingest, timeline  # noqa: E402
