"""An approximate index of a cube's features (faiss), stored in the cube, for :func:`similar`.

``oathcube index CUBE --features NAME`` (:func:`build_index`) reads every station's
``features_<NAME>`` once, normalises the rows (cosine = inner product) and adds them to a
faiss index (default ``IVF<nlist>,SQ8``: see docs/similar.md for the measurements that
chose it).  The index is stored in the group ``indexes/<NAME>`` as bytes of faiss's own
format (a uint8 array: nothing pickled, nothing that runs code) beside the map from its
ids to ``(station, row)`` and, in the attributes, what it covers: per station the
committed rows and a fingerprint of the features (their attributes, shape and stored
chunks).  It is written like a model: ``STATUS=building``, every array, then
``complete``; a killed build leaves an index that is never used.

A query asks the index for candidates only (:func:`candidates`); :mod:`oathcube.similarity`
re-scores them exactly from the cube and applies its rules, escalating and at last
falling back to the exact search when the candidates hold fewer than ``k`` hits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cube.location import url_fs
from .cube.schema import (
    BUILDING,
    COMPLETE,
    STATUS,
    VariableSpec,
    feature_sets,
    features_name,
    provenance,
    station_group,
    variable_path,
)
from .cube.store import Cube, CubeLike
from .errors import CubeError, FeatureError, OptionError
from .faults import kill_point
from .features import value_settings

__all__ = [
    "INDEX_GROUP",
    "DEFAULT_FACTORY",
    "NPROBE",
    "CANDIDATES",
    "AUTO_ROWS",
    "StoredIndex",
    "build_index",
    "index_group",
    "index_specs",
    "list_indexes",
    "load_index",
]

log = logging.getLogger(__name__)

#: The group under which indexes live, one subgroup per features name.
INDEX_GROUP = "indexes"

#: faiss factory string of a new index; ``{nlist}`` becomes about 4 sqrt(rows) lists.
#: SQ8 codes (1 byte a dimension) on normalised vectors: recall@10 1.00 with 100
#: re-ranked candidates at nprobe 32, and a build 40x faster than PQ's training
#: (docs/similar.md, "The index").  For archives beyond memory use PQ (``IVF65536,PQ64``).
DEFAULT_FACTORY = "IVF{nlist},SQ8"

#: Inverted lists probed per query (x4, with the candidates, when escalating): scanning
#: SQ8 codes is cheap beside re-scoring the candidates from the cube, and 32 lost hits
#: on clustered features (recall@60 0.93 in tests/test_similarity_index.py, 1.00 at 128).
NPROBE = 128

#: Candidates a query re-ranks exactly: at least this, and at least 5 k.
CANDIDATES = 100

#: ``use_index=None`` uses a fresh index when the searched rows exceed this: below it
#: the exact pass takes well under a second (scripts/bench_similar.py).
AUTO_ROWS = 100_000

#: Rows read per block while building (float32 features: 512 columns -> 64 MB).
_BUILD_ROWS = 32_768

#: Training rows per inverted list (faiss warns below 39).
_TRAIN_PER_LIST = 64

#: Bytes per chunk of the stored index bytes.
_BYTES_PER_CHUNK = 64 * 2**20


def index_group(features: str) -> str:
    """The group of the index of ``features`` (an extractor name), e.g. ``indexes/aurora_fm``."""
    return f"{INDEX_GROUP}/{features}"


def index_specs() -> dict[str, VariableSpec]:
    """The arrays of an index group: ``index(byte)`` (faiss's serialised index, uint8),
    ``id_station(id)`` (position in the ``stations`` attribute) and ``id_row(id)`` (row in
    that station's features) of each id the index returns."""
    specs = [
        VariableSpec("index", ("byte",), "uint8", 0, "rows", _BYTES_PER_CHUNK),
        VariableSpec("id_station", ("id",), "int16", -1, "rows", 2**22),
        VariableSpec("id_row", ("id",), "int64", -1, "rows", 2**22),
    ]
    return {s.name: s for s in specs}


def _faiss() -> Any:
    """faiss, or a one-line error saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise OptionError(
            "faiss is not installed: the index needs it",
            parameter="use_index",
            expected="`pip install faiss-cpu`, or the exact search",
        ) from None
    return faiss


def fingerprint(cube: Cube, group: str, fname: str) -> dict[str, Any]:
    """What must not change for an index of ``group``'s features to stay valid.

    The committed rows, and a hash of the features' shape, attributes, the keys of their
    stored chunks (a resumed computation adds chunks) and the time their metadata was
    written (recomputed features are created anew).  Metadata and a listing: no values.
    """
    path = variable_path(group, fname)
    array = cube.array(path)
    attrs = json.dumps(dict(array.attrs), sort_keys=True, default=str)
    chunks = "\n".join(sorted(cube.stored_chunks(path)))
    digest = hashlib.sha256(
        f"{attrs}\n{list(array.shape)}\n{chunks}\n{_modified(cube, path)}".encode()
    ).hexdigest()
    return {"rows": int(cube.committed_rows(group)), "hash": digest[:32]}


def _modified(cube: Cube, path: str) -> str:
    """When the array's metadata was last written ("" where the store cannot say):
    recomputed features are a new array, even with the same attributes in one second."""
    fs, base = url_fs(cube.location, cube.storage_options)
    try:
        return str(fs.modified(f"{base}/{path}/zarr.json"))
    except (NotImplementedError, FileNotFoundError, OSError):
        return ""


def list_indexes(cube: CubeLike) -> list[str]:
    """Features names that have a complete index in the cube."""
    cube = Cube.open(cube)
    if INDEX_GROUP not in cube.root:
        return []
    names = sorted(name for name, _ in cube.group(INDEX_GROUP).groups())
    return [n for n in names if cube.group(index_group(n)).attrs.get(STATUS) == COMPLETE]


def build_index(
    cube: CubeLike,
    features: str,
    *,
    factory: str = DEFAULT_FACTORY,
    nprobe: int = NPROBE,
    overwrite: bool = False,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the approximate index of ``features_<features>`` over every station.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    features
        Extractor name (``aurora_fm``, ``inception_v4``, ``handcrafted``).
    factory
        faiss ``index_factory`` string over inner product; ``{nlist}`` is replaced by
        about 4 sqrt(rows) (at least 1, at most rows / 39 so every list trains).
    nprobe
        Inverted lists a query probes at first (recorded; ``similar`` escalates).
    overwrite
        Replace a complete index of these features (kept until the new one is written).
    seed
        Seed of the training sample.
    storage_options
        fsspec options of a cube at a URL.

    Returns
    -------
    dict
        The index group's attributes (rows indexed, bytes, build seconds, ...).

    Raises
    ------
    OptionError
        An index exists and ``overwrite`` is not given; a bad ``factory`` or ``nprobe``.
    FeatureError
        No station has the features.
    """
    faiss = _faiss()
    if nprobe < 1:
        raise OptionError(f"nprobe={nprobe}", parameter="nprobe", expected=">= 1")
    cube = Cube.open(cube, "r+", storage_options=storage_options)
    fname = features_name(features)
    group_path = index_group(features)
    _refuse_existing(cube, features, overwrite)
    codes = [
        c
        for c in cube.stations()
        if features in feature_sets(list(cube.group(station_group(c)).array_keys()))
    ]
    if not codes:
        raise FeatureError(
            f"no station group has {fname}",
            path=cube.location,
            expected=f"`oathcube features --extractor {features} --station S` first",
        )
    tic = time.perf_counter()
    prints = {c: fingerprint(cube, station_group(c), fname) for c in codes}
    dim = int(cube.array(variable_path(station_group(codes[0]), fname)).shape[1])
    total = sum(p["rows"] for p in prints.values())
    nlist = int(min(max(1, round(4 * np.sqrt(max(total, 1)))), max(1, total // 39)))
    try:
        index = faiss.index_factory(dim, factory.format(nlist=nlist), faiss.METRIC_INNER_PRODUCT)
    except (RuntimeError, KeyError, IndexError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OptionError(
            f"faiss factory {factory!r}: {first}",
            parameter="factory",
            expected="a faiss index_factory string, e.g. IVF{nlist},SQ8 or HNSW32",
        ) from None
    # Two passes over the features: a uniform training sample, then every row added.
    # Only one block and the sample are in memory at a time.
    rng = np.random.default_rng(seed)
    want = min(total, max(nlist * _TRAIN_PER_LIST, 10_000))
    sample = []
    for _, _, block in _blocks(cube, codes, prints, fname):
        take = rng.random(len(block)) < want / max(total, 1)
        sample.append(block[take])
    if not index.is_trained:
        train = np.concatenate(sample) if sample else np.empty((0, dim), np.float32)
        index.train(train if len(train) else np.zeros((1, dim), np.float32))
    del sample
    id_station, id_row = [], []
    for code, rows, vectors in _blocks(cube, codes, prints, fname):
        index.add(vectors)
        id_station.append(np.full(len(rows), codes.index(code), dtype=np.int16))
        id_row.append(rows)
    stored = faiss.serialize_index(index)
    seconds = time.perf_counter() - tic
    n_ids = int(index.ntotal)
    attrs = provenance(
        features=fname,
        feature_settings=json.dumps(
            value_settings(dict(cube.array(variable_path(station_group(codes[0]), fname)).attrs)),
            sort_keys=True,
            default=str,
        ),
        stations=codes,
        fingerprints=json.dumps(prints, sort_keys=True),
        factory=factory.format(nlist=nlist),
        nlist=nlist,
        nprobe=int(nprobe),
        dim=dim,
        rows_indexed=n_ids,
        index_bytes=int(stored.nbytes),
        build_seconds=round(seconds, 3),
    )
    _write(cube, group_path, stored, id_station, id_row, attrs, overwrite)
    log.info("index: %d rows of %s in %.1f s, %d bytes", n_ids, fname, seconds, stored.nbytes)
    return attrs


def _refuse_existing(cube: Cube, features: str, overwrite: bool) -> None:
    if features in list_indexes(cube) and not overwrite:
        raise OptionError(
            f"an index of {features} exists",
            parameter="overwrite",
            expected="`overwrite` to rebuild it",
        )


def _blocks(
    cube: Cube,
    codes: list[str],
    prints: dict[str, dict[str, Any]],
    fname: str,
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(code, rows, vectors)`` blocks: unit float32 rows of the rows with features."""
    for code in codes:
        path = variable_path(station_group(code), fname)
        n = prints[code]["rows"]
        for a in range(0, n, _BUILD_ROWS):
            b = min(n, a + _BUILD_ROWS)
            block = cube.read_rows(path, a, b).astype(np.float32)
            norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
            ok = np.isfinite(norms)  # rows not computed yet are not indexed
            # A row of zeros stays zeros: it scores 0, as in the exact search.
            vectors = block[ok] / np.where(norms[ok] > 0, norms[ok], 1.0)[:, None]
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            rows = np.flatnonzero(ok).astype(np.int64) + a
            yield code, rows, vectors


def _write(
    cube: Cube,
    path: str,
    stored: np.ndarray,
    id_station: list[np.ndarray],
    id_row: list[np.ndarray],
    attrs: dict[str, Any],
    overwrite: bool,
) -> None:
    """Write the index group: ``STATUS=building``, every array, then ``complete``.

    A rebuild (``overwrite``) replaces the group as it starts writing, so a kill leaves
    either the old index whole (killed before) or an index marked ``building`` that is
    never listed nor used (killed after): the old index or none, never a partial one.
    """
    import xarray as xr

    specs = index_specs()
    ds = xr.Dataset(
        {
            "index": specs["index"].variable(stored),
            "id_station": specs["id_station"].variable(
                np.concatenate(id_station) if id_station else np.empty(0, np.int16)
            ),
            "id_row": specs["id_row"].variable(
                np.concatenate(id_row) if id_row else np.empty(0, np.int64)
            ),
        }
    )
    ds.attrs = {**attrs, STATUS: BUILDING}
    with cube.writing("index"):
        _refuse_existing(cube, path.rsplit("/", 1)[1], overwrite)
        # The group is written with STATUS=building; the status turns complete only
        # after every array is stored: a killed build leaves an index never used.
        cube.write_dataset(ds, path)
        kill_point("index.arrays_written")
        cube.mark_complete(path)
        cube.publish()


@dataclass
class StoredIndex:
    """An index read back from the cube, with what it covers."""

    features: str
    index: Any
    stations: list[str]
    #: first id of each station (and the total last): ids are station-major, row-sorted
    offsets: np.ndarray
    id_row: np.ndarray
    attrs: dict[str, Any]

    def station_ids(self, code: str) -> tuple[int, int]:
        """The id range ``a:b`` of station ``code`` (empty when not indexed)."""
        if code not in self.stations:
            return 0, 0
        s = self.stations.index(code)
        return int(self.offsets[s]), int(self.offsets[s + 1])

    def search(
        self, qmat: np.ndarray, n: int, nprobe: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate cosines and ids of up to ``n`` candidates of each query among the
        ``allowed`` ids (bool), best first; id -1 where fewer are found."""
        faiss = _faiss()
        bits = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        params: Any
        ivf = _ivf(faiss, self.index)
        if ivf is not None:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=min(nprobe, ivf.nlist))
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, ids = self.index.search(
            np.ascontiguousarray(qmat, dtype=np.float32), int(n), params=params
        )
        del bits  # kept alive until here: the selector points into it
        return np.asarray(scores, dtype=np.float64), np.asarray(ids)

    @property
    def nlist(self) -> int:
        """Inverted lists (1 for an index that has none: it is searched whole)."""
        ivf = _ivf(_faiss(), self.index)
        return 1 if ivf is None else int(ivf.nlist)


def _ivf(faiss: Any, index: Any) -> Any:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def stale_reason(cube: Cube, attrs: dict[str, Any], codes: list[str], fname: str) -> str | None:
    """Why the index no longer matches the searched stations' features, or None."""
    prints = json.loads(attrs.get("fingerprints", "{}"))
    for code in codes:
        if code not in prints:
            return f"station {code} is not in the index"
        now = fingerprint(cube, station_group(code), fname)
        if now["rows"] != prints[code]["rows"]:
            return f"{code} has {now['rows']} rows, the index {prints[code]['rows']}"
        if now["hash"] != prints[code]["hash"]:
            return f"{fname} of {code} were recomputed since the index was built"
    return None


#: The last index read, by cube location, features and the build's attributes: a session
#: of queries reads (hundreds of MB at a million frames) and deserialises it once.
_LOADED: dict[tuple[str, str, str], StoredIndex] = {}


def load_index(cube: Cube, features: str) -> StoredIndex | None:
    """The complete index of ``features`` (None when there is none), read once per build."""
    if features not in list_indexes(cube):
        return None
    path = index_group(features)
    attrs: dict[str, Any] = dict(cube.group(path).attrs)
    key = (cube.location, features, json.dumps(attrs, sort_keys=True, default=str))
    if key not in _LOADED:
        _LOADED.clear()  # one index in memory at a time
        _LOADED[key] = _read_index(cube, features, attrs)
    return _LOADED[key]


def _read_index(cube: Cube, features: str, attrs: dict[str, Any]) -> StoredIndex:
    faiss = _faiss()
    path = index_group(features)
    stored = cube.read_checked(variable_path(path, "index"))
    try:
        index = faiss.deserialize_index(np.ascontiguousarray(stored, dtype=np.uint8))
    except RuntimeError as err:
        raise CubeError(
            f"the stored index cannot be read ({str(err).strip().splitlines()[0]})",
            path=cube.where(path),
            expected="`oathcube index --overwrite` to rebuild it",
        ) from None
    id_station = cube.read_checked(variable_path(path, "id_station"))
    stations = [str(s) for s in attrs["stations"]]
    counts = np.bincount(id_station.astype(np.int64), minlength=len(stations))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    id_row = cube.read_checked(variable_path(path, "id_row")).astype(np.int64)
    return StoredIndex(features, index, stations, offsets, id_row, attrs)
