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
from .outputs import check_output

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


#: Library parameters that a command takes under another name.
_RENAMED = {
    "preparation": "prep",
    "base_urls": "base_url",
    "skymap_base_urls": "skymap_base_url",
    "cube": "output",
    "features": "extractor",
    # the registry checks one classifier; benchmark takes several
    "classifier": "classifiers",
}


def _flags() -> dict[str, str]:
    """How the running command names each Python parameter: its flag, or its argument."""
    import typer.main

    # The click that typer runs on holds the context stack: typer's own copy of click
    # (typer.main imports its get_current_context), or click itself in older typers.
    module = vars(typer.main)
    get_context = module.get("get_current_context") or module["click"].get_current_context
    ctx = get_context(silent=True)
    if ctx is None:
        return {}
    names: dict[str, str] = {}
    for param in ctx.command.params:
        if not param.name:
            continue
        if param.param_type_name == "option":
            names[param.name] = max(param.opts, key=len)
        else:
            names[param.name] = (getattr(param, "metavar", None) or param.name).upper()
    for library, command in _RENAMED.items():
        if command in names and library not in names:
            names[library] = names[command]
    return names


def _errors_to_exit(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _log_to_stderr()
        try:
            return func(*args, **kwargs)
        except OathcubeError as err:
            typer.echo(f"oathcube: error: {err.render(_flags())}", err=True)
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
        help="The extractor's checkpoint: inception_v4.ckpt (or set "
        "OATHCUBE_INCEPTION_V4_CHECKPOINT), aurora-fm-no-finetune.tar (or set "
        "OATHCUBE_AURORA_FM_CHECKPOINT); default: the one `oathcube fetch` put in the data folder"
    ),
]
Cube = Annotated[str, typer.Argument(help="The cube: a path or an fsspec URL")]
Layer = Annotated[str, typer.Option(help="Inception-v4 endpoint: Logits | PreLogitsFlatten")]
Precision = Annotated[
    str,
    typer.Option(
        help="fp32 | bf16 (needs avx512_bf16 or amx_bf16 with openvino; tensorflow emulates it, "
        "slower) | int8 (openvino engine; calibrated on the cube's own frames)"
    ),
]
Engine = Annotated[
    str | None,
    typer.Option(
        help="Where Inception-v4 or Aurora-FM runs: openvino (default) | tensorflow; speed "
        "only, the features are the same"
    ),
]
BatchSize = Annotated[int | None, typer.Option(help="Images per network call")]
RandomWeights = Annotated[
    bool,
    typer.Option(
        help="Inception-v4 or Aurora-FM with RANDOM weights, marked in the cube (tests and "
        "benchmarks only)"
    ),
]
Target = Annotated[str, typer.Option(help="class6 | class2")]
RidgeAlpha = Annotated[
    float | None, typer.Option(help="Ridge alpha (default 0.03, ridge.py's); ridge only")
]
ClassifierName = Annotated[
    str,
    typer.Option(
        help="ridge (ridge.py's) | logistic | linear_svm | rbf_svm | knn | mlp | lightgbm; all "
        "but ridge choose their hyperparameters by a search on the training rows"
    ),
]
Start = Annotated[str | None, typer.Option(help="From this UTC time")]
End = Annotated[str | None, typer.Option(help="Up to this UTC time")]


def _lasting(output: str) -> str:
    """Refuse a cube location that dies with this command (``memory://``).

    A Python caller may keep a ``memory://`` cube for the life of its process; a
    command would report "cube written" for a store that is gone when it exits.
    """
    if output.startswith("memory://"):
        raise OptionError(
            f"{output} lives only as long as this command: the cube would vanish when it exits",
            path="--output",
            expected="a path or a lasting URL (s3://, gs://, ...); memory:// is for Python callers",
        )
    return output


