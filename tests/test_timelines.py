"""timeline (oathcube.views.timelines): class counts of a classified station in time bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from oathcube import classify, compute_features, ingest, timeline, train
from oathcube.cli import app
from oathcube.rawprep import RawPreparation

PREP = RawPreparation(out_size=32)


@pytest.mark.slow
def test_classify_and_timeline(raw: Path, cube: Path, tmp_path: Path, runner) -> None:
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    ingest([raw], cube, preparation=PREP, progress=False)
    done = classify(cube, model, progress=False, scheduler="synchronous")
    assert done == {"": 90, "stations/fsmi": 60, "stations/gill": 20}
    fsmi = xr.open_zarr(cube, group="stations/fsmi")
    pred = fsmi[f"predicted_{model}"].values
    assert pred.min() >= 0 and pred.max() <= 5
    assert fsmi[f"score_{model}"].shape == (60, 6)
    np.testing.assert_array_equal(pred, fsmi[f"score_{model}"].values.argmax(1))

    result = timeline(cube, "fsmi", freq="30min", model=model)
    assert result["count"].dims == ("time", "class")
    assert int(result["n_frames"].sum()) == 60
    filled = result["n_frames"].values > 0
    assert not filled.all()  # 05:30-06:00 holds no frames: an empty bin, not a zero
    np.testing.assert_allclose(result["fraction"].sum("class").values[filled], 1.0, rtol=1e-6)
    assert np.isnan(result["fraction"].values[~filled]).all()
    counts = np.bincount(pred, minlength=6)
    np.testing.assert_array_equal(result["count"].sum("time").values, counts)

    out = runner.invoke(
        app,
        [
            "timeline",
            str(cube),
            "--station",
            "fsmi",
            "--freq",
            "30min",
            "--out",
            str(tmp_path / "t.csv"),
            "--out",
            str(tmp_path / "t.nc"),
            "--out",
            str(tmp_path / "t.png"),
        ],
    )
    assert out.exit_code == 0, out.output
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["n_frames"].sum() == 60
    assert xr.open_dataset(tmp_path / "t.nc")["count"].sum() == 60
    assert (tmp_path / "t.png").stat().st_size > 20_000

    # the labelled images of a station can be counted too
    station = str(xr.open_zarr(cube).station.values[5])
    assert int(timeline(cube, station, freq="1D", model=model)["n_frames"].sum()) > 0

    # a second run recomputes nothing and gives the same predictions
    classify(cube, model, station="fsmi", progress=False, scheduler="synchronous")
    again = xr.open_zarr(cube, group="stations/fsmi")[f"predicted_{model}"].values
    np.testing.assert_array_equal(again, pred)
