"""The repository's promises to users: the intake catalog and the conda environment."""

from __future__ import annotations

import re
import shutil
import tomllib
import warnings
from pathlib import Path

import intake
import pytest
import xarray as xr
import yaml

from oathcube import build

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_pyproject_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert conda == pip_names


@pytest.fixture
def catalog(tmp_path: Path, archive: Path) -> Path:
    """catalog.yaml in a folder whose oathcube-demo/oath.zarr exists, as after the demo."""
    shutil.copy(ROOT / "catalog.yaml", tmp_path / "catalog.yaml")
    build(archive, tmp_path / "oathcube-demo" / "oath.zarr", progress=False)
    return tmp_path / "catalog.yaml"


def test_catalog_opens_the_demo_cube_and_any_cube_by_path(
    catalog: Path, archive: Path, tmp_path: Path
) -> None:
    demo_path = catalog.parent / "oathcube-demo" / "oath.zarr"
    # A second cube from a copy of the archive elsewhere, with other chunks: its attrs
    # (source_path) and encoding differ from the demo cube's.
    elsewhere = shutil.copytree(archive, tmp_path / "elsewhere" / "oath")
    other = Path(build(elsewhere, tmp_path / "other.zarr", progress=False, chunk_images=16))
    direct = {p: xr.open_zarr(p).attrs for p in (demo_path, other)}
    assert direct[demo_path] != direct[other]
    with warnings.catch_warnings():
        # intake 2.0.9 warns about shell expansion for every parameter it fills in.
        warnings.filterwarnings("ignore", message="Shell command not executed")
        cat = intake.open_catalog(str(catalog))
        assert {"demo_cube", "cube"} <= set(cat)
        demo = cat.demo_cube.to_dask()
        # The idiom of catalog.yaml, twice on the same catalog: each path reaches the source.
        mine = cat(path=str(other)).cube.to_dask()
        again = cat(path=str(demo_path)).cube.to_dask()
        with pytest.raises(FileNotFoundError):
            cat(path=str(tmp_path / "missing.zarr")).cube.to_dask()
    assert demo.sizes["image"] == 90 and demo.pixels.dtype == "uint8"
    assert demo.attrs == direct[demo_path]
    assert mine.attrs == direct[other] and again.attrs == direct[demo_path]
    assert mine.pixels.encoding["chunks"][0] == 16
    assert again.pixels.encoding["chunks"][0] == demo.pixels.encoding["chunks"][0] != 16


def test_the_command_line_says_its_version(runner) -> None:
    from oathcube import __version__
    from oathcube.cli import app

    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"oathcube {__version__}"
