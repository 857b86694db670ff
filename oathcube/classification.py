"""Classify frames with a stored model: the missing features first, then predictions.

A model carries the settings of the features it was trained on
(``feature_settings``); :func:`classify` rebuilds the extractor from them
(:func:`oathcube.model.model_spec`), so a user adds only where the checkpoint
is, and every setting is compared before any feature is computed.  Predictions
are written as ``predicted_<model>(time)`` and ``score_<model>(time, class)``
beside the features, for every station group and for the labelled images, computed
from the model's arrays by :func:`oathcube.model_arrays.predict` whatever its kind
(ridge, logistic regression, SVMs, k-NN, MLP, LightGBM); the scores' ``scores``
attribute says whether they are probabilities or decision values.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import xarray as xr

from .cube.schema import (
    extractor_of,
    model_group,
    prediction_names,
    prediction_specs,
    station_group,
    station_of,
    variable_path,
)
from .cube.store import Cube, CubeLike
from .errors import CubeError, ModelError
from .faults import kill_point
from .features import FeatureSpec
from .features.compute import calibrate, compute_features
from .features.settings import settings_class
from .memory import exhaustion_as_error
from .model import check_feature_settings, model_spec
from .model_arrays import check_model, n_features, predict, score_kind
from .parallel import check_scheduler, connected, run_tasks
from .times import parse_time, rows_between

__all__ = ["classify"]

log = logging.getLogger(__name__)


def _rows(times: np.ndarray, start: Any, end: Any, where: str) -> tuple[int, int]:
    lo, hi = rows_between(times, start, end)
    if hi <= lo:
        span = f"{times[0]} .. {times[-1]}" if len(times) else "no frames"
        raise CubeError(
            f"no frames between {start} and {end}", path=where, expected=f"a range within {span}"
        )
    return lo, hi


def _write_predictions(
    cube: Cube,
    group: str | None,
    model_name: str,
    model: xr.Dataset,
    rows: tuple[int, int],
    scheduler: str | None = None,
    progress: bool = False,
) -> int:
    features = variable_path(group, str(model.attrs["features"]))
    check_feature_settings(model, dict(cube.array(features).attrs), cube.where(group))
    n, size = cube.array(features).shape[0], cube.rows_per_chunk(features)
    dim = (cube.dims(features) or ("time",))[0]
    classes = [str(c) for c in model["classes"].values]
    predicted, scores, class_dim = prediction_specs(
        model_name,
        dim=dim,
        rows_per_chunk=size,
        classes=classes,
        class_index=model["class_index"].values.tolist(),
        score_kind=score_kind(model),
    )
    # Each array is created when missing (a killed run may have made one and not the
    # other); scores are written before the class, and -1 means "not classified yet",
    # so a row counts as classified only once both are in.
    if not cube.has(variable_path(group, scores.name)):
        cube.create(scores, (n, len(classes)), group=group, overwrite=True)
        cube.write_labels(group, class_dim.name, classes)
        kill_point("classify.scores_created")
    if not cube.has(variable_path(group, predicted.name)):
        cube.create(predicted, (n,), group=group, overwrite=True)
        kill_point("classify.predictions_created")
    for spec in (predicted, scores):
        # The station grew since its last classification: new rows read "not classified".
        cube.resize(variable_path(group, spec.name), n)
    lo, hi = rows
    import dask

    # One task per chunk (no two tasks write one chunk), on the features' scheduler.
    tasks = [
        dask.delayed(_predict_rows)(
            cube, group, model_name, model, max(start, lo), min(start + size, hi)
        )
        for start in range(lo - lo % size, hi, size)
    ]
    run_tasks(tasks, scheduler, progress=progress, total=hi - lo, unit="frame")
    return hi - lo


def _predict_rows(
    cube: Cube, group: str | None, model_name: str, model: xr.Dataset, a: int, b: int
) -> int:
    """Scores, then classes, of rows ``a:b`` (one chunk); return how many."""
    features = variable_path(group, str(model.attrs["features"]))
    pred_name, score_name, _ = prediction_names(model_name)
    index, scores = predict(model, cube.read_rows(features, a, b))
    cube.write_rows(variable_path(group, score_name), a, scores)
    kill_point("classify.scores_written")
    cube.write_rows(variable_path(group, pred_name), a, index)
    kill_point("classify.predictions_written")
    return b - a


def classify(
    cube: CubeLike,
    model: str,
    *,
    station: str | None = None,
    start: Any = None,
    end: Any = None,
    scheduler: str | None = None,
    progress: bool = False,
    features: Any = None,
    storage_options: dict[str, Any] | None = None,
    **feature_options: Any,
) -> dict[str, int]:
    """Classify frames with a stored model: missing features first, then predictions.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    model
        Name of a model in ``models/`` (see :func:`oathcube.train`).
    station
        One station code; by default every station group and the labelled images.
    start, end
        Optional time range (inclusive) within the station archives.
    scheduler
        Where features are computed (``threads``, ``processes``, ``tcp://...``;
        None: a ``distributed.Client`` the caller has, else threads).
    progress
        Show progress bars.
    features
        A settings object of the model's extractor (such as
        ``InceptionV4Settings(checkpoint=PATH, precision="int8")``) for what the
        model's record cannot hold: where the checkpoint is, batch size,
        precision, engine, threads, int8 calibration.  Only those fields are
        used; every setting that changes feature values comes from the model.
        int8 calibrates on frames of ``cube`` (``calibration_group``, else the
        first group classified).
    **feature_options
        Deprecated (removed in the next release): those fields as keywords.
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Returns
    -------
    dict
        Frames classified per group (``""`` for the labelled images).

    Raises
    ------
    OptionError
        A bad time or scheduler (checked before anything is read).
    ModelError
        No such model, or features that cannot be made as the model's were.
    """
    check_scheduler(scheduler)
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    cube = Cube.open(cube, "r+", storage_options=storage_options)
    # Connected before the first write (features, then the predictions' arrays): a
    # scheduler that never answers is one line at once, and nothing is created.
    with (
        exhaustion_as_error(
            f"classifying with {model}", "`batch_size`, or `scheduler` synchronous"
        ),
        connected(scheduler),
        cube.writing("classify"),
    ):
        return _classify(
            cube, model, station, t0, t1, scheduler, progress, features, feature_options
        )


def _deprecated_options(stored: Any, features: Any, options: dict[str, Any]) -> Any:
    """``classify(**options)`` as a settings object, with a DeprecationWarning."""
    warnings.warn(
        "classify(..., **options) is deprecated: pass features=InceptionV4Settings(...)",
        DeprecationWarning,
        stacklevel=4,
    )
    if features is not None:
        raise ModelError("both features= and keyword options given", path="features")
    var = str(stored.attrs["features"])
    cls = settings_class(extractor_of(var) or var)
    options = {k: v for k, v in options.items() if v is not None and k != "calibration"}
    if cls is None:
        return None
    try:
        return cls(**options)
    except TypeError as err:
        raise ModelError(f"{err}", path="features", expected=cls.__name__) from None


def _classify(
    cube: Cube,
    model: str,
    station: str | None,
    t0: np.datetime64 | None,
    t1: np.datetime64 | None,
    scheduler: str | None,
    progress: bool,
    features: Any,
    feature_options: dict[str, Any],
) -> dict[str, int]:
    stored = cube.model(model)
    # A model of an unknown kind, or with an array missing, stops here: before any
    # feature is computed or any prediction array created.
    check_model(stored, cube.where(model_group(model)))
    if feature_options:
        features = _deprecated_options(stored, features, feature_options)
    spec: FeatureSpec | None = model_spec(stored, features)
    if station is not None:
        cube.require_station(station)  # raises the CubeError that lists the stations
    groups: list[str | None] = [
        station_group(s) for s in ([station] if station else cube.stations())
    ]
    if station is None and cube.has("pixels") and t0 is None and t1 is None:
        groups.insert(0, None)
    if spec is None:
        groups = [g for g in groups if g is None]
        if not groups:
            raise ModelError(
                f"model {model!r} uses the archive's published features, which "
                "exist only for the labelled images",
                path=cube.location,
                expected="a model trained on computable features (`features`)",
            )
    else:
        # Every setting is compared before any feature is computed: the extractor
        # rebuilt from the model (its checkpoint's hash included), and features
        # already stored in each group.
        check_feature_settings(stored, spec.attrs, f"{spec.name} extractor for {model}")
        trained_on = n_features(stored)
        if spec.n_features != trained_on:
            raise ModelError(
                f"the model's feature_settings {stored.attrs.get('feature_settings')} make "
                f"{spec.n_features} features per frame",
                path=cube.where(model_group(model)),
                expected=f"{trained_on}, the features the model was trained on",
            )
        for group in groups:
            if cube.has(variable_path(group, spec.variable)):
                attrs = dict(cube.array(variable_path(group, spec.variable)).attrs)
                check_feature_settings(stored, attrs, cube.where(group))
    if spec is not None and spec.needs_calibration:
        # int8: one calibration for every group, read once from this cube.
        spec = calibrate(cube, spec, groups[0])
    done: dict[str, int] = {}
    for group in groups:
        if group is None or (t0 is None and t1 is None):
            # The whole archive: its length is in the metadata, no time axis to read.
            rows = (0, cube.committed_rows(group))
        else:
            rows = _rows(cube.read_times(group), t0, t1, cube.where(group))
        if spec is not None:
            compute_features(
                cube,
                spec,
                station=station_of(group),
                scheduler=scheduler,
                progress=progress,
                rows=rows,
            )
        done[group or ""] = _write_predictions(
            cube, group, model, stored, rows, scheduler, progress
        )
        log.info(
            "classified %d frames of %s with %s",
            done[group or ""],
            group or "the labelled images",
            model,
        )
    cube.publish()
    return done
