"""Raw frame blocks: the one type every raw reader yields, and the dispatcher over sources.

A :class:`FrameBlock` is a run of frames from one station and one instrument, in time
order, as read from one source (a Berkeley CDF hour, a UCalgary PGM minute of THEMIS,
REGO, TREx NIR or Blueline, a TREx RGB HDF5 minute, or part of an image folder).  Readers
do no preparation at all: raw counts stay as read (``raw=True``: 16-bit, or 8-bit per band
for TREx RGB), in the cube's one orientation (:mod:`oathcube.archive.orientation`);
turning them into OATH-like 8-bit images is the explicit, recorded job of
:mod:`oathcube.rawprep`.

Which reader takes a file is told by its name (:func:`source_kind`): ``*.cdf``,
``*.pgm[.gz|.bz2]`` (every UCalgary PGM imager: the instrument comes from the file's
``Imager unique ID``), TREx RGB ``YYYYMMDD_HHMM_<site>_rgb-NN_<mode>.h5``, PNG/JPEG images.
Dark files (a ``dark`` field in the name, ``..._8446_dark.pgm.gz``: frames with the
shutter closed) are never read as sky: they are left out with a logged message and listed
in :attr:`FrameBlockReader.skipped`, whether or not ``skip_bad`` is set.

:func:`iter_frame_blocks` expands directories, picks a reader by file name, and either stops
at the first bad file (raising :class:`~oathcube.errors.IngestError` that names it) or, with
``skip_bad=True``, records it in :attr:`FrameBlockReader.skipped` and carries on, so that the
caller can list every skipped file with its reason in the cube's attributes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from oathcube.archive.blocks import IMAGE_SUFFIXES, FrameBlock
from oathcube.archive.instruments import is_dark_name, parse_ucalgary_name
from oathcube.errors import IngestError

__all__ = [
    "DARK_REASON",
    "FrameBlock",
    "FrameBlockReader",
    "SkippedSource",
    "IMAGE_SUFFIXES",
    "is_dark",
    "iter_frame_blocks",
    "source_kind",
]

log = logging.getLogger(__name__)

#: Why a dark file is left out (the reason listed in ``skipped``).
DARK_REASON = "dark frames (shutter closed): kept apart, not ingested as sky"

#: The kinds of file a reader takes (``folder`` and ``image`` are image folders).
_FILE_KINDS = ("cdf", "pgm", "h5")


@dataclass(frozen=True)
class SkippedSource:
    """A source left out: a dark file (always), or one that could not be read (only
    with ``skip_bad=True``).

    Parameters
    ----------
    path
        The file (or image) that was skipped.
    reason
        The error message, or :data:`DARK_REASON`; one line.
    """

    path: str
    reason: str

    def as_text(self) -> str:
        """One line, ``path: reason``, for a cube attribute."""
        return f"{self.path}: {self.reason}"


def source_kind(path: str | os.PathLike[str]) -> str | None:
    """Which reader takes ``path``, from its name alone.

    Parameters
    ----------
    path
        A file or directory.

    Returns
    -------
    str or None
        ``"cdf"``, ``"pgm"`` (``.pgm``, ``.pgm.gz``, ``.pgm.bz2``), ``"h5"`` (a TREx RGB
        HDF5 file, by its UCalgary name: other ``.h5`` files are not frame sources),
        ``"folder"`` (a directory), ``"image"`` (a single PNG/JPEG) or None when no
        reader takes it.
    """
    p = Path(path)
    if p.is_dir():
        return "folder"
    name = p.name.lower()
    if name.endswith(".cdf"):
        return "cdf"
    if name.endswith((".pgm", ".pgm.gz", ".pgm.bz2")):
        return "pgm"
    if name.endswith(".h5"):
        named = parse_ucalgary_name(name)
        return "h5" if named is not None and named.instrument == "trex_rgb" else None
    if name.endswith(IMAGE_SUFFIXES):
        return "image"
    return None


def is_dark(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file of dark frames (see
    :func:`oathcube.archive.instruments.is_dark_name`), which is never read as sky."""
    return source_kind(path) in _FILE_KINDS and is_dark_name(Path(path).name)


