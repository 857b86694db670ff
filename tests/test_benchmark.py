"""Every feature set x classifier in one table: the oath and station protocols, the
outputs, and one-line refusals before any fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import oathcube.model as model_module
from oathcube import Benchmark, benchmark, evaluate
from oathcube.benchmarks import COLUMNS, MIN_STATION_IMAGES, plan_stations, stations_path
from oathcube.cli import app
from oathcube.errors import CubeError, OptionError
from oathcube.labels import TRAIN_FRACTION, class_names

CLASSES = list(class_names("class6"))
#: Station -> (images per class 0..4, images of class 5, where its class signal is).
#: ``odd`` shows its class in other feature columns than every other station does, so a
#: model that never saw it cannot tell its classes apart; ``lone`` alone has class 5
#: (noaurora); ``tiny`` has fewer than MIN_STATION_IMAGES images.
STATIONS = {
    "aaaa": (8, 0, 0),
    "bbbb": (8, 0, 0),
    "odd": (8, 0, 6),
    "tiny": (2, 0, 0),
    "lone": (4, 8, 0),
    "unknown": (1, 0, 0),
}
N_SIGNAL = 12


def _stations_dataset(seed: int = 0) -> xr.Dataset:
    """Labelled images of six stations (see STATIONS) with two feature sets and a split."""
    rng = np.random.default_rng(seed)
    stations: list[str] = []
    labels: list[int] = []
    shift: list[int] = []
    for code, (per_class, n_lone, offset) in STATIONS.items():
        for c in range(5):
            stations += [code] * per_class
            labels += [c] * per_class
            shift += [offset] * per_class
        stations += [code] * n_lone
        labels += [5] * n_lone
        shift += [offset] * n_lone
    y = np.array(labels, dtype=np.int8)
    n = len(y)
    X = rng.normal(0.0, 1.0, (n, N_SIGNAL))
    X[np.arange(n), y + np.array(shift)] += 6.0
    # A second set: the same signal in fewer columns, with more noise.
    other = X[:, :N_SIGNAL] + rng.normal(0.0, 1.5, (n, N_SIGNAL))
    split = np.stack([rng.permutation(n) for _ in range(5)]).astype(np.int32)
    return xr.Dataset(
        {
            "class6": ("image", y),
            "class2": ("image", (y > 2).astype(np.int8)),
            "split": (("fold", "rank"), split),
            "features_published": (("image", "logit"), X.astype(np.float32)),
            "features_handcrafted": (("image", "handcrafted"), other.astype(np.float32)),
        },
        coords={"station": ("image", np.array(stations, dtype=object))},
    )


@pytest.fixture(scope="module")
def stations_ds() -> xr.Dataset:
    return _stations_dataset()


@pytest.fixture(scope="module")
def cube(cube_factory) -> Path:
    """The session's 90-image synthetic cube, read only (benchmark never writes)."""
    return cube_factory.template(None)


@pytest.fixture
def no_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any fit fails the test: what is refused must be refused before the first fit."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a classifier was fitted")

    monkeypatch.setattr(model_module, "fit_classifier", refuse)


def _one_line(err: pytest.ExceptionInfo[Exception]) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------------- the table
def test_one_row_per_pair_with_the_columns(stations_ds: xr.Dataset) -> None:
    result = benchmark(stations_ds, classifiers=["ridge", "logistic", "knn"])
    table = result.table
    assert list(table.columns) == list(COLUMNS)
    # every feature set the images have (sorted), then the classifiers in the order given
    assert list(zip(table["features"], table["classifier"], strict=True)) == [
        (f, c) for f in ("handcrafted", "published") for c in ("ridge", "logistic", "knn")
    ]
    assert (table["protocol"] == "oath").all() and (table["target"] == "class6").all()
    assert (table["n_folds"] == 5).all()
    assert table["accuracy_mean"].between(0, 1).all() and table["macro_f1"].between(0, 1).all()
    assert (table["accuracy_std"] >= 0).all() and table["aurora_tpr"].between(0, 1).all()
    assert (table["fit_seconds"] > 0).all() and (table["predict_us_per_frame"] > 0).all()
    ridge = table[table["classifier"] == "ridge"]
    assert (ridge["chosen"] == "alpha=0.03").all()
    for text in table.loc[table["classifier"] == "logistic", "chosen"]:
        shares = [int(part.rsplit("(", 1)[1].split("/")[0]) for part in text.split("; ")]
        assert text.startswith("C=") and sum(shares) == 5, text
    assert result.stations is None and result.skipped == [] and result.min_images is None
    assert "cores" in result.cpu and result.source is None


