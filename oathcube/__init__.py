"""oathcube: auroral all-sky image archives as chunked Zarr cubes.

The public API is flat; each function is a stage of the one-way flow
archive -> cube -> features -> model -> classify/timeline.  Names are resolved on
first use (PEP 562), so that ``import oathcube`` (and the command line's
``--help``) imports none of xarray, dask, zarr, scikit-learn or TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import OathcubeError

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from ._version import __version__ as __version__
    from .classification import classify as classify
    from .cube.store import Cube as Cube
    from .cube.store import open_cube as open_cube
    from .cube.store import open_station as open_station
    from .features.compute import compute_features as compute_features
    from .ingestion import ingest as ingest
    from .labelled import build as build
    from .model import evaluate as evaluate
    from .model import train as train
    from .synthetic import synth as synth
    from .timelines import timeline as timeline
    from .views.keogram import keogram as keogram
    from .views.maps import sky_map as sky_map
    from .views.movie import movie as movie
    from .views.nights import night_statistics as night_statistics

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    "__version__": "oathcube._version",
    "Cube": "oathcube.cube.store",
    "open_cube": "oathcube.cube.store",
    "open_station": "oathcube.cube.store",
    "build": "oathcube.labelled",
    "compute_features": "oathcube.features.compute",
    "evaluate": "oathcube.model",
    "train": "oathcube.model",
    "ingest": "oathcube.ingestion",
    "classify": "oathcube.classification",
    "timeline": "oathcube.timelines",
    "keogram": "oathcube.views.keogram",
    "movie": "oathcube.views.movie",
    "sky_map": "oathcube.views.maps",
    "night_statistics": "oathcube.views.nights",
    "synth": "oathcube.synthetic",
}

__all__ = [
    "__version__",
    "OathcubeError",
    "Cube",
    "open_cube",
    "open_station",
    "build",
    "compute_features",
    "evaluate",
    "train",
    "ingest",
    "classify",
    "timeline",
    "keogram",
    "movie",
    "sky_map",
    "night_statistics",
    "synth",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oathcube' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
