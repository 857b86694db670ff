"""Folders of already-prepared all-sky images (PNG/JPEG) with station and time per image.

Where station and time come from, first match wins:

1. a CSV with columns ``file,station,time`` (header required, any column order, names
   case-insensitive; ``station`` may be left out when the caller gives one).  ``file`` is
   the image path relative to the folder, or just its name; ``time`` is ISO 8601
   (``2011-01-06T17:00:03``, ``2011-01-06 17:00:03.5``, ``...Z`` or ``+01:00``; an offset is
   converted to UTC, a time without one is taken as UTC).  By default the folder's own
   single ``*.csv`` is used;
2. the file name: ``<station>_<YYYYMMDD>_<HHMMSS>.png`` or ``<YYYYMMDD>_<HHMMSS>_<station>.png``
   (``-`` also accepted as separator, optional fraction ``.f`` after the seconds; the station
   may be absent when the caller gives one).

Frames come back as ``uint8`` greyscale (an RGB/RGBA image whose three colour bands are
equal is taken as one band; a truly coloured image is refused rather than converted, since
a colour-to-grey rule would be an unrecorded preparation step), ``raw=False``, one block
per station in time order, split into blocks of at most ``max_frames`` so that memory stays
bounded for large folders.  A bad image (cannot be decoded, coloured, not 8-bit, other
size) raises :class:`~oathcube.errors.IngestError` naming the image, or is reported to
``on_bad`` and left out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd

from oathcube.archive.blocks import IMAGE_SUFFIXES, FrameBlock
from oathcube.errors import IngestError

__all__ = ["iter_folder_blocks", "read_folder", "parse_image_name", "load_grey_image"]

OnBad = Callable[[IngestError, Path], None]

_STATION = r"(?P<station>[A-Za-z][A-Za-z0-9]*)"
_STAMP = r"(?P<date>\d{8})[_-](?P<clock>\d{6})(?:[.](?P<frac>\d{1,9}))?"
_NAME_STATION_FIRST = re.compile(rf"^{_STATION}[_-]{_STAMP}$")
_NAME_TIME_FIRST = re.compile(rf"^{_STAMP}(?:[_-]{_STATION})?$")

_FILE_COLUMNS = ("file", "filename", "path", "image")
_TIME_COLUMNS = ("time", "datetime", "timestamp")


def parse_image_name(name: str) -> tuple[str | None, np.datetime64] | None:
    """Station and time from an image file name, or None when the name carries no time.

    Parameters
    ----------
    name
        ``gako_20110106_170003.png``, ``20110106_170003_gako.png`` or
        ``20110106_170003.png`` (no station).

    Returns
    -------
    tuple or None
        ``(station or None, datetime64[ns])``.
    """
    stem = Path(name).name
    for suffix in IMAGE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    m = _NAME_STATION_FIRST.match(stem) or _NAME_TIME_FIRST.match(stem)
    if m is None:
        return None
    d, c = m.group("date"), m.group("clock")
    text = f"{d[:4]}-{d[4:6]}-{d[6:]}T{c[:2]}:{c[2:4]}:{c[4:]}"
    if m.group("frac"):
        text += "." + m.group("frac")
    try:
        when = np.datetime64(text, "ns")
    except ValueError:
        return None  # digits in the right places but no real date (month 13...)
    station = m.group("station")
    return (station.lower() if station else None), when


def load_grey_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode one image as a ``uint8`` greyscale ``(y, x)`` array.

    Parameters
    ----------
    path
        PNG or JPEG file.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` ``uint8``.

    Raises
    ------
    IngestError
        The image cannot be decoded, is coloured, or is not 8-bit.
    """
    try:
        # Pillow reads PNG and JPEG; naming it stops imageio from probing every other
        # plugin (DICOM...) on a broken file.
        image = np.asarray(iio.imread(Path(path), plugin="pillow"))
    except Exception as exc:  # imageio/Pillow raise many types on broken files
        text = " ".join(str(exc).split())
        raise IngestError(f"cannot decode image: {type(exc).__name__}: {text}", path=path) from exc
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        bands = image[:, :, :3]
        if not (
            np.array_equal(bands[:, :, 0], bands[:, :, 1])
            and np.array_equal(bands[:, :, 0], bands[:, :, 2])
        ):
            raise IngestError(
                "colour image (its red, green and blue bands differ)",
                path=path,
                expected="greyscale, or RGB with three equal bands",
            )
        image = bands[:, :, 0]
    if image.ndim != 2:
        raise IngestError(f"image has shape {image.shape}", path=path, expected="a 2-D image")
    if image.dtype != np.uint8:
        raise IngestError(f"image has type {image.dtype}", path=path, expected="8-bit pixels")
    return np.ascontiguousarray(image)


