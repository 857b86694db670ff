"""Every feature set x classifier of a cube in one table (``oathcube benchmark``).

Two protocols, chosen by ``protocol``:

``oath``
    ridge.py's: for each row of ``split`` the first 70 % of the positions train and the
    rest test (:func:`~oathcube.model.evaluate_arrays`, the body of
    :func:`~oathcube.model.evaluate`), so a pair's row holds exactly ``evaluate``'s
    numbers, over ``split``'s five folds.
``station``
    One station held out at a time: each classifier is fitted, its search included, on
    every labelled image of the *other* stations, and tested on the held-out station's
    images (:func:`~oathcube.model.fit_predict`, then
    :func:`~oathcube.model.score_fold`, as ``evaluate`` fits and scores a fold).  Each
    held-out station is one fold.  OATH's random splits put images of one
    station-night on both sides; this protocol measures a classifier on a sky, camera
    and season it never trained on, which is what classifying a new station-year asks.

Stations are the labelled images' ``station`` coordinate (from the archive's
``files_origin.csv``).  Images whose station was not recorded (``unknown``) are never
held out, but they stay in the training part of every station.  A station is not held
out, and is listed in :attr:`Benchmark.skipped` with the reason (never dropped
silently), when it has fewer than ``min_images`` images (default
:data:`MIN_STATION_IMAGES`), when its images hold a class that no other station's do
(no model trained without it could predict that class), or when the other stations'
images are of one class.  Many OATH stations hold only some classes (no aurora at all
at some): a held-out station's macro-F1 is over the classes in its truth or in the
predictions, as ``evaluate``'s is; a class in neither counts neither for nor against.

Times are wall times (:func:`time.perf_counter`) of this process on the CPU recorded in
:attr:`Benchmark.cpu`: ``fit_seconds`` is one fold's fit with its hyperparameter
search, ``predict_us_per_frame`` the prediction of a fold's test rows divided by their
number, in microseconds.  They mean nothing on another machine.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .classifiers import CLASSIFIERS, RIDGE_ALPHA, check_rows
from .cube.schema import UNKNOWN_STATION, extractor_of, feature_sets
from .cube.store import CubeLike
from .errors import CubeError, OptionError
from .labels import TRAIN_FRACTION
from .model import (
    _labelled,
    _labels,
    _target,
    check_split,
    check_target,
    evaluate_arrays,
    feature_matrix,
    fit_predict,
    score_fold,
)
from .outputs import check_output, replacing
from .parallel import cpu_description

__all__ = [
    "Benchmark",
    "COLUMNS",
    "MIN_STATION_IMAGES",
    "PROTOCOLS",
    "SUFFIXES",
    "benchmark",
    "plan_stations",
    "stations_path",
]

#: The protocols, in the order they are listed to users.
PROTOCOLS: tuple[str, ...] = ("oath", "station")
#: The fewest images a station must have to be held out: below that, one image more or
#: less moves its accuracy by several points, and its row would be noise.
MIN_STATION_IMAGES = 20
#: The files :meth:`Benchmark.write` writes, by suffix.
SUFFIXES: tuple[str, ...] = (".csv", ".md", ".png")

#: The columns of :attr:`Benchmark.table`, in order.
COLUMNS: tuple[str, ...] = (
    "features",
    "classifier",
    "protocol",
    "target",
    "n_folds",
    "accuracy_mean",
    "accuracy_std",
    "macro_f1",
    "aurora_tpr",
    "fit_seconds",
    "predict_us_per_frame",
    "chosen",
)
#: Columns shown with three significant digits in Markdown (times; whole numbers from
#: 100 up); other floats get three decimals.
_SIGNIFICANT = ("fit_seconds", "predict_us_per_frame")


@dataclass
class Benchmark:
    """The result of :func:`benchmark`: one row per feature set x classifier.

    Attributes
    ----------
    table
        One row per pair, columns :data:`COLUMNS`: ``n_folds`` (the split's rows, or
        the held-out stations), ``accuracy_mean`` and ``accuracy_std`` (population std,
        as ridge.py's) of the folds' test accuracies, ``macro_f1`` and ``aurora_tpr``
        (class6's 2-class aurora true-positive rate; NaN for class2) as means over the
        folds (a fold without aurora images has no TPR and is left out of its mean),
        ``fit_seconds`` (mean per fold, search included), ``predict_us_per_frame``
        (mean over folds) and ``chosen``: the hyperparameters, each choice with the
        share of folds that made it (``C=0.01 (4/5); C=0.1 (1/5)``; ridge: its alpha).
    protocol
        ``oath`` or ``station``.
    target
        ``class6`` or ``class2``.
    cpu
        The CPU the times were measured on (:func:`~oathcube.parallel.cpu_description`).
    stations
        ``station`` protocol only: one row per feature set x classifier x held-out
        station (``station``, ``n_images``, ``n_train``, ``n_<class>`` per class,
        ``accuracy``, ``macro_f1``, ``aurora_tpr``, ``fit_seconds``,
        ``predict_us_per_frame``, ``chosen``), then one row per station not held out,
        its scores empty and the reason in ``skipped``.
    skipped
        ``(station, reason)`` for every station not held out (``station`` protocol).
    min_images
        The fewest images a held-out station had to have (``station`` protocol).
    source
        The cube's location (None for a Dataset passed in).
    """

    table: pd.DataFrame
    protocol: str
    target: str
    cpu: str
    stations: pd.DataFrame | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    min_images: int | None = None
    source: str | None = None

    def title(self) -> str:
        """One line: the protocol and the target."""
        return f"Benchmark: {self.protocol} protocol, target {self.target}"

    def markdown_table(self) -> str:
        """:attr:`table` as a plain Markdown table (what the command prints)."""
        return _markdown(self.table)

    def markdown(self) -> str:
        """The whole report in Markdown: title, CPU, the table, and for the station
        protocol the per-station table and the stations not held out."""
        parts = [f"# {self.title()}", ""]
        if self.source:
            parts.append(f"Cube: `{self.source}`  ")
        parts += [f"CPU: {self.cpu}", "", self.markdown_table()]
        if self.stations is not None:
            parts += ["", "## Per held-out station", "", _markdown(self.stations)]
        if self.skipped:
            parts += ["", "## Stations not held out", ""]
            parts += [f"- `{station}`: {reason}" for station, reason in self.skipped]
        return "\n".join(parts) + "\n"

    def to_csv(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write :attr:`table` as CSV, with the CPU in a ``cpu`` column of every row.

        The station protocol writes :attr:`stations` beside it too, as
        ``<stem>.stations.csv``.  Each file is written whole or not at all.  Returns the
        paths written.
        """
        out = Path(path)
        written = [_write_csv(self.table.assign(cpu=self.cpu), out)]
        if self.stations is not None:
            written.append(_write_csv(self.stations, stations_path(out)))
        return written

    def to_markdown(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`markdown` to ``path``, whole or not at all."""
        with replacing(path) as tmp:
            tmp.write_text(self.markdown())
        return Path(path)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw the table as a PNG: per feature set, one bar per classifier.

        The bar is the mean test accuracy with its std as an error bar; a black diamond
        marks the macro-F1.  The title names the protocol and target, the foot the CPU.
        """
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        features = list(dict.fromkeys(self.table["features"]))
        classifiers = list(dict.fromkeys(self.table["classifier"]))
        rows = self.table.set_index(["features", "classifier"])
        width = 0.8 / len(classifiers)
        colours = matplotlib.colormaps["tab10"]
        many = len(features) * len(classifiers) > 12
        with matplotlib.rc_context({"font.size": 11, "savefig.dpi": 120}):
            # A bare Agg figure, never pyplot: no window, the caller's backend untouched.
            fig = Figure(
                figsize=(max(7.0, 1.5 + len(features) * (0.45 * len(classifiers) + 0.7)), 5.6)
            )
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            for j, name in enumerate(classifiers):
                xs, means, stds, f1s = [], [], [], []
                for i, feat in enumerate(features):
                    if (feat, name) not in rows.index:
                        continue
                    row = rows.loc[(feat, name)]
                    xs.append(i - 0.4 + width * (j + 0.5))
                    means.append(float(row["accuracy_mean"]))
                    stds.append(float(row["accuracy_std"]))
                    f1s.append(float(row["macro_f1"]))
                ax.bar(
                    xs,
                    means,
                    width * 0.92,
                    yerr=stds,
                    capsize=3,
                    color=colours(j % 10),
                    label=name,
                    error_kw={"elinewidth": 1, "ecolor": "#333333"},
                )
                ax.scatter(xs, f1s, marker="D", s=26, color="black", edgecolors="white", zorder=3)
                for x, mean, std in zip(xs, means, stds, strict=True):
                    ax.text(
                        x,
                        mean + std + 0.015,
                        f"{mean:.2f}",
                        ha="center",
                        va="bottom",
                        fontsize=7 if many else 8,
                        rotation=90 if many else 0,
                    )
            ax.set_xticks(range(len(features)), features)
            ax.set_xlim(-0.6, len(features) - 0.4)
            # Room above the highest error bar for its label (mean + std may pass 1).
            top = float((self.table["accuracy_mean"] + self.table["accuracy_std"]).max())
            ax.set_ylim(0.0, max(1.0, top) + 0.12)
            ax.set_yticks(np.linspace(0.0, 1.0, 6))
            ax.grid(axis="y", color="#dddddd", linewidth=0.8)
            ax.set_axisbelow(True)
            ax.set_xlabel("feature set")
            folds = "held-out stations" if self.protocol == "station" else "folds"
            ax.set_ylabel(f"test accuracy (mean ± std over {folds})")
            handles, labels = ax.get_legend_handles_labels()
            handles.append(
                Line2D([], [], marker="D", color="black", markeredgecolor="white", linestyle="")
            )
            labels.append("macro-F1")
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
            counts = sorted(set(self.table["n_folds"]))
            ax.set_title(f"{self.title()}\n{'/'.join(map(str, counts))} {folds}")
            fig.text(
                0.01,
                0.01,
                "\n".join(textwrap.wrap(f"CPU: {self.cpu}", 120)),
                fontsize=7,
                color="#555555",
                va="bottom",
            )
            fig.tight_layout(rect=(0.0, 0.05, 1.0, 1.0))
            with replacing(path) as tmp:
                fig.savefig(tmp, format="png", facecolor="white")
        return Path(path)

    def write(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the table by the suffix of ``path``: ``.csv``, ``.md`` or ``.png``.

        Returns the paths written (the CSV of the station protocol has a second one).

        Raises
        ------
        OptionError
            Another suffix, or ``path`` is a folder.
        """
        out = check_output(path, SUFFIXES, "out")
        suffix = out.suffix.lower()
        if suffix == ".csv":
            return self.to_csv(out)
        if suffix == ".md":
            return [self.to_markdown(out)]
        return [self.plot(out)]


def stations_path(path: str | os.PathLike[str]) -> Path:
    """Where :meth:`Benchmark.to_csv` writes the per-station table: ``<stem>.stations.csv``."""
    out = Path(path)
    return out.with_name(f"{out.stem}.stations{out.suffix}")


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with replacing(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def _cell(column: str, value: Any) -> str:
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "n/a"
        if column in _SIGNIFICANT:
            # Three significant digits, but never as 1.62e+03.
            return f"{number:.0f}" if abs(number) >= 100 else f"{number:.3g}"
        return f"{number:.3f}"
    return str(value).replace("|", "\\|")


def _markdown(df: pd.DataFrame) -> str:
    """A plain Markdown table (no tabulate): numbers right-aligned."""
    columns = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in df.itertuples(index=False):
        lines.append(
            "| " + " | ".join(_cell(c, v) for c, v in zip(columns, row, strict=True)) + " |"
        )
    return "\n".join(lines)


def _names(value: str | Sequence[str] | None, parameter: str) -> list[str] | None:
    """Names given as ``"a,b"`` or a sequence; duplicates once, in the order given."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = [item.strip() for item in items]
    if not names or not all(names):
        raise OptionError(
            f"`{parameter}` {value!r} has an empty name",
            parameter=parameter,
            expected="names separated by commas",
        )
    return list(dict.fromkeys(names))


def _check_options(
    classifiers: list[str] | None, protocol: str, target: str, min_images: int | None
) -> tuple[list[str], int | None]:
    """The classifiers and ``min_images`` to use, refusing bad values before any work."""
    if protocol not in PROTOCOLS:
        raise OptionError(
            f"unknown protocol {protocol!r}",
            parameter="protocol",
            expected="oath (ridge.py's splits) or station (one station held out at a time)",
        )
    check_target(target)
    chosen = list(CLASSIFIERS) if classifiers is None else classifiers
    unknown = [c for c in chosen if c not in CLASSIFIERS]
    if unknown:
        raise OptionError(
            f"unknown classifier{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
            parameter="classifiers",
            expected=f"names of {', '.join(CLASSIFIERS)}, separated by commas",
        )
    if protocol != "station":
        if min_images is not None:
            raise OptionError(
                f"`min_images` {min_images} with `protocol` {protocol!r}",
                parameter="min_images",
                expected="`min_images` only with `protocol` station: the oath protocol "
                "holds out no station",
            )
        return chosen, None
    if min_images is None:
        return chosen, MIN_STATION_IMAGES
    if isinstance(min_images, bool) or not isinstance(min_images, int) or min_images < 1:
        raise OptionError(
            f"`min_images` {min_images!r}",
            parameter="min_images",
            expected="a whole number of 1 or more",
        )
    return chosen, min_images


def _feature_names(ds: xr.Dataset, features: list[str] | None, where: str | None) -> list[str]:
    """The feature sets to run, refusing any the labelled images do not have."""
    have = feature_sets(ds.data_vars)
    if features is None:
        if not have:
            raise CubeError(
                "the labelled images have no features",
                path=where,
                expected="published features (oathcube build) or computed ones "
                "(`oathcube features`)",
            )
        return have
    # "features_published" is accepted for "published", as evaluate accepts it.
    wanted = list(dict.fromkeys(extractor_of(f) or f for f in features))
    missing = [f for f in wanted if f not in have]
    if missing:
        raise CubeError(
            f"no features called {', '.join(map(repr, missing))}",
            path=where,
            expected=f"one of {', '.join(have) or '(none)'}"
            " (compute them with `oathcube features`)",
        )
    return wanted


def _station_codes(ds: xr.Dataset, where: str | None) -> np.ndarray:
    if "station" not in ds.variables:
        raise CubeError(
            "the labelled images have no 'station'",
            path=where,
            expected="a cube built from an OATH archive (oathcube build)",
        )
    return np.asarray(ds["station"].values).astype(str)


def plan_stations(
    stations: np.ndarray, y: np.ndarray, names: Sequence[str], min_images: int
) -> tuple[list[str], list[tuple[str, str]]]:
    """Which stations the station protocol holds out, and why each other one is not.

    Parameters
    ----------
    stations
        The station code of each labelled image.
    y
        The class index of each labelled image.
    names
        The target's class names, by index.
    min_images
        The fewest images a held-out station must have.

    Returns
    -------
    held
        The stations held out, sorted.
    skipped
        ``(station, reason)`` of every other station, sorted by station.
    """
    held: list[str] = []
    skipped: list[tuple[str, str]] = []
    for code in sorted(set(stations.tolist())):
        own = stations == code
        n = int(own.sum())
        if code == UNKNOWN_STATION:
            skipped.append(
                (code, f"station not recorded: its {n} image(s) train every fold, never tested")
            )
            continue
        if n < min_images:
            skipped.append((code, f"{n} images, fewer than min_images ({min_images})"))
            continue
        trained = set(np.unique(y[~own]).tolist())
        if len(trained) < 2:
            skipped.append((code, "the other stations' images are all of one class"))
            continue
        lacking = sorted(set(np.unique(y[own]).tolist()) - trained)
        if lacking:
            shown = ", ".join(names[c] for c in lacking)
            skipped.append(
                (
                    code,
                    f"{'class' if len(lacking) == 1 else 'classes'} {shown} in its images and "
                    "in no other station's: a model trained without it could never predict "
                    f"{'it' if len(lacking) == 1 else 'them'}",
                )
            )
            continue
        held.append(code)
    return held, skipped


def _mean(values: Iterable[float]) -> float:
    """The mean of the values that are numbers (NaN when none is)."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _chosen_text(classifier: str, chosen: Sequence[dict[str, Any]]) -> str:
    """The hyperparameters of a pair in one cell: each choice with its share of folds."""
    if not CLASSIFIERS[classifier].searched:
        return f"alpha={RIDGE_ALPHA:g}"
    counts = Counter(" ".join(f"{k}={v}" for k, v in c.items()) for c in chosen)
    return "; ".join(f"{text} ({n}/{len(chosen)})" for text, n in counts.most_common())


def _summary(
    features: str,
    classifier: str,
    protocol: str,
    target: str,
    accuracies: Sequence[float],
    macro_f1: Sequence[float],
    aurora_tpr: Sequence[float],
    fit_seconds: Sequence[float],
    predict_us: Sequence[float],
    chosen: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """One row of :attr:`Benchmark.table` from the per-fold figures of a pair."""
    return {
        "features": features,
        "classifier": classifier,
        "protocol": protocol,
        "target": target,
        "n_folds": len(accuracies),
        "accuracy_mean": float(np.mean(accuracies)),
        # Population std, as ridge.py (numpy's default).
        "accuracy_std": float(np.std(accuracies)),
        "macro_f1": float(np.mean(macro_f1)),
        "aurora_tpr": _mean(aurora_tpr),
        "fit_seconds": float(np.mean(fit_seconds)),
        "predict_us_per_frame": float(np.mean(predict_us)),
        "chosen": _chosen_text(classifier, chosen),
    }


def _counts(y: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(y, minlength=len(names))
    return {f"n_{name}": int(counts[k]) for k, name in enumerate(names)}


def benchmark(
    cube: CubeLike | xr.Dataset,
    features: str | Sequence[str] | None = None,
    classifiers: str | Sequence[str] | None = None,
    *,
    protocol: str = "oath",
    target: str = "class6",
    min_images: int | None = None,
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Benchmark:
    """Run every feature set x classifier under one protocol; one row per pair.

    Parameters
    ----------
    cube
        A cube path, a :class:`~oathcube.cube.store.Cube`, or its labelled Dataset.
    features
        Feature sets (``published`` or extractor names), as a sequence or one string
        of names separated by commas.  None: every set the labelled images have
        (:func:`~oathcube.cube.schema.feature_sets`, sorted).
    classifiers
        Names of :data:`~oathcube.classifiers.CLASSIFIERS`, as for ``features``.  None:
        every classifier of the registry.  Ridge runs with ridge.py's alpha, 0.03.
    protocol
        ``oath`` (ridge.py's splits) or ``station`` (one station held out at a time; see
        the module's text).
    target
        ``class6`` or ``class2``.
    min_images
        ``station`` protocol only: the fewest images a station needs to be held out
        (None: :data:`MIN_STATION_IMAGES`, 20).
    progress
        Print one line to stderr as each pair finishes.
    storage_options
        fsspec options of a cube at a URL, as for
        :meth:`~oathcube.cube.store.Cube.open`.

    Returns
    -------
    Benchmark
        The table, and for the station protocol the per-station table and the stations
        not held out with their reasons.

    Raises
    ------
    OptionError
        An unknown protocol, target or classifier, an empty name, ``min_images`` below
        1 or given with the oath protocol (all before the cube is opened), or too few
        training images for a classifier's search (before anything is fitted).
    CubeError
        A feature set the labelled images do not have (the error lists those they
        have), incomplete features, damaged labels, a split that leaks or repeats an
        image, or (station protocol) no station that can be held out (the error gives
        each station's reason).  Every check is made before the first fit.
    """
    wanted_features = _names(features, "features")
    names_given = _names(classifiers, "classifiers")
    chosen_classifiers, min_images = _check_options(names_given, protocol, target, min_images)
    ds, opened = _labelled(cube, storage_options)
    where = None if opened is None else opened.location
    sets = _feature_names(ds, wanted_features, where)
    y, names = _target(ds, target, opened)
    split = stations = np.empty(0)
    if protocol == "oath":
        split = _labels(ds, "split", opened)
        check_split(split, y, target, where)
        train_sizes = [round(TRAIN_FRACTION * len(y))]
        held: list[str] = []
        skipped: list[tuple[str, str]] = []
    else:
        stations = _station_codes(ds, where)
        assert min_images is not None  # _check_options set the station protocol's
        held, skipped = plan_stations(stations, y, names, min_images)
        if not held:
            raise CubeError(
                "no station can be held out: "
                + "; ".join(f"{code}: {reason}" for code, reason in skipped),
                path=where,
                expected="a recorded station with `min_images` images or more, whose classes "
                "the other stations have too",
            )
        train_sizes = [int((stations != code).sum()) for code in held]
    for name in chosen_classifiers:
        check_rows(name, min(train_sizes))
    # Every matrix is read (and checked complete) before the first fit: a bad one stops
    # the benchmark before it has spent anything.
    matrices = [(name, *feature_matrix(ds, name, opened)) for name in sets]

    rows: list[dict[str, Any]] = []
    station_rows: list[dict[str, Any]] = []
    total = len(matrices) * len(chosen_classifiers)
    for feature_set, X, var in matrices:
        for classifier in chosen_classifiers:
            if protocol == "oath":
                row = _oath_row(feature_set, X, var, y, split, target, classifier, where)
            else:
                pair, choices = _held_out(X, y, stations, held, names, target, classifier)
                station_rows += [{"features": feature_set, **r} for r in pair]
                row = _summary(
                    feature_set,
                    classifier,
                    protocol,
                    target,
                    [r["accuracy"] for r in pair],
                    [r["macro_f1"] for r in pair],
                    [r["aurora_tpr"] for r in pair],
                    [r["fit_seconds"] for r in pair],
                    [r["predict_us_per_frame"] for r in pair],
                    choices,
                )
            rows.append(row)
            if progress:
                print(
                    f"[{len(rows)}/{total}] {feature_set} x {classifier}: accuracy "
                    f"{row['accuracy_mean']:.3f} +- {row['accuracy_std']:.3f}, macro-F1 "
                    f"{row['macro_f1']:.3f}, fit {row['fit_seconds']:.3g} s per fold",
                    file=sys.stderr,
                    flush=True,
                )
    station_table = None
    if protocol == "station":
        station_rows += [_skipped_row(code, reason, stations, y, names) for code, reason in skipped]
        station_table = pd.DataFrame(station_rows, columns=_station_columns(names))
    return Benchmark(
        table=pd.DataFrame(rows, columns=list(COLUMNS)),
        protocol=protocol,
        target=target,
        cpu=cpu_description(),
        stations=station_table,
        skipped=skipped,
        min_images=min_images,
        source=where,
    )


def _oath_row(
    feature_set: str,
    X: np.ndarray,
    var: str,
    y: np.ndarray,
    split: np.ndarray,
    target: str,
    classifier: str,
    where: str | None,
) -> dict[str, Any]:
    """One classifier under ridge.py's splits: :func:`~oathcube.model.evaluate_arrays`,
    summarised as a row."""
    result = evaluate_arrays(
        X,
        y,
        split,
        features=var,
        target=target,
        classifier=classifier,
        # ridge with ridge.py's alpha, as evaluate runs it; the others take none
        alpha=None if CLASSIFIERS[classifier].searched else RIDGE_ALPHA,
        where=where,
    )
    return _summary(
        feature_set,
        classifier,
        "oath",
        target,
        result.fold_accuracies,
        result.fold_macro_f1,
        result.fold_aurora_tpr,
        result.fit_seconds,
        [s / result.n_test * 1e6 for s in result.predict_seconds],
        result.chosen,
    )


def _skipped_row(
    code: str, reason: str, stations: np.ndarray, y: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """The per-station row of a station not held out: its counts and the reason."""
    own = stations == code
    return {
        "features": "",
        "classifier": "",
        "station": code,
        "n_images": int(own.sum()),
        "n_train": int((~own).sum()),
        **_counts(y[own], names),
        "chosen": "",
        "skipped": reason,
    }


def _station_columns(names: Sequence[str]) -> list[str]:
    return [
        "features",
        "classifier",
        "station",
        "n_images",
        "n_train",
        *(f"n_{name}" for name in names),
        "accuracy",
        "macro_f1",
        "aurora_tpr",
        "fit_seconds",
        "predict_us_per_frame",
        "chosen",
        "skipped",
    ]


def _held_out(
    X: np.ndarray,
    y: np.ndarray,
    stations: np.ndarray,
    held: Sequence[str],
    names: Sequence[str],
    target: str,
    classifier: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One classifier under the station protocol: a row per held-out station, and the
    hyperparameters chosen for each."""
    rows = []
    choices = []
    for code in held:
        own = stations == code
        train_idx, test_idx = np.flatnonzero(~own), np.flatnonzero(own)
        # The fit and its search see the other stations' images only.
        pred, chosen, fit_s, predict_s = fit_predict(
            classifier, X[train_idx], y[train_idx], X[test_idx], RIDGE_ALPHA
        )
        score = score_fold(y[test_idx], pred, list(names), target)
        rows.append(
            {
                "classifier": classifier,
                "station": code,
                "n_images": len(test_idx),
                "n_train": len(train_idx),
                **_counts(y[test_idx], names),
                "accuracy": score.accuracy,
                "macro_f1": score.macro_f1,
                "aurora_tpr": float("nan") if score.aurora_tpr is None else score.aurora_tpr,
                "fit_seconds": fit_s,
                "predict_us_per_frame": predict_s / len(test_idx) * 1e6,
                "chosen": _chosen_text(classifier, [chosen]).removesuffix(" (1/1)"),
                "skipped": "",
            }
        )
        choices.append(chosen)
    return rows, choices
