"""Station archives in the cube: ingest raw frames, classify them, count classes in time.

``stations/<code>`` groups hold one station each along a monotonic ``time``
dimension: ``pixels(time, y, x)`` (8-bit, prepared as :mod:`oathcube.rawprep`
records in the attributes), then ``features_<name>(time, feature)``, then
``predicted_<model>(time)`` and ``score_<model>(time, class_<model>)``.  New
files append along ``time`` without rewriting what is there
(``Dataset.to_zarr(group=..., append_dim="time")``; DataTree cannot append).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from tqdm.auto import tqdm
from xarray.coding.times import decode_cf_datetime

from .archive.frames import FrameBlock, iter_frame_blocks
from .cube.read import (
    _open_zarr,
    array_at,
    attr_list,
    dims_of,
    group_at,
    list_stations,
    live_group,
    open_cube,
    open_station,
)
from .cube.schema import (
    TIME_ENCODING,
    images_per_chunk,
    prediction_names,
    provenance,
    station_group,
)
from .cube.write import create_rows, publish_metadata, write_labels
from .errors import CubeError, IngestError, ModelError
from .features.compute import compute_features
from .model import check_feature_settings, decision_scores, load_model
from .rawprep import RawPreparation

__all__ = ["ingest", "classify", "timeline", "station_times"]


# ------------------------------------------------------------------------ ingest


def _ensure_cube(cube: str) -> None:
    try:
        live_group(cube, "r")
    except CubeError:
        root = zarr.open_group(cube, mode="w", zarr_format=3)
        root.attrs.update(
            provenance(title="THEMIS ASI station archives", oathcube_status="complete")
        )


@dataclass(frozen=True)
class _Prepared:
    """A source's frames of one station, prepared to uint8 (raw counts dropped)."""

    station: str
    time: np.ndarray
    source: str
    pixels: np.ndarray


#: Prepared frames kept in memory between the checking pass and the writing pass, so
#: that a typical ingest reads each file once; sources beyond it are read again.
PREPARED_CACHE_BYTES = 1 << 30


def _prepare(block: FrameBlock, prep: RawPreparation) -> _Prepared:
    pixels = prep.apply(block.frames) if block.raw else block.frames
    return _Prepared(block.station, block.time, str(block.source), pixels)


def _last_time(node: zarr.Group) -> np.datetime64 | None:
    """The station's last frame time, read and decoded from one value of the store."""
    times = array_at(node, "time")
    if times.shape[0] == 0:
        return None
    units = str(times.attrs["units"])
    calendar = str(times.attrs.get("calendar", "proleptic_gregorian"))
    return decode_cf_datetime(np.asarray(times[-1:]), units, calendar)[0]


def _append_block(
    cube: str, block: _Prepared, prep_attrs: str, chunk_frames: int | None = None
) -> int:
    """Append ``block``'s frames after the station's last frame; return frames written."""
    group = station_group(block.station)
    root = live_group(cube, "r+")
    times, pixels = block.time, block.pixels
    if group in root:
        node = group_at(root, group)
        last = _last_time(node)
        if node.attrs.get("preparation") not in (None, prep_attrs):
            raise IngestError(
                "frames prepared differently from the station's earlier frames",
                path=block.source,
                expected=str(node.attrs.get("preparation")),
            )
        stored = array_at(node, "pixels").shape[1:]
        if stored != pixels.shape[1:]:
            raise IngestError(
                f"frames of shape {pixels.shape[1:]}",
                path=block.source,
                expected=f"{stored} like the station's others",
            )
        if last is not None and times[0] <= last:
            # A rerun or an overlap: only then is the station's whole time axis read.
            keep = times > last
            already = np.isin(times[~keep], station_times(cube, block.station))
            if (~keep).any() and not already.all():
                raise IngestError(
                    f"frames from {times[0]} overlap the station's archive (ends {last})",
                    path=block.source,
                    expected="files ingested in time order; use a new cube to add earlier data",
                )
            times, pixels = times[keep], pixels[keep]
        if times.size == 0:
            return 0
    ds = xr.Dataset(
        {
            "pixels": (
                ("time", "y", "x"),
                pixels,
                {
                    "long_name": "prepared 8-bit frame",
                    "units": "1",
                    "orientation": "as stored in the source file: row 0 = first row stored",
                },
            )
        },
        coords={
            "time": ("time", times, {"long_name": "UTC exposure time", "standard_name": "time"})
        },
    )
    if group in root:
        # xarray rewrites the group's attributes on append: keep ours.
        kept = dict(group_at(root, group).attrs)
        ds.to_zarr(cube, group=group, append_dim="time", consolidated=False)
        group_at(live_group(cube, "r+"), group).attrs.update(kept)
    else:
        size = chunk_frames or images_per_chunk(pixels.shape[1:])
        ds.time.encoding.update({**TIME_ENCODING, "chunks": (2**16,)})
        ds.pixels.encoding["chunks"] = (size, *pixels.shape[1:])
        ds.attrs.update(
            provenance(station=block.station, preparation=prep_attrs, sources=[], skipped=[])
        )
        ds.to_zarr(cube, group=group, mode="w-", zarr_format=3, consolidated=False)
    node = group_at(live_group(cube, "r+"), group)
    node.attrs["sources"] = [*attr_list(node, "sources"), str(block.source)]
    return int(times.size)