def read_folder(
    root: str | os.PathLike[str],
    *,
    times_csv: str | os.PathLike[str] | None = None,
    station: str | None = None,
) -> list[FrameBlock]:
    """All blocks of one image folder as a list (see :func:`iter_folder_blocks`)."""
    return list(iter_folder_blocks(root, times_csv=times_csv, station=station))


def iter_folder_blocks(
    root: str | os.PathLike[str],
    *,
    images: list[Path] | None = None,
    times_csv: str | os.PathLike[str] | None = None,
    station: str | None = None,
    on_bad: OnBad | None = None,
    max_frames: int = 1200,
    check_listed: bool = True,
) -> Iterator[FrameBlock]:
    """Yield the images of a folder as blocks, one station at a time, in time order.

    Parameters
    ----------
    root
        The folder.  Relative CSV paths are relative to it.
    images
        The image files to take (default: every PNG/JPEG under ``root``).
    times_csv
        CSV with ``file,station,time`` columns; default: the single ``*.csv`` in ``root``.
    station
        Station for images that name none; an image naming another one is an error.
    on_bad
        Called with the error and the image for each bad image, which is then left out;
        None (default) raises instead.
    max_frames
        Largest block; a station with more images gives several blocks.
    check_listed
        Whether a CSV row whose image is not among ``images`` is an error (default); off
        when only some images of a folder are read.

    Yields
    ------
    FrameBlock
        ``raw=False``, ``uint8`` frames, ``source`` = the folder path as given.

    Raises
    ------
    IngestError
        A bad CSV (always), or a bad image / image without station or time (when
        ``on_bad`` is None).
    """
    root = Path(root)
    station = station.lower() if station else None
    if images is None:
        images = sorted(
            p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)
        )
    csv_path = Path(times_csv) if times_csv is not None else _default_csv(root)
    table = _read_csv(csv_path, root) if csv_path is not None else {}
    used: set[str] = set()

    def bad(err: IngestError, where: Path) -> None:
        if on_bad is None:
            raise err
        on_bad(err, where)

    # Station and time for every image, before any pixel is read.
    by_station: dict[str, list[tuple[np.datetime64, Path]]] = {}
    for image in images:
        rel = _relative(image, root)
        key = rel if rel in table else image.name
        entry = table.get(key)
        named = parse_image_name(image.name)
        if entry is not None:
            used.add(key)
            img_station, when, _ = entry
            img_station = img_station or (named[0] if named else None)
        elif named is not None:
            img_station, when = named
        else:
            bad(
                IngestError(
                    "no time for this image: not in the CSV and the name carries none",
                    path=image,
                    expected="<station>_<YYYYMMDD>_<HHMMSS>.png or a file,station,time CSV",
                ),
                image,
            )
            continue
        if station is not None and img_station is not None and img_station != station:
            bad(
                IngestError(
                    f"image is from station {img_station!r}",
                    path=image,
                    expected=f"station {station!r} as asked",
                ),
                image,
            )
            continue
        img_station = img_station or station
        if img_station is None:
            bad(
                IngestError(
                    "no station for this image",
                    path=image,
                    expected="a station in the name or CSV, or one given by the caller",
                ),
                image,
            )
            continue
        by_station.setdefault(img_station, []).append((when, image))
    if check_listed and csv_path is not None:
        # A CSV row whose image is missing means the folder is not what the CSV describes.
        for key, (_, _, line) in table.items():
            if key not in used:
                err = IngestError(
                    f"image {key!r} is listed but not in the folder", path=csv_path, line=line
                )
                bad(err, csv_path)

    source = str(root)
    for code in sorted(by_station):
        entries = sorted(by_station[code], key=lambda item: (item[0], str(item[1])))
        entries = _drop_repeated_times(entries, bad)
        for start in range(0, len(entries), max_frames):
            block = _load_block(code, entries[start : start + max_frames], source, bad)
            if block is not None:
                yield block


