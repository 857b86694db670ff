"""Where oathcube keeps what it downloads: the user's data folder.

The folder is ``$OATHCUBE_DATA_DIR`` when set, else the platform's per-user data
folder (platformdirs: ``~/.local/share/oathcube`` on Linux, ``~/Library/Application
Support/oathcube`` on macOS, ``%LOCALAPPDATA%\\oathcube`` on Windows).  Nothing is
created here: callers create what they write.

Layout (each part also accepts ``-o DIR`` in place of its default):

- ``oath/``: ``oath_v1.1_20181026.tgz`` and ``SHA256SUM_v1.1``;
- ``inception_v4/``: ``inception_v4.ckpt`` and ``inception_v4.json`` (its SHA-256);
- ``aurora_fm/``: ``aurora-fm-no-finetune.tar``, Aurora-FM's weights (a PyTorch
  ``state_dict``, verified against its pinned size and SHA-256 when fetched);
- ``themis/<source>/``: raw THEMIS files in the server's own folder layout.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATA_DIR_ENV",
    "CHECKPOINT_NAME",
    "AURORA_FM_NAME",
    "data_dir",
    "checkpoint_dir",
    "fetched_checkpoint",
    "aurora_fm_dir",
    "fetched_aurora_fm",
]

DATA_DIR_ENV = "OATHCUBE_DATA_DIR"
#: The file of the released Inception-v4 checkpoint (a V1 checkpoint is one file).
CHECKPOINT_NAME = "inception_v4.ckpt"
#: The file of Aurora-FM's weights, as its Hugging Face repository names it (a PyTorch
#: zip-format ``state_dict`` despite the ``.tar``; used as it is, never unpacked).
AURORA_FM_NAME = "aurora-fm-no-finetune.tar"


def data_dir() -> Path:
    """The user's oathcube data folder (``$OATHCUBE_DATA_DIR`` or the platform default)."""
    chosen = os.environ.get(DATA_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser()
    from platformdirs import user_data_path

    return user_data_path("oathcube", appauthor=False)


def checkpoint_dir() -> Path:
    """Where ``oathcube fetch checkpoint`` unpacks the checkpoint by default."""
    return data_dir() / "inception_v4"


def fetched_checkpoint() -> Path | None:
    """The checkpoint ``oathcube fetch checkpoint`` left in the data folder, if there is one."""
    path = checkpoint_dir() / CHECKPOINT_NAME
    return path if path.is_file() else None


def aurora_fm_dir() -> Path:
    """Where ``oathcube fetch aurora-fm`` puts Aurora-FM's weights by default."""
    return data_dir() / "aurora_fm"


def fetched_aurora_fm() -> Path | None:
    """The Aurora-FM file ``oathcube fetch aurora-fm`` left in the data folder, if any.

    Only a file that passed its pinned size and SHA-256 ever gets this name from the
    fetch; it is not checked again here (``oathcube fetch aurora-fm`` rechecks it).
    """
    path = aurora_fm_dir() / AURORA_FM_NAME
    return path if path.is_file() else None
