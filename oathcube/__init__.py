"""oathcube: auroral all-sky image archives as chunked Zarr cubes.

The public API is flat; each function is a stage of the one-way flow
archive -> cube -> features -> model -> predictions.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

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

# Imported lazily: `import oathcube` stays fast and never pulls in TensorFlow.
_WHERE = {
    "open_cube": "oathcube.cube.read",
    "open_station": "oathcube.cube.read",
    "build": "oathcube.build",
    "compute_features": "oathcube.features.compute",
    "evaluate": "oathcube.model",
    "train": "oathcube.model",
    "ingest": "oathcube.timeseries",
    "classify": "oathcube.timeseries",
    "timeline": "oathcube.timeseries",
    "synth": "oathcube.synth",
    "OathcubeError": "oathcube.errors",
}

if TYPE_CHECKING:
    from .build import build
    from .cube.read import open_cube, open_station
    from .errors import OathcubeError
    from .features.compute import compute_features
    from .model import evaluate, train
    from .synth import synth
    from .timeseries import classify, ingest, timeline


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'oathcube' has no attribute {name!r}")
