"""Writing cubes: a template with ``compute=False``, then regions, then publish.

A build writes into a hidden sibling folder (``.NAME.building-XXXX``) and renames
it to the cube's name only once every region is written and the status
attribute says ``complete``; an interrupted or failed build therefore never
leaves anything at the cube's path.  Later steps (features, models, station
archives) write into a published cube region by region, so an interruption
keeps every region already written, and they re-consolidate the metadata
when they finish.
"""

from __future__ import annotations

import shutil
import sys
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import fsspec
import numpy as np
import xarray as xr
import zarr
from tqdm.auto import tqdm

from ..archive.oath import OathArchive
from ..errors import CubeError
from ..parallel import run_tasks
from .read import live_group
from .schema import (
    CLASS2_NAMES,
    CLASS6_NAMES,
    TIME_ENCODING,
    images_per_chunk,
    provenance,
)

__all__ = [
    "oath_template",
    "write_oath_cube",
    "publish_metadata",
    "staging",
    "write_region",
    "create_rows",
    "write_labels",
]


def _is_url(path: str | Path) -> bool:
    return "://" in str(path)


def publish_metadata(cube: str | Path, **attrs: Any) -> None:
    """Set root attributes and consolidate the metadata of the whole hierarchy.

    Consolidation lets plain ``xr.open_zarr(cube)`` open without a warning; it is
    redone after every change so that it never hides a new variable.
    """
    root = live_group(str(cube), "r+")
    if attrs:
        root.attrs.update(attrs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(cube))


