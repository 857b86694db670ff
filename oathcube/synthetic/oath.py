"""The synthetic OATH archive: stand-ins in exactly the published OATH v1.1 layout.

Neither the OATH tarball nor THEMIS frames can be downloaded where oathcube is
developed and tested, so :func:`synth` draws a whole archive (``00_README``,
``classifications/``, ``images/``, ``features/``, ``code/``) in the layout of the
OATH v1.1 tarball (Clausen & Nickisch 2018), whose text files reproduce every quirk of
the real ones (18-line preamble, zero padding, ``files_origin.csv`` without a header,
without a row for image 00001 and with ``scaled_cropped`` in its paths).
:func:`write_split` writes ``train_test_split.csv`` exactly as the authors did
(byte-identical to the published file for 5,824 images), :func:`synth_logits` the
stand-in features, and :func:`check_synth_options` and :func:`check_synth_memory`
refuse what cannot be drawn.  The images are drawn on a few threads
(:func:`_run_parallel`) by :func:`.sky.render_sky`.

Everything is deterministic given ``seed``.  Every file written says that it is
synthetic.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import imageio.v3 as iio
import numpy as np
from threadpoolctl import ThreadpoolController

from .._version import __version__
from ..errors import ExistsError, OptionError
from ..labels import CLASS6_NAMES as CLASS_NAMES
from ..labels import N_FOLDS, SPLIT_SEED
from ..memory import available_memory, check_fits, exhaustion_as_error, fit_address_space
from ..parallel import cores
from ..sites import STATION_LONGITUDES
from .sky import render_sky

__all__ = [
    "OATH_CLASS_COUNTS",
    "check_synth_memory",
    "check_synth_options",
    "class_counts",
    "synth",
    "synth_logits",
    "write_split",
]

#: Images per class6 in the real OATH v1.1 (5,824 in all).
OATH_CLASS_COUNTS: tuple[int, ...] = (774, 1102, 1400, 852, 614, 1082)

N_LOGITS = 1001
DASHES = "-" * 79
# Month abbreviations of files_origin.csv, spelled out so that the locale cannot change them
# (strftime's %b follows LC_TIME).
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WINTER_MONTHS = (11, 12, 1, 2)
_YEARS = (2006, 2016)
# Sizes of the real station-night blocks of files_origin.csv, drawn from for the synthetic ones.
_BLOCK_SIZES = (28, 28, 28, 28, 58, 71, 71, 152, 205, 265, 434)
_CADENCE_S = 3  # THEMIS ASI frames come every 3 s, so every time is on a 3 s grid

# The stated memory bound of drawing images (check_synth_memory).  Measured with
# tracemalloc at sizes 256-1024: the cached pixel grid holds 36 bytes a pixel, and
# one frame being drawn peaks at 52-58 bytes a pixel of temporaries (each drawing
# thread has one); the labels, times and the (n, 1001) float32 logits of the h5 file
# take 8.2 kB an image.  Rounded up, with room for the PNG encoder.
_GRID_BYTES_PER_PIXEL = 40
_FRAME_BYTES_PER_PIXEL = 64
_BYTES_PER_IMAGE = 9 * 1024


# --------------------------------------------------------------------------------------------
# Archive text files
# --------------------------------------------------------------------------------------------


def _preamble(seed: int, n: int) -> list[str]:
    """The 18 lines before the data, shaped like the real licence preamble.

    Readers skip the real one with ``skiprows=18`` (ridge.py) or by finding the header,
    so ours has the same length and the same frame of dashes, blank lines included; as in
    the real archive, both CSVs carry the same preamble.
    """
    lines = [
        DASHES,
        "SYNTHETIC DATA: this file was written by oathcube synth",
        f"(seed {seed}, {n} images). It imitates the layout of the Oslo Auroral",
        "THEMIS (OATH) dataset v1.1 (Clausen and Nickisch 2018,",
        "doi:10.1029/2018JA025274) but holds none of its data.",
        "",
        "The images are drawn by a program and not taken by the THEMIS all-sky",
        "imagers; labels, rotation angles, stations, times and features are random.",
        "Do not use any of it for science.",
        "",
        "The real OATH data are licensed under a Creative Commons 4.0 Attribution",
        "License (CC BY 4.0) and its source code under a BSD-2-Clause License.",
        "We acknowledge NASA contract NAS5-02099 and V. Angelopoulos for use of data",
        "from the THEMIS Mission, and S. Mende and E. Donovan for use of the ASI data;",
        "the station codes and the file layout below are theirs.",
        "See 00_README at the root of this archive.",
        "The files follow the quirks of the published ones on purpose.",
        DASHES,
    ]
    assert len(lines) == 18
    return lines


def class_counts(n: int) -> np.ndarray:
    """Images per class6 for an archive of ``n`` images, in OATH's proportions.

    Parameters
    ----------
    n
        Number of images.

    Returns
    -------
    numpy.ndarray
        Six integers summing to ``n`` (largest-remainder rounding of
        :data:`OATH_CLASS_COUNTS` scaled to ``n``); every class has at least one image
        when ``n >= 6``.  ``class_counts(5824)`` is the real distribution.
    """
    ref = np.asarray(OATH_CLASS_COUNTS, dtype=np.int64)
    exact = n * ref / ref.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    if n >= 6:
        # Tests and demos with a few dozen images still need every class present.
        while (counts == 0).any():
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
    return counts


def write_split(path: str | Path, n: int) -> Path:
    """Write ``train_test_split.csv`` exactly as the OATH authors did.

    ridge.py's comment gives the recipe ``np.random.seed(1804);
    np.argsort(np.random.rand(5, ndata), axis=1)``, saved with ``np.savetxt(path, arr,
    delimiter=",")``.  A private ``RandomState(1804)`` draws the same numbers as the
    legacy global generator seeded with 1804, without touching the caller's global
    numpy random state.  For ``n = 5824`` the file is byte-identical to the published one.

    Parameters
    ----------
    path
        File to write (its folder must exist).
    n
        Number of images (columns).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    draws = np.random.RandomState(SPLIT_SEED).rand(N_FOLDS, n)
    np.savetxt(path, np.argsort(draws, axis=1), delimiter=",")
    return path


