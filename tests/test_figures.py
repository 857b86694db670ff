"""Tests of the PNG figures: they are written, sized sensibly, and refuse bad input."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from oathcube.views.confusion import plot_confusion
from oathcube.views.figures import CLASS_COLORS, class_color
from oathcube.views.montage import plot_montage
from oathcube.views.timelines import plot_timeline

CLASSES = ["arc", "diffuse", "discrete", "cloudy", "moon", "clear"]


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG, after checking it is a non-blank image."""
    assert path.is_file() and path.stat().st_size > 1000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img[..., :3].std() > 0.01  # something was drawn
    return img.shape[1], img.shape[0]


def _frame(seed: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 200, (size, size), dtype=np.uint8)


def _timeline(n: int, freq: str = "10min", empty: tuple[int, ...] = ()) -> xr.Dataset:
    rng = np.random.default_rng(n)
    times = pd.date_range("2011-01-07 02:00", periods=n, freq=freq).values
    frac = rng.dirichlet(np.ones(len(CLASSES)), n)
    n_frames = np.full(n, 200)
    n_frames[list(empty)] = 0
    frac[list(empty)] = np.nan
    count = np.rint(np.nan_to_num(frac) * n_frames[:, None]).astype(int)
    return xr.Dataset(
        {
            "fraction": (("time", "class"), frac),
            "count": (("time", "class"), count),
            "n_frames": ("time", n_frames),
        },
        coords={"time": times, "class": CLASSES},
        attrs={"station": "fsmi", "freq": freq},
    )


# -- colours -------------------------------------------------------------------------------


def test_class_colors() -> None:
    assert list(CLASS_COLORS) == CLASSES
    assert len(set(CLASS_COLORS.values())) == 6
    assert class_color("noaurora") == class_color("clear") == class_color("Clear")
    assert class_color("something else", 0) not in CLASS_COLORS.values()


# -- confusion -----------------------------------------------------------------------------


def test_confusion_writes_png(tmp_path: Path) -> None:
    cm = np.array([[139, 27, 66, 0, 0, 14], [37, 222, 58, 1, 0, 16], [36, 37, 335, 3, 0, 3],
                   [0, 1, 5, 224, 3, 2], [0, 1, 3, 2, 183, 1], [7, 13, 7, 1, 1, 299]])  # fmt: skip
    out = plot_confusion(cm, CLASSES, tmp_path / "sub" / "cm.png", title="fold 5")
    assert out == tmp_path / "sub" / "cm.png"
    w, h = _png_size(out)
    assert 500 < w < 2500 and 500 < h < 2500 and 0.8 < w / h < 1.6


def test_confusion_counts_and_empty_row(tmp_path: Path) -> None:
    cm = np.array([[5, 1], [0, 0]])  # a class that never occurs: no NaN, no crash
    _png_size(plot_confusion(cm, ["aurora", "no aurora"], tmp_path / "a.png"))
    _png_size(plot_confusion(cm, ["aurora", "no aurora"], tmp_path / "b.png", normalize=False))