def _drop_repeated_times(
    entries: list[tuple[np.datetime64, Path]], bad: Callable[[IngestError, Path], None]
) -> list[tuple[np.datetime64, Path]]:
    kept: list[tuple[np.datetime64, Path]] = []
    for when, image in entries:
        if kept and kept[-1][0] == when:
            bad(
                IngestError(
                    f"same station and time as {kept[-1][1].name}",
                    path=image,
                    expected="one image per station and time",
                ),
                image,
            )
            continue
        kept.append((when, image))
    return kept


def _load_block(
    station: str,
    entries: list[tuple[np.datetime64, Path]],
    source: str,
    bad: Callable[[IngestError, Path], None],
) -> FrameBlock | None:
    frames: list[np.ndarray] = []
    times: list[np.datetime64] = []
    for when, image in entries:
        try:
            pixels = load_grey_image(image)
            if frames and pixels.shape != frames[0].shape:
                raise IngestError(
                    f"image is {pixels.shape[1]}x{pixels.shape[0]}, others of station "
                    f"{station!r} are {frames[0].shape[1]}x{frames[0].shape[0]}",
                    path=image,
                    expected="images of one size per station",
                )
        except IngestError as err:
            bad(err, image)
            continue
        frames.append(pixels)
        times.append(when)
    if not frames:
        return None
    return FrameBlock(
        station=station,
        time=np.array(times, dtype="datetime64[ns]"),
        frames=np.stack(frames),
        source=source,
        raw=False,
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _default_csv(root: Path) -> Path | None:
    candidates = sorted(root.glob("*.csv")) if root.is_dir() else []
    if len(candidates) > 1:
        raise IngestError(
            f"{len(candidates)} CSV files, cannot tell which gives the times",
            path=root,
            expected="one *.csv, or times_csv given",
        )
    return candidates[0] if candidates else None


def _read_csv(csv_path: Path, root: Path) -> dict[str, tuple[str | None, np.datetime64, int]]:
    """``{relative path or name: (station or None, time, line)}`` from a file,station,time CSV."""
    try:
        table = pd.read_csv(csv_path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except Exception as exc:  # missing file, empty file, parser errors
        text = " ".join(str(exc).split())
        raise IngestError(f"cannot read CSV: {type(exc).__name__}: {text}", path=csv_path) from exc
    columns = {str(c).strip().lower(): c for c in table.columns}
    file_col = next((columns[c] for c in _FILE_COLUMNS if c in columns), None)
    time_col = next((columns[c] for c in _TIME_COLUMNS if c in columns), None)
    station_col = columns.get("station")
    if file_col is None or time_col is None:
        raise IngestError(
            f"CSV columns are {list(table.columns)}",
            path=csv_path,
            line=1,
            expected="a header with columns file,station,time",
        )
    texts = table[time_col].str.strip()
    # format="ISO8601" accepts date-only, fractions and offsets; utc=True turns offsets
    # into UTC and takes naive times as UTC.
    parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    out: dict[str, tuple[str | None, np.datetime64, int]] = {}
    for i in range(len(table)):
        line = i + 2  # 1-based, after the header
        name = str(table[file_col].iloc[i]).strip()
        if not name:
            raise IngestError("empty file name", path=csv_path, line=line)
        if pd.isna(parsed.iloc[i]):
            raise IngestError(
                f"cannot parse time {texts.iloc[i]!r}",
                path=csv_path,
                line=line,
                expected="an ISO 8601 time, e.g. 2011-01-06T17:00:03",
            )
        when = np.datetime64(parsed.iloc[i].tz_convert(None).to_datetime64(), "ns")
        code = str(table[station_col].iloc[i]).strip().lower() if station_col else ""
        key = Path(name).as_posix()
        if Path(key).is_absolute():
            key = _relative(Path(key), root)
        if key in out:
            raise IngestError(f"image {name!r} listed twice", path=csv_path, line=line)
        out[key] = (code or None, when, line)
    return out