@dataclass(frozen=True)
class _Catalogue:
    """What the text files say about each image, index i = picNum i + 1."""

    class6: np.ndarray
    rot_angle: np.ndarray
    station: list[str]  # station[0] (image 00001) is never written, as in the real archive
    time: list[datetime]


def _night_window_utc(station: str) -> tuple[float, float]:
    """UTC hours of one station's night within one UTC date: local midnight +- 5 h."""
    midnight = (-STATION_LONGITUDES[station] / 15.0) % 24.0
    start, end = max(0.0, midnight - 5.0), min(24.0, midnight + 5.0)
    return start, end


def _origins(rng: np.random.Generator, n: int) -> tuple[list[str], list[datetime]]:
    """Stations and times in blocks of one station-night with strictly increasing times."""
    stations: list[str] = []
    times: list[datetime] = []
    codes = sorted(STATION_LONGITUDES)
    previous: tuple[str, datetime] | None = None
    while len(times) < n:
        size = min(int(rng.choice(_BLOCK_SIZES)), n - len(times))
        station = codes[int(rng.integers(len(codes)))]
        month = int(rng.choice(_WINTER_MONTHS))
        year = int(rng.integers(_YEARS[0], _YEARS[1] + 1))
        day = int(rng.integers(1, calendar_days(year, month) + 1))
        date = datetime(year, month, day)
        if previous == (station, date):
            continue  # two adjacent blocks of one station-night would read as one
        previous = (station, date)
        lo, hi = _night_window_utc(station)
        # Steps on the 3 s frame grid, short enough that the block fits in the night.
        max_step = max(1, min(40, int((hi - lo - 0.5) * 3600 / _CADENCE_S / size)))
        steps = rng.integers(1, max_step + 1, size) * _CADENCE_S
        offsets = np.cumsum(steps) - steps[0]
        span_h = offsets[-1] / 3600.0
        start_s = round(rng.uniform(lo, max(lo, hi - span_h - 0.01)) * 3600 / _CADENCE_S)
        start = date + timedelta(seconds=int(start_s) * _CADENCE_S)
        stations.extend([station] * size)
        times.extend(start + timedelta(seconds=int(o)) for o in offsets)
    return stations, times