def _feature_options(
    name: str,
    checkpoint: Path | None,
    layer: str,
    precision: str,
    batch_size: int | None,
    random_weights: bool,
    engine: str | None = None,
    calibration_group: str | None = None,
) -> Any:
    """The settings object of extractor ``name`` made of the command's flags."""
    from .features.settings import AuroraFMSettings, InceptionV4Settings

    if name not in ("inception_v4", "aurora_fm"):
        return name  # the extractor's default settings
    common: dict[str, Any] = {
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "precision": precision,
        "random_weights": random_weights,
        "engine": engine or None,
        "calibration_group": calibration_group,
        **({"batch_size": batch_size} if batch_size else {}),
    }
    if name == "aurora_fm":
        if layer != "Logits":
            raise OptionError(
                f"--layer {layer}: Aurora-FM has one output (512 features)",
                path="--layer",
                expected="--layer only with --extractor inception_v4",
            )
        return AuroraFMSettings(**common)
    return InceptionV4Settings(layer=layer, **common)


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
    engine: Engine = None,
) -> None:
    """Build a Zarr cube from an OATH archive (published at OUTPUT only when complete)."""
    from .ingestion.labelled import build as run

    settings = [
        _feature_options(n, checkpoint, layer, precision, batch_size, random_weights, engine)
        for n in features or []
    ]
    location = run(
        source,
        _lasting(output),
        overwrite=overwrite,
        features=settings,
        scheduler=scheduler,
        chunk_images=chunk_images,
        progress=True,
    )
    typer.echo(f"cube written to {location}")


@app.command()
@_errors_to_exit
def features(
    cube: Cube,
    extractor: Annotated[
        str | None, typer.Option(help="Extractor: handcrafted | inception_v4 | aurora_fm")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            hidden=True, help="Deprecated name of --extractor (--model names a classifier)"
        ),
    ] = None,
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
    engine: Engine = None,
) -> None:
    """Compute features_<EXTRACTOR> into an existing cube, resuming where a run stopped."""
    from .cube.store import Cube as CubeStore
    from .features import feature_spec
    from .features.compute import compute_features
    from .parallel import check_scheduler

    if model is not None:
        # Elsewhere --model names a classifier; kept one release for scripts that use it.
        typer.echo("oathcube: --model is deprecated here: use --extractor", err=True)
    name = extractor or model
    if name is None or (extractor and model and extractor != model):
        raise OptionError(
            "which extractor?" if name is None else f"--extractor {extractor} and --model {model}",
            path="--extractor",
            expected="--extractor handcrafted, inception_v4 or aurora_fm (once)",
        )
    # First: a dead address is named at once, and threads are sized before any start.
    check_scheduler(scheduler)
    # Checked (and described) before the cube is opened for writing; int8 then
    # calibrates on frames of the group it computes, read by compute_features.
    spec = feature_spec(
        _feature_options(name, checkpoint, layer, precision, batch_size, random_weights, engine)
    )
    opened = CubeStore.open(cube, "r+")
    var = compute_features(
        opened, spec, station=station, scheduler=scheduler, overwrite=overwrite, progress=True
    )
    typer.echo(f"{var} complete in {opened.location}")


