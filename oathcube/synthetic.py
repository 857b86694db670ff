"""Synthetic OATH archives and station nights, for demos and tests.

Neither the OATH tarball nor THEMIS frames can be downloaded where oathcube is
developed and tested, so this module draws stand-ins in exactly the published
layout of the OATH v1.1 tarball (Clausen & Nickisch 2018):

- :func:`synth` writes a whole archive (``00_README``, ``classifications/``,
  ``images/``, ``features/``, ``code/``) whose text files reproduce every quirk of
  the real ones (18-line preamble, zero padding, ``files_origin.csv`` without a
  header, without a row for image 00001 and with ``scaled_cropped`` in its paths);
- :func:`render_sky` draws one fisheye all-sky frame of one of the six OATH
  classes;
- :func:`station_night` writes a folder of frames of one station whose true class
  sequence is known, for the time-series demo;
- :func:`write_split` writes ``train_test_split.csv`` exactly as the authors did
  (byte-identical to the published file for 5,824 images).

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

from ._version import __version__
from .errors import ExistsError, OptionError
from .labels import CLASS6_NAMES as CLASS_NAMES
from .labels import N_FOLDS, SPLIT_SEED
from .memory import available_memory, check_fits, exhaustion_as_error, fit_address_space
from .parallel import cores
from .sites import STATION_LONGITUDES

__all__ = [
    "CLASS_NAMES",
    "OATH_CLASS_COUNTS",
    "STATION_LONGITUDES",
    "check_synth_memory",
    "check_synth_options",
    "class_counts",
    "render_sky",
    "station_night",
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
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """Pixel coordinates of a fisheye frame, in units of the sky-disc radius."""

    x: np.ndarray  # east-west axis, +1 at the right-hand horizon
    y: np.ndarray  # north-south axis, +1 at the bottom horizon
    r2: np.ndarray  # squared distance from the zenith (0) to the horizon (1)
    disc: np.ndarray  # float32, 1 inside the sky disc, 0 outside
    squeeze: np.ndarray  # how much thinner a form looks here than at the zenith
    noise: np.ndarray  # (2 size, 2 size) standard normal bank, see render_sky
    size: int


@lru_cache(maxsize=8)
def _grid(size: int) -> _Grid:
    c = (size - 1) / 2
    radius = 0.49 * size  # a thin black rim, as the cropped OATH frames show
    ax = ((np.arange(size, dtype=np.float32) - c) / radius).astype(np.float32)
    y, x = np.meshgrid(ax, ax, indexing="ij")
    r2 = x * x + y * y
    disc = (r2 <= 1.0).astype(np.float32)
    # An equidistant fisheye shows a form at low elevation thinner than at the zenith.
    squeeze = (1.0 / (1.0 - 0.55 * np.minimum(r2, 1.0))).astype(np.float32)
    noise = np.random.default_rng(20181026).standard_normal((2 * size, 2 * size), np.float32)
    for a in (x, y, r2, disc, squeeze, noise):
        a.setflags(write=False)
    return _Grid(x=x, y=y, r2=r2, disc=disc, squeeze=squeeze, noise=noise, size=size)


@lru_cache(maxsize=32)
def _smooth_basis(size: int, n_coarse: int) -> np.ndarray:
    """``(size, n_coarse)`` Gaussian interpolation weights from a coarse to the pixel grid.

    A smooth random field is then ``B @ C @ B.T`` for a random ``C``: two small matrix
    products instead of a convolution, which keeps 5,824 frames fast.
    """
    px = np.linspace(-1.0, 1.0, size)
    # Nodes reach beyond the frame so that the field is as rough at the rim as in the middle.
    nodes = np.linspace(-1.25, 1.25, n_coarse)
    spacing = nodes[1] - nodes[0]
    w = np.exp(-0.5 * ((px[:, None] - nodes[None, :]) / (0.8 * spacing)) ** 2)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    out = w.astype(np.float32)
    out.setflags(write=False)
    return out


def _field(rng: np.random.Generator, size: int, n_coarse: int) -> np.ndarray:
    """A smooth random field with zero mean and unit variance, features ~ ``2 / n_coarse``."""
    b = _smooth_basis(size, n_coarse)
    c = rng.standard_normal((n_coarse, n_coarse), dtype=np.float32)
    f = b @ c @ b.T
    return f / max(float(f.std()), 1e-6)


# Note on scalars: every random scalar that meets a frame is a Python float (``.tolist()``,
# ``math``), because a NumPy float64 scalar would promote the float32 frames to float64
# (NEP 50) and make rendering several times slower.


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def _stars(rng: np.random.Generator, g: _Grid, count: int, scale: float) -> np.ndarray:
    """Point sources: one bright pixel each with some light in its four neighbours."""
    size = g.size
    rad = 0.49 * size
    c = (size - 1) / 2
    rr = np.sqrt(rng.random(count)) * rad
    th = rng.random(count) * 2 * np.pi
    row = np.clip(np.rint(c + rr * np.sin(th)).astype(np.int64), 1, size - 2)
    col = np.clip(np.rint(c + rr * np.cos(th)).astype(np.int64), 1, size - 2)
    # Magnitudes follow a power law: many faint stars, a few bright ones.
    flux = np.minimum(scale * 20.0 * rng.random(count) ** -0.6, 400.0)
    idx = row * size + col
    offsets = np.array([0, 1, -1, size, -size])
    weights = np.array([1.0, 0.3, 0.3, 0.3, 0.3])
    flat = np.bincount(
        (idx[:, None] + offsets[None, :]).ravel(),
        weights=(flux[:, None] * weights[None, :]).ravel(),
        minlength=size * size,
    )
    return flat.reshape(size, size).astype(np.float32)


def _band(d: np.ndarray, width: float, edge: float) -> np.ndarray:
    """A top-hat across ``d`` = 0 with half-width ``width / 2`` and edges ``edge`` wide."""
    h = 0.5 * width
    return _sigmoid((d + h) / edge) * _sigmoid((h - d) / edge)


def _arc(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """One to three east-west bands with sharp edges, spanning the sky, possibly curved."""
    out = np.zeros_like(g.x)
    squeeze = g.squeeze
    n_arcs = int(rng.choice([1, 1, 1, 2, 2, 3]))
    y0s = sorted(rng.uniform(-0.65, 0.65, n_arcs).tolist())
    # Arcs of one display run nearly parallel: they share tilt and curvature.
    tilt = rng.uniform(-0.12, 0.12)
    curv = rng.uniform(-0.35, 0.35)
    for y0 in y0s:
        yc = (
            y0
            + (tilt + rng.uniform(-0.03, 0.03)) * g.x
            + (curv + rng.uniform(-0.05, 0.05)) * g.x**2
            + rng.uniform(0.0, 0.03) * np.sin(rng.uniform(1, 4) * np.pi * g.x + rng.uniform(0, 6))
        )
        d = (g.y - yc) * squeeze
        width = rng.uniform(0.04, 0.14)
        edge = rng.uniform(0.004, 0.012)
        bright = rng.uniform(45, 190)
        along = 1.0 + rng.uniform(0, 0.25) * np.sin(
            rng.uniform(1, 3) * np.pi * g.x + rng.uniform(0, 6)
        )
        core = _band(d, width, edge)
        # A faint, diffuse glow on the poleward (upper) side, as arcs often have.
        tail = np.exp(-np.maximum(-d - 0.5 * width, 0.0) / rng.uniform(0.03, 0.12)) * (d < 0)
        out += bright * along * (core + rng.uniform(0.05, 0.3) * tail)
    return out


def _diffuse(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """Broad fuzzy glow, patchy, about as bright as the stars; no sharp edges."""
    bright = rng.uniform(20, 70)
    broad = _field(rng, g.size, 4)
    patches = _field(rng, g.size, int(rng.integers(6, 11)))
    glow = np.maximum(broad + rng.uniform(-0.3, 1.0), 0.0) + rng.uniform(0.2, 0.7) * np.maximum(
        patches + rng.uniform(-0.5, 0.5), 0.0
    )
    if rng.random() < 0.5:
        # Diffuse aurora often fills an east-west belt of the sky.
        y0 = rng.uniform(-0.6, 0.6)
        glow *= 0.3 + np.exp(-0.5 * ((g.y - y0) / rng.uniform(0.25, 0.5)) ** 2)
    return bright * glow / max(float(glow.max()), 1e-6) * 1.6


def _discrete(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """Bright, sharp, irregular forms: folded bands, curls or a spiral."""
    kind = rng.choice(["contour", "fold", "spiral"], p=[0.45, 0.35, 0.2])
    bright = rng.uniform(130, 320)  # often saturates, unlike the stars
    if kind == "contour":
        # Level lines of a smooth random field curl and fold like a discrete display.
        f = _field(rng, g.size, int(rng.integers(6, 10)))
        eps = rng.uniform(0.04, 0.09)
        level = rng.uniform(-0.8, 0.8)
        form = np.exp(-(((f - level) / eps) ** 2))
        if rng.random() < 0.5:
            form += 0.7 * np.exp(-(((f - level - rng.uniform(0.3, 0.6)) / eps) ** 2))
        env = np.exp(-0.5 * ((g.y - rng.uniform(-0.5, 0.5)) / rng.uniform(0.3, 0.7)) ** 2)
        form *= env
    elif kind == "fold":
        # A thin band whose centre line swings far north and south: folds and curls.
        amp = rng.uniform(0.1, 0.3)
        x = g.x + 0.25 * _field(rng, g.size, 5)  # bends the band back on itself in places
        yc = rng.uniform(-0.4, 0.4) + sum(
            amp / (k + 1) * np.sin(rng.uniform(1.0, 3.5) * (k + 1) * np.pi * x + rng.uniform(0, 6))
            for k in range(3)
        )
        d = (g.y - yc) * g.squeeze
        form = _band(d, rng.uniform(0.02, 0.07), rng.uniform(0.003, 0.01))
        form += rng.uniform(0.0, 0.8) * _band(
            d - rng.uniform(0.08, 0.2), rng.uniform(0.02, 0.05), 0.006
        )
    else:
        cx, cy = rng.uniform(-0.4, 0.4, 2).tolist()
        dx, dy = g.x - cx, g.y - cy
        rr = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx) * float(rng.choice([-1.0, 1.0]))
        pitch = rng.uniform(0.2, 0.4)
        # A distorted spiral of one to two turns: real auroral spirals are never regular.
        wobble = rng.uniform(0.3, 0.6) * _field(rng, g.size, 5)
        phase = np.mod(rr / pitch - theta / (2 * np.pi) + wobble, 1.0)
        form = np.exp(-(((phase - 0.5) / rng.uniform(0.05, 0.1)) ** 2))
        form *= np.exp(-((rr / rng.uniform(0.3, 0.6)) ** 4))
    # Fine structure along the forms (rays), a texture the smooth classes lack.
    rays = 0.65 + 0.35 * _field(rng, g.size, 28)
    return bright * form * rays


def _cloud_cover(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """Cloud opacity in [0, 1]: smooth blotches, sometimes a near-uniform overcast."""
    if rng.random() < 0.25:
        return np.clip(rng.uniform(0.85, 1.0) + 0.05 * _field(rng, g.size, 3), 0.0, 1.0)
    f = _field(rng, g.size, int(rng.integers(4, 8)))
    return _sigmoid((f + rng.uniform(-0.3, 1.5)) / rng.uniform(0.1, 0.3))


def _moon(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """A saturated disc with wide glare; sometimes a bleed streak and a lens ghost."""
    rr = math.sqrt(rng.uniform(0.0, 0.85**2))
    th = rng.uniform(0, 2 * np.pi)
    mx, my = rr * math.cos(th), rr * math.sin(th)
    d2 = (g.x - mx) ** 2 + (g.y - my) ** 2
    s = rng.uniform(0.05, 0.14)
    q = 1.0 + d2 / s**2
    glare = rng.uniform(180, 420) / (q * np.sqrt(q))
    glare += rng.uniform(20, 70) * np.exp(-np.sqrt(d2) / rng.uniform(0.4, 0.9))
    disc = (d2 < rng.uniform(0.03, 0.06) ** 2).astype(np.float32)
    out = glare + 2000.0 * disc  # saturates whatever else
    if rng.random() < 0.4:
        # CCD bleed: charge overflowing along the readout columns through the moon.
        out += rng.uniform(60, 200) * np.exp(-(((g.x - mx) / 0.012) ** 2))
    if rng.random() < 0.5:
        gx, gy = -0.6 * mx, -0.6 * my
        gd2 = (g.x - gx) ** 2 + (g.y - gy) ** 2
        out += rng.uniform(15, 50) * _band(np.sqrt(gd2), 0.08, 0.01)
    return out


def _milky_way(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    a = rng.uniform(0, np.pi)
    d = g.x * math.sin(a) - g.y * math.cos(a) - rng.uniform(-0.5, 0.5)
    clumps = 0.6 + 0.4 * _field(rng, g.size, 12)
    return rng.uniform(3, 10) * np.exp(-0.5 * (d / rng.uniform(0.1, 0.2)) ** 2) * clumps


_CLOUD, _MOON = 3, 4


def render_sky(class6: int, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Draw one synthetic all-sky frame of an OATH class.

    The frame is a circular fisheye view (zenith at the centre, horizon at the rim,
    black outside the sky disc, east-west along the rows) with sky background,
    brighter towards the horizon, vignetting, stars and sensor noise, plus what makes
    the class: east-west bands with sharp edges (arc), broad fuzzy glow about as bright
    as the stars (diffuse), bright sharp folds, curls or spirals (discrete), smooth
    blotches hiding the stars (cloudy), a saturated disc with wide glare (moon), or
    nothing but stars (clear, ``noaurora``).  Positions, widths, brightness and star
    counts vary at random so that the classes overlap somewhat.

    Parameters
    ----------
    class6
        0 arc, 1 diffuse, 2 discrete, 3 cloudy, 4 moon, 5 clear (``noaurora``).
    rng
        Source of randomness; the frame is a deterministic function of its state.
    size
        Frame width and height in pixels.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8 greyscale, not rotated.

    Raises
    ------
    ValueError
        If ``class6`` is not in 0..5 or ``size`` is below 16.
    """
    if class6 not in range(6):
        raise OptionError(f"class6 must be 0..5 (arc..noaurora), got {class6!r}")
    if size < 16:
        raise OptionError(f"size must be at least 16 pixels, got {size}")
    g = _grid(size)

    # The sky itself: airglow and light pollution grow towards the horizon.
    sky = rng.uniform(4, 16) + rng.uniform(4, 28) * g.r2**2
    if rng.random() < 0.3:
        az = rng.uniform(0, 2 * np.pi)
        dome2 = (g.x - math.cos(az)) ** 2 + (g.y - math.sin(az)) ** 2
        sky = sky + rng.uniform(10, 40) * np.exp(-dome2 / 0.12)  # a town below the horizon
    star_scale = rng.uniform(0.7, 1.4)
    n_stars = int(rng.integers(120, 520)) * size * size // 65536
    if class6 == _MOON:
        star_scale *= 0.5  # the camera's scaling for a bright sky leaves the stars fainter
    stars = _stars(rng, g, max(n_stars, 3), star_scale)

    if class6 == 0:
        sky = sky + _arc(rng, g)
    elif class6 == 1:
        sky = sky + _diffuse(rng, g)
    elif class6 == 2:
        sky = sky + _discrete(rng, g)
        if rng.random() < 0.3:
            sky = sky + 0.5 * _diffuse(rng, g)
    elif class6 == 5 and rng.random() < 0.5:
        sky = sky + _milky_way(rng, g)

    img = sky + stars
    if class6 == _CLOUD:
        cover = _cloud_cover(rng, g)
        # Clouds scatter light from towns and moon: brighter, uneven, brighter low down.
        lit = rng.uniform(18, 90) * (1.0 + 0.15 * _field(rng, size, 5)) * (1.0 + 0.6 * g.r2)
        img = (1.0 - cover) * img + cover * lit
    img = img * (1.0 - rng.uniform(0.15, 0.35) * g.r2)  # lens vignetting
    if class6 == _MOON:
        img = img + _moon(rng, g)  # after vignetting, so that the disc stays saturated

    # Read noise plus photon noise.
    sigma = np.sqrt(rng.uniform(1.0, 3.0) ** 2 + 0.15 * np.maximum(img, 0.0))
    # A random window of a fixed bank of normal deviates, flipped at random: as good as fresh
    # noise for every purpose here and far cheaper than drawing 65,536 numbers per frame.
    oy, ox = rng.integers(0, size + 1, 2)
    sy, sx = rng.choice([-1, 1], 2)
    img = img + sigma * g.noise[oy : oy + size, ox : ox + size][::sy, ::sx]
    img = np.clip(img, 0.0, 255.0) * g.disc
    return (img + 0.5).astype(np.uint8)  # rounds, all values being >= 0


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
        raise OptionError(f"n must be at least 1, got {n}", path="--n")
    if size < 16:
        raise OptionError(f"size must be at least 16 pixels, got {size}", path="--size")


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
        The bound exceeds the memory available; the message says which ``--size``
        (or ``--n``) would fit.
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
        lower = f"--size {largest} or less here"
        option = "--size"
    else:  # the images' records alone do not fit: fewer images
        lower = f"--n {max(1, avail // 2 // _BYTES_PER_IMAGE)} or less here"
        option = "--n"
    check_fits(
        need,
        f"drawing {n} images of {size}x{size} pixels on {threads} threads",
        option=option,
        lower=lower,
    )