def test_oath_ridge_row_is_evaluates(cube: Path) -> None:
    result = evaluate(cube)
    row = benchmark(cube, "published", "ridge").table.iloc[0]
    assert row["accuracy_mean"] == result.accuracy_mean  # exactly: the same fits
    assert row["accuracy_std"] == result.accuracy_std
    assert row["macro_f1"] == pytest.approx(np.mean(result.fold_macro_f1), abs=1e-15)
    assert row["aurora_tpr"] == pytest.approx(np.mean(result.fold_aurora_tpr), abs=1e-15)
    assert result.aurora_tpr == result.fold_aurora_tpr[-1]
    # evaluate now times each fold's fit and prediction
    assert len(result.fit_seconds) == len(result.predict_seconds) == 5
    assert all(s > 0 for s in result.fit_seconds + result.predict_seconds)
    as_dict = result.to_dict()
    assert as_dict["fit_seconds"] == result.fit_seconds
    assert as_dict["predict_seconds"] == result.predict_seconds
    assert len(as_dict["fold_aurora_true_positive_rate"]) == 5


# ------------------------------------------------------------------ station protocol
def test_station_protocol_on_stations_that_differ(stations_ds: xr.Dataset) -> None:
    oath = benchmark(stations_ds, "published", "ridge").table.iloc[0]
    result = benchmark(stations_ds, "published", ["ridge", "logistic"], protocol="station")
    assert result.protocol == "station" and result.min_images == MIN_STATION_IMAGES
    stations = result.stations
    assert stations is not None
    held = stations[stations["skipped"] == ""]
    # held out: the three stations with enough images whose classes others have too
    assert sorted(set(held["station"])) == ["aaaa", "bbbb", "odd"]
    assert len(held) == 3 * 2  # stations x classifiers
    ridge = held[held["classifier"] == "ridge"].set_index("station")
    # A station seen in training scores high under the oath protocol's random splits; held
    # out, the station whose images differ is near chance while the others stay high.
    assert oath["accuracy_mean"] > 0.85
    assert ridge.loc["odd", "accuracy"] < 0.5
    assert ridge.loc["aaaa", "accuracy"] > 0.85 and ridge.loc["bbbb", "accuracy"] > 0.85
    n = stations_ds.sizes["image"]
    for code in ("aaaa", "bbbb", "odd"):
        truth = stations_ds["class6"].values[stations_ds["station"].values == code]
        assert ridge.loc[code, "n_images"] == len(truth) == 40
        # every other image trains, the unknown station's among them
        assert ridge.loc[code, "n_train"] == n - 40
        assert [ridge.loc[code, f"n_{c}"] for c in CLASSES] == [8, 8, 8, 8, 8, 0]
    # the table's row is the mean and population std over the held-out stations
    for name in ("ridge", "logistic"):
        row = result.table.set_index("classifier").loc[name]
        rows = held[held["classifier"] == name]
        assert row["n_folds"] == 3 and row["protocol"] == "station"
        assert row["accuracy_mean"] == pytest.approx(np.mean(rows["accuracy"]), abs=1e-15)
        assert row["accuracy_std"] == pytest.approx(np.std(rows["accuracy"]), abs=1e-15)
        assert row["macro_f1"] == pytest.approx(np.mean(rows["macro_f1"]), abs=1e-15)
        assert row["fit_seconds"] == pytest.approx(np.mean(rows["fit_seconds"]), abs=1e-15)
    # the others are reported with their reason, never dropped silently
    reasons = dict(result.skipped)
    assert list(reasons) == ["lone", "tiny", "unknown"]
    assert reasons["tiny"] == f"10 images, fewer than min_images ({MIN_STATION_IMAGES})"
    assert reasons["lone"].startswith("class noaurora in its images and in no other station's")
    assert reasons["unknown"].startswith("station not recorded: its 5 image(s) train every fold")
    skipped_rows = stations[stations["skipped"] != ""].set_index("station")
    assert sorted(skipped_rows.index) == ["lone", "tiny", "unknown"]
    assert skipped_rows["accuracy"].isna().all()
    assert (
        skipped_rows.loc["lone", "n_noaurora"] == 8 and skipped_rows.loc["tiny", "n_images"] == 10
    )


def test_min_images_and_the_unknown_station(stations_ds: xr.Dataset) -> None:
    result = benchmark(stations_ds, "published", "ridge", protocol="station", min_images=5)
    assert result.stations is not None
    held = set(result.stations.loc[result.stations["skipped"] == "", "station"])
    assert held == {"aaaa", "bbbb", "odd", "tiny"}
    # 'unknown' is never held out, however many images it has
    assert [code for code, _ in result.skipped] == ["lone", "unknown"]
    codes = np.array(["unknown"] * 50 + ["x"] * 30)
    held_codes, skipped = plan_stations(codes, np.arange(80) % 2, ["a", "b"], 1)
    assert held_codes == ["x"] and [code for code, _ in skipped] == ["unknown"]


