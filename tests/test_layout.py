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
#: earlier ones, never of a later one.  docs/architecture.md shows this list as it is
#: here (test_architecture_page_follows_the_stages).
STAGES: list[tuple[str, tuple[str, ...]]] = [
    (
        "leaves",
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
    ),
    # readers of the OATH layout and raw THEMIS files, preparations, synthetic archives,
    # downloads
    ("archives", ("archive", "rawprep", "synthetic", "fetch")),
    # store, schema, index, rows, staging
    ("the cube", ("cube",)),
    ("features", ("features",)),
    # the OATH build, station archives, skymaps
    ("into cubes", ("ingestion",)),
    # the classifiers evaluate runs, models as arrays, ridge.py's protocol and stored
    # models, then every feature set x classifier in one table
    ("models", ("classifiers", "model_arrays", "model", "benchmarks")),
    ("over time", ("classification",)),
    # keograms, movies, maps, timelines, nightly statistics, figures, summaries; frames
    # like a query frame (read-only, as the views; its montage is a view)
    ("views", ("views", "similarity", "similarity_index")),
    # a read-only page over a cube's nights, frames and similar skies (and its widget)
    ("browser", ("browser",)),
    ("demo", ("demo",)),
    ("cli", ("cli",)),
]


def _stage(module: str) -> int:
    top = module.split(".")[1]
    for rank, (_, names) in enumerate(STAGES):
        if top in names:
            return rank
    raise AssertionError(f"oathcube.{top} belongs to no stage: add it to STAGES")


def render_stages(width: int = 88) -> str:
    """STAGES as docs/architecture.md shows them: rank, title, modules (packages with /)."""
    lines = []
    for rank, (title, names) in enumerate(STAGES, 1):
        shown = [n + "/" if (PACKAGE / n).is_dir() else n for n in names]
        head = f"{rank:<3}{title:<14}"
        line = head
        for i, name in enumerate(shown):
            piece = name + ("," if i < len(shown) - 1 else "")
            if len(line) + 1 + len(piece) > width and line.strip() != head.strip():
                lines.append(line.rstrip())
                line = " " * len(head)
            line += ("" if line.endswith(" ") else " ") + piece
        lines.append(line.rstrip())
    return "\n".join(lines)


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
        if module.startswith(("oathcube.classification", "oathcube.views")):
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


def test_the_cube_is_the_one_door() -> None:
    # Raw Zarr nodes, the commit protocol and region writes are the Cube's own business:
    # every other module reads and writes rows through Cube methods.
    inner = ("oathcube.cube.nodes", "oathcube.cube.commit", "oathcube.cube.write")
    wrong = {
        module: sorted(d for d in deps if d in inner)
        for module, deps in _graph().items()
        if not module.startswith("oathcube.cube")
    }
    assert {m: d for m, d in wrong.items() if d} == {}


def test_cube_knows_no_archive_format() -> None:
    for module, deps in _graph().items():
        if module.startswith("oathcube.cube"):
            assert not [d for d in deps if d.startswith("oathcube.archive")], module


@pytest.mark.parametrize(
    "package", sorted(_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py"))
)
def test_no_module_is_named_like_an_exported_function(package: str) -> None:
    # `oathcube.views.keogram` would be the function, not the module, once the package
    # exports it: `import oathcube.views.keogram as m` then hands over the function.
    import importlib

    module = importlib.import_module(package)
    folder = PACKAGE.parent.joinpath(*package.split("."))
    children = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir()}
    assert sorted(set(getattr(module, "__all__", ())) & children) == []


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


def test_architecture_page_follows_the_stages() -> None:
    # The stage order is written once, above; docs/architecture.md shows it as it is
    # here, and names every module of the package (a new module gets its line there).
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    assert f"```\n{render_stages()}\n```" in page
    modules = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent == PACKAGE
    )
    assert [m for m in modules if f"`{m}`" not in page] == []
