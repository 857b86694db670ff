"""Settings travel with features and models; one Cube is passed from stage to stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from oathcube import Cube, build, classify, compute_features, ingest, train
from oathcube.cli import app
from oathcube.errors import CubeNotFoundError, FeatureError, ModelError, OathcubeError
from oathcube.features import feature_spec, spec_from_attrs
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf

PREP = RawPreparation(out_size=32)


@pytest.fixture
def cube(archive: Path, tmp_path: Path) -> str:
    return build(archive, tmp_path / "cube.zarr", progress=False, chunk_images=32)


@pytest.fixture
def station(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    write_cdf(folder, "fsmi", "2011-01-06T05:00:00", 24, size=32, seed=1)
    return folder


def test_errors_are_value_errors_and_a_missing_cube_is_file_not_found(tmp_path: Path) -> None:
    assert issubclass(OathcubeError, ValueError)
    with pytest.raises(CubeNotFoundError) as caught:
        Cube.open(tmp_path / "nowhere.zarr")
    assert isinstance(caught.value, FileNotFoundError)


def test_locations_are_normalised_once(cube: str, tmp_path: Path) -> None:
    by_url = Cube.open(f"file://{cube}")
    assert by_url.location == cube == Cube.open(Path(cube)).location
    assert Cube.open(by_url) is by_url  # a Cube handed on is not reopened
    assert Cube.open(by_url, "r+").mode == "r+"


def test_inception_spec_is_described_without_building_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import oathcube.features as registry

    monkeypatch.setattr(registry, "_CACHE", {})  # other tests may have built networks
    spec = feature_spec("inception_v4", random_weights=True, layer="PreLogitsFlatten")
    assert (spec.dim, spec.n_features, spec.variable) == ("prelogit", 1536, "features_inception_v4")
    assert spec.attrs["layer"] == "PreLogitsFlatten" and spec.attrs["random_weights"] == 1
    assert registry._CACHE == {}  # nothing was built
    with pytest.raises(FeatureError, match="layer"):
        feature_spec("inception_v4", random_weights=True, layer="Mixed_7d")


@pytest.mark.parametrize(
    ("name", "options", "defaults"),
    [
        ("handcrafted", {"hist_bins": 32, "rotate": False, "lbp_radii": (1, 3)}, {}),
        (
            "inception_v4",
            {"random_weights": True, "layer": "PreLogitsFlatten"},
            {"random_weights": True},
        ),
    ],
)
def test_an_extractor_is_rebuilt_from_its_attributes(
    name: str, options: dict, defaults: dict
) -> None:
    original = feature_spec(name, **options)
    # the attributes as a cube stores them: through JSON
    stored = json.loads(json.dumps(original.attrs))
    rebuilt = spec_from_attrs(name, stored)
    assert rebuilt.differences(original.attrs) == []
    assert (rebuilt.dim, rebuilt.n_features) == (original.dim, original.n_features)
    assert feature_spec(name, **defaults).differences(original.attrs) != []  # defaults differ


def test_other_checkpoint_is_refused_before_anything_is_computed(
    cube: str, station: Path, tmp_path: Path
) -> None:
    compute_features(cube, "handcrafted", progress=False, scheduler="synchronous")
    model = train(cube, "handcrafted")
    ingest([station], cube, preparation=PREP, progress=False)
    opened = Cube.open(cube, "r+")
    settings = opened.group(f"models/{model}").attrs
    settings["feature_settings"] = settings["feature_settings"].replace(
        '"n_annuli": 8', '"n_annuli": 4'
    )
    with pytest.raises(ModelError, match="n_annuli"):
        classify(opened, model, station="fsmi", progress=False, scheduler="synchronous")
    assert "features_handcrafted" not in opened.group("stations/fsmi")  # nothing computed


@pytest.mark.slow
def test_prelogits_model_classifies_a_new_station_without_being_told_the_layer(
    cube: str, station: Path, runner
) -> None:
    args = ["--extractor", "inception_v4", "--random-weights", "--layer", "PreLogitsFlatten"]
    out = runner.invoke(app, ["features", cube, *args, "--batch-size", "16"])
    assert out.exit_code == 0, out.output
    model = train(cube, "inception_v4", name="prelogit_class6")
    assert xr.open_zarr(cube, group=f"models/{model}").coef.shape[1] == 1536
    ingest([station], cube, preparation=PREP, progress=False)
    # No --layer and no --random-weights: both come from the model's feature settings.
    out = runner.invoke(app, ["classify", cube, "--model", model, "--station", "fsmi"])
    assert out.exit_code == 0, out.output
    fsmi = xr.open_zarr(cube, group="stations/fsmi")
    features = fsmi["features_inception_v4"]
    assert features.dims == ("time", "prelogit") and features.shape == (24, 1536)
    assert features.attrs["layer"] == "PreLogitsFlatten" and features.attrs["random_weights"] == 1
    predicted = fsmi[f"predicted_{model}"].values
    assert predicted.shape == (24,) and (predicted >= 0).all()


@pytest.mark.slow
def test_a_users_distributed_client_is_reused(cube: str) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        compute_features(cube, "handcrafted", progress=False)  # no scheduler named
        # the tasks ran on the user's cluster: its worker holds their results' history
        keys = client.run_on_scheduler(
            lambda dask_scheduler: [str(k) for k in dask_scheduler.task_prefixes]
        )
    assert any("feature_chunk" in k for k in keys), keys
    values = xr.open_zarr(cube, consolidated=False).features_handcrafted.values
    assert np.isfinite(values).all()
