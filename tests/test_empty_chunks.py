"""Every chunk is written, even one equal to the fill value, without touching zarr's config.

A chunk missing from the store must always mean damage (the chunk check refuses it), so
oathcube's writers store chunks that equal the fill value too (dark frames prepared to
zeros, a fold of zeros).  That is asked of each array as it is opened for writing, as
xarray's zarr backend does, not set in zarr's global config for the user's process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import zarr

from oathcube import Cube, ingest
from oathcube.rawprep import RawPreparation
from oathcube.synthetic.themis import write_cdf


def test_an_all_zero_chunk_is_stored_and_reads_as_data(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    dark = np.zeros((8, 32, 32), dtype=np.uint16)  # a dark hour: prepared to zeros
    write_cdf(raw, "fsmi", "2011-01-06T05:00:00", 8, size=32, frames=dark)
    write_cdf(raw, "fsmi", "2011-01-06T06:00:00", 8, size=32, seed=2)
    cube = tmp_path / "c.zarr"
    ingest(sorted(raw.iterdir()), cube, preparation=RawPreparation(out_size=32), chunk_frames=8)
    pixels = zarr.open_group(str(cube), mode="r")["stations/fsmi/pixels"]
    assert isinstance(pixels, zarr.Array)
    assert not pixels[:8].any() and pixels[8:].any()  # chunk 0 equals the fill value
    opened = Cube.open(cube)
    assert opened.stored_chunks("stations/fsmi/pixels") == {"0/0/0", "1/0/0"}
    np.testing.assert_array_equal(
        opened.read_checked("stations/fsmi/pixels", slice(0, 16)), pixels[:]
    )
    # ... and the user's zarr settings are as zarr's default left them.
    assert zarr.config.get("array.write_empty_chunks") is False


def test_importing_oathcube_changes_no_zarr_setting() -> None:
    code = (
        "import zarr; before = dict(zarr.config.get('array'));"
        "import oathcube.cube.store, oathcube.ingestion, oathcube.classification;"
        "assert dict(zarr.config.get('array')) == before, zarr.config.get('array')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
