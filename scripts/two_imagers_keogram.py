"""Keograms of two imagers at one site and hour, one above the other: THEMIS and REGO.

A SYNTHETIC scene, built in a temporary folder: one auroral arc, a band of latitude at
110 km, drifts south across Gillam in an hour.  Each imager sees it through its own
ideal skymap (THEMIS 256 x 256 turned by -12 deg, REGO 512 x 512 turned by +20 deg with
a slightly narrower lens), so that every frame pixel shows the arc where that pixel's
110 km latitude says.  The frames are written as UCalgary PGM minutes (THEMIS by
:mod:`oathcube.synthetic.themis`, REGO by :mod:`oathcube.synthetic.ucalgary`), the
skymaps as UCalgary skymap files (``themis_skymap_gill_...sav``,
``rego_skymap_gill_...sav``, :func:`oathcube.archive.skymap.write_skymap`), and all of
them go through ``oathcube.ingest`` into one cube: stations ``gill`` and ``gill_rego``,
each with its own skymap.  Then ``oathcube.keogram`` of each station, drawn by
:func:`oathcube.views.keograms.plot_keogram`: if frames, skymaps and views agree per
imager, the arc runs along the same line in both panels.

Usage::

    python scripts/two_imagers_keogram.py OUT.png [--minutes 60 --frames 20]

``tests/test_imager_skymaps.py`` builds the same scene (smaller) with :func:`build_cube`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from oathcube import ingest, keogram
from oathcube.archive.skymap import Skymap, ideal_skymap, write_skymap
from oathcube.synthetic.themis import write_pgm
from oathcube.synthetic.ucalgary import write_ucalgary_pgm

SITE, LATITUDE, LONGITUDE = "gill", 56.38, 265.36
HOUR = np.datetime64("2014-03-10T06:00:00", "s")
#: The arc's 110 km latitude: from 3 deg north of the site to 3 deg south in the hour.
ARC_NORTH, ARC_SOUTH, ARC_WIDTH = LATITUDE + 3.0, LATITUDE - 3.0, 0.3
CADENCE_S = 3.0  # both imagers


def arc_latitude(t: np.ndarray | np.datetime64) -> np.ndarray:
    """Where the arc is (degrees north at 110 km) at times ``t``."""
    hours = (np.asarray(t, dtype="datetime64[us]") - HOUR) / np.timedelta64(3600, "s")
    return ARC_NORTH + (ARC_SOUTH - ARC_NORTH) * np.asarray(hours, dtype=float)


def skymaps() -> dict[str, Skymap]:
    """The two imagers' synthetic skymaps, valid from the start of the year."""
    common = {"valid_from": "2014-01-01T00"}
    return {
        "themis": ideal_skymap(SITE, LATITUDE, LONGITUDE, rotation_deg=-12.0, **common),
        "rego": ideal_skymap(
            SITE,
            LATITUDE,
            LONGITUDE,
            instrument="rego",
            rotation_deg=20.0,
            fov_fraction=0.92,
            **common,
        ),
    }


def _pixel_latitude(sky: Skymap) -> np.ndarray:
    """Latitude at 110 km of each pixel's centre (the mean of its four corners)."""
    lat = sky.latitude[list(np.round(sky.altitude_km)).index(110)].astype(np.float64)
    return (lat[:-1, :-1] + lat[1:, :-1] + lat[:-1, 1:] + lat[1:, 1:]) / 4


def frames(sky: Skymap, times: np.ndarray, seed: int) -> np.ndarray:
    """``uint16`` frames of the scene seen through ``sky``, in the files' (the cube's) order."""
    lat = _pixel_latitude(sky)
    rng = np.random.default_rng(seed)
    out = np.empty((times.size, *lat.shape), dtype=np.uint16)
    inside = np.isfinite(lat)
    for i, centre in enumerate(arc_latitude(times)):
        glow = 8000.0 * np.exp(-0.5 * ((lat - centre) / ARC_WIDTH) ** 2)
        counts = np.where(inside, 2000.0 + np.nan_to_num(glow), 1000.0)
        out[i] = np.clip(counts + rng.normal(0, 40, lat.shape), 0, 65535).astype(np.uint16)
    return out


def build_cube(folder: Path, minutes: int = 60, frames_per_minute: int = 20) -> Path:
    """Write the scene's files under ``folder`` and ingest them into ``folder/cube.zarr``.

    ``minutes`` one-minute files per imager spread over the hour (the first at 06:00,
    the last at 06:59 or earlier), each of ``frames_per_minute`` frames every 3 s.
    """
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    maps = skymaps()
    sources = [write_skymap(sky, raw) for sky in maps.values()]
    starts = HOUR + (np.linspace(0, 59, minutes).round().astype(int) * np.timedelta64(60, "s"))
    step = np.timedelta64(int(CADENCE_S * 1e6), "us")
    for k, start in enumerate(np.unique(starts)):
        times = start + step * np.arange(frames_per_minute)
        sources.append(
            write_pgm(
                raw,
                SITE,
                start,
                frames_per_minute,
                frames=frames(maps["themis"], times, seed=k),
            )
        )
        sources.append(
            write_ucalgary_pgm(
                raw,
                "rego",
                SITE,
                start,
                frames_per_minute,
                gz=False,
                frames=frames(maps["rego"], times, seed=1000 + k),
            )
        )
    cube = folder / "cube.zarr"
    ingest(sources, cube, progress=False)
    return cube


def draw(cube: Path, out: Path) -> Path:
    """Both stations' keograms, THEMIS above REGO, in one PNG at ``out``."""
    import matplotlib.image as mpimg

    from oathcube.views.figures import new_figure, save_figure
    from oathcube.views.keograms import plot_keogram

    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for station, title in (("gill", "THEMIS"), ("gill_rego", "REGO")):
            keo = keogram(cube, station)
            path = plot_keogram(
                keo,
                Path(tmp) / f"{station}.png",
                title=f"{station}: {title} keogram along the meridian, SYNTHETIC arc "
                f"and skymap ({keo.attrs['skymap']})",
            )
            panels.append(mpimg.imread(path))
    height = sum(p.shape[0] for p in panels)
    width = max(p.shape[1] for p in panels)
    dpi = 110
    fig = new_figure(width / dpi, height / dpi, dpi=dpi)
    top = 1.0
    for panel in panels:
        share = panel.shape[0] / height
        ax = fig.add_axes((0.0, top - share, panel.shape[1] / width, share))
        ax.imshow(panel, interpolation="none")
        ax.set_axis_off()
        top -= share
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--minutes", type=int, default=60, help="one-minute files per imager")
    parser.add_argument("--frames", type=int, default=20, help="frames per minute file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cube = build_cube(Path(tmp), args.minutes, args.frames)
        path = draw(cube, args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