@pytest.mark.parametrize(
    ("matrix", "names", "match"),
    [
        (np.zeros((2, 3)), ["a", "b"], "square"),
        (np.zeros((3, 3)), ["a", "b"], "class names"),
        (np.array([[1, -1], [0, 1]]), ["a", "b"], "non-negative"),
    ],
)
def test_confusion_rejects_bad_shapes(tmp_path: Path, matrix, names, match) -> None:
    with pytest.raises(ValueError, match=match):
        plot_confusion(matrix, names, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# -- montage -------------------------------------------------------------------------------


def test_montage_writes_png_one_row_per_class(tmp_path: Path) -> None:
    images = {k: [_frame(i + 10 * j) for i in range(4)] for j, k in enumerate(CLASSES)}
    w6, h6 = _png_size(plot_montage(images, tmp_path / "m6.png", title="examples"))
    w2, h2 = _png_size(plot_montage(dict(list(images.items())[:2]), tmp_path / "m2.png"))
    assert h6 > 2 * h2 and w6 == w2  # rows follow classes, columns follow examples
    assert w6 > h6 * 0.6


def test_montage_class_without_examples_and_rgb(tmp_path: Path) -> None:
    rgb = np.repeat(_frame(1)[..., None], 3, axis=2)
    images = {"arc": [rgb, _frame(2)], "moon": [], "clear": [_frame(3)] * 20}
    _png_size(plot_montage(images, tmp_path / "m.png", max_per_class=5))


@pytest.mark.parametrize(
    "images",
    [{}, {"arc": [np.zeros(10, np.uint8)]}, {"arc": [np.zeros((4, 4, 2), np.uint8)]}],
    ids=["empty", "1d", "two-bands"],
)
def test_montage_rejects_bad_input(tmp_path: Path, images) -> None:
    with pytest.raises(ValueError):
        plot_montage(images, tmp_path / "m.png")


# -- timeline ------------------------------------------------------------------------------


def test_timeline_full(tmp_path: Path) -> None:
    tl = _timeline(60, empty=(20, 21, 22))
    times = tl["time"].values
    samples = [(times[i], _frame(i)) for i in range(0, 60, 6)]  # 10 > max 8: subsampled
    truth_t = pd.date_range(times[0], periods=600, freq="1min").values
    truth = xr.DataArray(
        np.array(CLASSES)[np.arange(600) // 100], coords={"time": truth_t}, dims="time"
    )
    w, h = _png_size(plot_timeline(tl, tmp_path / "t.png", samples=samples, truth=truth))
    w0, h0 = _png_size(plot_timeline(tl, tmp_path / "t0.png"))
    assert w > h and w == w0 and h > h0  # the thumbnail strip adds height, not width


def test_timeline_truth_as_indices_and_noaurora(tmp_path: Path) -> None:
    tl = _timeline(12)
    truth = xr.DataArray(np.arange(12) % 6, coords={"time": tl["time"].values}, dims="time")
    _png_size(plot_timeline(tl, tmp_path / "a.png", truth=truth))
    names = xr.DataArray(["noaurora", "arc"] * 6, coords={"time": tl["time"].values}, dims="time")
    _png_size(plot_timeline(tl, tmp_path / "b.png", truth=names))


@pytest.mark.parametrize(
    "timeline",
    [
        _timeline(1),  # one bin: its width comes from the freq attribute
        _timeline(5, empty=(0, 1, 2, 3, 4)),  # nothing but gaps
        _timeline(30, freq="1D", empty=(3,)),  # a season of daily bins
        _timeline(20).isel(time=[0, 1, 2, 10, 11, 19]),  # missing bins: holes
        _timeline(8).transpose("class", "time"),  # other dimension order
    ],
    ids=["one-bin", "all-empty", "daily", "holes", "transposed"],
)
def test_timeline_edge_cases(tmp_path: Path, timeline: xr.Dataset) -> None:
    samples = [(timeline["time"].values[0], np.zeros((30, 30, 3), np.uint8))]
    _png_size(plot_timeline(timeline, tmp_path / "t.png", samples=samples, title="edge"))


def test_timeline_rejects_bad_input(tmp_path: Path) -> None:
    tl = _timeline(6)
    out = tmp_path / "t.png"
    with pytest.raises(ValueError, match="n_frames"):
        plot_timeline(tl.drop_vars("n_frames"), out)
    with pytest.raises(ValueError, match="dims"):
        plot_timeline(tl.assign(n_frames=tl["count"]), out)
    with pytest.raises(ValueError, match="no time bins"):
        plot_timeline(tl.isel(time=slice(0, 0)), out)
    with pytest.raises(ValueError, match="datetime64"):
        plot_timeline(tl.assign_coords(time=np.arange(6)), out)
    with pytest.raises(ValueError, match="sample 0"):
        plot_timeline(tl, out, samples=[(tl["time"].values[0], np.zeros(5))])
    bad_truth = xr.DataArray(np.zeros((2, 3)), dims=("time", "x"))
    with pytest.raises(ValueError, match="truth"):
        plot_timeline(tl, out, truth=bad_truth)
    assert not out.exists()
