"""The labelled images of an OATH archive as a cube: template, pixel regions, build.

``oathcube build``: an :class:`~oathcube.archive.oath.OathArchive` (folder or
``.tgz``) becomes the root group of a new cube, published only when complete
(:func:`~oathcube.cube.staging.staging`), optionally with features computed as part
of the build.  This is the one module that knows both the OATH layout and the
cube; :mod:`oathcube.cube` knows no archive format.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from ..archive.oath import OathArchive, read_oath
from ..cube.location import normalise_location, refuse_nesting
from ..cube.schema import (
    BUILDING,
    COMPLETE,
    STATUS,
    images_per_chunk,
    provenance,
    root_specs,
)
from ..cube.staging import staging
from ..cube.store import Cube
from ..errors import OptionError
from ..faults import kill_point
from ..features import feature_spec
from ..features.compute import compute_features
from ..parallel import check_scheduler, connected, run_tasks

__all__ = ["build", "oath_template", "write_oath_cube"]

log = logging.getLogger(__name__)


def oath_template(archive: OathArchive, chunk_images: int | None = None) -> xr.Dataset:
    """Return the cube Dataset of ``archive`` with lazy (unwritten) pixels.

    Everything small (labels, times, split, published features) is in memory;
    ``pixels`` is a dask array of zeros that is never computed: the template is
    written with ``compute=False`` and regions are filled afterwards.  Dims, dtypes,
    attributes, chunks and encodings are the schema's (:func:`root_specs`).
    """
    table = archive.table
    n = archive.n_images
    size = chunk_images or images_per_chunk(archive.image_shape, n)
    specs = root_specs(
        rows_per_chunk=size,
        bands=len(archive.image_shape) == 3,
        split_source=archive.split_source,
    )
    pixels = da.zeros(
        (n, *archive.image_shape), dtype=np.uint8, chunks=(size, *archive.image_shape)
    )
    ds = xr.Dataset(
        {
            "pixels": specs["pixels"].variable(pixels),
            "class6": specs["class6"].variable(table["class6"].to_numpy()),
            "class2": specs["class2"].variable(table["class2"].to_numpy()),
            "label": specs["label"].variable(table["label"].to_numpy(object)),
            "rot_angle": specs["rot_angle"].variable(table["rot_angle"].to_numpy()),
            "split": specs["split"].variable(archive.split),
        },
        coords={
            "image": specs["image"].variable(table["pic_num"].to_numpy()),
            "station": specs["station"].variable(table["station"].to_numpy(object)),
            "time": specs["time"].variable(table["time"].to_numpy("datetime64[ns]")),
        },
    )
    if "y" in specs["pixels"].dims:
        ds = ds.assign_coords(
            y=specs["y"].variable(np.arange(archive.image_shape[0])),
            x=specs["x"].variable(np.arange(archive.image_shape[1])),
        )
    if archive.features is not None:
        ds["features_published"] = specs["features_published"].variable(archive.features)
    return ds


def write_region(cube: Cube, name: str, start: int, block: np.ndarray) -> int:
    """Write ``block`` into array ``name`` of ``cube`` at ``start`` along axis 0.

    Returns the number of rows written (progress bars count them).
    """
    rows = cube.write_rows(name, start, block)
    kill_point("write.region")
    return rows


def _read_and_write(cube: Cube, start: int, load: Callable[[], np.ndarray]) -> int:
    return write_region(cube, "pixels", start, load())


def write_oath_cube(
    archive: OathArchive,
    cube: Cube,
    *,
    scheduler: str | None = None,
    chunk_images: int | None = None,
    progress: bool = False,
) -> None:
    """Write ``archive`` into an empty ``cube``: template first, then pixel regions."""
    ds = oath_template(archive, chunk_images)
    size = ds.pixels.encoding["chunks"][0]
    attrs = provenance(
        title="OATH labelled auroral images",
        source=archive.source.name,
        source_path=str(archive.source),
        source_sha256=archive.checksums,
        synthetic_archive=int(archive.synthetic),
        split_source=archive.split_source,
        n_folds=archive.n_folds,
        **{STATUS: BUILDING},
        Conventions="CF-1.10",
    )
    ds.attrs.update(attrs)
    # Every chunk is written (a missing one is damage); pixels are filled region by region.
    cube.write_dataset(ds, compute=False)
    kill_point("build.template_written")
    starts = list(range(0, archive.n_images, size))
    blocks = archive.iter_image_blocks(starts, size)
    if archive.is_tar:
        # One streaming pass over the tarball: blocks arrive in archive order.
        with tqdm(
            total=archive.n_images, unit="img", desc="pixels", disable=not progress, file=sys.stderr
        ) as bar:
            for start, load in blocks:
                bar.update(write_region(cube, "pixels", start, load()))
        return
    # One task reads and writes a chunk: on a cluster, the worker reads the PNGs by
    # path itself and no pixels travel between processes.
    tasks = [dask.delayed(_read_and_write)(cube, start, load) for start, load in blocks]
    run_tasks(
        tasks,
        scheduler,
        progress=progress,
        label=f"writing pixels of {archive.n_images} images in {len(tasks)} chunks",
        total=archive.n_images,
    )


def build(
    source: str | os.PathLike[str],
    cube: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    features: Sequence[Any] = (),
    scheduler: str | None = None,
    chunk_images: int | None = None,
    progress: bool = False,
    feature_options: Mapping[str, Mapping[str, Any]] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Build a cube from an OATH archive (folder or ``.tgz``).

    Parameters
    ----------
    source
        The archive root (or a folder above it) or the tarball.
    cube
        Where the cube appears once complete (path or fsspec URL).
    overwrite
        Replace an existing cube (only once the new one is complete).
    features
        Features to compute as part of the build: each a
        :class:`~oathcube.features.FeatureSpec`, a settings object
        (:class:`~oathcube.features.settings.HandcraftedSettings`,
        :class:`~oathcube.features.settings.InceptionV4Settings`) or an
        extractor's name (its default settings).
    scheduler
        ``threads``, ``processes``, ``synchronous`` or a ``tcp://`` address.
    chunk_images
        Images per chunk (default: about 32 MB of pixels per chunk).
    progress
        Show progress bars.
    feature_options
        Deprecated (removed in the next release): per extractor name, settings
        fields; pass settings objects in ``features`` instead.
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Returns
    -------
    str
        The cube's path.

    Raises
    ------
    ArchiveError
        Bad archive content, naming the file and line or member.
    CubeError
        ``cube`` exists and ``overwrite`` is false.
    """
    tic = time.perf_counter()
    check_scheduler(scheduler)
    if chunk_images is not None and chunk_images < 1:
        raise OptionError(
            f"{chunk_images} images per chunk", parameter="chunk_images", expected="1 or more"
        )
    # Every extractor's options are checked (and its settings described) before the
    # first write; nothing builds a network here.
    if feature_options:
        warnings.warn(
            "build(feature_options=...) is deprecated: pass settings objects in features=",
            DeprecationWarning,
            stacklevel=2,
        )
        specs = [
            feature_spec(f, **feature_options.get(f, {})) if isinstance(f, str) else feature_spec(f)
            for f in features
        ]
    else:
        specs = [feature_spec(f) for f in features]
    location = normalise_location(cube)
    refuse_nesting(source, location, "source archive")
    # Connected (to an address) before the first write; the one Client serves every step.
    with (
        connected(scheduler),
        staging(location, overwrite, storage_options=storage_options) as target,
    ):
        # Check the target first: a long read must not end in "already exists".
        archive = read_oath(Path(source))
        kind = "SYNTHETIC archive" if archive.synthetic else "archive"
        log.info(
            "%s %s: %d images %s, split: %s",
            kind,
            archive.source,
            archive.n_images,
            archive.image_shape,
            archive.split_source,
        )
        write_oath_cube(
            archive, target, scheduler=scheduler, chunk_images=chunk_images, progress=progress
        )
        for spec in specs:
            compute_features(target, spec, scheduler=scheduler, progress=progress)
        target.publish(**{STATUS: COMPLETE}, build_seconds=round(time.perf_counter() - tic, 1))
    return location
