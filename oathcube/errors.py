"""The errors oathcube raises for bad input, one family rooted in :class:`ValueError`.

Every error carries *where* (a file, a line, a tar member, a parameter or an image)
and *what was expected*, so that the CLI can print it as one line.

A library error names the Python parameter (``parameter="start"``, and
```start``` in its text), never a command-line flag: :meth:`OathcubeError.render`
gives the same line with the flags of the command that called (``--start``), which is
how the CLI prints it.  The family is
rooted in :class:`ValueError` (bad input is a bad value), as zarr-python roots its
own; a cube that is not there is also a :class:`FileNotFoundError`, so that
``except FileNotFoundError`` works for library users as it does for files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike

__all__ = [
    "OathcubeError",
    "OptionError",
    "ExistsError",
    "ArchiveError",
    "CubeError",
    "CubeNotFoundError",
    "CubeExistsError",
    "FeatureError",
    "CheckpointError",
    "ModelError",
    "IngestError",
    "FetchError",
]


class OathcubeError(ValueError):
    """Base class of every error oathcube raises on purpose.

    Parameters
    ----------
    message
        What is wrong.
    path
        The file (or URL, or cube) where it is wrong.
    line
        1-based line number in ``path``, when the input is text.
    member
        Name of a tar member or an image inside ``path``.
    expected
        What oathcube expected instead.
    parameter
        The Python parameter(s) that hold the bad value (``"start"``, or
        ``"station/start/end"`` for several), when the input is an argument rather
        than a file.  The text names parameters as ```start```.

    Examples
    --------
    >>> err = OptionError("`start` is after `end`", parameter="start")
    >>> str(err)
    'start: `start` is after `end`'
    >>> err.render({"start": "--start", "end": "--end"})
    '--start: --start is after --end'
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        member: str | None = None,
        expected: str | None = None,
        parameter: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.member = member
        self.expected = expected
        self.parameter = parameter
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.render()

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The one line, with each parameter named as ``names`` says (e.g. its CLI flag).

        Parameters
        ----------
        names
            Python parameter name -> how to show it (``{"start": "--start"}``); a
            parameter not in it keeps its name (in the text, between backquotes).
        """
        where = self.path or ""
        if self.parameter is not None and not where:
            where = "/".join(_name(p, names) for p in self.parameter.split("/"))
        if self.line is not None:
            where += f":{self.line}"
        if self.member is not None:
            where += f" [{self.member}]" if where else self.member
        message, expected = self.message, self.expected
        if names:
            message = _PARAMETER.sub(lambda m: names.get(m[1], m[0]), message)
            expected = expected and _PARAMETER.sub(lambda m: names.get(m[1], m[0]), expected)
        text = f"{where}: {message}" if where else message
        if expected:
            text += f" (expected {expected})"
        return text

    def __reduce__(self) -> tuple:
        # Errors raised in dask worker processes travel back pickled: keep every field.
        return (
            _rebuild,
            (
                type(self),
                self.message,
                self.path,
                self.line,
                self.member,
                self.expected,
                self.parameter,
            ),
        )


#: A parameter named in an error's text: ```start```, ```max_files```.
_PARAMETER = re.compile(r"`([a-z_][a-z0-9_]*)`")


def _name(parameter: str, names: Mapping[str, str] | None) -> str:
    return (names or {}).get(parameter, parameter)


def _rebuild(
    cls: type[OathcubeError],
    message: str,
    path: str | None,
    line: int | None,
    member: str | None,
    expected: str | None,
    parameter: str | None = None,
) -> OathcubeError:
    return cls(message, path=path, line=line, member=member, expected=expected, parameter=parameter)


class OptionError(OathcubeError):
    """A value given by the user (an option, a parameter) is out of its range or unknown."""


class ExistsError(OptionError, FileExistsError):
    """The output location already holds something that oathcube will not write over."""


class ArchiveError(OathcubeError):
    """An OATH archive (folder or tarball) is missing something or holds bad data."""


class CubeError(OathcubeError):
    """A cube is incomplete, already exists, holds bad data, or lacks a variable."""


class CubeNotFoundError(CubeError, FileNotFoundError):
    """Nothing that oathcube can read as a cube is at the given location."""


class CubeExistsError(CubeError, ExistsError):
    """A cube (or something else) is already where a new cube would go."""


class FeatureError(OathcubeError):
    """A feature extractor cannot run or its output does not fit the cube."""


class CheckpointError(FeatureError):
    """An Inception-v4 checkpoint is absent or does not match the expected variables."""


class ModelError(OathcubeError):
    """A trained model is missing, malformed, or does not fit the features."""


class IngestError(OathcubeError):
    """A raw THEMIS file (CDF, PGM) or image folder cannot be read."""


class FetchError(OathcubeError):
    """A download cannot be made, or what a server sent is refused (size, checksum, name)."""
