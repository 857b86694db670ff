"""The errors oathcube raises for bad input, one class per kind of input.

Every error carries *where* (a file, a line, a tar member or an image) and
*what was expected*, so that the CLI can print it as one line.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "OathcubeError",
    "ArchiveError",
    "CubeError",
    "FeatureError",
    "CheckpointError",
    "ModelError",
    "IngestError",
]


class OathcubeError(Exception):
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
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        member: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.member = member
        self.expected = expected
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.member is not None:
            where += f" [{self.member}]" if where else self.member
        text = f"{where}: {self.message}" if where else self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return text


class ArchiveError(OathcubeError):
    """An OATH archive (folder or tarball) is missing something or holds bad data."""


class CubeError(OathcubeError):
    """A cube is missing, incomplete, already exists, or lacks a variable."""


class FeatureError(OathcubeError):
    """A feature extractor cannot run or its output does not fit the cube."""


class CheckpointError(FeatureError):
    """An Inception-v4 checkpoint is absent or does not match the expected variables."""


class ModelError(OathcubeError):
    """A trained model is missing, malformed, or does not fit the features."""


class IngestError(OathcubeError):
    """A raw THEMIS file (CDF, PGM) or image folder cannot be read."""