def ingest(
    sources: Sequence[str | Path],
    cube: str | Path,
    *,
    preparation: RawPreparation | None = None,
    skip_bad: bool = False,
    station: str | None = None,
    times_csv: str | Path | None = None,
    chunk_frames: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Append raw THEMIS frames (CDF, PGM, image folders) to station groups of ``cube``.

    Every source is read and prepared before anything is written, so a bad
    file stops the ingest with nothing written (or, with ``skip_bad``, is left
    out and listed in the station's ``skipped`` attribute).  Sources are then
    appended in time order; frames already in the cube are skipped, so an
    interrupted ingest can simply be rerun.

    Parameters
    ----------
    sources
        Files and folders (see :func:`oathcube.archive.frames.iter_frame_blocks`).
    cube
        The cube (created if missing).
    preparation
        How 16-bit frames become 8-bit images (default :class:`RawPreparation()`).
    skip_bad
        Leave out unreadable files instead of stopping.
    station, times_csv
        For image folders whose names carry no station or time.
    chunk_frames
        Frames per chunk of a new station group (default: about 32 MB).  Appends
        fill the last, partial chunk and write new chunks; full chunks are never
        rewritten.
    progress
        Show a per-file progress bar.

    Returns
    -------
    dict
        Frames appended per station.
    """
    cube = str(cube)
    prep = preparation or RawPreparation()
    prep_attrs = json.dumps(prep.attrs(), sort_keys=True)
    reader = iter_frame_blocks(sources, skip_bad=skip_bad, station=station, times_csv=times_csv)
    first: dict[tuple[str, str], np.datetime64] = {}
    cache: dict[tuple[str, str], list[_Prepared]] = {}
    too_big: set[tuple[str, str]] = set()
    cached_bytes = 0

    def keep(key: tuple[str, str], prepared: _Prepared) -> None:
        nonlocal cached_bytes
        if key in too_big:
            return
        if cached_bytes + prepared.pixels.nbytes > PREPARED_CACHE_BYTES:
            too_big.add(key)
            cached_bytes -= sum(p.pixels.nbytes for p in cache.pop(key, []))
            return
        cache.setdefault(key, []).append(prepared)
        cached_bytes += prepared.pixels.nbytes

    # One block is prepared (16 -> 8 bit) on a second thread while the next is read
    # and decompressed (zlib and numpy release the GIL); at most two in memory.
    in_flight: tuple[tuple[str, str], Future[_Prepared]] | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        for block in tqdm(
            reader, desc="reading", unit="block", disable=not progress, file=sys.stderr
        ):
            key = (str(block.source), block.station)
            first[key] = min(first.get(key, block.time[0]), block.time[0])
            future = pool.submit(_prepare, block, prep)
            if in_flight is not None:
                keep(in_flight[0], in_flight[1].result())
            in_flight = (key, future)
        if in_flight is not None:
            keep(in_flight[0], in_flight[1].result())
    skipped = reader.skipped_as_attrs()
    if not first:
        raise IngestError(
            "no frames found",
            path=", ".join(map(str, sources)),
            expected="CDF L1, PGM files or folders of PNG/JPEG frames",
        )
    _ensure_cube(cube)
    written: dict[str, int] = {}
    order = sorted(first, key=first.__getitem__)
    bar = tqdm(
        total=len(order), desc="appending", unit="source", disable=not progress, file=sys.stderr
    )
    for key in order:
        src, code = key
        blocks = cache.pop(key, None)
        if blocks is None:
            blocks = [
                _prepare(b, prep)
                for b in iter_frame_blocks([src], station=station, times_csv=times_csv)
                if b.station == code
            ]
        for prepared in blocks:
            count = _append_block(cube, prepared, prep_attrs, chunk_frames)
            written[code] = written.get(code, 0) + count
        bar.update(1)
    bar.close()
    root = live_group(cube, "r+")
    for code in written:
        node = group_at(root, station_group(code))
        node.attrs["skipped"] = [*attr_list(node, "skipped"), *skipped]
    if skipped:
        root.attrs["ingest_skipped"] = [*attr_list(root, "ingest_skipped"), *skipped]
    publish_metadata(cube)
    return written


def station_times(cube: str | Path, station: str) -> np.ndarray:
    """Times (datetime64[ns]) of a station's frames, read from the store itself."""
    ds = _open_zarr(str(cube), group=station_group(station), consolidated=False)
    return ds["time"].values


# ---------------------------------------------------------------------- classify


def _rows(times: np.ndarray, start: Any, end: Any, where: str) -> tuple[int, int]:
    lo = (
        0
        if start is None
        else int(np.searchsorted(times, np.datetime64(pd.Timestamp(start)), side="left"))
    )
    hi = (
        len(times)
        if end is None
        else int(np.searchsorted(times, np.datetime64(pd.Timestamp(end)), side="right"))
    )
    if hi <= lo:
        span = f"{times[0]} .. {times[-1]}" if len(times) else "no frames"
        raise CubeError(
            f"no frames between {start} and {end}", path=where, expected=f"a range within {span}"
        )
    return lo, hi


def _write_predictions(
    cube: str, group: str | None, model_name: str, model: xr.Dataset, rows: tuple[int, int]
) -> int:
    root = live_group(cube, "r+")
    node = group_at(root, group) if group else root
    features = array_at(node, model.attrs["features"])
    check_feature_settings(model, dict(features.attrs), f"{cube}/{group or ''}")
    pred_name, score_name, class_dim = prediction_names(model_name)
    n, size = features.shape[0], features.chunks[0]
    dim = (dims_of(features) or ("time",))[0]
    classes = [str(c) for c in model["classes"].values]
    if pred_name not in node:
        attrs = provenance(
            long_name=f"class predicted by {model_name}",
            flag_values=model["class_index"].values.tolist(),
            flag_meanings=" ".join(classes),
            missing="-1: not classified yet",
        )
        create_rows(node, pred_name, (n,), size, "int8", -1, [dim], attrs)
        attrs = {"long_name": f"decision scores of {model_name}"}
        create_rows(
            node, score_name, (n, len(classes)), size, "float32", np.nan, [dim, class_dim], attrs
        )
        write_labels(node, class_dim, classes)
    predicted, scored = array_at(node, pred_name), array_at(node, score_name)
    for array in (predicted, scored):
        if array.shape[0] < n:  # the station grew since its last classification
            array.resize((n, *array.shape[1:]))
    lo, hi = rows
    for start in range(lo - lo % size, hi, size):
        a, b = max(start, lo), min(start + size, hi)
        index, scores = decision_scores(model, np.asarray(features[a:b]))
        predicted[a:b] = index
        scored[a:b] = scores
    return hi - lo


def classify(
    cube: str | Path,
    model: str,
    *,
    station: str | None = None,
    start: Any = None,
    end: Any = None,
    scheduler: str = "threads",
    progress: bool = True,
    **feature_options: Any,
) -> dict[str, int]:
    """Classify frames with a stored model: missing features first, then predictions.

    Parameters
    ----------
    cube
        The cube.
    model
        Name of a model in ``models/`` (see :func:`oathcube.train`).
    station
        One station code; by default every station group and the labelled images.
    start, end
        Optional time range (inclusive) within the station archives.
    scheduler
        Where features are computed (``threads``, ``processes``, ``tcp://...``).
    **feature_options
        For the extractor (e.g. ``checkpoint`` for inception_v4).

    Returns
    -------
    dict
        Frames classified per group (``""`` for the labelled images).
    """
    cube = str(cube)
    stored = load_model(cube, model)
    features = stored.attrs["features"]
    extractor = features.removeprefix("features_")
    settings = json.loads(stored.attrs.get("feature_settings", "{}"))
    if settings.get("random_weights"):
        feature_options.setdefault("random_weights", True)
    stations = [station] if station else list_stations(cube)
    if station and station not in list_stations(cube):
        open_station(cube, station)  # raises the CubeError that lists the stations
    root = live_group(cube, "r")
    groups: list[str | None] = [station_group(s) for s in stations]
    if station is None and "pixels" in root and start is None and end is None:
        groups.insert(0, None)
    if extractor == "published":
        groups = [g for g in groups if g is None]
        if not groups:
            raise ModelError(
                f"model {model!r} uses the archive's published features, which "
                "exist only for the labelled images",
                path=cube,
                expected="a model trained on computable features (--features)",
            )
    done: dict[str, int] = {}
    for group in groups:
        if group is None or (start is None and end is None):
            # The whole archive: its length is in the metadata, no time axis to read.
            node = group_at(root, group) if group else root
            rows = (0, array_at(node, "pixels").shape[0])
        else:
            code = group.split("/", 1)[1]
            rows = _rows(station_times(cube, code), start, end, f"{cube}/{group}")
        if extractor != "published":
            compute_features(
                cube,
                extractor,
                group=group,
                scheduler=scheduler,
                progress=progress,
                rows=rows,
                **feature_options,
            )
        done[group or ""] = _write_predictions(cube, group, model, stored, rows)
        if progress:
            print(
                f"classified {done[group or '']} frames of {group or 'the labelled images'} "
                f"with {model}",
                file=sys.stderr,
            )
    publish_metadata(cube)
    return done


# ---------------------------------------------------------------------- timeline


def _station_series(cube: str, station: str) -> xr.Dataset:
    """A station's frames along ``time``: its station group, else its labelled images."""
    if station in list_stations(cube):
        return open_station(cube, station)
    labelled = open_cube(cube)
    if "station" not in labelled.coords or station not in set(labelled.station.values):
        raise CubeError(
            f"no frames of station {station!r}",
            path=cube,
            expected=f"one of {', '.join(list_stations(cube)) or '(none)'}",
        )
    ds = labelled.sel(station=station).drop_indexes(["station", "time"])
    ds = ds.dropna("image", subset=["time"]).drop_vars("station")
    return ds.swap_dims({"image": "time"}).sortby("time")


def _pick_model(ds: xr.Dataset, model: str | None, where: str) -> str:
    have = sorted(
        str(v).removeprefix("predicted_") for v in ds.data_vars if str(v).startswith("predicted_")
    )
    if model is None:
        if len(have) != 1:
            raise ModelError(
                "say which model's predictions to use" if have else "no predictions yet",
                path=where,
                expected=f"--model one of {', '.join(have)}"
                if have
                else "`oathcube classify` first",
            )
        return have[0]
    if model not in have:
        raise ModelError(
            f"no predictions of model {model!r}",
            path=where,
            expected=f"one of {', '.join(have) or '(none: run oathcube classify)'}",
        )
    return model


def timeline(
    cube: str | Path,
    station: str,
    freq: str = "10min",
    *,
    model: str | None = None,
    start: Any = None,
    end: Any = None,
) -> xr.Dataset:
    """Class occurrence per time bin at one station.

    Parameters
    ----------
    cube
        The cube.
    station
        Station code (a ``stations/<code>`` group, or a station of the labelled images).
    freq
        Bin width, a pandas frequency (``10min``, ``1h``, ``1D``).
    model
        Whose predictions (default: the only model that classified this station).
    start, end
        Optional time range.

    Returns
    -------
    xarray.Dataset
        ``count(time, class)``, ``fraction(time, class)`` (NaN in empty bins),
        ``n_frames(time)``; ``time`` holds the bin starts.
    """
    cube = str(cube)
    ds = _station_series(cube, station)
    where = f"{cube}/{station_group(station)}" if station in list_stations(cube) else cube
    name = _pick_model(ds, model, where)
    pred_name, _, class_dim = prediction_names(name)
    pred = ds[pred_name]
    if start is not None or end is not None:
        pred = pred.sel(time=slice(start, end))
    pred = pred.load()
    pred = pred.where(pred >= 0, drop=True)
    if pred.size == 0:
        raise CubeError(
            "no classified frames in that range",
            path=where,
            expected=f"`oathcube classify --model {name}` first",
        )
    classes = [str(c) for c in ds[class_dim].values]
    codes = [int(c) for c in load_model(cube, name)["class_index"].values]
    one_hot = xr.concat([(pred == c).astype(np.int32) for c in codes], dim="class")
    one_hot = one_hot.assign_coords({"class": classes}).transpose("time", "class")
    # Empty bins come back as NaN from resample: they hold zero frames.
    count = one_hot.resample(time=freq).sum().fillna(0)
    n_frames = count.sum("class")
    out = xr.Dataset(
        {
            "count": count.astype(np.int32),
            "fraction": (count / n_frames.where(n_frames > 0)).astype(np.float32),
            "n_frames": n_frames.astype(np.int32),
        },
        attrs={"station": station, "model": name, "freq": freq, "cube": cube},
    )
    out["count"].attrs = {"long_name": "frames classified as each class"}
    out["fraction"].attrs = {"long_name": "fraction of the bin's frames in each class"}
    out["n_frames"].attrs = {"long_name": "frames in the bin"}
    return out


def sample_frames(
    cube: str | Path, station: str, result: xr.Dataset, k: int = 8
) -> list[tuple[np.datetime64, np.ndarray]]:
    """Up to ``k`` frames spread evenly over a timeline's span, for the plot's strip."""
    ds = _station_series(str(cube), station)
    t0 = result["time"].values[0]
    t1 = result["time"].values[-1] + pd.Timedelta(result.attrs["freq"]).to_timedelta64()
    times = ds["time"].values
    inside = np.flatnonzero((times >= t0) & (times < t1))
    if inside.size == 0:
        return []
    picks = inside[np.unique(np.linspace(0, inside.size - 1, min(k, inside.size)).astype(int))]
    pixels = ds["pixels"].isel(time=picks).values
    return [(times[i], pixels[j]) for j, i in enumerate(picks)]
