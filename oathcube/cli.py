"""The ``oathcube`` command: parses arguments and calls the library, nothing more.

Every :class:`~oathcube.errors.OathcubeError` becomes one line on stderr and exit
status 1; an interrupt says what was kept.  The library is imported inside each
command, so that ``oathcube --help`` costs little more than importing typer.
The library's log (``logging.getLogger("oathcube")``) goes to stderr, one
message per line, like the progress bars.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .errors import OathcubeError, OptionError

app = typer.Typer(
    name="oathcube",
    help="Auroral all-sky image archives (OATH, THEMIS ASI) as chunked Zarr cubes: build, "
    "compute features, evaluate and train ridge classifiers, classify stations over time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help and usage errors: rich's renderer costs more to import than the
    # rest of the command line together, and errors stay one plain line.
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


class _StderrHandler(logging.Handler):
    """Writes each record to the ``sys.stderr`` of the moment (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed or broken stream must not stop the work
            self.handleError(record)


def _log_to_stderr() -> None:
    """Show the library's INFO messages on stderr, once."""
    logger = logging.getLogger("oathcube")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _errors_to_exit(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _log_to_stderr()
        try:
            return func(*args, **kwargs)
        except OathcubeError as err:
            typer.echo(f"oathcube: error: {err}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo(
                "oathcube: interrupted; every chunk already written is kept, and an "
                "unfinished build is not published. Rerun the command to resume.",
                err=True,
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


Checkpoint = Annotated[
    Path | None,
    typer.Option(
        help="Inception-v4 checkpoint prefix (inception_v4.ckpt); or set "
        "OATHCUBE_INCEPTION_V4_CHECKPOINT"
    ),
]
Cube = Annotated[str, typer.Argument(help="The cube: a path or an fsspec URL")]
Layer = Annotated[str, typer.Option(help="Inception-v4 endpoint: Logits | PreLogitsFlatten")]
Precision = Annotated[str, typer.Option(help="fp32 | bf16 (fast only with native bf16)")]
BatchSize = Annotated[int | None, typer.Option(help="Images per network call")]
RandomWeights = Annotated[
    bool,
    typer.Option(
        help="Inception-v4 with RANDOM weights, marked in the cube (tests and benchmarks only)"
    ),
]
Target = Annotated[str, typer.Option(help="class6 | class2")]
Alpha = Annotated[float, typer.Option(help="Ridge alpha")]
Start = Annotated[str | None, typer.Option(help="From this UTC time")]
End = Annotated[str | None, typer.Option(help="Up to this UTC time")]


def _feature_options(
    name: str,
    checkpoint: Path | None,
    layer: str,
    precision: str,
    batch_size: int | None,
    random_weights: bool,
) -> dict[str, Any]:
    if name != "inception_v4":
        return {}
    options: dict[str, Any] = {
        "layer": layer,
        "precision": precision,
        "random_weights": random_weights,
    }
    if checkpoint is not None:
        options["checkpoint"] = str(checkpoint)
    if batch_size:
        options["batch_size"] = batch_size
    return options


Scheduler = Annotated[
    str,
    typer.Option(
        help="threads | processes | synchronous | tcp://ADDRESS of a dask.distributed scheduler"
    ),
]


@app.command()
@_errors_to_exit
def synth(
    out: Annotated[Path, typer.Argument(help="Archive root to create")],
    n: Annotated[int, typer.Option(help="Number of images")] = 5824,
    size: Annotated[int, typer.Option(help="Image size in pixels")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
) -> None:
    """Write a SYNTHETIC archive in the published OATH layout."""
    from .synthetic import synth as make

    path = make(out, n=n, size=size, seed=seed, progress=True)
    typer.echo(f"wrote a synthetic OATH-layout archive of {n} images to {path}")


@app.command()
@_errors_to_exit
def build(
    source: Annotated[Path, typer.Argument(help="OATH archive folder or .tgz")],
    output: Annotated[str, typer.Option("-o", "--output", help="Cube to write (path or URL)")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing cube")] = False,
    features: Annotated[
        list[str] | None,
        typer.Option(help="Feature extractor to run as part of the build (repeatable)"),
    ] = None,
    checkpoint: Checkpoint = None,
    layer: Layer = "Logits",
    precision: Precision = "fp32",
    batch_size: BatchSize = None,
    random_weights: RandomWeights = False,
    scheduler: Scheduler = "threads",
    chunk_images: Annotated[int | None, typer.Option(help="Images per chunk")] = None,
) -> None:
    """Build a Zarr cube from an OATH archive (published at OUTPUT only when complete)."""
    from .labelled import build as run

    names = features or []
    options = {
        n: _feature_options(n, checkpoint, layer, precision, batch_size, random_weights)
        for n in names
    }
    location = run(
        source,
        output,
        overwrite=overwrite,
        features=names,
        scheduler=scheduler,
        chunk_images=chunk_images,
        feature_options=options,
    )
    typer.echo(f"cube written to {location}")


@app.command()
@_errors_to_exit
def features(
    cube: Cube,
    model: Annotated[str, typer.Option(help="Extractor: handcrafted | inception_v4")],
    checkpoint: Checkpoint = None,
    layer: Layer = "Logits",
    precision: Precision = "fp32",
    batch_size: BatchSize = None,
    random_weights: RandomWeights = False,
    scheduler: Scheduler = "threads",
    station: Annotated[
        str | None, typer.Option(help="A station group instead of the labelled images")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute every chunk")] = False,
) -> None:
    """Compute features_<MODEL> into an existing cube, resuming where a run stopped."""
    from .cube.store import Cube as CubeStore
    from .features import feature_spec
    from .features.compute import compute_features

    spec = feature_spec(
        model, **_feature_options(model, checkpoint, layer, precision, batch_size, random_weights)
    )
    opened = CubeStore.open(cube, "r+")
    group = opened.require_station(station) if station else None
    var = compute_features(opened, spec, group=group, scheduler=scheduler, overwrite=overwrite)
    typer.echo(f"{var} complete in {opened.location}")


@app.command()
@_errors_to_exit
def evaluate(
    cube: Cube,
    features: Annotated[str, typer.Option(help="published | an extractor name")] = "published",
    target: Target = "class6",
    alpha: Alpha = 0.03,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write the last fold's confusion matrix as a PNG")
    ] = None,
) -> None:
    """Run ridge.py's protocol (5 published folds) on the cube's features."""
    from .model import evaluate as run

    if plot is not None:
        _check_suffix(plot, "--plot", (".png",))
    result = run(cube, features=features, target=target, alpha=alpha)
    if plot is not None:
        from .plots import plot_confusion

        plot_confusion(
            result.confusion_matrix,
            result.class_names,
            plot,
            title=f"{result.features}, {target}, last fold",
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    typer.echo(result.ridge_text())
    typer.echo("")
    typer.echo(
        f"{result.n_folds} folds (the rows of split), each {result.n_train} training and "
        f"{result.n_test} test images; the matrix is the last fold's"
    )
    typer.echo(f"{'class':<10} {'precision':>9} {'recall':>7} {'support':>8}  (last fold)")
    for name, row in result.per_class.items():
        typer.echo(
            f"{name:<10} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['support']:>8d}"
        )
    if result.aurora_tpr is not None:
        typer.echo(f"aurora true-positive rate (2-class, last fold): {result.aurora_tpr:.3f}")
    if plot is not None:
        typer.echo(f"confusion matrix plot: {plot}")


@app.command()
@_errors_to_exit
def info(
    cube: Cube,
    montage: Annotated[
        Path | None, typer.Option(help="Write a grid of example images per class as a PNG")
    ] = None,
) -> None:
    """Summarise a cube: images per class and station, time range, variables, size."""
    from .cube.store import Cube as CubeStore
    from .info import describe, montage_images

    if montage is not None:
        _check_suffix(montage, "--montage", (".png",))
    opened = CubeStore.open(cube)
    typer.echo(describe(opened))
    if montage is not None:
        from .plots import plot_montage

        name = Path(opened.location).name
        plot_montage(montage_images(opened), montage, title=f"{name}: examples per class")
        typer.echo(f"montage: {montage}")


@app.command()
@_errors_to_exit
def train(
    cube: Cube,
    features: Annotated[str, typer.Option(help="published | an extractor name")],
    target: Target = "class6",
    alpha: Alpha = 0.03,
    name: Annotated[str | None, typer.Option(help="Model name (default FEATURES_TARGET)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model of the same name")] = False,
) -> None:
    """Fit a ridge classifier on all labelled images; store it in the cube as arrays."""
    from .model import train as run

    model = run(cube, features, target=target, alpha=alpha, name=name, overwrite=overwrite)
    typer.echo(f"model {model} stored in {cube}/models/{model}")


@app.command()
@_errors_to_exit
def ingest(
    sources: Annotated[
        list[Path],
        typer.Argument(help="CDF/PGM files, folders of them, or folders of PNG/JPEG frames"),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Cube (created if missing): path or URL")
    ],
    skip_bad: Annotated[
        bool,
        typer.Option(
            help="Skip unreadable files (listed in the cube's attributes) instead of stopping"
        ),
    ] = False,
    station: Annotated[
        str | None, typer.Option(help="Station of frames whose names and CSV carry none")
    ] = None,
    times_csv: Annotated[
        Path | None, typer.Option(help="CSV file,station,time for image folders")
    ] = None,
    chunk_frames: Annotated[
        int | None, typer.Option(help="Frames per chunk of a new station (default ~32 MB)")
    ] = None,
    scheduler: Scheduler = "threads",
    prep: Annotated[
        str | None,
        typer.Option(
            help="Raw-frame preparation (oathcube.rawprep.RawPreparation fields) as JSON, e.g. "
            '\'{"scaling": "fixed", "fixed_low": 2000, "fixed_high": 12000}\''
        ),
    ] = None,
) -> None:
    """Append raw THEMIS frames to station groups (stations/<code>) of a cube."""
    from .ingestion import ingest as run
    from .rawprep import RawPreparation

    try:
        preparation = RawPreparation(**json.loads(prep)) if prep else RawPreparation()
    except (TypeError, ValueError) as err:
        raise OptionError(
            f"{prep!r}: {err}", path="--prep", expected="RawPreparation fields as JSON"
        ) from None
    written = run(
        [str(s) for s in sources],
        output,
        preparation=preparation,
        skip_bad=skip_bad,
        station=station,
        times_csv=times_csv,
        chunk_frames=chunk_frames,
        scheduler=scheduler,
    )
    for code, count in sorted(written.items()):
        typer.echo(f"{code}: {count} frames appended")


@app.command()
@_errors_to_exit
def classify(
    cube: Cube,
    model: Annotated[str, typer.Option(help="A model stored by `oathcube train`")],
    station: Annotated[str | None, typer.Option(help="Only this station")] = None,
    start: Start = None,
    end: End = None,
    scheduler: Scheduler = "threads",
    checkpoint: Checkpoint = None,
    precision: Precision = "fp32",
    batch_size: BatchSize = None,
) -> None:
    """Compute missing features and write per-frame predictions into the station groups.

    The extractor is rebuilt from the settings the model recorded (layer,
    weights, ...); give only where the Inception-v4 checkpoint is.
    """
    from .classification import classify as run

    options: dict[str, Any] = {"checkpoint": str(checkpoint) if checkpoint else None}
    if precision != "fp32":
        options["precision"] = precision
    if batch_size:
        options["batch_size"] = batch_size
    done = run(cube, model, station=station, start=start, end=end, scheduler=scheduler, **options)
    for group, count in done.items():
        typer.echo(f"{group or 'labelled images'}: {count} frames classified")


_TIMELINE_SUFFIXES = (".csv", ".nc", ".nc4", ".netcdf", ".png")


@app.command()
@_errors_to_exit
def timeline(
    cube: Cube,
    station: Annotated[str, typer.Option(help="Station code")],
    freq: Annotated[str, typer.Option(help="Bin width (pandas frequency)")] = "10min",
    model: Annotated[str | None, typer.Option(help="Whose predictions")] = None,
    start: Start = None,
    end: End = None,
    out: Annotated[
        list[Path] | None, typer.Option(help="Write FILE.csv, FILE.nc or FILE.png (repeatable)")
    ] = None,
) -> None:
    """Class occurrence per time bin at one station, as a table, NetCDF or plot."""
    from .cube.store import Cube as CubeStore
    from .timelines import timeline as run

    for path in out or []:
        _check_suffix(path, "--out", _TIMELINE_SUFFIXES)
    opened = CubeStore.open(cube)
    result = run(opened, station, freq, model=model, start=start, end=end)
    for path in out or []:
        _write_timeline(result, path, opened, station)
        typer.echo(f"wrote {path}")
    if not out:
        typer.echo(result["fraction"].to_pandas().round(3).to_string())


def _check_suffix(path: Path, option: str, suffixes: tuple[str, ...]) -> None:
    """Refuse an output file whose kind cannot be told from its suffix, before any work."""
    if path.suffix.lower() not in suffixes:
        raise OptionError(
            f"{path}: unknown file kind {path.suffix or '(no suffix)'!r}",
            path=option,
            expected=" or ".join(suffixes),
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise OptionError(f"{path.parent} is not a folder", path=option)


def _write_timeline(result: Any, path: Path, cube: Any, station: str) -> None:
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame = result[["count", "fraction"]].to_dataframe().unstack("class")
        frame.columns = [f"{var}_{cls}" for var, cls in frame.columns]
        frame["n_frames"] = result["n_frames"].to_pandas()
        frame.to_csv(path)
    elif suffix == ".png":
        from .plots import plot_timeline
        from .timelines import sample_frames

        plot_timeline(
            result,
            path,
            samples=sample_frames(cube, station, result),
            title=f"{station}: {result.attrs['model']}, {result.attrs['freq']} bins",
        )
    else:
        result.to_netcdf(path)


@app.command()
@_errors_to_exit
def demo(
    directory: Annotated[Path, typer.Argument(help="Working folder")] = Path("oathcube-demo"),
    n: Annotated[int, typer.Option(help="Images in the synthetic archive")] = 5824,
    size: Annotated[int, typer.Option(help="Image size")] = 256,
    scheduler: Scheduler = "threads",
) -> None:
    """End to end on a SYNTHETIC archive: synth, build, evaluate, train, classify, timeline."""
    from .demo import run_demo

    run_demo(directory, n=n, size=size, scheduler=scheduler)


def main() -> None:
    """Entry point of the ``oathcube`` console script."""
    app()


if __name__ == "__main__":
    main()
