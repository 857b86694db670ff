"""The schema (oathcube.cube.schema): every variable a spec, and every writer stores its spec.

A variable created from a spec (through :meth:`Cube.create` or, for groups written with
xarray, :meth:`VariableSpec.variable`) has the spec's dims, dtype, fill value, chunks,
codecs and attributes, read back from its ``zarr.json``; the cubes the stages write hold
exactly their specs; names are read back by the schema's look-ups; docs/cube.md names
every variable of the specs; and the Cube's row methods keep the commit protocol.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oathcube import classify, compute_features, ingest, train
from oathcube.archive.orientation import ORIENTATION, RAW_ORIENTATION
from oathcube.archive.skymap import ideal_skymap
from oathcube.cube import schema
from oathcube.cube.schema import (
    VariableSpec,
    extractor_of,
    feature_sets,
    features_name,
    features_spec,
    model_group,
    model_of,
    model_specs,
    prediction_models,
    prediction_names,
    prediction_specs,
    root_specs,
    skymap_group,
    skymap_specs,
    station_group,
    station_of,
    station_specs,
    variable_path,
)
from oathcube.cube.store import Cube
from oathcube.errors import CubeError
from oathcube.features import feature_spec
from oathcube.ingestion.skymaps import store_skymaps
from oathcube.rawprep import RawPreparation

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cube.md"
PREP = RawPreparation(out_size=32)
#: Attributes that say when and by which version a variable was written, and those
#: xarray adds itself (its coordinates, its CF fill value): not the schema's business.
_NOT_SPECIFIED = ("oathcube_version", "created", "coordinates", "_FillValue")


def _json(value: Any) -> Any:
    """``value`` as a zarr.json holds it (tuples become lists, NaN the string "NaN")."""
    if isinstance(value, float) and np.isnan(value):
        return "NaN"
    return json.loads(json.dumps(value))


def _meta(cube: Path, path: str) -> dict[str, Any]:
    return json.loads((cube / path / "zarr.json").read_text())


def _check(cube: Path, path: str, spec: VariableSpec) -> None:
    """The array at ``path`` of the local ``cube`` is stored as ``spec`` says."""
    meta = _meta(cube, path)
    assert meta["node_type"] == "array", path
    assert tuple(meta.get("dimension_names") or ()) == spec.dims, path  # none: 0-d
    want = "string" if spec.dtype == "str" else np.dtype(spec.stored_dtype).name
    assert meta["data_type"] == want, path
    assert meta["fill_value"] == _json(spec.fill_value), path
    shape = tuple(meta["shape"])
    grid = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    codecs = meta["codecs"]
    if spec.rows_per_shard:
        assert grid == spec.shards(shape), path
        assert codecs[0]["name"] == "sharding_indexed", path
        inner = codecs[0]["configuration"]
        assert tuple(inner["chunk_shape"]) == spec.chunks(shape), path
        codecs = inner["codecs"]
    elif spec.chunking != "auto":
        assert grid == spec.chunks(shape), path
    if spec.compressors:
        assert [c.to_dict() for c in spec.compressors] == [
            c for c in codecs if c["name"] not in ("bytes", "vlen-utf8")
        ], path
    stored = {k: v for k, v in meta["attributes"].items() if k not in _NOT_SPECIFIED}
    wanted = {k: v for k, v in spec.stored_attrs().items() if k not in _NOT_SPECIFIED}
    # In order, too: the same specs write the same bytes.
    assert list(stored.items()) == list(_json(wanted).items()), path


def _settings(name: str) -> dict[str, Any]:
    return dict(feature_spec(name).attrs)


# -- the stages' cubes hold their specs ------------------------------------------------------


def test_the_built_cube_holds_the_root_specs(cube: Path) -> None:
    opened = Cube.open(cube)
    source = str(opened.array("split").attrs["source"])
    specs = root_specs(rows_per_chunk=32, split_source=source)
    assert sorted(specs) == sorted(name for name in opened.labelled().variables if name in specs), (
        "a root variable the build writes has no spec"
    )
    for name, spec in specs.items():
        _check(cube, name, spec)


def test_features_predictions_and_models_hold_their_specs(cube: Path) -> None:
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "published", target="class2")
    classify(cube, model, progress=False, scheduler="synchronous")
    opened = Cube.open(cube)
    features = features_spec(
        "handcrafted",
        dim="image",
        feature_dim="feature",
        rows_per_chunk=32,
        settings=_settings("handcrafted"),
    )
    _check(cube, features.name, features)
    _check(cube, "feature", schema.labels_spec("feature"))
    stored = opened.model(model)
    predicted, scores, classes = prediction_specs(
        model,
        dim="image",
        rows_per_chunk=opened.rows_per_chunk("features_published"),
        classes=stored["classes"].values,
        class_index=stored["class_index"].values,
    )
    for spec in (predicted, scores, classes):
        _check(cube, spec.name, spec)
    specs = model_specs()
    assert set(stored.variables) == {"coef", "intercept", "classes", "class_index", "train_image"}
    for name in stored.variables:
        _check(cube, f"{model_group(model)}/{name}", specs[str(name)])


def test_stations_and_skymaps_hold_their_specs(tmp_path: Path, raw: Path) -> None:
    target = tmp_path / "stations.zarr"
    ingest([raw], target, preparation=PREP, progress=False)
    store_skymaps([ideal_skymap("fsmi", 61.76, 238.77, size=32)], target)
    compute_features(target, "handcrafted", station="fsmi", progress=False, scheduler="synchronous")
    specs = station_specs(orientation=ORIENTATION, raw_orientation=RAW_ORIENTATION)
    for code in ("fsmi", "gill"):
        for name, spec in specs.items():
            _check(target, variable_path(station_group(code), name), spec)
    rows = Cube.open(target).rows_per_chunk("stations/fsmi/pixels")
    features = features_spec(
        "handcrafted",
        dim="time",
        feature_dim="feature",
        rows_per_chunk=rows,
        settings=_settings("handcrafted"),
    )
    _check(target, f"stations/fsmi/{features.name}", features)
    (name,) = Cube.open(target).group(schema.skymaps_group("fsmi")).group_keys()
    for array, spec in skymap_specs().items():
        _check(target, f"{skymap_group('fsmi', name)}/{array}", spec)


# -- specs round-trip through the Cube ------------------------------------------------------


@pytest.fixture
def empty(tmp_path: Path) -> Cube:
    return Cube.open_or_create(tmp_path / "empty.zarr", title="schema test")


def test_an_array_created_from_a_spec_has_the_specs_metadata(empty: Cube) -> None:
    station = station_group("test")
    empty.create_group(station, schema.station_attrs("test", "{}"))
    made = [
        (
            features_spec("x", dim="time", feature_dim="feature", rows_per_chunk=8),
            (20, 3),
            station,
        ),
        (
            features_spec("y", dim="image", feature_dim="logit", settings={"a": [1, 2]}),
            (5, 4),
            None,
        ),
        *(
            (spec, shape, station)
            for spec, shape in zip(
                prediction_specs(
                    "m", dim="time", rows_per_chunk=8, classes="ab", class_index=[0, 1]
                ),
                [(20,), (20, 2), (2,)],
                strict=True,
            )
        ),
        *(
            (spec, shape, station)
            for spec, shape in zip(
                station_specs(
                    orientation="o", raw_orientation={"r": "s"}, rows_per_chunk=8, rows_per_shard=16
                ).values(),
                [(0,), (0, 6, 6)],
                strict=True,
            )
        ),
        *((spec, (3, 5, 5), None) for spec in skymap_specs().values() if spec.name == "latitude"),
    ]
    for spec, shape, group in made:
        array = empty.create(spec, shape, group=group)
        assert array.shape == shape
        _check(Path(empty.location), variable_path(group, spec.name), spec)
        assert empty.dims(variable_path(group, spec.name)) == spec.dims
    assert empty.rows_per_chunk(f"{station}/pixels") == 16  # the shard: what one task writes
    with pytest.raises(CubeError, match=r"features_z of shape \(3,\).*2 dimensions"):
        empty.create(features_spec("z", dim="time", feature_dim="f"), (3,))


def test_a_dataset_written_from_specs_has_the_specs_metadata(empty: Cube) -> None:
    import xarray as xr

    specs = model_specs(layers=2)
    ds = xr.Dataset(
        {
            "coef": specs["coef"].variable(np.ones((2, 3))),
            "intercept": specs["intercept"].variable([0.5, 1.5]),
            "classes": specs["classes"].variable(["a", "b"]),
            "class_index": specs["class_index"].variable([3, 4]),
            "train_image": specs["train_image"].variable(np.arange(7)),
            "scaler_mean": specs["scaler_mean"].variable(np.zeros(3)),
            "weights_0": specs["weights_0"].variable(np.ones((3, 4))),
            "biases_0": specs["biases_0"].variable(np.ones(4)),
            "weights_1": specs["weights_1"].variable(np.ones((4, 1))),
            "biases_1": specs["biases_1"].variable(np.ones(1)),
            "booster": specs["booster"].variable("tree=0\n"),
        }
    )
    assert ds["weights_1"].dims == ("units_1", "output")
    empty.write_dataset(ds, model_group("m"))
    for name in ds.variables:
        _check(Path(empty.location), f"{model_group('m')}/{name}", specs[str(name)])
    back = empty.dataset(model_group("m"), live=True)
    assert back["classes"].values.tolist() == ["a", "b"]
    assert back["booster"].values.item() == "tree=0\n"
    assert back["class_index"].dtype == np.int8

    root = root_specs(rows_per_chunk=2, split_source="s")
    times = np.array(["2011-01-06T05:00:00.000001", "NaT", "2011-01-06T05:00:03"], "M8[ns]")
    labelled = xr.Dataset(
        {"pixels": root["pixels"].variable(np.zeros((3, 4, 4), np.uint8))},
        coords={"time": root["time"].variable(times)},
    )
    empty.write_dataset(labelled, "labelled")
    for name in ("pixels", "time"):
        _check(Path(empty.location), f"labelled/{name}", root[name])
    back = empty.dataset("labelled", live=True)
    np.testing.assert_array_equal(back["time"].values, times)


def test_a_spec_is_frozen() -> None:
    spec = features_spec("x", dim="time", feature_dim="feature", settings={"a": 1})
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.attrs["a"] = 2  # type: ignore[index]
    assert spec.with_attrs(b=2).attrs == {"a": 1, "long_name": "x features of pixels", "b": 2}
    assert spec.with_rows(4).chunks((10, 3)) == (4, 3)
    assert spec.stored_attrs()["oathcube_version"]  # computed variables record who wrote them


# -- the Cube's row methods -----------------------------------------------------------------


def test_rows_are_committed_repaired_and_read_through_the_cube(empty: Cube) -> None:
    group = station_group("test")
    empty.create_group(group, schema.station_attrs("test", "{}"))
    specs = station_specs(orientation="o", raw_orientation="r", rows_per_chunk=4)
    empty.create(specs["time"], (0,), group=group)
    empty.create(specs["pixels"], (0, 2, 2), group=group)
    assert empty.committed_rows(group) == 0
    assert empty.attr_list(group, "sources") == []

    # An append: planned, extended, written, committed in one metadata write.
    empty.plan_rows(group, {"rows": [0, 6]})
    empty.extend_rows(group, 6)
    stamps = np.datetime64("2011-01-06T05:00:00", "us") + np.arange(6) * np.timedelta64(3, "s")
    empty.write_rows(f"{group}/time", 0, stamps.astype(np.int64))
    frames = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    assert empty.write_rows(f"{group}/pixels", 0, frames) == 6
    assert empty.pending(group) == {"rows": [0, 6]}
    empty.commit_rows(group, 6, sources=["a.cdf"])
    assert empty.pending(group) is None
    assert empty.committed_rows(group) == 6
    assert empty.attr_list(group, "sources") == ["a.cdf"]
    np.testing.assert_array_equal(empty.read_times(group), stamps.astype("M8[ns]"))
    np.testing.assert_array_equal(empty.read_times(group, 3, 1), stamps[1:3].astype("M8[ns]"))
    np.testing.assert_array_equal(empty.read_rows(f"{group}/pixels", 2, 4), frames[2:4])
    np.testing.assert_array_equal(empty.read_checked(f"{group}/pixels", [5, 0]), frames[[5, 0]])

    # Rows a killed writer never committed are dropped by the next writer.
    empty.extend_rows(group, 9)
    assert empty.repair_rows(group) == 6
    assert empty.array(f"{group}/pixels").shape == (6, 2, 2)

    # A chunk missing from the store is damage where data must be whole.
    (Path(empty.location) / group / "pixels" / "c" / "1" / "0" / "0").unlink()
    with pytest.raises(CubeError, match="chunk c/1/0/0 of stations/test/pixels is missing"):
        empty.read_checked(f"{group}/pixels", [5])
    assert empty.read_rows(f"{group}/pixels", 4, 6).tolist() == [[[0, 0], [0, 0]]] * 2

    empty.mark_building(group)
    assert empty.status_of(group) == schema.BUILDING
    empty.mark_complete(group)
    assert empty.status_of(group) == schema.COMPLETE


def test_a_read_only_cube_refuses_row_writes(empty: Cube) -> None:
    empty.create(features_spec("x", dim="image", feature_dim="f"), (4, 2))
    empty.publish()
    reader = Cube.open(empty.location, complete=False)
    with pytest.raises(CubeError, match="read-only"):
        reader.write_rows("features_x", 0, np.zeros((1, 2), np.float32))
    with pytest.raises(CubeError, match="read-only"):
        reader.create(features_spec("y", dim="image", feature_dim="f"), (4, 2))


# -- names, and names read back ----------------------------------------------------------------


def test_names_are_built_and_read_back_by_the_schema() -> None:
    assert features_name("handcrafted") == "features_handcrafted"
    assert extractor_of("features_inception_v4") == "inception_v4"
    assert extractor_of("handcrafted") is None and extractor_of("features_") is None
    pred, score, classes = prediction_names("hc_class6")
    assert (pred, score, classes) == ("predicted_hc_class6", "score_hc_class6", "class_hc_class6")
    assert {model_of(n) for n in (pred, score, classes)} == {"hc_class6"}
    assert model_of("class6") is None and model_of("pixels") is None
    names = [
        "pixels",
        "features_published",
        "features_handcrafted",
        "feature",
        pred,
        score,
        classes,
        "predicted_other",
        "class6",
    ]
    assert feature_sets(names) == ["handcrafted", "published"]
    assert prediction_models(names) == ["hc_class6", "other"]
    assert station_of(station_group("fsmi")) == "fsmi"
    assert station_of(skymap_group("gako", "20110305T08")) == "gako"
    assert (
        skymap_group("gako", "x")
        == f"{schema.skymaps_group('gako')}/x"
        == "stations/gako/skymaps/x"
    )
    assert station_of(None) is None and station_of("") is None
    assert station_of(model_group("m")) is None and station_of("stations") is None
    assert variable_path(None, "pixels") == "pixels"
    assert variable_path("stations/fsmi", "pixels") == "stations/fsmi/pixels"


# -- docs/cube.md ------------------------------------------------------------------------------


def _documented(group: str) -> set[str]:
    """Names in the first column of the tables of the section of docs/cube.md about ``group``."""
    text = DOCS.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    if group:
        heading = f"`{group}`"
        (section,) = [s for s in sections if s.splitlines()[0].startswith(heading)]
    else:
        (section,) = [s for s in sections if s.startswith("Root group")]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_docs_name_every_variable_of_the_specs() -> None:
    catalogue = schema.catalogue()
    assert set(catalogue) == {
        "",
        "stations/<code>",
        "stations/<code>/skymaps/<YYYYMMDDTHH>",
        "models/<name>",
    }
    missing = {
        group or "(root)": sorted({s.name for s in specs} - _documented(group))
        for group, specs in catalogue.items()
    }
    assert missing == {group: [] for group in missing}, "docs/cube.md lacks these variables"