class FrameBlockReader(Iterator[FrameBlock]):
    """Iterator over the frame blocks of many sources; see :func:`iter_frame_blocks`.

    Attributes
    ----------
    skipped
        Sources (files or single images) left out, in the order met, each with its reason.
        Fills up as iteration goes on; complete once the iterator is exhausted.
    """

    def __init__(
        self,
        sources: Iterable[str | os.PathLike[str]],
        *,
        skip_bad: bool = False,
        station: str | None = None,
        times_csv: str | os.PathLike[str] | None = None,
        scan: bool = False,
    ) -> None:
        self.skip_bad = skip_bad
        self.scan = scan
        self.station = station.lower() if station else None
        self.times_csv = None if times_csv is None else Path(times_csv)
        self.skipped: list[SkippedSource] = []
        # Generators keep reading lazily: one file's frames are in memory at a time.
        self._it = self._generate(list(sources))

    def __iter__(self) -> FrameBlockReader:
        return self

    def __next__(self) -> FrameBlock:
        return next(self._it)

    def skipped_as_attrs(self) -> list[str]:
        """The skipped sources as ``path: reason`` strings (a JSON-able cube attribute)."""
        return [s.as_text() for s in self.skipped]

    def _dark(self, path: Path) -> None:
        # Always, skip_bad or not: dark frames are a file's content, not damage.
        log.info("%s: %s", path, DARK_REASON)
        self.skipped.append(SkippedSource(str(path), DARK_REASON))

    def _skip(self, error: IngestError, path: str | os.PathLike[str]) -> None:
        # Only called with skip_bad; the reason keeps what IngestError says, minus the path.
        reason = error.message
        if error.member:
            reason = f"[{error.member}] {reason}"
        if error.line is not None:
            reason = f"line {error.line}: {reason}"
        if error.expected:
            reason += f" (expected {error.expected})"
        self.skipped.append(SkippedSource(str(error.path or path), reason))

    def _generate(self, sources: list[str | os.PathLike[str]]) -> Iterator[FrameBlock]:
        for src in sources:
            path = Path(src)
            if not path.exists():
                err = IngestError("no such file or directory", path=path)
                if not self.skip_bad:
                    raise err
                self._skip(err, path)
                continue
            if path.is_dir():
                yield from self._directory(path)
                continue
            kind = source_kind(path)
            if kind == "image":
                # A lone image is a folder of one: the folder reader knows names and CSVs.
                yield from self._folder(path.parent, [path], check_listed=False)
            elif kind is None:
                err = IngestError(
                    "not a THEMIS raw file, UCalgary REGO/TREx file or image",
                    path=path,
                    expected="*.cdf, *.pgm, *.pgm.gz, *.pgm.bz2, a TREx RGB "
                    "YYYYMMDD_HHMM_<site>_rgb-NN_full.h5, *.png, *.jpg or a directory",
                )
                if not self.skip_bad:
                    raise err
                self._skip(err, path)
            elif is_dark(path):
                self._dark(path)
            else:
                yield from self._file(path, kind)

    def _directory(self, root: Path) -> Iterator[FrameBlock]:
        files: list[tuple[Path, str]] = []
        images: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()  # deterministic order of the walk itself
            for name in sorted(filenames):
                p = Path(dirpath) / name
                kind = source_kind(p)
                if kind == "image":
                    images.append(p)
                elif kind in _FILE_KINDS:
                    files.append((p, kind))
                # Anything else (READMEs, skymaps, CSVs) is not a frame source in a tree.
        # THEMIS names start with the station and hour (CDF) or the minute (UCalgary PGM
        # and HDF5), so name order is time order within a station.
        for p, kind in sorted(files, key=lambda item: (item[0].name, str(item[0]))):
            if is_dark(p):
                self._dark(p)
            else:
                yield from self._file(p, kind)
        if images:
            yield from self._folder(root, images)

    def _file(self, path: Path, kind: str) -> Iterator[FrameBlock]:
        reader = _reader_for(kind, scan=self.scan)
        try:
            block = reader(path)
            if self.station is not None and block.station != self.station:
                raise IngestError(
                    f"file is from station {block.station!r}",
                    path=path,
                    expected=f"station {self.station!r} as asked",
                )
        except IngestError as err:
            if not self.skip_bad:
                raise
            self._skip(err, path)
            return
        yield block

    def _folder(
        self, root: Path, images: list[Path], *, check_listed: bool = True
    ) -> Iterator[FrameBlock]:
        from oathcube.archive.folder import iter_folder_blocks

        on_bad: Callable[[IngestError, Path], None] | None = None
        if self.skip_bad:
            on_bad = self._skip
        try:
            yield from iter_folder_blocks(
                root,
                images=images,
                times_csv=self.times_csv,
                station=self.station,
                on_bad=on_bad,
                check_listed=check_listed,
            )
        except IngestError as err:
            # Errors that concern the folder as a whole (a bad CSV) land here.
            if not self.skip_bad:
                raise
            self._skip(err, root)


