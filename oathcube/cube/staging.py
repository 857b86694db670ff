"""Build beside, publish whole: where a new cube or a new station is written until it lands.

Readers (oathcube, and plain xarray without oathcube) must never see what a writer
has not committed.  Two things are new to a cube at some point, and each is written
beside it, under a hidden sibling name, until it is whole:

* a **new cube** (``oathcube build``): :func:`staging` writes it at
  ``.NAME.building-XXXXXXXX`` and renames it into place (or copies it, ``zarr.json``
  last, at URLs) only once the build succeeded;
* a **new station** (``oathcube ingest``): :class:`StationStage` writes it at
  ``.NAME.ingest-CODE`` (a name a rerun finds again, so that a killed ingest resumes
  chunk by chunk) and moves it to ``stations/CODE`` at its first commit
  (:meth:`StationStage.land`).  Later appends to a station are committed in place
  (:mod:`oathcube.cube.commit`): the consolidated metadata, which every reader uses,
  shows committed rows only.

So a station group exists in a cube only once it holds committed frames, and a cube
exists at its location only once it holds something committed.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zarr

from ..errors import CubeError, CubeExistsError
from ..faults import kill_point
from .commit import BUILDING, PENDING, STATUS, committed_rows, repair_rows
from .location import (
    is_url,
    normalise_location,
    probe_store,
    refuse_files_on,
    url_fs,
    zarr_storage,
)
from .schema import STATION_GROUP, provenance, station_group
from .store import Cube, Mode

__all__ = ["staging", "StationStage", "STAGE_TAG"]

log = logging.getLogger(__name__)

#: The hidden sibling of a cube where a new station is written: ``.NAME.ingest-CODE``.
STAGE_TAG = "ingest"


class StationStage:
    """Where a new station of ``cube`` is written until its first commit lands.

    The stage is a small Zarr group beside the cube (``.NAME.ingest-CODE``) that
    holds ``stations/CODE`` exactly as it will sit in the cube, so that every
    writer (ingest's tasks, its resume check) works on it as on the cube itself.

    Parameters
    ----------
    cube
        The cube the station belongs to (it need not exist yet: a new cube is
        created when its first station lands).
    code
        The station's code.
    """

    def __init__(self, cube: Cube, code: str) -> None:
        self.cube = cube
        self.code = code
        self.path = station_group(code)
        parent, _, name = cube.location.rstrip("/").rpartition("/")
        self.location = f"{parent}/.{name}.{STAGE_TAG}-{code}"
        self.options = cube.storage_options

    def _cube(self, mode: Mode) -> Cube:
        return Cube(self.location, mode, storage_options=self.options)

    def exists(self) -> bool:
        """Whether an earlier (killed or failed) ingest left this station's stage."""
        return _exists(f"{self.location}/{self.path}/zarr.json", self.options)

    def open(self) -> Cube:
        """The stage as a writable Cube (created empty when there is none)."""
        if not self.exists():
            if not is_url(self.location):
                refuse_files_on(
                    Path(self.location), "a folder oathcube can stage into", itself=True
                )
            root = zarr.open_group(
                self.location, mode="a", zarr_format=3, **zarr_storage(self.options)
            )
            root.attrs.update(provenance(**{STATUS: BUILDING, "oathcube_stage_of": self.code}))
            kill_point("ingest.stage_created")
        stage = self._cube("r+")
        stage.building = True
        return stage

    def committed(self) -> int:
        """Rows the stage's station committed (0 where there is no stage)."""
        if not self.exists():
            return 0
        return committed_rows(self._cube("r+").group(self.path))

    def pending(self) -> Any:
        """The plan the stage's writer recorded and has not committed (or None)."""
        if not self.exists():
            return None
        return self._cube("r").group(self.path).attrs.get(PENDING)

    def discard(self) -> None:
        """Remove the stage: it holds no committed frame (a plan that was given up)."""
        if self.committed():
            raise CubeError(
                "the staged station holds committed frames",
                path=self.location,
                expected="a stage to land, not to discard",
            )
        log.info("dropping %s: an earlier ingest's uncommitted frames", self.location)
        _remove(self.location, self.options)

    def land(self, **cube_attrs: Any) -> None:
        """Move the committed station into the cube, where it becomes visible whole.

        The station's arrays are first cut back to its committed rows; a cube that
        does not exist yet is created (with ``cube_attrs``) only now.  Locally the
        move is one rename; at URLs every file is copied with the group's
        ``zarr.json`` last, then the stage is removed, so a crash in between leaves
        a stage that a rerun lands again.
        """
        stage = self._cube("r+")
        node = stage.group(self.path)
        if not committed_rows(node):
            raise CubeError("nothing committed to land", path=self.location)
        repair_rows(node)
        root = self.cube.ensure(**cube_attrs)
        if STATION_GROUP not in root:
            root.create_group(STATION_GROUP)
        kill_point("ingest.before_land")
        source, target = f"{self.location}/{self.path}", self.cube.where(self.path)
        if is_url(self.location):
            _copy_tree(source, target, self.options)
        else:
            os.rename(source, target)
        kill_point("ingest.landed")
        _remove(self.location, self.options)
        self.cube.refresh()
        self.cube.publish()  # plain xarray readers see the station from here on


def _exists(location: str, options: dict[str, Any]) -> bool:
    if is_url(location):
        fs, path = url_fs(location, options)
        return bool(fs.exists(path))
    return Path(location).exists()


def _copy_tree(source: str, target: str, options: dict[str, Any]) -> None:
    """Copy every file under ``source`` to ``target``, the top ``zarr.json`` last.

    A node exists for Zarr readers once its ``zarr.json`` does, so a reader sees
    either nothing at ``target`` or all of it.
    """
    fs, src = url_fs(source, options)
    _, dst = url_fs(target, options)
    top = f"{src}/zarr.json"
    for name in sorted(f for f in fs.find(src) if f != top):
        fs.copy(name, dst + name[len(src) :])
    kill_point("stage.copied")
    fs.copy(top, f"{dst}/zarr.json")


def _sibling(location: str, tag: str) -> str:
    """A hidden sibling of ``location`` (a path or URL): ``.NAME.<tag>-<random>``."""
    parent, _, name = location.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.{tag}-{uuid.uuid4().hex[:8]}"


def _check_target(location: str, overwrite: bool, options: dict[str, Any]) -> None:
    """Refuse a build target that exists (without overwrite) or is not a cube (ever)."""
    if is_url(location):
        probe_store(location, options)
        fs, path = url_fs(location, options)
        exists, is_cube = fs.exists(path), fs.exists(f"{path}/zarr.json")
    else:
        target = Path(location)
        refuse_files_on(target, "a path whose parents are folders", itself=False)
        exists, is_cube = target.exists(), (target / "zarr.json").exists()
    if exists and not overwrite:
        raise CubeExistsError(
            "cube already exists" if is_cube else "something that is not a cube is here",
            path=location,
            expected="`overwrite` to replace it" if is_cube else "a new path",
        )
    if exists and not is_cube:
        raise CubeExistsError(
            "is not a cube, and `overwrite` replaces only cubes",
            path=location,
            expected="a new path, or an existing cube to replace",
        )


@contextmanager
def staging(
    where: str | os.PathLike[str],
    overwrite: bool,
    *,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[Cube]:
    """Yield a new, empty, writable Cube; publish it at ``where`` when the block succeeds.

    The new cube is written into a hidden sibling, ``.NAME.building-XXXXXXXX``, so
    that nothing at ``where`` changes until it is whole.  Then:

    * locally it is renamed into place (atomic on one file system); without
      ``overwrite`` the rename itself refuses a cube that another writer
      published meanwhile, so of two racing builds one wins and the other fails,
      keeping its result at the sibling and naming it;
    * at URLs (object stores have no rename) the old cube, with ``overwrite``,
      is deleted only now, and the sibling is copied into place with the root
      ``zarr.json`` last, so a reader sees either no cube or a whole one; a crash
      during the copy leaves the whole new cube at the sibling, which the log
      names when the build starts.

    A build that fails (an exception, an interrupt) removes its sibling.

    Raises
    ------
    CubeExistsError
        Something is at ``where`` and ``overwrite`` is false, or it is not a cube.
    OptionError
        ``where`` lies below a regular file.
    """
    location = normalise_location(where)
    options = dict(storage_options or {})
    _check_target(location, overwrite, options)
    tmp = _sibling(location, "building")
    if not is_url(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
    # At URLs a crash while copying into place leaves the whole cube at the sibling: say where.
    (log.info if is_url(location) else log.debug)(
        "building at %s, published at %s when complete", tmp, location
    )
    try:
        root = zarr.open_group(tmp, mode="w-", zarr_format=3, **zarr_storage(options))
        cube = Cube(tmp, "r+", root, storage_options=options)
        cube.building = True
        yield cube
        kill_point("build.before_publish")
    except BaseException:
        _remove(tmp, options)
        raise
    if is_url(location):
        _publish_url(tmp, location, overwrite, options)
    else:
        _publish_local(Path(tmp), Path(location), overwrite)


def _remove(location: str, options: dict[str, Any]) -> None:
    """Delete a staging sibling that this run created."""
    if is_url(location):
        fs, path = url_fs(location, options)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    else:
        shutil.rmtree(location, ignore_errors=True)


def _publish_local(tmp: Path, target: Path, overwrite: bool) -> None:
    if overwrite and target.exists():
        if not (target / "zarr.json").exists():
            raise CubeExistsError(
                "is no longer a cube: not replaced",
                path=str(target),
                expected=f"a cube; this build's cube is kept at {tmp}",
            )
        trash = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
        target.rename(trash)
        tmp.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        # rename(2) replaces only a missing or empty folder: a cube that another
        # build published meanwhile makes it fail, and that build keeps its cube.
        os.rename(tmp, target)
    except OSError:
        raise CubeExistsError(
            "another writer published a cube here while this build ran",
            path=str(target),
            expected=f"one writer per target; this build's cube is kept at {tmp}",
        ) from None


def _publish_url(tmp: str, location: str, overwrite: bool, options: dict[str, Any]) -> None:
    fs, path = url_fs(location, options)
    _, tmp_path = url_fs(tmp, options)
    if fs.exists(path):
        if not overwrite:
            raise CubeExistsError(
                "another writer published a cube here while this build ran",
                path=location,
                expected=f"one writer per target; this build's cube is kept at {tmp}",
            )
        fs.rm(path, recursive=True)  # the new cube is whole at tmp: only now
    _copy_tree(tmp, location, options)  # the root zarr.json last: the cube exists from then on
    fs.rm(tmp_path, recursive=True)
