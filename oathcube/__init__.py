"""oathcube: auroral all-sky image archives as chunked Zarr cubes.

The public API is flat: every name a Python user needs to fetch, build, compute features,
evaluate, train, ingest, classify and draw is here, each a stage of the one-way flow
archive -> cube -> features -> model -> classify -> views (docs/api.md shows one example
of each).  Names are resolved on first use (PEP 562), so that ``import oathcube`` (and
the command line's ``--help``) imports none of xarray, dask, zarr, scikit-learn,
matplotlib or TensorFlow; the errors are imported at once (they cost nothing).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ArchiveError as ArchiveError
from .errors import CheckpointError as CheckpointError
from .errors import CubeError as CubeError
from .errors import CubeExistsError as CubeExistsError
from .errors import CubeNotFoundError as CubeNotFoundError
from .errors import ExistsError as ExistsError
from .errors import FeatureError as FeatureError
from .errors import FetchError as FetchError
from .errors import IngestError as IngestError
from .errors import ModelError as ModelError
from .errors import OathcubeError as OathcubeError
from .errors import OptionError as OptionError
from .errors import __all__ as _ERROR_NAMES

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from ._version import __version__ as __version__
    from .benchmarks import Benchmark as Benchmark
    from .benchmarks import benchmark as benchmark
    from .browser.widget import browse as browse
    from .classification import classify as classify
    from .cube.store import Cube as Cube
    from .cube.store import CubeLike as CubeLike
    from .cube.store import open_cube as open_cube
    from .cube.store import open_station as open_station
    from .demo import run_demo as run_demo
    from .features import AuroraFMSettings as AuroraFMSettings
    from .features import FeatureExtractor as FeatureExtractor
    from .features import FeatureSpec as FeatureSpec
    from .features import HandcraftedSettings as HandcraftedSettings
    from .features import InceptionV4Settings as InceptionV4Settings
    from .features import extractor_names as extractor_names
    from .features import feature_spec as feature_spec
    from .features.compute import compute_features as compute_features
    from .fetch import AsiFetch as AsiFetch
    from .fetch import AsiRequest as AsiRequest
    from .fetch import ThemisFetch as ThemisFetch
    from .fetch import fetch_asi as fetch_asi
    from .fetch import fetch_aurora_fm as fetch_aurora_fm
    from .fetch import fetch_checkpoint as fetch_checkpoint
    from .fetch import fetch_oath as fetch_oath
    from .fetch import fetch_themis as fetch_themis
    from .ingestion.labelled import build as build
    from .ingestion.stations import ingest as ingest
    from .memory import MemoryBoundError as MemoryBoundError
    from .model import Evaluation as Evaluation
    from .model import evaluate as evaluate
    from .model import train as train
    from .rawprep import RawPreparation as RawPreparation
    from .similarity import similar as similar
    from .similarity_index import build_index as build_index
    from .synthetic import station_night as station_night
    from .synthetic import synth as synth
    from .views.confusion import plot_confusion as plot_confusion
    from .views.info import describe as describe
    from .views.info import montage_images as montage_images
    from .views.keograms import keogram as keogram
    from .views.keograms import plot_keogram as plot_keogram
    from .views.keograms import write_keogram as write_keogram
    from .views.maps import plot_map as plot_map
    from .views.maps import sky_map as sky_map
    from .views.maps import write_map as write_map
    from .views.montage import plot_montage as plot_montage
    from .views.movies import movie as movie
    from .views.nights import night_statistics as night_statistics
    from .views.nights import plot_nights as plot_nights
    from .views.nights import write_nights as write_nights
    from .views.timelines import timeline as timeline
    from .views.timelines import write_timeline as write_timeline

#: public name -> module that defines it (imported on first use of the name)
_LAZY: dict[str, str] = {
    "__version__": "oathcube._version",
    # archives: downloads and synthetic ones
    "fetch_oath": "oathcube.fetch",
    "fetch_checkpoint": "oathcube.fetch",
    "fetch_aurora_fm": "oathcube.fetch",
    "fetch_asi": "oathcube.fetch",
    "AsiFetch": "oathcube.fetch",
    "AsiRequest": "oathcube.fetch",
    "fetch_themis": "oathcube.fetch",
    "ThemisFetch": "oathcube.fetch",
    "synth": "oathcube.synthetic",
    "station_night": "oathcube.synthetic",
    "RawPreparation": "oathcube.rawprep",
    # the cube
    "Cube": "oathcube.cube.store",
    "CubeLike": "oathcube.cube.store",
    "open_cube": "oathcube.cube.store",
    "open_station": "oathcube.cube.store",
    # features
    "FeatureSpec": "oathcube.features",
    "HandcraftedSettings": "oathcube.features",
    "InceptionV4Settings": "oathcube.features",
    "AuroraFMSettings": "oathcube.features",
    "FeatureExtractor": "oathcube.features",
    "feature_spec": "oathcube.features",
    "extractor_names": "oathcube.features",
    "compute_features": "oathcube.features.compute",
    # archives into cubes
    "build": "oathcube.ingestion.labelled",
    "ingest": "oathcube.ingestion.stations",
    # ridge models
    "Evaluation": "oathcube.model",
    "evaluate": "oathcube.model",
    "train": "oathcube.model",
    # every feature set x classifier in one table
    "benchmark": "oathcube.benchmarks",
    "Benchmark": "oathcube.benchmarks",
    # models applied over time
    "classify": "oathcube.classification",
    "timeline": "oathcube.views.timelines",
    # frames like a query frame
    "similar": "oathcube.similarity",
    "build_index": "oathcube.similarity_index",
    # a page over nights, classes, frames and similar skies (a notebook widget)
    "browse": "oathcube.browser.widget",
    # pictures and summaries
    "describe": "oathcube.views.info",
    "montage_images": "oathcube.views.info",
    "plot_confusion": "oathcube.views.confusion",
    "plot_montage": "oathcube.views.montage",
    "write_timeline": "oathcube.views.timelines",
    # views of classified stations
    "keogram": "oathcube.views.keograms",
    "plot_keogram": "oathcube.views.keograms",
    "write_keogram": "oathcube.views.keograms",
    "movie": "oathcube.views.movies",
    "sky_map": "oathcube.views.maps",
    "plot_map": "oathcube.views.maps",
    "write_map": "oathcube.views.maps",
    "night_statistics": "oathcube.views.nights",
    "plot_nights": "oathcube.views.nights",
    "write_nights": "oathcube.views.nights",
    # end to end
    "run_demo": "oathcube.demo",
    # the one error that is not in oathcube.errors (it is also a MemoryError)
    "MemoryBoundError": "oathcube.memory",
}

#: In the order of docs/api.md's sections.
__all__ = [
    "__version__",
    # fetch
    "fetch_oath",
    "fetch_checkpoint",
    "fetch_aurora_fm",
    "fetch_asi",
    "AsiFetch",
    "fetch_themis",
    "ThemisFetch",
    "AsiRequest",
    # synthetic archives
    "synth",
    "station_night",
    # build
    "build",
    # features
    "feature_spec",
    "FeatureSpec",
    "HandcraftedSettings",
    "InceptionV4Settings",
    "AuroraFMSettings",
    "FeatureExtractor",
    "extractor_names",
    "compute_features",
    # evaluate and train
    "evaluate",
    "Evaluation",
    "benchmark",
    "Benchmark",
    "train",
    # ingest
    "ingest",
    "RawPreparation",
    # classify
    "classify",
    # the cube
    "Cube",
    "CubeLike",
    "open_cube",
    "open_station",
    "similar",
    "build_index",
    "browse",
    "describe",
    "montage_images",
    # draw
    "plot_confusion",
    "plot_montage",
    "timeline",
    "write_timeline",
    "keogram",
    "plot_keogram",
    "write_keogram",
    "movie",
    "sky_map",
    "plot_map",
    "write_map",
    "night_statistics",
    "plot_nights",
    "write_nights",
    # end to end
    "run_demo",
    # errors: the whole family (imported above), and the memory bound (lazy)
    *_ERROR_NAMES,
    "MemoryBoundError",
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
