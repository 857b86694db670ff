"""Write small synthetic THEMIS ASI raw files in the real formats, for tests.

* :func:`write_cdf`: a Berkeley L1 ``thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf`` written with
  cdflib's CDF writer, with the variables, types and attributes of the real Gakona file
  (classic layout), or the 2024 layout (one record ``(1, y, x, N)``, per-frame times in
  ``_time``, and with ``epoch="start"`` the one ``_epoch`` value of the real files), and the
  layouts between them a reader may meet (frames first or last, one record or many).
* :func:`write_pgm`: a UCalgary one-minute ``YYYYMMDD_HHMM_<site>_themisNN_full.pgm[.gz]``:
  concatenated 16-bit big-endian PGM frames, each with its own header and ``#"Key" value``
  metadata comments (full site description on the first frame, as in the real files).

Frames look like a night sky through a fisheye: dark surroundings (~2,300 counts), a
brighter sky disc, fixed stars, a drifting arc and noise, all reproducible from ``seed``.
Frame ``i`` is taken at ``start + 3 s * i``.  :func:`expected_frames` gives the same pixels
without writing a file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

import cdflib.cdfwrite
import numpy as np

__all__ = ["write_cdf", "write_pgm", "expected_frames", "frame_times", "CADENCE_S"]

#: Seconds between frames, as THEMIS ASIs take them.
CADENCE_S = 3.0
# CDF_EPOCH counts milliseconds from 0000-01-01; this is 1970-01-01 on that scale.
_EPOCH_1970_MS = 62167219200000.0


def _as_datetime64(start: str | dt.datetime | np.datetime64) -> np.datetime64:
    if isinstance(start, dt.datetime) and start.tzinfo is not None:
        start = start.astimezone(dt.UTC).replace(tzinfo=None)
    # numpy's stubs have no datetime64(datetime64, unit) overload; it works.
    return np.datetime64(start, "ns")  # type: ignore[call-overload]


def frame_times(start: str | dt.datetime | np.datetime64, n: int) -> np.ndarray:
    """``datetime64[ns]`` times of the ``n`` frames that the writers put from ``start``."""
    step = np.timedelta64(int(CADENCE_S * 1e9), "ns")
    return _as_datetime64(start) + step * np.arange(n)


def expected_frames(n: int, seed: int = 0, size: int = 256) -> np.ndarray:
    """The ``(n, size, size)`` ``uint16`` frames that the writers store for ``seed``.

    Parameters
    ----------
    n
        Number of frames.
    seed
        Seed of the stars, the arc's path and the noise.
    size
        Frame side in pixels (THEMIS: 256).

    Returns
    -------
    numpy.ndarray
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    r = np.hypot(yy - c, xx - c) / (size / 2.0)
    disc = np.clip((1.0 - r) * 12.0, 0.0, 1.0)  # soft-edged fisheye field of view
    sky = 2300.0 + disc * (900.0 + 600.0 * r**4)  # brighter towards the horizon, like glow
    stars = np.zeros((size, size), np.float32)
    k = max(4, size * size // 600)
    stars[rng.integers(0, size, k), rng.integers(0, size, k)] = rng.uniform(300, 3000, k)
    stars *= disc > 0.5
    tilt = rng.uniform(-0.5, 0.5)
    out = np.empty((n, size, size), dtype=np.uint16)
    for i in range(n):
        # An east-west arc drifting across the sky, brightening and fading.
        y0 = size * (0.2 + 0.6 * ((i * 0.013 + seed * 0.1) % 1.0))
        arc = (
            4000.0
            * np.sin(np.pi * ((i % 40) + 1) / 42)
            * np.exp(-(((yy - y0 - tilt * (xx - c)) / (0.04 * size)) ** 2))
        )
        noise = rng.normal(0.0, 25.0, (size, size)).astype(np.float32)
        frame = sky + stars + arc * disc + noise
        out[i] = np.clip(np.rint(frame), 0, 65535).astype(np.uint16)
    return out


def write_cdf(
    path: str | os.PathLike[str],
    site: str,
    start: str | dt.datetime | np.datetime64,
    n: int,
    layout: str = "classic",
    seed: int = 0,
    *,
    size: int = 256,
    compress: int = 6,
    time_one_record: bool = False,
    frames: np.ndarray | None = None,
    times: np.ndarray | None = None,
    epoch: str | None = None,
    frames_axis: str = "last",
    records: int = 1,
    rec_vary: bool = True,
    block_factor: int | None = None,
    big_endian: bool = False,
) -> Path:
    """Write a THEMIS ASI L1 CDF file.

    Parameters
    ----------
    path
        Output file, or a directory to write ``thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf`` in.
    site
        Station code, e.g. ``"gako"``.
    start
        Time of the first frame (UTC).
    n
        Number of frames (one every 3 s).
    layout
        ``"classic"``: ``thg_asf_<site>`` as ``n`` records of ``(size, size)``, with
        ``_epoch`` (CDF_EPOCH), ``_time``, ``_tend``, ``_epoch0``, ``_column``, ``_row`` and
        ``range_epoch`` as in the real files; ``"2024"``: one record ``(1, size, size, n)``
        and ``_time`` (and ``_epoch`` as ``epoch`` says), or frames first, over several
        records, not record-varying as ``frames_axis``, ``records`` and ``rec_vary`` say.
    seed
        Seed of the synthetic frames (see :func:`expected_frames`).
    size
        Frame side in pixels.
    compress
        gzip level of the image variable (the real files use 6); 0 for none.
    time_one_record
        2024 layout only: store ``_time`` as one record of ``n`` values instead of ``n``
        records, the other shape a reader may meet.
    frames
        Pixels to store instead of the synthetic ones, ``(n, size, size)`` ``uint16``.
    times
        Frame times (``datetime64``) instead of one every 3 s from ``start``, e.g. out of
        order; a count other than ``n`` writes a damaged file (frames and times disagree).
    epoch
        What ``thg_asf_<site>_epoch`` holds: ``"frames"`` one ``CDF_EPOCH`` value per time
        (the classic layout's default), ``"start"`` one value, the start of the file's
        hour and no frame's time (as the real 2024 files), ``"none"`` no such variable
        (the ``"2024"`` layout's default).
    frames_axis
        ``"2024"`` layout: where a record holds its frames, ``"last"`` (``(y, x, k)``, as
        the real 2024 files) or ``"first"`` (``(k, y, x)``).
    records
        ``"2024"`` layout: the number of records the ``n`` frames are spread over, ``k =
        n / records`` each (the real 2024 files: 1).
    rec_vary
        ``"2024"`` layout with one record: False writes the image variable as not
        record-varying.
    block_factor
        Records per compressed block of the image variable; None: the classic layout's 7
        (as the Berkeley files), cdflib's choice in the ``"2024"`` layout.
    big_endian
        Write the numbers big-endian (``NETWORK`` encoding, as the Berkeley files), not
        in the host's order.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if layout not in ("classic", "2024"):
        raise ValueError(f"layout must be 'classic' or '2024', not {layout!r}")
    if epoch not in (None, "frames", "start", "none"):
        raise ValueError(f"epoch must be 'frames', 'start' or 'none', not {epoch!r}")
    if frames_axis not in ("last", "first"):
        raise ValueError(f"frames_axis must be 'last' or 'first', not {frames_axis!r}")
    if records < 1 or n % records or (not rec_vary and records != 1):
        raise ValueError(f"{records} records cannot hold {n} frames (rec_vary={rec_vary})")
    if layout == "classic" and (frames_axis != "last" or records != 1 or not rec_vary):
        raise ValueError("frames_axis, records and rec_vary are options of the '2024' layout")
    epoch = epoch or ("frames" if layout == "classic" else "none")
    t0 = _as_datetime64(start)
    path = Path(path)
    if path.is_dir():
        hour = str(t0.astype("datetime64[h]")).replace("-", "").replace("T", "")
        path = path / f"thg_l1_asf_{site}_{hour}_v01.cdf"
    if path.exists():
        path.unlink()  # cdflib's writer refuses to overwrite
    if frames is None:
        frames = expected_frames(n, seed, size)
    frames = np.ascontiguousarray(frames, dtype=np.uint16)
    times = frame_times(t0, n) if times is None else np.asarray(times, "datetime64[ns]")
    unix = (times - np.datetime64(0, "ns")).astype(np.int64) / 1e9
    var = f"thg_asf_{site}"

    spec: dict[str, object] = {"Majority": "row_major", "Compressed": 0}
    if big_endian:
        spec["Encoding"] = 1  # NETWORK
    writer = cdflib.cdfwrite.CDF(str(path), cdf_spec=spec)
    try:
        writer.write_globalattrs(
            {
                "Project": {0: "THEMIS"},
                "Source_name": {0: "THG_L1>THEMIS Ground Based Observatory"},
                "Data_type": {0: "ASF>All Sky Imager, Full resolution images, High resolution"},
                "Descriptor": {0: f"{site.upper()}>synthetic test site"},
                "Logical_source": {0: f"thg_l1_asf_{site}"},
                "Logical_file_id": {0: path.stem},
                "Time_resolution": {0: "3s"},
                "Generated_by": {0: "oathcube.synthetic.themis (synthetic frames)"},
            }
        )
        image_attrs = {
            "CATDESC": f"Images of {size}x{size} pixels",
            "DEPEND_0": f"{var}_epoch" if layout == "classic" else f"{var}_time",
            "DISPLAY_TYPE": "image",
            "FIELDNAM": var,
            "FILLVAL": [65535, "CDF_UINT2"],
            "UNITS": "counts",
            "VAR_TYPE": "data",
        }
        image_spec = {
            "Variable": var,
            "Data_Type": cdflib.cdfwrite.CDF.CDF_UINT2,
            "Num_Elements": 1,
            "Rec_Vary": True,
            "Compress": compress,
        }
        time_spec = {
            "Variable": f"{var}_time",
            "Data_Type": cdflib.cdfwrite.CDF.CDF_REAL8,
            "Num_Elements": 1,
            "Rec_Vary": True,
            "Dim_Sizes": [],
        }
        time_attrs = {
            "CATDESC": f"{var}_time, UTC, in seconds since 01-Jan-1970 00:00:00",
            "FIELDNAM": f"{var}_time",
            "UNITS": "sec",
            "VAR_TYPE": "support_data",
        }
        epochs = _EPOCH_1970_MS + unix * 1000.0
        if epoch == "start":
            hour = (t0.astype("datetime64[h]") - np.datetime64(0, "h")).astype(np.int64)
            epochs = np.array([_EPOCH_1970_MS + 3_600_000.0 * float(hour)])
        if layout == "classic":
            writer.write_var(
                dict(
                    image_spec, Dim_Sizes=[size, size], Block_Factor=block_factor or min(n, 7) or 1
                ),
                var_attrs=image_attrs,
                var_data=frames,
            )
            writer.write_var(time_spec, var_attrs=time_attrs, var_data=unix)
            _write_classic_support(writer, var, size, unix, epoch, epochs)
        else:
            k = n // records
            if frames_axis == "last":  # (records, y, x, k)
                packed = frames.reshape(records, k, size, size).transpose(0, 2, 3, 1)
                dims = [size, size, k]
            else:  # (records, k, y, x)
                packed = frames.reshape(records, k, size, size)
                dims = [k, size, size]
            spec = dict(image_spec, Dim_Sizes=dims)
            if block_factor:
                spec["Block_Factor"] = block_factor
            if not rec_vary:
                spec["Rec_Vary"] = False
            writer.write_var(
                spec,
                var_attrs=image_attrs,
                var_data=np.ascontiguousarray(packed if rec_vary else packed[0]),
            )
            if time_one_record:
                count = unix.size
                writer.write_var(dict(time_spec, Dim_Sizes=[count]), time_attrs, unix[None].copy())
            else:
                writer.write_var(time_spec, var_attrs=time_attrs, var_data=unix)
            if epoch != "none":
                writer.write_var(
                    _EPOCH_SPEC | {"Variable": f"{var}_epoch"},
                    var_attrs={"VAR_TYPE": "support_data", "CATDESC": _EPOCH_TEXT[epoch]},
                    var_data=epochs,
                )
    finally:
        writer.close()
    return path


_EPOCH_SPEC = {
    "Data_Type": cdflib.cdfwrite.CDF.CDF_EPOCH,
    "Num_Elements": 1,
    "Rec_Vary": True,
    "Dim_Sizes": [],
}
_EPOCH_TEXT = {
    "frames": "Epoch of start of image exposure",
    "start": "Epoch of the start of the hour the file covers (not a frame time)",
}


def _write_classic_support(
    writer: cdflib.cdfwrite.CDF,
    var: str,
    size: int,
    unix: np.ndarray,
    epoch: str,
    epochs: np.ndarray,
) -> None:
    """The support variables of a classic-layout file (epochs, end times, pixel numbers);
    ``epoch`` says what ``_epoch`` holds (see :func:`write_cdf`), ``epochs`` its values."""
    real8 = cdflib.cdfwrite.CDF.CDF_REAL8
    epoch_t = cdflib.cdfwrite.CDF.CDF_EPOCH
    uint2 = cdflib.cdfwrite.CDF.CDF_UINT2
    support = {"VAR_TYPE": "support_data"}
    writer.write_var(
        {
            "Variable": f"{var}_tend",
            "Data_Type": real8,
            "Num_Elements": 1,
            "Rec_Vary": True,
            "Dim_Sizes": [],
        },
        var_attrs=dict(support, CATDESC="end time of integration, unix seconds"),
        var_data=unix + 1.0,
    )
    if epoch != "none":
        writer.write_var(
            {
                "Variable": f"{var}_epoch",
                "Data_Type": epoch_t,
                "Num_Elements": 1,
                "Rec_Vary": True,
                "Dim_Sizes": [],
            },
            var_attrs=dict(support, CATDESC=_EPOCH_TEXT[epoch]),
            var_data=epochs,
        )
    writer.write_var(
        {
            "Variable": f"{var}_epoch0",
            "Data_Type": epoch_t,
            "Num_Elements": 1,
            "Rec_Vary": False,
            "Dim_Sizes": [],
        },
        var_attrs=dict(support, CATDESC="EPOCH0 of THEMIS TIME BASE"),
        var_data=np.array([_EPOCH_1970_MS]),
    )
    for axis in ("column", "row"):
        writer.write_var(
            {
                "Variable": f"{var}_{axis}",
                "Data_Type": uint2,
                "Num_Elements": 1,
                "Rec_Vary": False,
                "Dim_Sizes": [size],
            },
            var_attrs=dict(support, CATDESC=f"Number of {axis} in image"),
            var_data=np.arange(size, dtype=np.uint16),
        )
    writer.write_var(
        {
            "Variable": "range_epoch",
            "Data_Type": epoch_t,
            "Num_Elements": 1,
            "Rec_Vary": True,
            "Dim_Sizes": [],
        },
        var_attrs=dict(support, CATDESC="Epochs of first and last image in file"),
        var_data=_EPOCH_1970_MS + 1000.0 * np.array([unix[0], unix[-1]]),
    )


def write_pgm(
    path: str | os.PathLike[str],
    site: str,
    start: str | dt.datetime | np.datetime64,
    n: int,
    gz: bool = False,
    seed: int = 0,
    *,
    size: int = 256,
    imager: str = "themis19",
    frames: np.ndarray | None = None,
) -> Path:
    """Write a UCalgary THEMIS one-minute PGM file (plain or gzip).

    Parameters
    ----------
    path
        Output file, or a directory to write ``YYYYMMDD_HHMM_<site>_<imager>_full.pgm[.gz]``.
    site
        Station code, written as ``Site unique ID``.
    start
        ``Image request start`` of the first frame (UTC); later frames every 3 s.
    n
        Number of frames (real files: 20).
    gz
        Gzip the file (and name it ``.pgm.gz`` when ``path`` is a directory).
    seed
        Seed of the synthetic frames (see :func:`expected_frames`).
    size
        Frame side in pixels.
    imager
        ``Imager unique ID`` and the name's imager part.
    frames
        Pixels to store instead of the synthetic ones, ``(n, size, size)`` ``uint16``.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    t0 = _as_datetime64(start)
    path = Path(path)
    if path.is_dir():
        stamp = str(t0.astype("datetime64[m]")).replace("-", "").replace("T", "_").replace(":", "")
        path = path / f"{stamp}_{site}_{imager}_full.pgm{'.gz' if gz else ''}"
    if frames is None:
        frames = expected_frames(n, seed, size)
    times = frame_times(t0, n)
    parts: list[bytes] = []
    for i in range(n):
        request = _utc_text(times[i])
        readout = _utc_text(times[i] + np.timedelta64(985, "ms"))
        lines = ["P5"]
        if i == 0:
            # The first frame carries the site description, as in the real files.
            lines += [
                '#"Revised" 2006-05-22',
                '#"Project unique ID" themis-gbo',
                f'#"Site unique ID" {site}',
                f'#"Imager unique ID" {imager}',
                '#"Imager model" starlight Xpress MX716 with THEMIS all-sky optics',
                '#"Pixel depth" 16 bits',
                '#"Project unique ID" THEMIS',
                f'#"Site unique ID" {site}',
                '#"Site name" synthetic',
            ]
        lines += [
            '#"Mode unique ID" full',
            f'#"Mode sequence number" {1000 + i}',
            f'#"Exposure options" WIDTH={2 * size} HEIGHT={size} XBIN=2 YBIN=1 MSEC=999',
            f'#"Image request start" {request} UTC',
            f'#"Image readout start" {readout} UTC',
            '#"Exposure plus initial readout"    984.96 ms',
            f"{size} {size}",
            "65535",
        ]
        parts.append(("\n".join(lines) + "\n").encode("ascii"))
        parts.append(np.asarray(frames[i], dtype=">u2").tobytes())
    data = b"".join(parts)
    if gz or path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6)
    path.write_bytes(data)
    return path


def _utc_text(t: np.datetime64) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` as the PGM comments write times."""
    return str(t.astype("datetime64[us]")).replace("T", " ")
