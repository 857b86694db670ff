"""The OATH labels and ridge.py's split protocol: the facts every stage shares.

A leaf module (imports nothing of the package), so that the archive reader, the
cube schema, the synthetic archive and the models all name classes and seeds
from one place.
"""

from __future__ import annotations

__all__ = [
    "CLASS6_NAMES",
    "CLASS2_NAMES",
    "TARGETS",
    "SPLIT_SEED",
    "N_FOLDS",
    "TRAIN_FRACTION",
    "class_names",
]

#: class6 index -> ``picType`` label of ``classifications.csv`` (``noaurora`` is "clear").
CLASS6_NAMES: tuple[str, ...] = ("arc", "diffuse", "discrete", "cloudy", "moon", "noaurora")
#: class2 index -> name (0: aurora = arc, diffuse or discrete).
CLASS2_NAMES: tuple[str, ...] = ("aurora", "no_aurora")
#: The label columns a model can be trained on.
TARGETS: tuple[str, ...] = ("class6", "class2")
#: The seed ridge.py's comment gives for ``train_test_split.csv``.
SPLIT_SEED = 1804
#: Rows (folds) of ``train_test_split.csv``.
N_FOLDS = 5
#: ridge.py trains on the first ``round(TRAIN_FRACTION * N)`` positions of each fold.
TRAIN_FRACTION = 0.7


def class_names(target: str) -> tuple[str, ...]:
    """Names of the classes of ``target`` (``class6`` or ``class2``), in index order."""
    return CLASS6_NAMES if target == "class6" else CLASS2_NAMES