def test_every_station_skipped_is_one_line(stations_ds: xr.Dataset, no_fit: None) -> None:
    with pytest.raises(CubeError, match="no station can be held out: aaaa: 40 images") as err:
        benchmark(stations_ds, "published", "ridge", protocol="station", min_images=41)
    text = _one_line(err)
    for code in STATIONS:
        assert f"{code}: " in text


def test_why_a_station_is_not_held_out() -> None:
    # a: x and y; b: z alone; c: x, y and w
    y = np.array([0, 1] * 15 + [2] * 25 + [0, 1, 3] * 10)
    codes = np.array(["a"] * 30 + ["b"] * 25 + ["c"] * 30)
    held, skipped = plan_stations(codes, y, ["x", "y", "z", "w"], 20)
    assert held == ["a"]
    assert skipped == [
        (
            "b",
            "class z in its images and in no other station's: a model trained without it "
            "could never predict it",
        ),
        ("c", "class w in its images and in no other station's: a model trained without it "
         "could never predict it"),
    ]  # fmt: skip
    held, skipped = plan_stations(codes[:55], y[:55], ["x", "y", "z"], 20)
    assert held == [] and skipped[0] == ("a", "the other stations' images are all of one class")
    assert skipped[1][1].startswith("class z in its images")
    two = plan_stations(np.array(["a"] * 30 + ["b"] * 30), np.array([0, 1, 2] * 20), "xyz", 20)
    assert two == (["a", "b"], [])


# --------------------------------------------------------------------------- outputs
def test_outputs_csv_markdown_png(stations_ds: xr.Dataset, tmp_path: Path) -> None:
    result = benchmark(stations_ds, "published", ["ridge", "knn"], protocol="station")
    csv, md, png = tmp_path / "t.csv", tmp_path / "out" / "t.md", tmp_path / "t.png"
    assert result.write(csv) == [csv, stations_path(csv)]
    assert stations_path(csv) == tmp_path / "t.stations.csv"
    table = pd.read_csv(csv)
    assert list(table.columns) == [*COLUMNS, "cpu"] and len(table) == 2
    assert (table["cpu"] == result.cpu).all()
    np.testing.assert_allclose(table["accuracy_mean"], result.table["accuracy_mean"])
    per_station = pd.read_csv(stations_path(csv), keep_default_na=False)
    assert set(per_station["station"]) == set(STATIONS)
    assert result.write(md) == [md]
    text = md.read_text()
    assert text.startswith("# Benchmark: station protocol, target class6\n")
    assert result.markdown_table() in text and f"CPU: {result.cpu}" in text
    assert "| features | classifier | protocol |" in text and "## Per held-out station" in text
    assert "- `tiny`: 10 images, fewer than min_images (20)" in text
    assert result.write(png) == [png]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # written under a temporary name and renamed: nothing else is left beside them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "t.csv", "t.png", "t.stations.csv"]
    with pytest.raises(OptionError, match="unknown file kind '.txt'"):
        result.write(tmp_path / "t.txt")
    assert not (tmp_path / "t.txt").exists()


def test_markdown_table_is_plain() -> None:
    table = pd.DataFrame(
        [["published", "knn", 0.5, float("nan"), 1234.4, 0.0123, "a|b"]],
        columns=["features", "classifier", "accuracy_mean", "aurora_tpr", "fit_seconds",
                 "predict_us_per_frame", "chosen"],
    )  # fmt: skip
    text = Benchmark(table, "oath", "class6", "cpu").markdown_table()
    assert text.splitlines() == [
        "| features | classifier | accuracy_mean | aurora_tpr | fit_seconds "
        "| predict_us_per_frame | chosen |",
        "|---|---|---:|---:|---:|---:|---|",
        "| published | knn | 0.500 | n/a | 1234 | 0.0123 | a\\|b |",
    ]