def calendar_days(year: int, month: int) -> int:
    """Number of days of ``month`` in ``year``."""
    nxt = datetime(year + month // 12, month % 12 + 1, 1)
    return (nxt - datetime(year, month, 1)).days


def _catalogue(seed: int, n: int) -> _Catalogue:
    rng = np.random.default_rng([seed, 0])
    class6 = np.repeat(np.arange(6), class_counts(n))
    rng.shuffle(class6)  # the real file mixes the classes across picNums too
    rot = rng.integers(0, 360, n)
    stations, times = _origins(rng, n)
    return _Catalogue(class6=class6, rot_angle=rot, station=stations, time=times)


def _origin_time(t: datetime) -> str:
    """``07/Jan/2013 06:01:00.0``: the time format of files_origin.csv."""
    return f"{t.day:02d}/{_MONTHS[t.month]}/{t.year} {t:%H:%M:%S}.{t.microsecond // 100000}"


def _write_lines(path: Path, lines: list[str]) -> None:
    # newline="\n" keeps the real files' LF endings on every platform.
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


def _write_classifications(path: Path, cat: _Catalogue, seed: int) -> None:
    n = len(cat.class6)
    lines = _preamble(seed, n)
    lines.append("class2,class6,picNum,picType,rotAng")
    for i, (c6, rot) in enumerate(zip(cat.class6.tolist(), cat.rot_angle.tolist(), strict=True)):
        lines.append(f"{int(c6 >= 3)},{c6},{i + 1:05d},{CLASS_NAMES[c6]},{rot:03d}")
    _write_lines(path, lines)


def _write_origins(path: Path, cat: _Catalogue, seed: int) -> None:
    n = len(cat.class6)
    lines = _preamble(seed, n)
    # No header, no row for image 00001, and "scaled_cropped" for the cropped_scaled folder:
    # all three as in the published file.
    for i in range(1, n):
        lines.append(
            f"{cat.station[i]} {_origin_time(cat.time[i])},images/scaled_cropped/{i + 1:05d}.png"
        )
    _write_lines(path, lines)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def synth_logits(class6: np.ndarray, seed: int = 0) -> np.ndarray:
    """Synthetic stand-ins for the published Inception-v4 ``Logits`` features.

    Each class has a fixed random mean vector (the three aurora classes share part of
    theirs, as do the three others, so that errors fall mostly within aurora / no aurora
    as in the paper), and every image adds a low-rank nuisance (like overall brightness)
    and Gaussian noise.  The noise is set so that ridge.py's protocol
    (``RidgeClassifier(alpha=0.03)``, 70/30 splits) scores roughly 0.8, near the
    published 0.817.  They are *not* Inception features and do not depend on the images.

    Parameters
    ----------
    class6
        ``(n,)`` class of each image, 0..5.
    seed
        The archive seed.

    Returns
    -------
    numpy.ndarray
        ``(n, 1001)`` float32.
    """
    class6 = np.asarray(class6, dtype=np.int64)
    n = class6.shape[0]
    rng = np.random.default_rng([seed, 3])
    base = rng.normal(0.0, 1.5, N_LOGITS)  # logits share a large common offset
    group = rng.normal(0.0, 1.0, (2, N_LOGITS))
    own = rng.normal(0.0, 1.0, (6, N_LOGITS))
    means = base + _GROUP_SCALE * group[(np.arange(6) >= 3).astype(int)] + _CLASS_SCALE * own
    loadings = rng.normal(0.0, 1.0, (_N_NUISANCE, N_LOGITS)).astype(np.float32)
    # float32 throughout: 5,824 x 1,001 float64 temporaries would cost ~150 MB for nothing.
    out = rng.standard_normal((n, N_LOGITS), dtype=np.float32)
    out *= _NOISE_SCALE
    out += means.astype(np.float32)[class6]
    out += (_NUISANCE_SCALE * rng.standard_normal((n, _N_NUISANCE), dtype=np.float32)) @ loadings
    return out


# Tuned so that ridge.py's protocol on 5,824 images scores about 0.82 (0.815-0.83 over seeds
# 0-2): the aurora classes get weaker own directions than the others, as in the paper, where
# arc, diffuse and discrete are confused most.
_GROUP_SCALE = 0.3
_CLASS_SCALE = np.array([0.10, 0.10, 0.10, 0.13, 0.13, 0.13])[:, None]
_N_NUISANCE = 16
_NUISANCE_SCALE = 0.5
_NOISE_SCALE = 1.5


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

_README = """\
SYNTHETIC OATH-LAYOUT ARCHIVE -- NOT THE OATH DATA
==================================================

Generated by oathcube synth (oathcube {version}) with seed {seed}: {n} images of
{size}x{size} pixels. Nothing in it was observed. It imitates the layout of the
Oslo Auroral THEMIS (OATH) dataset v1.1 (Clausen and Nickisch 2018, JGR Space
Physics 123, doi:10.1029/2018JA025274; data CC BY 4.0, code BSD-2-Clause) so
that readers of that layout can be tested and demonstrated without the real
tarball. Results obtained on it say nothing about real aurora.

Files
-----
classifications/classifications.csv
    18-line preamble (stating that the file is synthetic), then the header
    class2,class6,picNum,picType,rotAng and one row per image, e.g.
    0,2,00002,discrete,029. class6: 0 arc, 1 diffuse, 2 discrete, 3 cloudy,
    4 moon, 5 noaurora (clear); class2 = 0 for aurora (class6 0-2), 1 otherwise.
    Classes in OATH's proportions, shuffled across picNum. rotAng is a random
    angle 0-359 (clockwise rotation used for augmentation, as in OATH).
classifications/train_test_split.csv
    5 rows x {n} indices, numpy.random.seed(1804);
    np.argsort(np.random.rand(5, {n}), axis=1) saved with np.savetxt: exactly
    the recipe of the published file (identical to it when n = 5824).
images/cropped_scaled/00001.png ...
    8-bit greyscale synthetic fisheye all-sky frames, unrotated, drawn per
    class (arcs: east-west bands with sharp edges; diffuse: broad faint glow;
    discrete: bright sharp folds, curls, spirals; cloudy: smooth blotches
    hiding the stars; moon: saturated disc with glare; clear: stars only).
images/files_origin.csv
    The preamble, no header, then "station DD/Mon/YYYY HH:MM:SS.f,path" rows
    for images 00002 onwards (image 00001 has no row, and the paths say
    scaled_cropped, both as in the published file). Station codes are real
    THEMIS ASI sites; the UTC night-time times are random, in blocks of one
    station-night, winters 2006-2016.
features/auroral_feat.h5
    Logits: float32 ({n}, 1001); filenames: the rotated image paths
    (images/cropped_scaled_rotated/<picNum>_<rotAng>.png), rows in picNum
    order. SYNTHETIC features: a random mean vector per class plus noise, tuned
    so that the ridge.py protocol scores about 0.8. They are NOT Inception-v4
    features and do not depend on the images.
code/README
    Why the original scripts are not here.
"""

_CODE_README = """\
The real OATH tarball ships code/ridge.py (ridge-classifier evaluation on
features/auroral_feat.h5) and code/rotate.sh (ImageMagick rotation of every
image by its rotAng). This synthetic archive, generated by oathcube synth,
does not reproduce them: oathcube implements both protocols itself
(oathcube evaluate, oathcube.imaging.rotate_like_oath).
"""


@lru_cache(maxsize=1)
def _tqdm() -> Callable[..., Any]:
    from tqdm.auto import tqdm

    return tqdm


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    # Built once: inspecting the loaded libraries costs about half a millisecond.
    return ThreadpoolController()


def _fresh_dir(out: Path) -> Path:
    """A temporary sibling of ``out`` to write into, renamed to ``out`` when complete.

    Writing aside and renaming means an interrupted run never leaves a folder at ``out``
    that looks like a finished archive.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExistsError(
            "already exists and is not an empty folder",
            path=out,
            expected="a new or empty folder (nothing is ever written over)",
        )
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise OptionError(
                f"{parent} is a file", path=out, expected="a folder path whose parents are folders"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))


def _publish(tmp: Path, out: Path) -> None:
    if out.exists():
        out.rmdir()  # empty, checked by _fresh_dir
    os.replace(tmp, out)


def _write_png(path: Path, image: np.ndarray) -> None:
    # Level 1 compresses noisy 8-bit frames almost as well as the default, twice as fast.
    iio.imwrite(path, image, extension=".png", compress_level=1)


def _render_to(path: Path, class6: int, entropy: list[int], size: int) -> None:
    _write_png(path, render_sky(class6, np.random.default_rng(entropy), size))


def _run_parallel(jobs: list[tuple], work: Callable[..., None], progress: bool, desc: str) -> None:
    """Run ``work(*job)`` for every job on a few threads, with an optional progress bar.

    numpy and zlib release the GIL for most of the work, so two threads on two cores
    nearly halve the time; each job owns its random generator, so the result does not
    depend on the scheduling.
    """
    workers = _drawing_threads()
    bar = _tqdm()(total=len(jobs), desc=desc, unit="img", disable=not progress)
    try:
        # The smooth fields are small matrix products that a multi-threaded BLAS slows
        # down by 10-100x when the cores are already busy with our own threads.
        with (
            _blas_controller().limit(limits=1, user_api="blas"),
            ThreadPoolExecutor(max_workers=workers) as pool,
        ):
            for fut in [pool.submit(work, *job) for job in jobs]:
                fut.result()
                bar.update(1)
    finally:
        bar.close()


def check_synth_options(n: int, size: int) -> None:
    """Refuse an archive of fewer than 1 image or images smaller than 16 pixels."""
    if n < 1:
        raise OptionError(f"{n} images", parameter="n", expected="at least 1")
    if size < 16:
        raise OptionError(f"{size} pixels", parameter="size", expected="at least 16 pixels")


def _drawing_threads() -> int:
    """Threads that draw images: what the memory bound and the drawing both use."""
    return min(4, cores())


def check_synth_memory(n: int, size: int) -> None:
    """Refuse images that cannot be drawn in the memory left, before anything is written.

    The bound: ``size**2`` pixels times 40 bytes (the pixel grid) plus 64 bytes per
    drawing thread (one frame's temporaries each), and 9 kB per image (labels,
    times, the logits of ``features/auroral_feat.h5``); compared with
    :func:`oathcube.memory.available_memory`.

    Raises
    ------
    MemoryBoundError
        The bound exceeds the memory available; the message says which ``size``
        (or ``n``) would fit.
    """
    threads = _drawing_threads()
    per_pixel = _GRID_BYTES_PER_PIXEL + threads * _FRAME_BYTES_PER_PIXEL
    images = n * _BYTES_PER_IMAGE
    need = size * size * per_pixel + images
    avail, _ = available_memory()
    if avail is None or need <= avail:
        return
    room = avail - images
    largest = math.isqrt(max(0, room) // per_pixel)
    if largest >= 16:
        lower = f"`size` {largest} or less here"
        parameter = "size"
    else:  # the images' records alone do not fit: fewer images
        lower = f"`n` {max(1, avail // 2 // _BYTES_PER_IMAGE)} or less here"
        parameter = "n"
    check_fits(
        need,
        f"drawing {n} images of {size}x{size} pixels on {threads} threads",
        parameter=parameter,
        lower=lower,
    )


def synth(
    out: str | Path,
    *,
    n: int = 5824,
    size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write a synthetic archive in exactly the published OATH v1.1 layout.

    Parameters
    ----------
    out
        The archive root to create (it holds ``00_README``, ``classifications/``,
        ``code/``, ``features/`` and ``images/``).  It must not exist or be an empty
        folder.  The archive is written beside it and renamed into place when complete.
    n
        Number of images (5,824 in OATH).
    size
        Image width and height in pixels (256 in OATH).
    seed
        Everything (labels, angles, stations, times, images, features) is a
        deterministic function of ``seed``; labels, times and features do not depend
        on ``size``.
    progress
        Show a progress bar while drawing the images.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    OptionError
        If ``n < 1`` or ``size < 16``, or ``out`` exists and is not an empty folder.
    MemoryBoundError
        Before anything is written, if the images cannot be drawn in the memory
        left (:func:`check_synth_memory`); or if memory (or address space for a
        thread) runs out while they are drawn: one line, and nothing is left.
    """
    check_synth_options(n, size)
    check_synth_memory(n, size)
    fit_address_space()
    out = Path(out)
    tmp = _fresh_dir(out)
    try:
        with exhaustion_as_error(f"drawing {n} images of {size}x{size} pixels", "`size` or `n`"):
            _write_archive(tmp, n, size, seed, progress)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_archive(tmp: Path, n: int, size: int, seed: int, progress: bool) -> None:
    """Write every file of a synthetic archive into ``tmp`` (see :func:`synth`)."""
    for sub in ("classifications", "code", "features", "images/cropped_scaled"):
        (tmp / sub).mkdir(parents=True)
    cat = _catalogue(seed, n)
    (tmp / "00_README").write_text(
        _README.format(version=__version__, seed=seed, n=n, size=size), encoding="ascii"
    )
    (tmp / "code" / "README").write_text(_CODE_README, encoding="ascii")
    _write_classifications(tmp / "classifications" / "classifications.csv", cat, seed)
    write_split(tmp / "classifications" / "train_test_split.csv", n)
    _write_origins(tmp / "images" / "files_origin.csv", cat, seed)

    names = [
        f"images/cropped_scaled_rotated/{i + 1:05d}_{rot:03d}.png".encode("ascii")
        for i, rot in enumerate(cat.rot_angle.tolist())
    ]
    with h5py.File(tmp / "features" / "auroral_feat.h5", "w") as h5:
        h5.create_dataset("Logits", data=synth_logits(cat.class6, seed))
        h5.create_dataset("filenames", data=np.array(names))
        h5.attrs["synthetic"] = f"oathcube synth seed {seed}: not Inception-v4 features"

    img_dir = tmp / "images" / "cropped_scaled"
    jobs = [
        (img_dir / f"{i + 1:05d}.png", int(c6), [seed, 1, i + 1], size)
        for i, c6 in enumerate(cat.class6.tolist())
    ]
    _run_parallel(jobs, _render_to, progress, "synth images")
