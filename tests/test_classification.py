"""classify (oathcube.classification) on ingested stations: what it refuses, and why."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr

from oathcube import classify, compute_features, ingest, timeline, train
from oathcube.errors import CubeError, ModelError
from oathcube.rawprep import RawPreparation

PREP = RawPreparation(out_size=32)


def test_clear_errors(raw: Path, cube: Path) -> None:
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    ingest([raw], cube, preparation=PREP, progress=False)
    with pytest.raises(CubeError, match="no station 'inuv'"):
        classify(cube, model, station="inuv", progress=False)
    with pytest.raises(CubeError, match="no frames between"):
        classify(cube, model, station="fsmi", start="2012-01-01", end="2012-01-02", progress=False)
    with pytest.raises(ModelError, match="no model"):
        classify(cube, "nope", progress=False)
    with pytest.raises(ModelError, match="no predictions"):
        timeline(cube, "fsmi")
    published = train(cube, "published")
    with pytest.raises(ModelError, match="published features"):
        classify(cube, published, station="fsmi", progress=False)
    settings = zarr.open_group(cube, mode="r+", use_consolidated=False)[f"models/{model}"].attrs
    settings["feature_settings"] = settings["feature_settings"].replace(
        '"hist_bins": 16', '"hist_bins": 32'
    )
    with pytest.raises(ModelError, match="hist_bins"):
        classify(cube, model, station="fsmi", progress=False, scheduler="synchronous")