@contextmanager
def staging(cube: str | Path, overwrite: bool) -> Iterator[str]:
    """Yield a temporary location for a new cube; publish it at ``cube`` on success.

    Local cubes are renamed into place (atomic on one file system).  For URLs
    (object stores have no rename) the cube is written in place and marked
    complete last, which :func:`oathcube.open_cube` checks.
    """
    if _is_url(cube):
        store = str(cube)
        fs, path = fsspec.core.url_to_fs(store)
        if fs.exists(path) and not overwrite:
            raise CubeError("cube already exists", path=cube, expected="--overwrite to replace it")
        if fs.exists(path):
            fs.rm(path, recursive=True)
        yield store
        return
    target = Path(cube)
    if target.exists() and not overwrite:
        raise CubeError("cube already exists", path=target, expected="--overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        yield str(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        trash = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
        target.rename(trash)
        tmp.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(target)


def oath_template(archive: OathArchive, chunk_images: int | None = None) -> xr.Dataset:
    """Return the cube Dataset of ``archive`` with lazy (unwritten) pixels.

    Everything small (labels, times, split, published features) is in memory;
    ``pixels`` is a dask array of zeros that is never computed: the template is
    written with ``compute=False`` and regions are filled afterwards.
    """
    table = archive.table
    n = archive.n_images
    size = chunk_images or images_per_chunk(archive.image_shape, n)
    dims: tuple[str, ...] = ("image", "y", "x") + (
        ("band",) if len(archive.image_shape) == 3 else ()
    )
    pixels = da.zeros(
        (n, *archive.image_shape), dtype=np.uint8, chunks=(size, *archive.image_shape)
    )
    ds = xr.Dataset(
        {
            "pixels": (
                dims,
                pixels,
                {
                    "long_name": "image pixels as decoded from the archive's PNGs (unrotated)",
                    "units": "1",
                    "orientation": "as stored in the PNG: row 0 at the top",
                },
            ),
            "class6": (
                "image",
                table["class6"].to_numpy(np.int8),
                {
                    "long_name": "six-class label",
                    "flag_values": list(range(6)),
                    "flag_meanings": " ".join(CLASS6_NAMES),
                },
            ),
            "class2": (
                "image",
                table["class2"].to_numpy(np.int8),
                {
                    "long_name": "two-class label",
                    "flag_values": [0, 1],
                    "flag_meanings": " ".join(CLASS2_NAMES),
                },
            ),
            "label": (
                "image",
                table["label"].to_numpy(object),
                {"long_name": "picType of classifications.csv"},
            ),
            "rot_angle": (
                "image",
                table["rot_angle"].to_numpy(np.int16),
                {
                    "long_name": "rotAng: rotation applied before feature extraction",
                    "units": "degree",
                    "comment": "clockwise on screen, as rotate.sh",
                },
            ),
            "split": (
                ("fold", "rank"),
                archive.split.astype(np.int32),
                {
                    "long_name": "train/test permutations of image positions (0-based)",
                    "comment": "ridge.py protocol: the first round(0.7 * N) of each fold train",
                    "source": archive.split_source,
                },
            ),
        },
        coords={
            "image": (
                "image",
                table["pic_num"].to_numpy(np.int32),
                {"long_name": "picNum of the OATH archive"},
            ),
            "station": (
                "image",
                table["station"].to_numpy(object),
                {"long_name": "THEMIS ASI station code ('unknown' when not recorded)"},
            ),
            "time": (
                "image",
                table["time"].to_numpy("datetime64[ns]"),
                {"long_name": "UTC time of the exposure", "standard_name": "time"},
            ),
        },
    )
    if "y" in dims:
        ds = ds.assign_coords(
            y=np.arange(archive.image_shape[0], dtype=np.int16),
            x=np.arange(archive.image_shape[1], dtype=np.int16),
        )
    if archive.features is not None:
        ds["features_published"] = (
            ("image", "logit"),
            archive.features,
            {
                "long_name": "Inception-v4 Logits published in features/auroral_feat.h5",
                "source": "features/auroral_feat.h5 (rows matched to picNum by filename)",
            },
        )
        ds["features_published"].encoding["chunks"] = (size, archive.features.shape[1])
    ds.time.encoding.update(TIME_ENCODING)
    ds.pixels.encoding["chunks"] = (size, *archive.image_shape)
    return ds


def create_rows(
    node: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    rows_per_chunk: int,
    dtype: str,
    fill_value: Any,
    dims: list[str],
    attrs: dict[str, Any] | None = None,
) -> zarr.Array:
    """Create (replace) an array chunked along its first axis only, with its dimension names.

    The fill value marks rows not written yet, which is how resumable runs find their work.
    """
    return node.create_array(
        name=name,
        shape=shape,
        chunks=(rows_per_chunk, *shape[1:]),
        dtype=dtype,
        fill_value=fill_value,
        dimension_names=dims,
        attributes=attrs or {},
        overwrite=True,
    )


def write_labels(node: zarr.Group, dim: str, labels: Sequence[str]) -> None:
    """Write a string coordinate ``dim`` (class or feature names) into ``node``."""
    coord = node.create_array(
        name=dim, shape=(len(labels),), dtype=str, dimension_names=[dim], overwrite=True
    )
    coord[:] = np.asarray(labels, dtype=object)


def write_region(store: str, name: str, start: int, block: np.ndarray) -> int:
    """Write ``block`` into array ``name`` of ``store`` at ``start`` along axis 0."""
    array = zarr.open_array(store=store, path=name, mode="r+")
    array[start : start + block.shape[0]] = block
    return block.shape[0]


def write_oath_cube(
    archive: OathArchive,
    store: str,
    *,
    scheduler: str = "threads",
    chunk_images: int | None = None,
    progress: bool = True,
) -> None:
    """Write ``archive`` into an empty ``store``: template first, then pixel regions."""
    ds = oath_template(archive, chunk_images)
    size = ds.pixels.encoding["chunks"][0]
    attrs = provenance(
        title="OATH labelled auroral images",
        source=archive.source.name,
        source_path=str(archive.source),
        source_sha256=archive.checksums,
        synthetic_archive=int(archive.synthetic),
        split_source=archive.split_source,
        oathcube_status="building",
        Conventions="CF-1.10",
    )
    ds.attrs.update(attrs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(store, mode="w", compute=False, zarr_format=3, consolidated=False)
    starts = list(range(0, archive.n_images, size))
    blocks = archive.iter_image_blocks(starts, size)
    if archive.is_tar:
        # One streaming pass over the tarball: blocks arrive in archive order.
        with tqdm(
            total=archive.n_images, unit="img", desc="pixels", disable=not progress, file=sys.stderr
        ) as bar:
            for start, load in blocks:
                bar.update(write_region(store, "pixels", start, load()))
        return
    tasks = [
        dask.delayed(write_region)(store, "pixels", start, dask.delayed(load)())
        for start, load in blocks
    ]
    run_tasks(
        tasks,
        scheduler,
        progress=progress,
        label=f"writing pixels of {archive.n_images} images in {len(tasks)} chunks",
        total=archive.n_images,
    )