def _reader_for(kind: str, scan: bool = False) -> Callable[[Path], FrameBlock]:
    # Imported here so that `frames` stays importable without cdflib for folder-only use.
    if kind == "cdf":
        from oathcube.archive.themis_cdf import read_cdf, scan_cdf

        return scan_cdf if scan else read_cdf
    if kind == "pgm":
        from oathcube.archive.themis_pgm import read_pgm

        return read_pgm
    if kind == "h5":
        from oathcube.archive.trex_rgb import read_trex_rgb, scan_trex_rgb

        return scan_trex_rgb if scan else read_trex_rgb
    raise ValueError(f"no file reader for kind {kind!r}")


def iter_frame_blocks(
    sources: Iterable[str | os.PathLike[str]],
    *,
    skip_bad: bool = False,
    station: str | None = None,
    times_csv: str | os.PathLike[str] | None = None,
    scan: bool = False,
) -> FrameBlockReader:
    """Read raw frames from CDF, PGM and TREx RGB HDF5 files and image folders, a block at a time.

    Parameters
    ----------
    sources
        Files and directories.  A directory is walked recursively: its ``*.cdf``,
        ``*.pgm``, ``*.pgm.gz``, ``*.pgm.bz2`` and TREx RGB ``*.h5`` files are read one by
        one in name order (THEMIS and UCalgary names put station or time first, so this
        is time order per station); its PNG/JPEG images together form one image folder.
        Other files in a directory are ignored; a file named explicitly must be one of
        those kinds.  Dark files (``..._dark.pgm.gz``) are never read: each is logged and
        listed in ``skipped`` with :data:`DARK_REASON`.
    skip_bad
        False (default): the first bad source raises :class:`IngestError` naming it.
        True: a bad file (or a bad image in a folder) yields nothing and is listed in
        the returned reader's ``skipped``.
    station
        Station code for images whose name and CSV carry none; a CDF, PGM or HDF5 file
        from another station is an error (so that nothing is filed under the wrong station).
    times_csv
        CSV with ``file,station,time`` columns for image folders (see
        :mod:`oathcube.archive.folder`); by default a folder's own single ``*.csv``.
    scan
        Read only what a plan needs (station, times, frame shape): CDF and HDF5 frames
        are then not read, and ``frames`` is a zero-size view of the right shape.

    Returns
    -------
    FrameBlockReader
        An iterator of :class:`FrameBlock`; after it is exhausted, ``reader.skipped``
        (or ``reader.skipped_as_attrs()``) lists what was left out and why (dark files
        and, with ``skip_bad``, bad ones).

    Raises
    ------
    IngestError
        With ``skip_bad=False``, for the first source that cannot be read.

    Examples
    --------
    >>> reader = iter_frame_blocks(["data/"], skip_bad=True)  # doctest: +SKIP
    >>> for block in reader:  # doctest: +SKIP
    ...     append(block)
    >>> attrs["skipped_sources"] = reader.skipped_as_attrs()  # doctest: +SKIP
    """
    return FrameBlockReader(
        sources, skip_bad=skip_bad, station=station, times_csv=times_csv, scan=scan
    )
