"""UCalgary all-sky imager files in their real formats, for the tests of the readers.

* :func:`write_ucalgary_pgm`: a one-minute PGM file of THEMIS, REGO, TREx NIR or TREx
  Blueline (``YYYYMMDD_HHMM_<site>_<imager>_<mode>.pgm[.gz]``), or a dark file of the
  last three;
* :func:`write_trex_rgb_h5`: a TREx RGB nominal one-minute HDF5 file
  (``YYYYMMDD_HHMM_<site>_rgb-NN_full.h5``).

The files are written as pyucalgarysrs 1.28's readers define the formats (what they
parse is what is written): concatenated ``P5`` images, each with its ``#"Key" value``
comment lines, ``"<width> <height>\\n65535\\n"`` and big-endian 16-bit rows, the
per-frame metadata closed by the line pyucalgarysrs splits frames at (``Exposure plus
initial readout`` for THEMIS, ``Exposure plus readout`` for the others), the time in
``Image request start``; for RGB, ``data/images`` ``(y, x, 3, n)`` ``uint8``,
``data/timestamp`` and the ``metadata/file`` and ``metadata/frame/frame<i>`` attributes
(``image_request_start_timestamp``).  The names are the UCalgary names; the darks'
follow the two real ones pyucalgarysrs's tests list
(``20220101_2329_gill_nir-216_8446_dark.pgm.gz``,
``20240101_005115_825600_atha_blue-633_dark_full.pgm``), REGO's the NIR pattern.

Pixels are seeded noise over a gradient, so that no flip or transposition leaves a frame
unchanged.  Sizes and cadences default to each instrument's nominal ones
(:data:`oathcube.archive.instruments.INSTRUMENTS`; Blueline, whose size varies, to the
270 x 320 pyucalgarysrs expects, every 3 s); the tests write few frames to stay quick.
Imported only by name, like :mod:`.themis`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

import h5py
import numpy as np

from ..archive.instruments import INSTRUMENTS

__all__ = [
    "UCALGARY_IMAGERS",
    "ucalgary_frames",
    "ucalgary_times",
    "write_trex_rgb_h5",
    "write_ucalgary_pgm",
]

#: Per instrument: imager ID, the name's field after it, the project, the key that ends
#: a frame's metadata, and (y, x, seconds between frames) used by default.
UCALGARY_IMAGERS: dict[str, dict[str, object]] = {
    "themis": {
        "imager": "themis19",
        "mode": "full",
        "project": "THEMIS",
        "end_key": "Exposure plus initial readout",
        "end_value": "   984.96 ms",
    },
    "rego": {
        "imager": "rego-652",
        "mode": "6300",
        "project": "REGO",
        "end_key": "Exposure plus readout",
        "end_value": "2000.05 ms",
    },
    "trex_nir": {
        "imager": "nir-216",
        "mode": "8446",
        "project": "TREx",
        "end_key": "Exposure plus readout",
        "end_value": "5000.07 ms",
    },
    "trex_blue": {
        "imager": "blue-814",
        "mode": "full",
        "project": "TREx",
        "end_key": "Exposure plus readout",
        "end_value": "2000.06 ms",
    },
    "trex_rgb": {"imager": "rgb-04", "mode": "full", "project": "TREx"},
}

_BLUE_SHAPE = (270, 320)
_BLUE_CADENCE_S = 3.0


def _shape(instrument: str) -> tuple[int, int]:
    return INSTRUMENTS[instrument].shape or _BLUE_SHAPE


def _cadence(instrument: str) -> float:
    return INSTRUMENTS[instrument].cadence_s or _BLUE_CADENCE_S


def _as_datetime64(t: str | dt.datetime | np.datetime64) -> np.datetime64:
    if isinstance(t, dt.datetime) and t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    # Whole microseconds, as the files write times.  numpy's stubs have no
    # datetime64(datetime64, unit) overload; it works.
    return np.datetime64(t, "us").astype("datetime64[ns]")  # type: ignore[call-overload]


def ucalgary_times(
    instrument: str, start: str | dt.datetime | np.datetime64, n: int, cadence_s: float | None
) -> np.ndarray:
    """``n`` frame times from ``start``, every ``cadence_s`` (default: the instrument's),
    each with a few microseconds of jitter as real request times have (``datetime64[ns]``,
    whole microseconds)."""
    step = np.timedelta64(int(round((cadence_s or _cadence(instrument)) * 1e6)), "us")
    jitter = (np.arange(n) * 7919 % 60000).astype("timedelta64[us]")
    return (_as_datetime64(start) + np.arange(n) * step + jitter).astype("datetime64[ns]")


def ucalgary_frames(
    n: int, shape: tuple[int, ...], seed: int = 0, dtype: type = np.uint16
) -> np.ndarray:
    """Seeded frames ``(n, *shape)``: a gradient down the rows and noise (no symmetry)."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    rows = np.linspace(0.1, 0.5, shape[0])[:, None]
    cols = np.linspace(0.0, 0.15, shape[1])[None, :]
    base = (rows + cols).reshape(shape[:2] + (1,) * (len(shape) - 2))
    noise = rng.random((n, *shape)) * 0.3
    return ((base[None] + noise) * top).astype(dtype)


def _stamp(t: np.datetime64, seconds: bool = False) -> str:
    """``YYYYMMDD_HHMM`` (or ``YYYYMMDD_HHMMSS_ffffff``) of a time."""
    text = str(t.astype("datetime64[us]"))  # 2021-01-01T06:00:03.123456
    day, clock = text.split("T")
    hh, mm, rest = clock.split(":")
    ss, _, us = rest.partition(".")
    head = day.replace("-", "") + "_" + hh + mm
    return head + (ss + "_" + (us or "0").ljust(6, "0") if seconds else "")


def _utc(t: np.datetime64) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff UTC``, as the files write times."""
    text = str(t.astype("datetime64[us]")).replace("T", " ")
    return (text if "." in text else text + ".000000") + " UTC"


def write_ucalgary_pgm(
    path: str | os.PathLike[str],
    instrument: str,
    site: str,
    start: str | dt.datetime | np.datetime64,
    n: int,
    *,
    gz: bool = True,
    seed: int = 0,
    shape: tuple[int, int] | None = None,
    cadence_s: float | None = None,
    frames: np.ndarray | None = None,
    dark: bool = False,
    imager: str | None = None,
) -> Path:
    """Write a UCalgary one-minute PGM file of ``instrument`` (plain or gzip).

    Parameters
    ----------
    path
        Output file, or a directory to write the file under its UCalgary name.
    instrument
        ``themis``, ``rego``, ``trex_nir`` or ``trex_blue``.
    site
        Station code (``Site unique ID`` and the name's site).
    start
        ``Image request start`` of the first frame (UTC).
    n
        Number of frames.
    gz
        Gzip the file (and name it ``.pgm.gz`` when ``path`` is a directory).
    seed, shape, cadence_s
        Seed of :func:`ucalgary_frames`, frame size ``(y, x)`` and seconds between frames
        (defaults: the instrument's nominal ones).
    frames
        ``(n, y, x)`` ``uint16`` pixels to write instead, in file order (row 0 first).
    dark
        A dark file: ``..._<mode>_dark.pgm`` (Blueline: ``YYYYMMDD_HHMMSS_ffffff_<site>_
        <imager>_dark_full.pgm``), with ``Mode unique ID`` ``dark``.
    imager
        ``Imager unique ID`` (and the name's imager) instead of the instrument's usual one.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    info = UCALGARY_IMAGERS[instrument]
    if instrument == "trex_rgb":
        raise ValueError("TREx RGB files are HDF5: use write_trex_rgb_h5")
    imager = imager or str(info["imager"])
    times = ucalgary_times(instrument, start, n, cadence_s)
    if frames is None:
        frames = ucalgary_frames(n, shape or _shape(instrument), seed)
    frames = np.asarray(frames)
    if frames.shape[0] != n or frames.ndim != 3:
        raise ValueError(f"frames of shape {frames.shape} for {n} frames")
    path = Path(path)
    if path.is_dir():
        mode = str(info["mode"])
        if dark and instrument == "trex_blue":
            name = f"{_stamp(times[0], seconds=True)}_{site}_{imager}_dark_full"
        elif dark:
            name = f"{_stamp(times[0])}_{site}_{imager}_{mode}_dark"
        else:
            name = f"{_stamp(times[0])}_{site}_{imager}_{mode}"
        path = path / f"{name}.pgm{'.gz' if gz else ''}"
    height, width = frames.shape[1:]
    parts: list[bytes] = []
    for i in range(n):
        lines = ["P5"]
        if i == 0:  # the first frame carries the site and imager description
            lines += [
                f'#"Project unique ID" {info["project"]}',
                f'#"Site unique ID" {site}',
                f'#"Imager unique ID" {imager}',
                '#"Site name" synthetic',
                '#"Geodetic latitude" 56.3539',
                '#"Geodetic Longitude" -94.6557',
                '#"Pixel depth" 16 bits',
            ]
        request = times[i]
        readout = request + np.timedelta64(985, "ms")
        lines += [
            f'#"Mode unique ID" {"dark" if dark else info["mode"]}',
            f'#"Mode sequence number" {1000 + i}',
            f'#"Image request start" {_utc(request)}',
            f'#"Image readout start" {_utc(readout)}',
            f'#"{info["end_key"]}" {info["end_value"]}',
            f"{width} {height}",
            "65535",
        ]
        parts.append(("\n".join(lines) + "\n").encode("ascii"))
        parts.append(np.asarray(frames[i], dtype=">u2").tobytes())
    data = b"".join(parts)
    if gz or path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=1, mtime=0)
    path.write_bytes(data)
    return path


def write_trex_rgb_h5(
    path: str | os.PathLike[str],
    site: str,
    start: str | dt.datetime | np.datetime64,
    n: int,
    *,
    seed: int = 0,
    shape: tuple[int, int] | None = None,
    cadence_s: float | None = None,
    frames: np.ndarray | None = None,
    imager: str | None = None,
) -> Path:
    """Write a TREx RGB nominal one-minute HDF5 file.

    Parameters
    ----------
    path
        Output file, or a directory to write ``YYYYMMDD_HHMM_<site>_rgb-NN_full.h5``.
    site, start, n, seed, shape, cadence_s, imager
        As :func:`write_ucalgary_pgm` (default size 480 x 553, every 3 s, ``rgb-04``).
    frames
        ``(n, y, x, 3)`` ``uint8`` pixels to write instead, in file order.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    info = UCALGARY_IMAGERS["trex_rgb"]
    imager = imager or str(info["imager"])
    times = ucalgary_times("trex_rgb", start, n, cadence_s)
    if frames is None:
        frames = ucalgary_frames(n, (*(shape or _shape("trex_rgb")), 3), seed, np.uint8)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[0] != n or frames.shape[3] != 3:
        raise ValueError(f"frames of shape {frames.shape} for {n} RGB frames")
    path = Path(path)
    if path.is_dir():
        path = path / f"{_stamp(times[0])}_{site}_{imager}_{info['mode']}.h5"
    with h5py.File(path, "w") as f:
        y, x = frames.shape[1:3]
        f.create_dataset(
            "data/images",
            data=np.moveaxis(frames, 0, 3),  # (y, x, 3, n), frames last as in the files
            chunks=(y, x, 3, 1),
            compression="gzip",
            compression_opts=1,
        )
        f.create_dataset("data/timestamp", data=np.array([_utc(t).encode() for t in times]))
        meta = f.create_group("metadata")
        file_attrs = meta.create_group("file").attrs
        file_attrs["project_unique_id"] = str(info["project"]).lower()
        file_attrs["site_unique_id"] = site
        file_attrs["imager_unique_id"] = imager
        file_attrs["site_name"] = "synthetic"
        frame_group = meta.create_group("frame")
        for i, t in enumerate(times):
            attrs = frame_group.create_group(f"frame{i}").attrs
            attrs["image_request_start_timestamp"] = _utc(t)
            attrs["image_effective_end_timestamp"] = _utc(t + np.timedelta64(2, "s"))
            attrs["mode_unique_id"] = str(info["mode"])
    return path
