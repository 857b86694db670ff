"""``oathcube demo``: the whole tool, end to end, on a SYNTHETIC archive.

synth -> build (with the weight-free ``handcrafted`` features) -> evaluate
(ridge.py's protocol, on the archive's synthetic "published" features and on
the handcrafted ones) -> train -> a generated station night whose true class
sequence is known -> ingest -> classify -> timeline plot and its accuracy.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import LinAlgWarning

from .classification import classify
from .cube.schema import prediction_names
from .cube.store import Cube
from .errors import OptionError
from .ingestion.labelled import build
from .ingestion.stations import ingest
from .labels import CLASS6_NAMES
from .model import evaluate, train
from .parallel import check_scheduler
from .synthetic import check_synth_options, station_night, synth
from .views.confusion import plot_confusion
from .views.info import describe, montage_images
from .views.montage import plot_montage
from .views.timelines import plot_timeline, sample_frames, timeline

__all__ = ["run_demo", "night_accuracy"]

log = logging.getLogger(__name__)

_STEP = "\n=== {} ===".format


def night_accuracy(cube: Cube, station: str, model: str, truth_csv: Path) -> tuple[float, int]:
    """Fraction of a station's frames whose prediction equals the truth CSV's class6."""
    truth = pd.read_csv(truth_csv, parse_dates=["time"])
    ds = cube.station(station)
    pred = pd.Series(ds[prediction_names(model)[0]].values, index=ds["time"].values)
    want = truth.set_index("time")["class6"]
    common = want.index.intersection(pred.index)
    return float(np.mean(pred.loc[common].to_numpy() == want.loc[common].to_numpy())), len(common)


#: What the demo writes into its folder (and nothing else), and the file that says so.
OUTPUTS: tuple[str, ...] = (
    "oath_synthetic",
    "oath.zarr",
    "night_fsmi",
    "montage.png",
    "confusion_published.png",
    "confusion_handcrafted.png",
    "timeline_fsmi.png",
    "timeline_fsmi.csv",
)
MARKER = ".oathcube-demo.json"


def _set_aside_previous_run(work: Path) -> Path | None:
    """Move a previous demo's outputs into ``work/previous-<time>/``; refuse other content.

    The demo deletes nothing: a rerun into the same folder keeps the last run's
    files, moved aside.  A folder that holds anything a demo did not write is
    refused before anything is written.
    """
    if not work.exists():
        return None
    if not work.is_dir():
        raise OptionError("is a file", path=work, expected="a folder for the demo")
    present = {p.name for p in work.iterdir()}
    previous = {name for name in present if name.startswith("previous-")}
    if not present - previous:
        return None
    if MARKER not in present:
        raise OptionError(
            "holds files that no demo wrote",
            path=work,
            expected="a new or empty folder, or one an earlier `oathcube demo` used",
        )
    strangers = sorted(present - set(OUTPUTS) - previous - {MARKER})
    if strangers:
        raise OptionError(
            f"holds {', '.join(strangers)}, which no demo wrote",
            path=work,
            expected="only an earlier demo's files",
        )
    kept = work / f"previous-{time.strftime('%Y%m%dT%H%M%S')}"
    kept.mkdir()
    for name in sorted(present - previous):
        (work / name).rename(kept / name)
    return kept


def run_demo(
    directory: str | Path,
    *,
    n: int = 5824,
    size: int = 256,
    scheduler: str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Run the demo in ``directory``; return its headline figures.

    ``progress`` shows progress bars (``oathcube demo`` turns them on).
    """
    check_scheduler(scheduler)
    check_synth_options(n, size)
    tic = time.perf_counter()
    work = Path(directory)
    say = log.info
    kept = _set_aside_previous_run(work)
    if kept is not None:
        say(f"the previous demo's files in {work} were moved to {kept}")
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text(json.dumps({"n": n, "size": size, "outputs": list(OUTPUTS)}))
    archive, cube_path, night = work / "oath_synthetic", work / "oath.zarr", work / "night_fsmi"

    say(_STEP("1/6 synth: a SYNTHETIC archive in the published OATH layout"))
    synth(archive, n=n, size=size, seed=0, progress=progress)
    say(_STEP("2/6 build: archive -> Zarr cube, with handcrafted features (dask)"))
    build(archive, cube_path, features=["handcrafted"], scheduler=scheduler, progress=progress)
    cube = Cube.open(cube_path, "r+")  # opened once, passed to every later stage
    say(describe(cube))
    plot_montage(
        montage_images(cube),
        work / "montage.png",
        title="synthetic archive: examples per class",
    )

    say(_STEP("3/6 evaluate: ridge.py's protocol on the cube"))
    figures: dict[str, float] = {}
    for features in ("published", "handcrafted"):
        with warnings.catch_warnings():
            # Small demo archives have fewer training images than the 1001 synthetic logits.
            warnings.simplefilter("ignore", LinAlgWarning)
            result = evaluate(cube, features=features)
        say(f"features_{features} (synthetic archive):\n{result.ridge_text()}")
        figures[f"accuracy_{features}"] = result.accuracy_mean
        plot_confusion(
            result.confusion_matrix,
            result.class_names,
            work / f"confusion_{features}.png",
            title=f"features_{features} (synthetic), last fold",
        )

    say(_STEP("4/6 train: a ridge model stored in the cube as arrays"))
    model = train(cube, "handcrafted", target="class6")
    say(f"model {model} stored under models/{model}")

    say(_STEP("5/6 ingest + classify: a generated fsmi night with a known class sequence"))
    sequence = (5, 0, 2, 1, 3, 4)
    station_night(night, station="fsmi", sequence=sequence, frames_per_class=60, size=size)
    ingest([night / "frames"], cube, progress=progress)
    classify(cube, model, station="fsmi", scheduler=scheduler, progress=progress)
    accuracy, frames = night_accuracy(cube, "fsmi", model, night / "truth.csv")
    figures["night_accuracy"] = accuracy

    say(_STEP("6/6 timeline: class occurrence per 1-minute bin"))
    counts = timeline(cube, "fsmi", freq="1min", model=model)
    truth = pd.read_csv(night / "truth.csv", parse_dates=["time"]).set_index("time")
    truth_da = truth["label"].to_xarray()
    plot_timeline(
        counts,
        work / "timeline_fsmi.png",
        samples=sample_frames(cube, "fsmi", counts),
        title="fsmi (SYNTHETIC night): handcrafted ridge model, 1-min bins",
        truth=truth_da,
    )
    counts[["count", "fraction"]].to_dataframe().to_csv(work / "timeline_fsmi.csv")

    say("\n=== summary (everything above ran on SYNTHETIC data, not the OATH images) ===")
    say(f"archive      {archive} ({n} synthetic images, {size}x{size})")
    say(f"cube         {cube.location}")
    say(
        f"accuracy     published-style synthetic features {figures['accuracy_published']:.4f}, "
        f"handcrafted features {figures['accuracy_handcrafted']:.4f} (5-fold mean)"
    )
    order = " -> ".join(CLASS6_NAMES[c] for c in sequence)
    say(f"night        {frames} frames of fsmi ({order}): {accuracy:.1%} classified correctly")
    say(
        f"plots        {work / 'timeline_fsmi.png'}, {work / 'confusion_handcrafted.png'}, "
        f"{work / 'montage.png'}"
    )
    say(f"took         {time.perf_counter() - tic:.0f} s")
    return figures