# ----------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"classifiers": "ridge,xgboost"}, OptionError,
         r"^classifiers: unknown classifier 'xgboost' \(expected names of ridge, logistic"),
        ({"protocol": "stations"}, OptionError, r"^protocol: unknown protocol 'stations'"),
        ({"target": "class3"}, OptionError, r"^target: unknown target 'class3'"),
        ({"features": "published,,x"}, OptionError, r"^features: `features` .* an empty name"),
        ({"min_images": 5}, OptionError, r"^min_images: `min_images` 5 with `protocol` 'oath'"),
        ({"protocol": "station", "min_images": 0}, OptionError, r"^min_images: `min_images` 0"),
    ],
)  # fmt: skip
def test_options_are_refused_before_the_cube_is_opened(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as err:
        benchmark("no/such/cube.zarr", **kwargs)
    _one_line(err)


def test_a_missing_feature_set_is_one_line(stations_ds: xr.Dataset, no_fit: None) -> None:
    with pytest.raises(CubeError, match="no features called 'inception_v4', 'nope'") as err:
        benchmark(stations_ds, ["published", "inception_v4", "nope"], "ridge")
    text = _one_line(err)
    assert "expected one of handcrafted, published" in text and "`oathcube features`" in text


def test_too_few_images_for_a_search_before_any_fit(stations_ds: xr.Dataset, no_fit: None) -> None:
    small = stations_ds.isel(image=slice(0, 30)).drop_vars("split")
    small["split"] = (("fold", "rank"), np.stack([np.arange(30)[::-1]] * 5))
    with pytest.raises(OptionError, match="21 training images are too few for mlp's search"):
        benchmark(small, "published", ["ridge", "mlp"])


def _leaky(split: np.ndarray, n: int, fold: int, repeat_in_training: bool = False) -> np.ndarray:
    out = split.copy()
    ntrain = round(TRAIN_FRACTION * n)
    # a training image again at a test position, or twice among the training positions
    out[fold, 1 if repeat_in_training else ntrain] = out[fold, 0]
    return out


@pytest.mark.parametrize(
    ("repeat_in_training", "match"),
    [
        (False, r"fold 2 of the split leaks: image index \d+ is at a training and a test "),
        (True, r"fold 2 of the split repeats image index \d+"),
    ],
)
def test_a_split_that_leaks_is_refused_before_any_fit(
    stations_ds: xr.Dataset, no_fit: None, repeat_in_training: bool, match: str
) -> None:
    n = stations_ds.sizes["image"]
    ds = stations_ds.copy()
    ds["split"] = (("fold", "rank"), _leaky(ds["split"].values, n, 2, repeat_in_training))
    for run in (lambda: evaluate(ds), lambda: benchmark(ds, "published", "ridge")):
        with pytest.raises(CubeError, match=match) as err:
            run()
        assert _one_line(err).startswith("split: fold 2 of the split")


# ------------------------------------------------------------------------------- CLI
def test_cli_runs_and_writes(cube: Path, runner, tmp_path: Path) -> None:
    out = tmp_path / "table.csv"
    result = runner.invoke(
        app, ["benchmark", str(cube), "--classifiers", "ridge", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Benchmark: oath protocol, target class6" in result.output
    assert "| published | ridge | oath | class6 | 5 |" in result.output
    assert "[1/1] published x ridge: accuracy" in result.output  # progress, on stderr
    assert f"written: {out}" in result.output
    assert pd.read_csv(out)["accuracy_mean"][0] == evaluate(cube).accuracy_mean
    md = tmp_path / "stations.md"
    args = ["--classifiers", "ridge", "--protocol", "station", "--out", str(md)]
    result = runner.invoke(app, ["benchmark", str(cube), *args])
    assert result.exit_code == 0, result.output
    assert "stations not held out:\n  unknown: station not recorded" in result.output
    assert "## Per held-out station" in md.read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--classifiers", "ridge,nope"], "--classifiers: unknown classifier 'nope' (expected "),
        (["--protocol", "year"], "--protocol: unknown protocol 'year' (expected oath "),
        (["--features", "inception_v4"], "no features called 'inception_v4' (expected one of "
         "published (compute them with `oathcube features`))"),
        (["--min-images", "5"], "--min-images: --min-images 5 with --protocol 'oath'"),
        (["--protocol", "station", "--min-images", "1000"], "no station can be held out: "),
        (["--protocol", "station", "--classifiers", "mlp", "--min-images", "50"], None),
    ],
)  # fmt: skip
def test_cli_bad_values_are_one_line_and_write_nothing(
    cube: Path, runner, tmp_path: Path, args: list[str], expected: str | None
) -> None:
    out = tmp_path / "t.md"
    result = runner.invoke(app, ["benchmark", str(cube), *args, "--out", str(out)])
    if expected is None:  # the control: a run that works writes its file
        assert result.exit_code == 0, result.output
        assert out.exists()
        return
    assert result.exit_code == 1
    assert result.output.startswith("oathcube: error: ") and result.output.count("\n") == 1
    assert expected in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_suffix_and_a_leaking_split(make_cube, runner, tmp_path: Path) -> None:
    cube = make_cube()
    bad = runner.invoke(app, ["benchmark", str(cube), "--out", str(tmp_path / "t.txt")])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert (
        bad.output.startswith("oathcube: error: --out: ")
        and "unknown file kind '.txt'" in bad.output
    )
    split = zarr.open_array(str(cube), path="split", mode="r+")
    split[...] = _leaky(split[...], split.shape[1], 2)
    out = tmp_path / "t.csv"
    result = runner.invoke(
        app, ["benchmark", str(cube), "--classifiers", "ridge", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"oathcube: error: {cube} [split]: fold 2 of the split leaks")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "t.txt").exists()
