"""Frames that look like a query frame: exact cosine search over a cube's features.

:func:`similar` scores every searched frame's feature row against one query or a batch,
blocked over the features' chunks (one dask task per group of chunks, never the whole
array in memory), and returns the best ``k`` hits of each query as a table.

The near-duplicate rule (``exclude_seconds``, x): a frame is a hit only when no *better*
searched frame of its station lies within x seconds of it ("better": a higher score, or
the same score and an earlier time).  That is a property of a frame's own window, so a
block decides it alone for the frames whose window lies inside the block, and the rest
(frames within x of a block's first or last time) are decided when the blocks are merged,
from the scores of the frames within x of the other blocks' edges, which every block
returns.  docs/similar.md gives the argument in full.

With an index of the features (:mod:`oathcube.similarity_index`, ``oathcube index``), the
station frames' candidates come from it instead (:func:`_indexed`): each is re-scored
exactly from the cube together with the frames within x of it, so the rule is decided for
it exactly; a query whose candidates cannot vouch for its k-th hit asks for more, then is
searched exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .cube.schema import (
    feature_sets,
    features_name,
    prediction_models,
    prediction_names,
    station_group,
    variable_path,
)
from .cube.store import Cube, CubeLike
from .errors import CubeError, FeatureError, ModelError, OptionError
from .parallel import check_scheduler, run_tasks
from .similarity_index import (
    AUTO_ROWS,
    CANDIDATES,
    StoredIndex,
    list_indexes,
    load_index,
    stale_reason,
)
from .times import parse_time, rows_between
from .views._common import cadence

__all__ = ["similar", "FEATURE_PREFERENCE", "SIMILAR_SUFFIXES", "BLOCK_BYTES"]

log = logging.getLogger(__name__)

#: The features searched when none are named: the first of these the query's group has.
FEATURE_PREFERENCE: tuple[str, ...] = ("aurora_fm", "inception_v4", "handcrafted")

#: What ``oathcube similar --out`` writes, told apart by the suffix.
SIMILAR_SUFFIXES: tuple[str, ...] = (".csv", ".png")

#: Bytes of float32 features one task reads (a whole number of chunks, at least one):
#: large enough that dask's per-task cost is small against the read, small enough that
#: a task's float64 copy and scores stay well within memory on every core.
BLOCK_BYTES = 32 * 2**20

#: The columns of the table, in order.
COLUMNS = ("query", "rank", "station", "time", "image", "score", "class", "class_score")


@dataclass
class _Query:
    """One query: where its frame is, and its features (unit length, float64)."""

    station: str | None
    time: np.datetime64 | None
    image: int | None
    group: str | None
    row: int
    vector: np.ndarray = field(repr=False)


@dataclass
class _Source:
    """One searched group: its features and the rows a filter leaves (``lo:hi``)."""

    group: str | None
    path: str
    lo: int
    hi: int
    #: int64 ns times of rows lo:hi (a station's, sorted), or None (labelled images)
    times: np.ndarray | None
    #: labelled images: station, time, picNum and the start/end mask of every row
    stations: np.ndarray | None = None
    label_times: np.ndarray | None = None
    images: np.ndarray | None = None
    keep: np.ndarray | None = None
    station: str | None = None
    pred_path: str | None = None


def similar(
    cube: CubeLike,
    *,
    station: str | None = None,
    time: Any = None,
    image: int | None = None,
    queries: Sequence[tuple[str, Any] | int] | None = None,
    features: str | None = None,
    k: int = 20,
    stations: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    klass: str | None = None,
    model: str | None = None,
    exclude_seconds: float = 30.0,
    include_labelled: bool = False,
    scheduler: str | None = None,
    block_rows: int | None = None,
    storage_options: dict[str, Any] | None = None,
    use_index: bool | None = None,
) -> pd.DataFrame:
    """The ``k`` frames most like a query frame (cosine similarity of their features).

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    station, time
        The query: the station's frame nearest ``time`` (refused when none lies within
        one cadence, the station's median frame spacing).
    image
        The query: the labelled image of this ``picNum`` (instead of station and time).
    queries
        A batch instead: ``(station, time)`` pairs and picNums, searched in one pass
        over the features; the table's ``query`` column numbers them from 0.
    features
        The extractor whose features are compared (``aurora_fm``, ``inception_v4``,
        ``handcrafted``); default: the first of :data:`FEATURE_PREFERENCE` that the
        first query's group has (logged, and in ``table.attrs["features"]``).
    k
        Hits per query.
    stations
        The station groups searched (default: every one that has the features).
    start, end
        Only frames from ``start`` to ``end`` (inclusive, UTC).
    klass
        Only frames that ``model`` classified as this class (e.g. ``arc``).
    model
        Whose predictions give the ``class`` columns and the ``klass`` filter
        (default: the only model with predictions in the searched groups).
    exclude_seconds
        A frame within this many seconds of a better frame of its station is no hit,
        and the query's own frame and its station's frames within this many seconds of
        it are never hits (0: only the query's frame itself).
    include_labelled
        Search the labelled images (the root group, dimension ``image``) too; they are
        not thinned by ``exclude_seconds`` among themselves.
    scheduler
        ``threads``, ``processes``, ``synchronous``, a ``tcp://`` address, or None.
    block_rows
        Rows one task scores (default: whole chunks, about :data:`BLOCK_BYTES`).
    storage_options
        fsspec options of a cube at a URL.
    use_index
        The approximate index of the features (``oathcube index``;
        :mod:`oathcube.similarity_index`): None uses it when one is there, fresh, and the
        station frames searched exceed :data:`~oathcube.similarity_index.AUTO_ROWS` (a
        stale one is named in a warning and the search is exact); True requires a fresh
        one; False searches exactly.  Its candidates are re-scored exactly from the
        cube and the rules applied as here; a query whose candidates hold fewer than
        ``k`` hits asks for more, then is searched exactly.

    Returns
    -------
    pandas.DataFrame
        One row per hit, sorted by query, then score descending, then station, time and
        image ascending: ``query``, ``rank`` (1..k), ``station``, ``time`` (UTC,
        ``datetime64[ns]``), ``image`` (picNum of a labelled image, else missing),
        ``score`` (cosine, float64), ``class`` and ``class_score`` (the model's
        predicted class and its score; empty and NaN where it has none), ``group``
        and ``row`` (where the frame is).  ``attrs`` holds ``features``, ``model``
        and ``queries`` (one dict per query: station, time, image, group, row), and
        ``index`` (whether the index gave the station frames' candidates).

    Raises
    ------
    OptionError
        ``k`` <= 0, a negative ``exclude_seconds``, no query or two kinds of query, a
        time with no frame within one cadence, an unknown picNum or class.
    CubeError
        An unknown station (the error lists them).
    FeatureError
        The features are not in the cube (the error names the command that makes them).
    ModelError
        No predictions for ``klass``, or several models and no ``model``.
    OptionError
        ``use_index=True`` and no index of the features, or a stale one.
    """
    if k <= 0:
        raise OptionError(f"k={k}", parameter="k", expected="a number of hits >= 1")
    if not exclude_seconds >= 0:
        raise OptionError(
            f"exclude_seconds={exclude_seconds}",
            parameter="exclude_seconds",
            expected="seconds >= 0",
        )
    if block_rows is not None and block_rows <= 0:
        raise OptionError(f"block_rows={block_rows}", parameter="block_rows", expected=">= 1")
    asked = _asked_queries(station, time, image, queries)
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    if t0 is not None and t1 is not None and t1 < t0:
        raise OptionError(f"`end` {end} is before `start` {start}", parameter="end")
    check_scheduler(scheduler)
    cube = Cube.open(cube, storage_options=storage_options)
    x_ns = int(round(float(exclude_seconds) * 1e9))

    searched = _searched_stations(cube, stations)
    first_group = _query_group(cube, asked[0])
    name = features or _default_features(cube, first_group)
    fname = features_name(name)
    found = [_resolve(cube, q, fname, name) for q in asked]
    searched = _with_features(cube, searched, name, explicit=stations is not None)
    if not searched and not include_labelled:
        raise FeatureError(
            f"no station group has features_{name}",
            path=cube.location,
            expected=f"`oathcube features --extractor {name} --station S` first, or "
            "`include_labelled` to search the labelled images",
        )
    if include_labelled:
        _require_features(cube, None, name)
    dim = found[0].vector.shape[0]
    groups = [station_group(s) for s in searched] + ([None] if include_labelled else [])
    for group in groups:
        width = cube.array(variable_path(group, fname)).shape[1]
        if width != dim:
            raise FeatureError(
                f"features_{name} has {width} columns here, the query's {dim}",
                path=cube.where(group),
                expected="features of one extractor and layer in every searched group",
            )
    model = _pick_model(cube, groups, model, klass)
    code = _class_code(cube, groups, model, klass)

    sources = [_station_source(cube, s, fname, t0, t1) for s in searched]
    if include_labelled:
        sources.append(_labelled_source(cube, fname, t0, t1))
    if model is not None:
        pred = prediction_names(model)[0]
        for src in sources:
            path = variable_path(src.group, pred)
            src.pred_path = path if cube.has(path) else None
    qmat = np.stack([q.vector for q in found])
    index = _usable_index(cube, name, searched, sources, use_index)
    if index is None:
        hits = _search(cube, sources, found, qmat, k, x_ns, code, block_rows, scheduler)
    else:
        hits = _indexed(cube, index, sources, found, qmat, k, x_ns, code, block_rows, scheduler)
    table = _table(cube, hits, k, model)
    table.attrs.update(
        features=name,
        model=model,
        index=index is not None,
        queries=[
            {"station": q.station, "time": q.time, "image": q.image, "group": q.group, "row": q.row}
            for q in found
        ],
    )
    log.info("similar: features_%s of %d group(s), %d query(ies)", name, len(sources), len(found))
    return table


# -- the queries ---------------------------------------------------------------------------


def _asked_queries(
    station: str | None, time: Any, image: int | None, queries: Sequence[Any] | None
) -> list[tuple[str, Any] | int]:
    """The queries asked for, as ``(station, time)`` pairs and picNums; one kind of asking."""
    single = station is not None or time is not None
    if sum([single, image is not None, queries is not None]) != 1:
        raise OptionError(
            "say which frame to match: station and time, or image, or queries (one of them)",
            parameter="station/time/image",
        )
    if single:
        if station is None or time is None:
            raise OptionError(
                "a station frame is asked for by station and time together",
                parameter="station/time",
            )
        return [(station, time)]
    if image is not None:
        return [image]
    asked = list(queries or [])
    if not asked:
        raise OptionError("no queries", parameter="queries", expected="at least one")
    for q in asked:
        if not isinstance(q, (tuple, list, int, np.integer)) or (
            isinstance(q, (tuple, list)) and len(q) != 2
        ):
            raise OptionError(
                f"query {q!r}", parameter="queries", expected="(station, time) or a picNum"
            )
    return asked


def _query_group(cube: Cube, asked: tuple[str, Any] | int) -> str | None:
    if isinstance(asked, (tuple, list)):
        return cube.require_station(str(asked[0]))
    return None


def _resolve(cube: Cube, asked: tuple[str, Any] | int, fname: str, name: str) -> _Query:
    """The query's frame (nearest within one cadence, or the picNum) and its unit features."""
    if isinstance(asked, (tuple, list)):
        code, when = str(asked[0]), asked[1]
        group = cube.require_station(code)
        _require_features(cube, group, name)
        t = parse_time(when, "time")
        times = cube.read_times(group)
        if len(times) == 0:
            raise CubeError(f"station {code!r} has no frames", path=cube.where(group))
        i = int(np.searchsorted(times, t))
        near = [j for j in (i - 1, i) if 0 <= j < len(times)]
        row = min(near, key=lambda j: abs(int(times[j] - t)))
        step = cadence(times)
        if abs(times[row] - t) > step:
            raise OptionError(
                f"no frame of {code} within one cadence ({_seconds(step)} s) of {t}: the "
                f"nearest is {_utc(times[row])}",
                parameter="time",
                expected="a time within one cadence of a frame",
            )
        query = _Query(code, times[row], None, group, row, np.empty(0))
    else:
        _require_features(cube, None, name)
        images = cube.read_rows("image")
        rows = np.flatnonzero(images == int(asked))
        if len(rows) == 0:
            raise OptionError(
                f"no labelled image {asked}",
                parameter="image",
                expected=f"a picNum of the cube ({int(images.min())}..{int(images.max())})"
                if len(images)
                else "a cube with labelled images",
            )
        row = int(rows[0])
        code = str(cube.read_rows("station", row, row + 1)[0])
        t = cube.read_times(None, row + 1, row)[0]
        query = _Query(
            None if code in ("", "unknown") else code,
            None if np.isnat(t) else t,
            int(asked),
            None,
            row,
            np.empty(0),
        )
    vector = cube.read_rows(variable_path(query.group, fname), query.row, query.row + 1)[0]
    vector = vector.astype(np.float64)
    norm = float(np.sqrt(vector @ vector))
    where = cube.where(query.group)
    if not np.isfinite(norm):
        raise FeatureError(
            f"features_{name} of the query frame are not computed",
            path=where,
            expected=_make_features(name, query.group),
        )
    if norm == 0:
        raise FeatureError(
            f"features_{name} of the query frame are all zero: cosine similarity is undefined",
            path=where,
            expected="another query frame",
        )
    query.vector = vector / norm
    return query


def _seconds(step: np.timedelta64) -> str:
    return f"{step / np.timedelta64(1, 's'):g}"


def _utc(t: np.datetime64) -> str:
    return str(pd.Timestamp(t).floor("s")).replace("T", " ") + " UTC"


# -- what is searched ----------------------------------------------------------------------


def _searched_stations(cube: Cube, stations: Sequence[str] | None) -> list[str]:
    if stations is None:
        return cube.stations()
    if isinstance(stations, str):
        stations = [s for s in stations.split(",") if s]
    for code in stations:
        cube.require_station(code)
    return sorted(dict.fromkeys(stations))


def _names(cube: Cube, group: str | None) -> list[str]:
    return sorted(cube.group(group).array_keys())


def _make_features(name: str, group: str | None) -> str:
    from .cube.schema import station_of

    code = station_of(group)
    where = f" --station {code}" if code else ""
    return f"`oathcube features --extractor {name}{where}` first"


def _require_features(cube: Cube, group: str | None, name: str) -> None:
    if name not in feature_sets(_names(cube, group)):
        raise FeatureError(
            f"no features_{name} here",
            path=cube.where(group) if group else f"{cube.location} (labelled images)",
            expected=_make_features(name, group),
        )


def _default_features(cube: Cube, group: str | None) -> str:
    have = feature_sets(_names(cube, group))
    for name in FEATURE_PREFERENCE:
        if name in have:
            return name
    raise FeatureError(
        "no features to compare",
        path=cube.where(group),
        expected=_make_features(FEATURE_PREFERENCE[-1], group).replace(
            "handcrafted", "aurora_fm|inception_v4|handcrafted"
        ),
    )


def _with_features(cube: Cube, codes: list[str], name: str, *, explicit: bool) -> list[str]:
    """The stations that have the features: all named ones must, others are left out."""
    have = [c for c in codes if name in feature_sets(_names(cube, station_group(c)))]
    missing = sorted(set(codes) - set(have))
    if missing and explicit:
        _require_features(cube, station_group(missing[0]), name)
    if missing:
        log.warning("similar: no features_%s at %s: not searched", name, ", ".join(missing))
    return have


def _pick_model(
    cube: Cube, groups: list[str | None], model: str | None, klass: str | None
) -> str | None:
    have = sorted({m for g in groups for m in prediction_models(_names(cube, g))})
    if model is None:
        if len(have) > 1:
            raise ModelError(
                "several models classified the searched frames: say which",
                path=cube.location,
                expected=f"`model` one of {', '.join(have)}",
            )
        if not have:
            if klass is not None:
                raise ModelError(
                    f"no predictions to find class {klass!r} with",
                    path=cube.location,
                    expected="`oathcube classify` of the searched stations first",
                )
            return None
        return have[0]
    if model not in have:
        raise ModelError(
            f"no predictions of model {model!r} in the searched groups",
            path=cube.location,
            expected=f"one of {', '.join(have) or '(none: run oathcube classify)'}",
        )
    return model


def _class_lookup(cube: Cube, path: str) -> dict[int, str]:
    """Predicted value -> class name, as the predictions' flag attributes say."""
    attrs = cube.array(path).attrs
    values = [int(v) for v in np.atleast_1d(np.asarray(attrs.get("flag_values", [])))]
    meanings = str(attrs.get("flag_meanings", "")).split()
    return dict(zip(values, meanings, strict=False))


def _class_code(
    cube: Cube, groups: list[str | None], model: str | None, klass: str | None
) -> int | None:
    if klass is None or model is None:
        return None
    pred = prediction_names(model)[0]
    lookup: dict[int, str] = {}
    for group in groups:
        if cube.has(variable_path(group, pred)):
            lookup = _class_lookup(cube, variable_path(group, pred))
            break
    codes = [v for v, n in lookup.items() if n == klass.strip().lower()]
    if not codes:
        raise OptionError(
            f"class {klass!r}",
            parameter="klass",
            expected=f"a class of model {model}: {', '.join(lookup.values())}",
        )
    return codes[0]


def _station_source(cube: Cube, code: str, fname: str, t0: Any, t1: Any) -> _Source:
    group = station_group(code)
    times = cube.read_times(group)
    lo, hi = rows_between(times, t0, t1)
    hi = max(lo, hi)
    return _Source(
        group,
        variable_path(group, fname),
        lo,
        hi,
        times[lo:hi].astype(np.int64),
        station=code,
    )


def _labelled_source(cube: Cube, fname: str, t0: Any, t1: Any) -> _Source:
    n = cube.array(fname).shape[0]
    times = cube.read_times(None, n)
    keep = np.ones(n, dtype=bool)
    if t0 is not None:
        keep &= ~np.isnat(times) & (times >= t0)
    if t1 is not None:
        keep &= ~np.isnat(times) & (times <= t1)
    return _Source(
        None,
        fname,
        0,
        n,
        None,
        stations=np.asarray(cube.read_rows("station", 0, n)).astype(object),
        label_times=times,
        images=np.asarray(cube.read_rows("image", 0, n)).astype(np.int64),
        keep=keep,
    )


# -- the search ----------------------------------------------------------------------------


def dominated(times: np.ndarray, scores: np.ndarray, rows: np.ndarray, x: int) -> np.ndarray:
    """Whether a better frame lies within ``x`` of each of ``rows``.

    Parameters
    ----------
    times
        int64 times of one station's frames, sorted.
    scores
        Their scores; ``-inf`` for frames not searched (they dominate nothing).
    rows
        Positions to decide.
    x
        The window half-width, in the unit of ``times``.

    Returns
    -------
    numpy.ndarray
        One bool per row: some frame within ``x`` has a higher score, or the same score
        and an earlier position.  The cost is the rows times the widest window's frames.
    """
    out = np.zeros(len(rows), dtype=bool)
    if len(rows) == 0:
        return out
    t = times[rows]
    lo = np.searchsorted(times, t - x, side="left")
    hi = np.searchsorted(times, t + x, side="right")
    s = scores[rows]
    reach = int(max((rows - lo).max(), (hi - 1 - rows).max()))
    for d in range(1, reach + 1):
        later = rows + d
        ok = later < hi
        out[ok] |= scores[later[ok]] > s[ok]
        earlier = rows - d
        ok = earlier >= lo
        out[ok] |= scores[earlier[ok]] >= s[ok]
    return out


def _blocks(src: _Source, chunk: int, width: int, block_rows: int | None) -> list[tuple[int, int]]:
    """Row ranges of one task each, on the chunk grid, covering ``lo:hi``."""
    size = block_rows or chunk * max(1, BLOCK_BYTES // max(1, chunk * width * 4))
    edges = list(range(src.lo - src.lo % size + size, src.hi, size))
    starts = [src.lo, *edges]
    return list(zip(starts, [*edges, src.hi], strict=True))


@dataclass
class _BlockHits:
    """What one block hands the merge, per query: its sure hits and its edge frames."""

    rows: list[np.ndarray]
    scores: list[np.ndarray]
    edge_rows: list[np.ndarray]
    edge_scores: list[np.ndarray]
    edge_dominated: list[np.ndarray]
    missing: int


def _score_block(
    cube: Cube,
    src: _Source,
    a: int,
    b: int,
    qmat: np.ndarray,
    k: int,
    x: int,
    code: int | None,
    excluded: list[tuple[int, int, int]],
) -> _BlockHits:
    """Scores of rows ``a:b`` against every query; each query's sure hits and edge frames.

    ``excluded``: ``(query, first, stop)`` rows that query may not hit (its neighbourhood).
    """
    scores, missing = _block_scores(cube, src, a, b, qmat, code, excluded)
    if src.times is None:
        times, edge = None, np.zeros(b - a, dtype=bool)
    else:
        times = src.times[a - src.lo : b - src.lo]
        edge = (times - times[0] <= x) | (times[-1] - times <= x)
    out = _BlockHits([], [], [], [], [], missing)
    for q in range(qmat.shape[0]):
        s = scores[:, q]
        searched = np.isfinite(s)
        edge_rows = np.flatnonzero(edge & searched)
        inner = searched & ~edge
        kept = _top_kept(times, s, inner, k, x)
        out.rows.append(kept + a)
        out.scores.append(s[kept])
        out.edge_rows.append(edge_rows + a)
        out.edge_scores.append(s[edge_rows])
        out.edge_dominated.append(
            dominated(times, s, edge_rows, x) if times is not None else edge_rows < 0
        )
    return out


def _block_scores(
    cube: Cube,
    src: _Source,
    a: int,
    b: int,
    qmat: np.ndarray,
    code: int | None,
    excluded: list[tuple[int, int, int]],
) -> tuple[np.ndarray, int]:
    """Exact cosine of rows ``a:b`` with every query; rows without features (see
    :func:`_row_scores`)."""
    pred = None
    if code is not None and src.pred_path is not None:
        pred = cube.read_rows(src.pred_path, a, b)
    feats = cube.read_rows(src.path, a, b)
    return _row_scores(src, np.arange(a, b), feats, pred, qmat, code, excluded)


def _row_scores(
    src: _Source,
    rows: np.ndarray,
    feats: np.ndarray,
    pred: np.ndarray | None,
    qmat: np.ndarray,
    code: int | None,
    excluded: list[tuple[int, int, int]],
) -> tuple[np.ndarray, int]:
    """Exact cosine of the features ``feats`` of ``rows`` (sorted) with every query:
    ``-inf`` where a row is not searched (no features, filtered out by ``src.keep`` or
    the class ``code`` of its predictions ``pred``, a query's neighbourhood)."""
    feats = feats.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", feats, feats))
    valid = np.isfinite(norms)
    missing = int((~valid).sum())
    if src.keep is not None:
        valid &= src.keep[rows]
    if code is not None:
        valid &= pred == code if pred is not None else np.zeros(len(rows), dtype=bool)
    feats[~valid] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = (feats @ qmat.T) / norms[:, None]
    scores[norms == 0] = 0.0  # a row of zeros is like nothing: documented as score 0
    scores[~valid] = -np.inf
    for q, first, stop in excluded:
        scores[(rows >= first) & (rows < stop), q] = -np.inf
    return scores, missing


def _top_kept(
    times: np.ndarray | None, s: np.ndarray, inner: np.ndarray, k: int, x: int
) -> np.ndarray:
    """Rows of ``inner`` no better frame is near, best first: the k best and all tied with
    the k-th (ties are broken later, by station and time, across blocks)."""
    n_inner = int(inner.sum())
    pool = np.where(inner, s, -np.inf)
    m = min(n_inner, 4 * k + 16)
    while True:
        if m >= n_inner:
            cand = np.flatnonzero(inner)
        else:
            # every row at least as good as the m-th best: ties at the edge are all in
            threshold = np.partition(pool, len(pool) - m)[len(pool) - m]
            cand = np.flatnonzero(pool >= threshold)
        cand = cand[np.lexsort((cand, -s[cand]))]
        kept = cand if times is None else cand[~dominated(times, s, cand, x)]
        if len(kept) >= k or m >= n_inner:
            break
        m *= 4
    if len(kept) > k:
        kept = kept[s[kept] >= s[kept[k - 1]]]
    return kept


def _excluded(src: _Source, queries: list[_Query], x: int) -> list[tuple[int, int, int]]:
    """Per query, the rows of ``src`` it may not hit: itself and its station's frames
    within ``x`` of it."""
    out = []
    for i, q in enumerate(queries):
        if src.times is not None:
            if q.station != src.station or q.time is None:
                continue
            t = q.time.astype("datetime64[ns]").astype(np.int64)
            first = int(np.searchsorted(src.times, t - x, side="left")) + src.lo
            stop = int(np.searchsorted(src.times, t + x, side="right")) + src.lo
            out.append((i, first, stop))
        elif q.group is None:
            out.append((i, q.row, q.row + 1))
    return out


def _search(
    cube: Cube,
    sources: list[_Source],
    queries: list[_Query],
    qmat: np.ndarray,
    k: int,
    x: int,
    code: int | None,
    block_rows: int | None,
    scheduler: str | None,
) -> list[pd.DataFrame]:
    """Each query's hits over every source (unsorted candidates, at least the best k)."""
    import dask

    shared = dask.delayed(qmat, pure=True)
    tasks, owners = [], []
    for s, src in enumerate(sources):
        if src.hi <= src.lo:
            continue
        chunk = cube.rows_per_chunk(src.path)
        excl = _excluded(src, queries, x)
        for a, b in _blocks(src, chunk, qmat.shape[1], block_rows):
            tasks.append(dask.delayed(_score_block)(cube, src, a, b, shared, k, x, code, excl))
            owners.append(s)
    results: list[_BlockHits] = run_tasks(tasks, scheduler, label="similar: scoring frames")
    missing = sum(r.missing for r in results)
    if missing:
        log.info("similar: %d frames without features were not searched", missing)
    per_query: list[list[pd.DataFrame]] = [[] for _ in queries]
    for s, src in enumerate(sources):
        mine = [r for r, o in zip(results, owners, strict=True) if o == s]
        if not mine:
            continue
        for q in range(len(queries)):
            rows = [r.rows[q] for r in mine]
            scores = [r.scores[q] for r in mine]
            if src.times is not None:
                # Frames near a block's edge: decided against the other blocks' edge frames,
                # the only frames of other blocks within x of them (docs/similar.md).
                e_rows = np.concatenate([r.edge_rows[q] for r in mine])
                e_scores = np.concatenate([r.edge_scores[q] for r in mine])
                e_dom = np.concatenate([r.edge_dominated[q] for r in mine])
                e_times = src.times[e_rows - src.lo]
                open_ = np.flatnonzero(~e_dom)
                e_dom[open_] = dominated(e_times, e_scores, open_, x)
                rows.append(e_rows[~e_dom])
                scores.append(e_scores[~e_dom])
            per_query[q].append(_frame(src, np.concatenate(rows), np.concatenate(scores)))
    return [
        pd.concat(frames, ignore_index=True) if frames else _frame(None, np.empty(0, int), None)
        for frames in per_query
    ]


def _frame(src: _Source | None, rows: np.ndarray, scores: np.ndarray | None) -> pd.DataFrame:
    """Candidates of one source as table rows (station, time, image, score, group, row)."""
    rows = rows.astype(np.int64)
    if src is None or scores is None:
        station = np.empty(0, dtype=object)
        time = np.empty(0, dtype="datetime64[ns]")
        image: Any = pd.array([], dtype="Int64")
        group: Any = np.empty(0, dtype=object)
        scores = np.empty(0)
    elif src.times is not None:
        station = np.full(len(rows), src.station, dtype=object)
        time = src.times[rows - src.lo].astype("datetime64[ns]")
        image = pd.array([pd.NA] * len(rows), dtype="Int64")
        group = np.full(len(rows), src.group, dtype=object)
    else:
        assert src.stations is not None and src.images is not None
        assert src.label_times is not None
        station = src.stations[rows].astype(object)
        time = src.label_times[rows]
        image = pd.array(src.images[rows], dtype="Int64")
        group = np.full(len(rows), "", dtype=object)
    return pd.DataFrame(
        {
            "station": station,
            "time": time,
            "image": image,
            "score": np.asarray(scores, dtype=np.float64),
            "group": group,
            "row": rows,
        }
    )


def _table(cube: Cube, hits: list[pd.DataFrame], k: int, model: str | None) -> pd.DataFrame:
    """The best k of each query's candidates, in the one order, with their classes."""
    parts = []
    for q, frame in enumerate(hits):
        if frame.empty:
            continue
        frame = frame.copy()
        frame["_neg"] = -frame["score"]
        frame = frame.sort_values(
            ["_neg", "station", "time", "image"], kind="mergesort", na_position="last"
        ).head(k)
        frame = frame.drop(columns="_neg")
        frame.insert(0, "rank", np.arange(1, len(frame) + 1))
        frame.insert(0, "query", q)
        parts.append(frame)
    if parts:
        table = pd.concat(parts, ignore_index=True)
    else:
        table = _frame(None, np.empty(0, int), None)
        table.insert(0, "rank", np.empty(0, int))
        table.insert(0, "query", np.empty(0, int))
    table["group"] = table["group"].replace("", None)
    names, class_scores = _classes(cube, table, model)
    table["class"] = names
    table["class_score"] = class_scores
    return table[[*COLUMNS, "group", "row"]].reset_index(drop=True)


def _classes(cube: Cube, table: pd.DataFrame, model: str | None) -> tuple[list[str], np.ndarray]:
    """The model's class and its score for each hit ("" and NaN where there are none)."""
    names = [""] * len(table)
    scores = np.full(len(table), np.nan)
    if model is None or table.empty:
        return names, scores
    pred_name, score_name, _ = prediction_names(model)
    groups = table["group"].where(table["group"].notna(), "")
    for group, idx in table.groupby(groups).indices.items():
        node = group or None
        path = variable_path(node, pred_name)
        if not cube.has(path):
            continue
        lookup = _class_lookup(cube, path)
        columns = {v: i for i, v in enumerate(lookup)}
        rows = table["row"].to_numpy()[idx]
        pred = cube.read_checked(path, (rows,), whole=False)
        score_path = variable_path(node, score_name)
        raw = cube.read_checked(score_path, (rows,), whole=False) if cube.has(score_path) else None
        for j, i in enumerate(idx):
            v = int(pred[j])
            names[i] = lookup.get(v, "")
            if raw is not None and v in columns:
                scores[i] = float(raw[j, columns[v]])
    return names, scores


# -- the indexed search --------------------------------------------------------------------

#: Times a query asks the index for 4x more candidates (and lists) before it is searched
#: exactly instead.
ESCALATIONS = 3


def _usable_index(
    cube: Cube, name: str, searched: list[str], sources: list[_Source], use_index: bool | None
) -> StoredIndex | None:
    """The index to search with, or None for the exact search (``use_index`` says when)."""
    if use_index is False:
        return None
    rows = sum(src.hi - src.lo for src in sources if src.times is not None)
    if use_index is None and rows <= AUTO_ROWS:
        return None
    fname = features_name(name)
    build = f"`oathcube index CUBE --features {name}`"
    if name not in list_indexes(cube):
        if use_index:
            raise OptionError(
                f"no index of {fname} in the cube",
                parameter="use_index",
                expected=f"{build} first, or the exact search",
            )
        return None
    attrs = dict(cube.group(f"indexes/{name}").attrs)
    reason = stale_reason(cube, attrs, searched, fname)
    if reason is not None:
        if use_index:
            raise OptionError(
                f"the index of {fname} is stale: {reason}",
                parameter="use_index",
                expected=f"{build} --overwrite, or the exact search",
            )
        log.warning("similar: the index of %s is stale (%s): searching exactly", fname, reason)
        return None
    return load_index(cube, name)


def _allowed(cube: Cube, index: StoredIndex, sources: list[_Source], code: int | None) -> Any:
    """Which ids the filters leave (bool per id), and each station source's id range."""
    allowed = np.zeros(int(index.offsets[-1]), dtype=bool)
    ranges: dict[int, tuple[int, int]] = {}
    for s, src in enumerate(sources):
        if src.times is None or src.station is None:
            continue
        a, b = index.station_ids(src.station)
        ranges[s] = (a, b)
        rows = index.id_row[a:b]
        ok = (rows >= src.lo) & (rows < src.hi)
        if code is not None and len(rows):
            if src.pred_path is None:
                ok[:] = False
            else:
                ok &= cube.read_rows(src.pred_path, 0, int(rows.max()) + 1)[rows] == code
        allowed[a:b] = ok
    return allowed, ranges


def _indexed(
    cube: Cube,
    index: StoredIndex,
    sources: list[_Source],
    queries: list[_Query],
    qmat: np.ndarray,
    k: int,
    x: int,
    code: int | None,
    block_rows: int | None,
    scheduler: str | None,
) -> list[pd.DataFrame]:
    """Each query's hits: station frames from the index's candidates, re-scored exactly;
    the labelled images (not indexed) by the exact search."""
    stations = [src for src in sources if src.times is not None]
    others = [src for src in sources if src.times is None]
    parts: list[list[pd.DataFrame]] = [[] for _ in queries]
    if others:
        for q, frame in enumerate(
            _search(cube, others, queries, qmat, k, x, code, block_rows, scheduler)
        ):
            parts[q].append(frame)
    allowed, ranges = _allowed(cube, index, stations, code)
    nprobe0 = int(index.attrs.get("nprobe", 32))
    for q, query in enumerate(queries):
        mine = allowed.copy()
        excl = {s: _excluded(src, [query], x) for s, src in enumerate(stations)}
        for s, (a, b) in ranges.items():
            for _, first, stop in excl[s]:
                rows = index.id_row[a:b]
                mine[a + np.searchsorted(rows, first) : a + np.searchsorted(rows, stop)] = False
        # Filters leave a share of each list: probe proportionally more lists, so that as
        # many allowed frames are scanned as an unfiltered query scans (the frames a
        # filter leaves may lie in lists far from the query's).
        share = max(int(mine.sum()), 1) / max(len(mine), 1)
        n, nprobe, found = max(CANDIDATES, 5 * k), int(np.ceil(nprobe0 / share)), None
        for _ in range(ESCALATIONS + 1):
            approx, ids = index.search(query.vector[None], n, nprobe, mine)
            approx, ids = approx[0][ids[0] >= 0], ids[0][ids[0] >= 0]
            exact = np.full(len(ids), np.nan)
            frames = []
            for s, src in enumerate(stations):
                a, b = ranges[s]
                here = (ids >= a) & (ids < b)
                frame, exact[here] = _rescore(
                    cube, src, index, ids[here], query.vector, x, code, excl[s]
                )
                frames.append(frame)
            found = pd.concat(frames, ignore_index=True)
            if len(ids) >= int(mine.sum()):
                break  # every allowed id was re-scored: this is the exact answer
            # Accept when the k-th hit scores above what any frame left out of a full
            # list of candidates can score: at most the last candidate's approximate
            # score plus twice the largest error of the approximate scores seen.  (A
            # short list means the probed lists held too few frames the filters allow.)
            if len(found) >= k and len(ids) == n:
                kth = np.sort(found["score"].to_numpy())[::-1][k - 1]
                ok = np.isfinite(exact)
                error = float(np.abs(approx[ok] - exact[ok]).max()) if ok.any() else np.inf
                if kth > float(approx.min()) + 2 * error:
                    break
            n, nprobe = 4 * n, 4 * nprobe
        else:
            log.info("similar: query %d has fewer than %d hits among its candidates: exact", q, k)
            found = _search(
                cube, stations, [query], query.vector[None], k, x, code, block_rows, scheduler
            )[0]
        parts[q].append(found)
    return [pd.concat(p, ignore_index=True) for p in parts]


def _rescore(
    cube: Cube,
    src: _Source,
    index: StoredIndex,
    ids: np.ndarray,
    vector: np.ndarray,
    x: int,
    code: int | None,
    excluded: list[tuple[int, int, int]],
) -> tuple[pd.DataFrame, np.ndarray]:
    """The candidates ``ids`` of one station that are hits, with their exact scores, and
    the exact score of each of ``ids``.

    Each candidate is decided from the exact scores of every searched frame within
    ``x`` of it: the rows of its window are read.
    """
    assert src.times is not None
    if len(ids) == 0:
        return _frame(src, np.empty(0, int), np.empty(0)), np.empty(0)
    rows = np.unique(index.id_row[ids])
    local = rows - src.lo
    t = src.times[local]
    lo = np.searchsorted(src.times, t - x, side="left")
    hi = np.searchsorted(src.times, t + x, side="right")
    # Every row within x of a candidate, read in one orthogonal selection: zarr decodes
    # each touched chunk once, concurrently.
    need = np.unique(np.concatenate([np.arange(i, j) for i, j in zip(lo, hi, strict=True)]))
    need_rows = need + src.lo
    feats = cube.read_checked(src.path, (need_rows,), whole=False)
    pred = None
    if code is not None and src.pred_path is not None:
        pred = cube.read_checked(src.pred_path, (need_rows,), whole=False)
    s = _row_scores(src, need_rows, feats, pred, vector[None], code, excluded)[0][:, 0]
    # Scores of every position of the windows' span (-inf: not needed, so not read: no
    # needed row has one of those within x), for the dominance test on sorted times.
    r0, r1 = int(lo.min()), int(hi.max())
    span = np.full(r1 - r0, -np.inf)
    span[need - r0] = s
    pos = local - r0
    ok = np.isfinite(span[pos]) & ~dominated(src.times[r0:r1], span, pos, x)
    return _frame(src, rows[ok], span[pos[ok]]), span[index.id_row[ids] - src.lo - r0]