@app.command()
@_errors_to_exit
def evaluate(
    cube: Cube,
    features: Annotated[str, typer.Option(help="published | an extractor name")] = "published",
    target: Target = "class6",
    classifier: ClassifierName = "ridge",
    alpha: RidgeAlpha = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write the last fold's confusion matrix as a PNG")
    ] = None,
) -> None:
    """Run ridge.py's protocol (5 published folds) on the cube's features, with ridge or
    another classifier."""
    from .model import evaluate as run

    if plot is not None:
        check_output(plot, (".png",), "plot")
    result = run(cube, features=features, target=target, alpha=alpha, classifier=classifier)
    if plot is not None:
        from .views.confusion import plot_confusion

        plot_confusion(
            result.confusion_matrix,
            result.class_names,
            plot,
            title=", ".join(
                [result.features, target]
                + ([classifier] if classifier != "ridge" else [])
                + ["last fold"]
            ),
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
    if classifier != "ridge":
        typer.echo(f"macro-F1 (last fold): {result.macro_f1:.3f}")
        typer.echo(f"{classifier}: hyperparameters chosen on each fold's training rows")
        for k, params in enumerate(result.chosen):
            shown = ", ".join(f"{key}={value}" for key, value in params.items())
            typer.echo(f"  fold {k}: {shown}")
    if plot is not None:
        typer.echo(f"confusion matrix plot: {plot}")


@app.command()
@_errors_to_exit
def benchmark(
    cube: Cube,
    out: Annotated[
        Path,
        typer.Option(
            help="The table: .csv (the station protocol adds <stem>.stations.csv), .md (with "
            "the per-station table) or .png"
        ),
    ],
    features: Annotated[
        str | None,
        typer.Option(
            help="Feature sets, separated by commas (default: every set the labelled images have)"
        ),
    ] = None,
    classifiers: Annotated[
        str | None,
        typer.Option(
            help="Classifiers of evaluate's --classifier, separated by commas, e.g. "
            "ridge,logistic,knn (default: every one)"
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            help="oath (ridge.py's 5 splits) | station (hold out one station at a time, train "
            "on the others)"
        ),
    ] = "oath",
    target: Target = "class6",
    min_images: Annotated[
        int | None,
        typer.Option(help="--protocol station: the fewest images a held-out station has (20)"),
    ] = None,
) -> None:
    """Run every feature set x classifier under one protocol: accuracy mean and std, macro-F1,
    aurora TPR, fit and predict times, in one table."""
    from .benchmarks import SUFFIXES
    from .benchmarks import benchmark as run

    check_output(out, SUFFIXES, "out")
    result = run(
        cube,
        features,
        classifiers,
        protocol=protocol,
        target=target,
        min_images=min_images,
        progress=True,
    )
    typer.echo(result.title())
    typer.echo(f"CPU: {result.cpu}")
    typer.echo("")
    typer.echo(result.markdown_table())
    if result.skipped:
        typer.echo("")
        typer.echo("stations not held out:")
        for station, reason in result.skipped:
            typer.echo(f"  {station}: {reason}")
    typer.echo("")
    for path in result.write(out):
        typer.echo(f"written: {path}")


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
    from .views.info import describe, montage_images

    if montage is not None:
        check_output(montage, (".png",), "montage")
    opened = CubeStore.open(cube)
    typer.echo(describe(opened))
    if montage is not None:
        from .views.montage import plot_montage

        name = Path(opened.location).name
        plot_montage(montage_images(opened), montage, title=f"{name}: examples per class")
        typer.echo(f"montage: {montage}")


@app.command()
@_errors_to_exit
def train(
    cube: Cube,
    features: Annotated[str, typer.Option(help="published | an extractor name")],
    target: Target = "class6",
    classifier: ClassifierName = "ridge",
    alpha: RidgeAlpha = None,
    name: Annotated[
        str | None,
        typer.Option(help="Model name (default FEATURES_TARGET, or FEATURES_TARGET_CLASSIFIER)"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model of the same name")] = False,
) -> None:
    """Fit a classifier on all labelled images; store it in the cube as arrays (no pickle)."""
    from .model import train as run

    model = run(
        cube,
        features,
        target=target,
        classifier=classifier,
        alpha=alpha,
        name=name,
        overwrite=overwrite,
    )
    typer.echo(f"model {model} stored in {cube}/models/{model}")


fetch_app = typer.Typer(
    name="fetch",
    help="Download the OATH tarball, the Inception-v4 checkpoint or all-sky imager files "
    "(THEMIS, REGO, TREx): resumable, verified, into a local mirror of the server (default: "
    "the data folder, $OATHCUBE_DATA_DIR).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(fetch_app)

BaseUrl = Annotated[
    list[str] | None,
    typer.Option(help="Server in place of the default; repeatable, tried in order (mirrors)"),
]
SkymapBaseUrl = Annotated[
    list[str] | None,
    typer.Option(
        help="Skymap server, repeatable (default: UCalgary's; --base-url with --source ucalgary)"
    ),
]
FetchOut = Annotated[
    Path | None, typer.Option("-o", "--output", help="Folder (default: in the data folder)")
]
Timeout = Annotated[float, typer.Option(help="Seconds to connect, and between two bytes")]
Retries = Annotated[int, typer.Option(help="Retries per file, with backoff, resuming")]
FetchSource = Annotated[
    str | None,
    typer.Option(
        help="berkeley (THEMIS CDF L1, one file an hour; THEMIS's default) | ucalgary (one "
        "file a minute; the only source of the other instruments)"
    ),
]
InstrumentOption = Annotated[
    str, typer.Option(help="themis | rego | trex_nir | trex_blue | trex_rgb")
]
Workers = Annotated[int, typer.Option(help="Parallel downloads")]
MaxFiles = Annotated[
    int, typer.Option(help="The most hours or minutes the range may span; a longer one is refused")
]


@fetch_app.command("oath")
@_errors_to_exit
def fetch_oath(
    output: FetchOut = None,
    base_url: BaseUrl = None,
    timeout: Timeout = 30.0,
    retries: Retries = 3,
) -> None:
    """oath_v1.1_20181026.tgz, verified against SHA256SUM_v1.1."""
    from .fetch import fetch_oath as run

    path = run(output, base_urls=base_url, timeout=timeout, retries=retries, progress=True)
    typer.echo(f"{path} verified; next: oathcube build {path} -o oath.zarr")


@fetch_app.command("checkpoint")
@_errors_to_exit
def fetch_checkpoint(
    output: FetchOut = None,
    base_url: BaseUrl = None,
    timeout: Timeout = 30.0,
    retries: Retries = 3,
) -> None:
    """inception_v4_2016_09_09.tar.gz of the TF-slim model zoo, unpacked to inception_v4.ckpt."""
    from .fetch import fetch_checkpoint as run

    path = run(output, base_urls=base_url, timeout=timeout, retries=retries, progress=True)
    typer.echo(f"checkpoint: {path}")
    if output is not None:
        typer.echo(f"pass --checkpoint {path} or set OATHCUBE_INCEPTION_V4_CHECKPOINT={path}")


@fetch_app.command("aurora-fm")
@_errors_to_exit
def fetch_aurora_fm(
    output: FetchOut = None,
    base_url: BaseUrl = None,
    timeout: Timeout = 30.0,
    retries: Retries = 3,
) -> None:
    """Aurora-FM's weights, aurora-fm-no-finetune.tar, checked against the pinned SHA-256.

    From Hugging Face's Jwjohnson314/Aurora-FM (CC-BY-4.0): a PyTorch state_dict, kept as it is.
    """
    from .fetch import fetch_aurora_fm as run

    path = run(output, base_urls=base_url, timeout=timeout, retries=retries, progress=True)
    typer.echo(f"checkpoint: {path}")
    if output is not None:
        typer.echo(f"pass --checkpoint {path} or set OATHCUBE_AURORA_FM_CHECKPOINT={path}")


def _fetch_imager(instrument: str, source: str | None, **options: Any) -> None:
    """`fetch themis` and `fetch asi`: one imager's raw files, then what was found."""
    from .fetch import fetch_asi as run

    got = run(instrument=instrument, source=source, progress=True, **options)
    typer.echo(f"{got.code}: {len(got.files)} files ({got.downloaded} downloaded) in {got.root}")
    if got.missing:
        typer.echo(f"not on the server: {got.missing_text()}")
    if got.skymap is not None:
        typer.echo(f"skymap: {got.skymap}")


@fetch_app.command("themis")
@_errors_to_exit
def fetch_themis(
    station: Annotated[str, typer.Option(help="Station code, e.g. gako")],
    start: Annotated[str, typer.Option(help="From this UTC time")],
    end: Annotated[str, typer.Option(help="Up to this UTC time (files that overlap)")],
    source: FetchSource = None,
    skymap: Annotated[bool, typer.Option(help="Also the skymap valid at --start")] = False,
    output: FetchOut = None,
    base_url: BaseUrl = None,
    skymap_base_url: SkymapBaseUrl = None,
    workers: Workers = 4,
    timeout: Timeout = 30.0,
    retries: Retries = 3,
    max_files: MaxFiles = 10_000,
) -> None:
    """One station's raw THEMIS ASI files; hours or minutes no server has are reported."""
    _fetch_imager(
        "themis",
        source,
        station=station,
        start=start,
        end=end,
        out=output,
        base_urls=base_url,
        skymap=skymap,
        skymap_base_urls=skymap_base_url,
        workers=workers,
        timeout=timeout,
        retries=retries,
        max_files=max_files,
    )


@fetch_app.command("asi")
@_errors_to_exit
def fetch_asi(
    station: Annotated[str, typer.Option(help="Site code, e.g. gill")],
    start: Annotated[str, typer.Option(help="From this UTC time")],
    end: Annotated[str, typer.Option(help="Up to this UTC time (files that overlap)")],
    instrument: InstrumentOption = "themis",
    source: FetchSource = None,
    skymap: Annotated[bool, typer.Option(help="Also the imager's skymap valid at --start")] = False,
    output: FetchOut = None,
    base_url: BaseUrl = None,
    skymap_base_url: SkymapBaseUrl = None,
    workers: Workers = 4,
    timeout: Timeout = 30.0,
    retries: Retries = 3,
    max_files: MaxFiles = 10_000,
) -> None:
    """One imager's raw files at one site (THEMIS, REGO, TREx NIR, Blueline, RGB) from
    UCalgary's data tree (THEMIS also from Berkeley); dark files are not fetched."""
    _fetch_imager(
        instrument,
        source,
        station=station,
        start=start,
        end=end,
        out=output,
        base_urls=base_url,
        skymap=skymap,
        skymap_base_urls=skymap_base_url,
        workers=workers,
        timeout=timeout,
        retries=retries,
        max_files=max_files,
    )


@app.command()
@_errors_to_exit
def ingest(
    output: Annotated[
        str, typer.Option("-o", "--output", help="Cube (created if missing): path or URL")
    ],
    sources: Annotated[
        list[Path] | None,
        typer.Argument(
            help="THEMIS CDF/PGM, REGO/TREx PGM files, UCalgary skymap .sav files, folders of "
            "them, or folders of PNG/JPEG frames (none with --start/--end: the station's "
            "files are fetched)"
        ),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(
            help="Skip unreadable files (listed in the cube's attributes) instead of stopping"
        ),
    ] = False,
    station: Annotated[
        str | None,
        typer.Option(
            help="Station of frames whose names and CSV carry none; only this station's "
            "CDF/PGM/HDF5 files; with --start/--end, the site to fetch"
        ),
    ] = None,
    instrument: Annotated[
        str | None,
        typer.Option(
            help="With --station: the imager (themis | rego | trex_nir | trex_blue | "
            "trex_rgb); its frames go to station <site>_<instrument> (THEMIS: <site>)"
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Fetch --station's files from this UTC time (with --end)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="... up to this UTC time")] = None,
    source: FetchSource = None,
    base_url: BaseUrl = None,
    fetch_dir: Annotated[
        Path | None,
        typer.Option(help="Local mirror of the server for fetched files (default: data folder)"),
    ] = None,
    skymap: Annotated[
        bool, typer.Option(help="With --start: also fetch the skymap valid at --start")
    ] = False,
    skymap_base_url: SkymapBaseUrl = None,
    timeout: Timeout = 30.0,
    retries: Retries = 3,
    times_csv: Annotated[
        Path | None, typer.Option(help="CSV file,station,time for image folders")
    ] = None,
    chunk_frames: Annotated[
        int | None, typer.Option(help="Frames per chunk of a new station (default ~32 MB)")
    ] = None,
    shard_frames: Annotated[
        int | None,
        typer.Option(
            help="Frames per Zarr shard of a new station (e.g. 4096: fewer objects on S3; "
            "default: no shards)"
        ),
    ] = None,
    scheduler: Scheduler = "threads",
    prep: Annotated[
        str | None,
        typer.Option(
            help="Raw-frame preparation (oathcube.rawprep.RawPreparation fields) as JSON, e.g. "
            '\'{"scaling": "fixed", "fixed_low": 2000, "fixed_high": 12000}\', or aurora_fm: '
            "themisim's frames, the input of Aurora-FM features"
        ),
    ] = None,
) -> None:
    """Append raw imager frames to station groups (stations/<code>) of a cube.

    With --station S --start T0 --end T1 (and --instrument I), the files of that imager
    at that site for that time are first fetched (only those not already in
    --fetch-dir), then ingested into station S (THEMIS) or S_I (gill_rego).
    """
    from .ingestion.stations import ingest as run
    from .rawprep import RawPreparation

    output = _lasting(output)
    try:
        if prep == "aurora_fm":
            preparation = RawPreparation.aurora_fm()
        else:
            preparation = RawPreparation(**json.loads(prep)) if prep else RawPreparation()
    except (TypeError, ValueError) as err:
        raise OptionError(
            f"{prep!r}: {err}",
            path="--prep",
            expected="RawPreparation fields as JSON, or aurora_fm",
        ) from None
    request = None
    if instrument is not None and station is None:
        raise OptionError(
            "--instrument names the imager of --station's frames",
            path="--station/--instrument",
            expected="--station with it",
        )
    if station is not None:
        from .fetch.sources import UCALGARY_LAYOUTS, check_instrument
        from .sites import station_code

        site, _, suffix = station.strip().lower().partition("_")
        if instrument is None and suffix in UCALGARY_LAYOUTS:
            instrument = suffix  # --station gill_rego: REGO frames
        if instrument is not None:
            # gill + rego -> gill_rego: the station its frames go to (and are taken from)
            instrument = check_instrument(instrument).instrument
            if suffix in UCALGARY_LAYOUTS and suffix != instrument:
                raise OptionError(
                    f"station {station!r} holds {suffix} frames, not {instrument}",
                    path="--station/--instrument",
                    expected=f"--station {site} --instrument {instrument}",
                )
            if not suffix or suffix == instrument:
                station = station_code(site, instrument)
    if start is not None or end is not None:
        if station is None or start is None or end is None:
            raise OptionError(
                "--start and --end fetch one station's files",
                path="--station/--start/--end",
                expected="all three together",
            )
        from .fetch.imagers import AsiRequest

        request = AsiRequest(
            station,
            start=start,
            end=end,
            instrument=instrument or "themis",
            source=source,
            out=fetch_dir,
            base_urls=base_url,
            skymap=skymap,
            skymap_base_urls=skymap_base_url,
            timeout=timeout,
            retries=retries,
        )
    written = run(
        [str(s) for s in sources or []],
        output,
        fetch=request,
        preparation=preparation,
        skip_bad=skip_bad,
        station=request.code if request is not None else station,
        times_csv=times_csv,
        chunk_frames=chunk_frames,
        shard_frames=shard_frames,
        scheduler=scheduler,
        progress=True,
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
    engine: Engine = None,
) -> None:
    """Compute missing features and write per-frame predictions into the station groups.

    The extractor is rebuilt from the settings the model recorded (layer,
    weights' SHA-256, ...); give only where its checkpoint is, if not in the data folder.
    """
    from .classification import classify as run
    from .cube.schema import extractor_of, station_group
    from .cube.store import Cube as CubeStore

    opened = CubeStore.open(cube, "r+")
    # Only the settings the model's record cannot hold come from flags (where the
    # checkpoint is, precision, batch size, engine); the model's record gives the rest.
    local = None
    if checkpoint is not None or precision != "fp32" or batch_size or engine:
        name = extractor_of(str(opened.model(model).attrs.get("features", "")))
        if name not in ("inception_v4", "aurora_fm"):
            raise OptionError(
                f"model {model!r} uses {name or 'published'} features, computed without a "
                "checkpoint, precision or engine",
                path="--checkpoint",
                expected="no --checkpoint, --precision, --batch-size or --engine",
            )
        local = _feature_options(
            name,
            checkpoint,
            "Logits",
            precision,
            batch_size,
            False,
            engine,
            station_group(station) if station and precision == "int8" else None,
        )
    done = run(
        opened,
        model,
        station=station,
        start=start,
        end=end,
        scheduler=scheduler,
        features=local,
        progress=True,
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
    from .cube.store import Cube as CubeStore
    from .views.timelines import TIMELINE_SUFFIXES, write_timeline
    from .views.timelines import timeline as run

    for path in out or []:
        check_output(path, TIMELINE_SUFFIXES, "out")
    opened = CubeStore.open(cube)
    result = run(opened, station, freq=freq, model=model, start=start, end=end)
    for path in out or []:
        write_timeline(result, path, opened, station)
        typer.echo(f"wrote {path}")
    if not out:
        typer.echo(result["fraction"].to_pandas().round(3).to_string())


SkymapChoice = Annotated[
    str | None,
    typer.Option(
        help="A stored skymap's name or start date (20110305), or none (centre column); "
        "default: the skymap valid at the first frame, else the nearest in time (with a warning)"
    ),
]
Altitude = Annotated[float, typer.Option(help="Emission altitude, km (90 | 110 | 150)")]
MinElevation = Annotated[float, typer.Option(help="Leave out the sky below this elevation, deg")]
ViewModel = Annotated[
    str | None, typer.Option(help="Whose predictions (default: the station's only model)")
]


@app.command()
@_errors_to_exit
def keogram(
    cube: Cube,
    station: Annotated[str, typer.Option(help="Station code")],
    out: Annotated[Path, typer.Option(help="FILE.png (picture) or FILE.nc (the DataArray)")],
    start: Start = None,
    end: End = None,
    min_elevation: MinElevation = 10.0,
    altitude: Altitude = 110.0,
    skymap: SkymapChoice = None,
    model: ViewModel = None,
) -> None:
    """North-south keogram of a station, with its predicted classes beneath."""
    from .views.keograms import KEOGRAM_SUFFIXES, write_keogram
    from .views.keograms import keogram as run

    check_output(out, KEOGRAM_SUFFIXES, "out")
    result = run(
        cube,
        station,
        start=start,
        end=end,
        min_elevation=min_elevation,
        altitude=altitude,
        skymap=skymap,
        model=model,
    )
    typer.echo(f"wrote {write_keogram(result, out)}")


@app.command()
@_errors_to_exit
def movie(
    cube: Cube,
    station: Annotated[str, typer.Option(help="Station code")],
    start: Annotated[str, typer.Option(help="From this UTC time")],
    end: Annotated[str, typer.Option(help="Up to this UTC time")],
    out: Annotated[Path, typer.Option(help="FILE.mp4 or FILE.gif")],
    fps: Annotated[float, typer.Option(help="Frames per second")] = 10.0,
    model: ViewModel = None,
) -> None:
    """A movie of a station's frames, each captioned with UTC time, class and score."""
    from .views.movies import MOVIE_SUFFIXES, check_fps
    from .views.movies import movie as run

    check_output(out, MOVIE_SUFFIXES, "out")
    check_fps(fps)
    written = run(cube, station, start=start, end=end, out=out, fps=fps, model=model, progress=True)
    typer.echo(f"wrote {written}")


@app.command("map")
@_errors_to_exit
def map_(
    cube: Cube,
    station: Annotated[str, typer.Option(help="Station code")],
    out: Annotated[Path, typer.Option(help="FILE.png (picture) or FILE.nc (the Dataset)")],
    time: Annotated[
        str | None,
        typer.Option(help="The frame nearest this UTC time (within two frame steps)"),
    ] = None,
    start: Start = None,
    end: End = None,
    altitude: Altitude = 110.0,
    min_elevation: MinElevation = 10.0,
    skymap: Annotated[
        str | None,
        typer.Option(
            help="A stored skymap's name or start date (20110305); default: the skymap "
            "valid at the first frame, else the nearest in time (with a warning)"
        ),
    ] = None,
    model: ViewModel = None,
) -> None:
    """One frame (--time), or the mean of a range, on geographic latitude and longitude."""
    from .views.maps import MAP_SUFFIXES, sky_map, write_map

    check_output(out, MAP_SUFFIXES, "out")
    result = sky_map(
        cube,
        station,
        time=time,
        start=start,
        end=end,
        altitude=altitude,
        min_elevation=min_elevation,
        skymap=skymap,
        model=model,
    )
    typer.echo(f"wrote {write_map(result, out)}")


@app.command()
@_errors_to_exit
def nights(
    cube: Cube,
    out: Annotated[
        list[Path] | None, typer.Option(help="Write FILE.csv, FILE.nc or FILE.png (repeatable)")
    ] = None,
    station: Annotated[str | None, typer.Option(help="Only this station")] = None,
    model: ViewModel = None,
    start: Start = None,
    end: End = None,
) -> None:
    """Per night and station: clear-sky fraction and aurora occurrence (cloudy/moon left out)."""
    from .views.nights import NIGHT_SUFFIXES, coverage_notes, night_statistics, write_nights

    for path in out or []:
        check_output(path, NIGHT_SUFFIXES, "out")
    result = night_statistics(cube, station, model=model, start=start, end=end)
    for path in out or []:
        typer.echo(f"wrote {write_nights(result, path)}")
    if not out:
        table = result.to_dataframe().dropna(subset=["hours"])
        typer.echo(table.round(3).to_string())
    for note in coverage_notes(result):
        typer.echo(f"note: {note}")


@app.command()
@_errors_to_exit
def browse(
    cube: Cube,
    station: Annotated[str | None, typer.Option(help="Open on this station")] = None,
    night: Annotated[
        str | None, typer.Option(help="Open on this night (the local date it starts on)")
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one)")] = 8765,
    host: Annotated[
        str, typer.Option(help="Address to bind (anything but the loopback is warned about)")
    ] = "127.0.0.1",
    model: ViewModel = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in the web browser")
    ] = False,
) -> None:
    """A read-only page over the cube: nights, timeline, keogram, frames, similar skies."""
    from .browser.app import serve_cube

    serve_cube(
        cube,
        station=station,
        night=night,
        model=model,
        host=host,
        port=port,
        open_browser=open_browser,
    )


@app.command()
@_errors_to_exit
def similar(
    cube: Cube,
    station: Annotated[str | None, typer.Option(help="The query frame's station")] = None,
    time: Annotated[
        list[str] | None,
        typer.Option(help="The query frame's UTC time (repeatable: a batch at --station)"),
    ] = None,
    image: Annotated[
        list[int] | None,
        typer.Option(help="Or a labelled image's picNum as the query (repeatable: a batch)"),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(help="aurora_fm | inception_v4 | handcrafted (default: the first there)"),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Hits per query")] = 20,
    stations: Annotated[
        str | None, typer.Option(help="Search only these stations, separated by commas")
    ] = None,
    start: Start = None,
    end: End = None,
    klass: Annotated[
        str | None, typer.Option("--class", help="Only frames the model classified so (arc)")
    ] = None,
    model: ViewModel = None,
    exclude_seconds: Annotated[
        float,
        typer.Option(help="No hit within this many seconds of a better one at its station"),
    ] = 30.0,
    labelled: Annotated[
        bool, typer.Option(help="Search the labelled images too (not thinned by time)")
    ] = False,
    scheduler: Scheduler = "threads",
    out: Annotated[
        Path | None, typer.Option(help="Write FILE.csv (the table) or FILE.png (a montage)")
    ] = None,
    use_index: Annotated[
        bool | None,
        typer.Option(
            "--index/--exact",
            help="Require the features' index (oathcube index), or search exactly "
            "(default: the index when fresh and the frames many)",
        ),
    ] = None,
) -> None:
    """Frames most like a query frame: cosine search over the features."""
    from .cube.store import Cube as CubeStore
    from .parallel import check_scheduler
    from .similarity import SIMILAR_SUFFIXES
    from .similarity import similar as run

    if out is not None:
        check_output(out, SIMILAR_SUFFIXES, "out")
    check_scheduler(scheduler)
    images = list(image or [])
    queries: list[Any] = [(station, t) for t in time or []] + images
    if station is not None and not time:
        raise OptionError("--station without --time", path="--time", expected="a UTC time")
    if time and station is None:
        raise OptionError("--time without --station", path="--station", expected="a station")
    opened = CubeStore.open(cube)
    table = run(
        opened,
        queries=queries or None,
        features=features,
        k=k,
        stations=None if stations is None else [s for s in stations.split(",") if s],
        start=start,
        end=end,
        klass=klass,
        model=model,
        exclude_seconds=exclude_seconds,
        include_labelled=labelled,
        scheduler=scheduler,
        use_index=use_index,
    )
    shown = table.drop(columns=["group", "row"])
    if len(queries) == 1:
        shown = shown.drop(columns="query")
    how = "index candidates re-scored exactly" if table.attrs["index"] else "exact"
    typer.echo(f"features_{table.attrs['features']}, cosine similarity ({how})")
    typer.echo(shown.to_string(index=False))
    if out is None:
        return
    if out.suffix.lower() == ".png":
        from .views.similar import plot_similar

        plot_similar(opened, table, out)
    else:
        from .outputs import replacing

        with replacing(out) as tmp:
            table.drop(columns=["group"]).to_csv(tmp, index=False)
    typer.echo(f"wrote {out}")


@app.command()
@_errors_to_exit
def index(
    cube: Cube,
    features: Annotated[str, typer.Option(help="aurora_fm | inception_v4 | handcrafted")],
    factory: Annotated[
        str, typer.Option(help="faiss index_factory string ({nlist}: about 4 sqrt(frames))")
    ] = "IVF{nlist},SQ8",
    nprobe: Annotated[int, typer.Option(help="Inverted lists a query probes first")] = 128,
    overwrite: Annotated[bool, typer.Option(help="Rebuild an existing index")] = False,
) -> None:
    """Build the approximate index of a features variable over every station (for similar)."""
    from .similarity_index import build_index

    attrs = build_index(cube, features, factory=factory, nprobe=nprobe, overwrite=overwrite)
    typer.echo(
        f"index {attrs['factory']} of {attrs['rows_indexed']} frames of {attrs['features']} "
        f"({attrs['index_bytes'] / max(1, attrs['rows_indexed']):.0f} bytes a frame, "
        f"{attrs['build_seconds']:.1f} s) stored in {cube}/indexes/{features}"
    )


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

    run_demo(directory, n=n, size=size, scheduler=scheduler, progress=True)


def _show_version(value: bool) -> None:
    if value:
        from ._version import __version__

        typer.echo(f"oathcube {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    # Options of the command line as a whole (the app's help text stays its own).
    pass


def main() -> None:
    """Entry point of the ``oathcube`` console script."""
    app()


if __name__ == "__main__":
    main()
