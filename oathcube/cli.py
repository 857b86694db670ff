"""The ``oathcube`` command: parses arguments and calls the library, nothing more.

Every :class:`~oathcube.errors.OathcubeError` becomes one line on stderr and exit
status 1; an interrupt says what was kept.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .errors import OathcubeError

app = typer.Typer(
    name="oathcube",
    help="Auroral all-sky image archives (OATH, THEMIS ASI) as chunked Zarr cubes: build, "
    "compute features, evaluate and train ridge classifiers, classify stations over time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _errors_to_exit(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
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


Scheduler = Annotated[
    str,
    typer.Option(
        help="threads | processes | synchronous | tcp://ADDRESS of a dask.distributed scheduler"
    ),
]
Checkpoint = Annotated[
    Path | None,
    typer.Option(
        help="Inception-v4 checkpoint prefix (inception_v4.ckpt); or set "
        "OATHCUBE_INCEPTION_V4_CHECKPOINT"
    ),
]
Cube = Annotated[Path, typer.Argument(help="The cube")]
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


@app.command()
@_errors_to_exit
def synth(
    out: Annotated[Path, typer.Argument(help="Archive root to create")],
    n: Annotated[int, typer.Option(help="Number of images")] = 5824,
    size: Annotated[int, typer.Option(help="Image size in pixels")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
) -> None:
    """Write a SYNTHETIC archive in the published OATH layout."""
    from .synth import synth as make

    path = make(out, n=n, size=size, seed=seed, progress=True)
    typer.echo(f"wrote a synthetic OATH-layout archive of {n} images to {path}")


@app.command()
@_errors_to_exit
def build(
    source: Annotated[Path, typer.Argument(help="OATH archive folder or .tgz")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Cube to write")],
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
    from .build import build as run

    names = features or []
    options = {
        n: _feature_options(n, checkpoint, layer, precision, batch_size, random_weights)
        for n in names
    }
    run(
        source,
        output,
        overwrite=overwrite,
        features=names,
        scheduler=scheduler,
        chunk_images=chunk_images,
        feature_options=options,
    )
    typer.echo(f"cube written to {output}")


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
    from .cube.schema import station_group
    from .features.compute import compute_features

    options = _feature_options(model, checkpoint, layer, precision, batch_size, random_weights)
    var = compute_features(
        str(cube),
        model,
        group=station_group(station) if station else None,
        scheduler=scheduler,
        overwrite=overwrite,
        **options,
    )
    typer.echo(f"{var} complete in {cube}")


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

    result = run(str(cube), features=features, target=target, alpha=alpha)
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
    from .info import describe, montage_images

    typer.echo(describe(str(cube)))
    if montage is not None:
        from .plots import plot_montage

        plot_montage(montage_images(str(cube)), montage, title=f"{cube.name}: examples per class")
        typer.echo(f"montage: {montage}")


@app.command()
@_errors_to_exit
def train(
    cube: Cube,
    features: Annotated[str, typer.Option(help="published | an extractor name")],
    target: Target = "class6",
    alpha: Alpha = 0.03,
    name: Annotated[str | None, typer.Option(help="Model name (default FEATURES_TARGET)")] = None,
) -> None:
    """Fit a ridge classifier on all labelled images; store it in the cube as arrays."""
    from .model import train as run

    model = run(str(cube), features, target=target, alpha=alpha, name=name)
    typer.echo(f"model {model} stored in {cube}/models/{model}")


@app.command()
@_errors_to_exit
def ingest(
    sources: Annotated[
        list[Path],
        typer.Argument(help="CDF/PGM files, folders of them, or folders of PNG/JPEG frames"),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Cube (created if missing)")],
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
    prep: Annotated[
        str | None,
        typer.Option(
            help="Raw-frame preparation (oathcube.rawprep.RawPreparation fields) as JSON, e.g. "
            '\'{"scaling": "fixed", "fixed_low": 2000, "fixed_high": 12000}\''
        ),
    ] = None,
) -> None:
    """Append raw THEMIS frames to station groups (stations/<code>) of a cube."""
    from .rawprep import RawPreparation
    from .timeseries import ingest as run

    try:
        preparation = RawPreparation(**json.loads(prep)) if prep else RawPreparation()
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(f"--prep: {err}") from None
    written = run(
        [str(s) for s in sources],
        str(output),
        preparation=preparation,
        skip_bad=skip_bad,
        station=station,
        times_csv=times_csv,
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
) -> None:
    """Compute missing features and write per-frame predictions into the station groups."""
    from .timeseries import classify as run

    options: dict[str, Any] = {"checkpoint": str(checkpoint)} if checkpoint else {}
    done = run(
        str(cube), model, station=station, start=start, end=end, scheduler=scheduler, **options
    )
    for group, count in done.items():
        typer.echo(f"{group or 'labelled images'}: {count} frames classified")


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
    from .timeseries import timeline as run

    result = run(str(cube), station, freq, model=model, start=start, end=end)
    for path in out or []:
        _write_timeline(result, path, str(cube), station)
        typer.echo(f"wrote {path}")
    if not out:
        typer.echo(result["fraction"].to_pandas().round(3).to_string())


def _write_timeline(result: Any, path: Path, cube: str, station: str) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = result[["count", "fraction"]].to_dataframe().unstack("class")
        frame.columns = [f"{var}_{cls}" for var, cls in frame.columns]
        frame["n_frames"] = result["n_frames"].to_pandas()
        frame.to_csv(path)
    elif suffix in (".nc", ".nc4", ".netcdf"):
        result.to_netcdf(path)
    elif suffix == ".png":
        from .plots import plot_timeline
        from .timeseries import sample_frames

        plot_timeline(
            result,
            path,
            samples=sample_frames(cube, station, result),
            title=f"{station}: {result.attrs['model']}, {result.attrs['freq']} bins",
        )
    else:
        raise typer.BadParameter(f"--out {path}: expected .csv, .nc or .png")


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
