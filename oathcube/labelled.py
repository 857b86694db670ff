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

from .archive.oath import OathArchive, read_oath
from .cube.commit import BUILDING, COMPLETE, STATUS
from .cube.location import normalise_location, refuse_nesting
from .cube.schema import PIXEL_COMPRESSORS, TIME_ENCODING, images_per_chunk, provenance
from .cube.staging import staging
from .cube.store import Cube
from .cube.write import write_region
from .errors import OptionError
from .faults import kill_point
from .features import feature_spec
from .features.compute import compute_features
from .labels import CLASS2_NAMES, CLASS6_NAMES
from .parallel import check_scheduler, connected, run_tasks

__all__ = ["build", "oath_template", "write_oath_cube"]

log = logging.getLogger(__name__)


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
    ds.pixels.encoding["compressors"] = PIXEL_COMPRESSORS
    return ds


def _read_and_write(cube: Cube, start: int, load: Callable[[], np.ndarray]) -> int:
    return write_region(cube, "pixels", start, load())


def write_oath_cube(
    archive: OathArchive,
    cube: Cube,
    *,
    scheduler: str | None = None,
    chunk_images: int | None = None,
    progress: bool = True,
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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(
            cube.root.store,
            mode="w",
            compute=False,
            zarr_format=3,
            consolidated=False,
            write_empty_chunks=True,  # every chunk written: a missing one is damage
        )
    cube.refresh()  # the template replaced the root group's metadata
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
    progress: bool = True,
    feature_options: Mapping[str, Mapping[str, Any]] | None = None,
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
            f"{chunk_images} images per chunk", path="--chunk-images", expected="1 or more"
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
    with connected(scheduler), staging(location, overwrite) as target:
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
