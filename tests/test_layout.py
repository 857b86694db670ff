"""The package's shape: data flows one way, no cycles, and ``import oathcube`` stays light.

The import graph is read from the source (every ``import`` statement, at module level or
inside a function, except those under ``if TYPE_CHECKING:``), so a lazy import that goes
the wrong way is caught as surely as an eager one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "oathcube"

#: The one-way flow, earliest first: a module may import modules of its own stage or of
#: earlier ones, never of a later one.
STAGES: list[tuple[str, ...]] = [
    # leaves every stage may use
    (
        "_version",
        "errors",
        "faults",
        "labels",
        "times",
        "parallel",
        "imaging",
        "outputs",
        "datadir",
        "sites",
        "kernels",
        "memory",
    ),
    # archives: readers of the OATH layout and raw THEMIS files, synthetic archives, downloads
    ("archive", "rawprep", "synthetic", "fetch"),
    # the cube: store, schema, index, region writes
    ("cube",),
    # features of cube pixels
    ("features",),
    # archives into cubes
    ("labelled", "ingestion", "skymaps"),
    # ridge models
    ("model",),
    # models applied over time
    ("classification", "timelines"),
    # pictures and summaries
    ("plots", "info"),
    # keograms, movies, maps and nightly statistics of classified frames
    ("views",),
    ("demo",),
    ("cli",),
]


def _stage(module: str) -> int:
    top = module.split(".")[1]
    for rank, names in enumerate(STAGES):
        if top in names:
            return rank
    raise AssertionError(f"oathcube.{top} belongs to no stage: add it to STAGES")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path) -> set[str]:
    """The oathcube modules that ``path`` imports (as dotted names)."""
    name = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "oathcube")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "oathcube":
                continue
            for alias in node.names:
                # `from pkg import sub` imports the submodule when there is one
                candidate = f"{module}.{alias.name}"
                is_sub = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(
                    ".py"
                ).exists() or (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                out.add(candidate if is_sub else module)
    out.discard(name)
    return out


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_the_package_root() -> None:
    offenders = {m: sorted(d) for m, d in _graph().items() if "oathcube" in d and m != "oathcube"}
    assert offenders == {}


def test_no_stage_imports_a_later_one() -> None:
    wrong = [
        f"{module} -> {dep}"
        for module, deps in _graph().items()
        if module != "oathcube"
        for dep in deps
        if dep != "oathcube" and _stage(dep) > _stage(module)
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(trail[trail.index(dep) :] + [dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_classification_and_views_never_import_ingestion() -> None:
    # They read stations through the Cube (Cube.times, Cube.station): classifying or
    # drawing must not load the raw-file readers (numba, cdflib, deflate).
    for module, deps in _graph().items():
        if module.startswith(("oathcube.classification", "oathcube.views", "oathcube.timelines")):
            assert not [d for d in deps if d.startswith("oathcube.ingestion")], module


def test_extractors_never_import_cube() -> None:
    # Extractors (every module of oathcube.features but compute: the registry and specs,
    # the settings, the extractors, the network and its engines) see pixels, angles and
    # settings only.  The feature computation holds the cube: it reads the pixels and the
    # int8 calibration frames and hands them over, so no worker opens a cube for them.
    graph = _graph()
    extractors = {m for m in graph if m.startswith("oathcube.features")}
    extractors.discard("oathcube.features.compute")
    assert "oathcube.features.inception_v4" in extractors
    wrong = {m: sorted(d for d in graph[m] if d.startswith("oathcube.cube")) for m in extractors}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_cube_knows_no_archive_format() -> None:
    for module, deps in _graph().items():
        if module.startswith("oathcube.cube"):
            assert not [d for d in deps if d.startswith("oathcube.archive")], module


def test_no_module_is_named_like_an_exported_function() -> None:
    import oathcube

    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()}
    assert sorted(set(oathcube.__all__) & modules) == []


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        (
            "import oathcube",
            ("sklearn", "tensorflow", "matplotlib", "distributed", "intake", "xarray", "dask"),
        ),
        ("import oathcube.cli", ("sklearn", "tensorflow", "matplotlib", "distributed", "xarray")),
        # Classifying reads stations through the Cube, never the raw-file readers.
        ("import oathcube.classification", ("numba", "cdflib", "deflate", "tensorflow")),
    ],
)
def test_light_imports(statement: str, forbidden: tuple[str, ...]) -> None:
    code = (
        f"{statement}; import sys; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(forbidden)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_resolve() -> None:
    import oathcube

    for name in oathcube.__all__:
        assert getattr(oathcube, name) is not None
    assert callable(oathcube.build) and callable(oathcube.synth)
    with pytest.raises(AttributeError):
        _ = oathcube.no_such_name  # type: ignore[attr-defined]


def test_every_imported_package_is_declared() -> None:
    import importlib.metadata as md
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {
        d.split(">")[0].split("=")[0].split("[")[0].strip().lower().replace("_", "-")
        for d in project["dependencies"]
    }
    tops: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops.add(node.module.split(".")[0])
    third_party = {t for t in tops - set(sys.stdlib_module_names) if t != "oathcube"}
    dists = md.packages_distributions()
    missing = {
        top: dists.get(top, [top])
        for top in sorted(third_party)
        if not {d.lower().replace("_", "-") for d in dists.get(top, [top])} & declared
    }
    assert missing == {}