def synth(
    out: str | Path,
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
        with exhaustion_as_error(f"drawing {n} images of {size}x{size} pixels", "--size or --n"):
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


_NIGHT_README = """\
SYNTHETIC STATION NIGHT -- NOT THEMIS DATA

Generated by oathcube station_night (oathcube {version}), seed {seed}: {count}
8-bit greyscale {size}x{size} frames of a made-up night at THEMIS station {station},
one every {cadence} s from {start} UTC, drawn with the same renderer as the
synthetic OATH archive. The true class of every frame is known:

    {sequence}

({per} frames per class, in that order). Files:

frames/<station>_<YYYYMMDD>_<HHMMSS>.png   one frame each, named by its UTC time
truth.csv                           station,time,class6,label per frame
                                    (time ISO 8601, UTC; label as picType)
"""


def station_night(
    out: str | Path,
    station: str = "fsmi",
    start: str = "2011-11-03T04:00:00",
    sequence: tuple[int, ...] = (5, 0, 2, 1, 3, 4),
    frames_per_class: int = 40,
    cadence_s: float = 3.0,
    size: int = 256,
    seed: int = 1,
) -> Path:
    """Write the frames of a synthetic station night whose class sequence is known.

    Parameters
    ----------
    out
        Folder to create (must not exist or be empty); written aside and renamed into
        place when complete.
    station
        THEMIS station code (one of :data:`STATION_LONGITUDES`).
    start
        UTC time of the first frame, ISO 8601 without a time zone.
    sequence
        class6 of each stretch of the night, in order (default clear, arc, discrete,
        diffuse, cloudy, moon).
    frames_per_class
        Frames in each stretch.
    cadence_s
        Seconds between frames (3 s for THEMIS); at least 1 so that the
        second-resolution file names stay unique.
    size
        Frame width and height in pixels.
    seed
        The frames are a deterministic function of ``seed``.

    Returns
    -------
    pathlib.Path
        ``out``, holding ``frames/`` (the PNG frames), ``truth.csv`` and ``00_README``.

    Raises
    ------
    ValueError
        For an unknown station, an unparsable or zone-aware ``start``, a class outside
        0..5, ``frames_per_class < 1`` or ``cadence_s < 1``.
    FileExistsError
        If ``out`` exists and is not an empty folder.
    """
    if station not in STATION_LONGITUDES:
        raise OptionError(
            f"unknown THEMIS station {station!r}; known: {', '.join(sorted(STATION_LONGITUDES))}"
        )
    try:
        t0 = datetime.fromisoformat(start)
    except ValueError as exc:
        raise OptionError(f"start {start!r} is not an ISO 8601 time: {exc}") from None
    if t0.tzinfo is not None:
        raise OptionError(f"start {start!r} must be UTC without a time zone suffix")
    bad = [c for c in sequence if c not in range(6)]
    if bad or not sequence:
        raise OptionError(f"sequence must hold classes 0..5, got {tuple(sequence)!r}")
    if frames_per_class < 1:
        raise OptionError(f"frames_per_class must be at least 1, got {frames_per_class}")
    if cadence_s < 1:
        raise OptionError(
            f"cadence_s must be at least 1 s (file names hold seconds), got {cadence_s}"
        )
    check_synth_memory(len(sequence) * frames_per_class, size)
    fit_address_space()
    out = Path(out)
    tmp = _fresh_dir(out)
    try:
        truth = ["station,time,class6,label"]
        jobs = []
        # One precision for every row: parsers infer a single ISO format from the first row.
        whole = float(cadence_s).is_integer() and t0.microsecond == 0
        timespec = "seconds" if whole else "microseconds"
        for k, class6 in enumerate(c for c in sequence for _ in range(frames_per_class)):
            # Whole microseconds, then names cut to seconds: cadences such as 1.5 s stay exact.
            t = t0 + timedelta(microseconds=round(k * cadence_s * 1e6))
            name = f"{station}_{t:%Y%m%d_%H%M%S}.png"
            truth.append(
                f"{station},{t.isoformat(timespec=timespec)},{class6},{CLASS_NAMES[class6]}"
            )
            jobs.append((tmp / "frames" / name, class6, [seed, 2, k], size))
        # Frames in their own folder: an image-folder reader there finds no CSV but its own.
        (tmp / "frames").mkdir()
        _run_parallel(jobs, _render_to, False, "station night")
        _write_lines(tmp / "truth.csv", truth)
        readable = ", ".join(f"{c} {CLASS_NAMES[c]}" for c in sequence)
        (tmp / "00_README").write_text(
            _NIGHT_README.format(
                version=__version__,
                seed=seed,
                count=len(jobs),
                size=size,
                station=station,
                cadence=cadence_s,
                start=t0.isoformat(),
                sequence=readable,
                per=frames_per_class,
            ),
            encoding="ascii",
        )
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
