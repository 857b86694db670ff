"""The Python API as the product: ``oathcube.__all__``, its lazy table, and docs/api.md.

docs/api.md documents every exported name under a ``###`` heading with one example, and
nothing else; its examples use names from ``oathcube`` alone.  The examples marked to run
(plain ``python`` blocks) run here, in order, as one session in an empty folder, on a
synthetic archive; the others (``python no-run``) say why on their first line and must
at least compile.
"""

from __future__ import annotations

import ast
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import oathcube
import oathcube.errors

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT / "docs" / "api.md"
INIT = ROOT / "oathcube" / "__init__.py"

#: What no runnable example may take longer than, all together (seconds, 2 shared cores).
EXAMPLES_BUDGET_S = 60.0

_FENCE = re.compile(r"^```(\S*)\s*(.*)$")
_NOT_RUN = re.compile(r"^# not run: \S.{9,}")


@dataclass
class Block:
    """One fenced ``python`` block of docs/api.md."""

    line: int
    runs: bool
    code: str


@dataclass
class Section:
    """A ``###`` heading of docs/api.md: the names it documents, and its blocks."""

    heading: str
    line: int
    names: list[str]
    blocks: list[Block] = field(default_factory=list)


def _parse(text: str) -> tuple[list[Block], list[Section]]:
    """Every python block (in order) and every ``###`` section of a Markdown page."""
    blocks: list[Block] = []
    sections: list[Section] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if line.startswith("### "):
            names = re.findall(r"`([^`]+)`", line)
            sections.append(Section(line[4:], i + 1, names))
        elif line.startswith("## "):
            sections.append(Section(line[3:], i + 1, []))  # ends the ### section before
        elif fence:
            language, flags = fence.groups()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if language == "python":
                assert flags in ("", "no-run"), f"docs/api.md:{i + 1}: unknown flag {flags!r}"
                block = Block(i + 1, flags == "", "\n".join(lines[i + 1 : end]) + "\n")
                blocks.append(block)
                if sections:
                    sections[-1].blocks.append(block)
            i = end
        i += 1
    return blocks, [s for s in sections if s.names]


BLOCKS, SECTIONS = _parse(API_MD.read_text())


def _oathcube_names(code: str) -> set[str]:
    """The ``oathcube.<name>`` attributes a piece of code uses."""
    return {
        node.attr
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "oathcube"
    }


# --------------------------------------------------------------------------- __all__
def test_all_is_the_lazy_table_and_the_errors() -> None:
    assert len(oathcube.__all__) == len(set(oathcube.__all__))
    lazy = set(oathcube._LAZY)
    eager = set(oathcube.__all__) - lazy
    # Only the errors are imported with the package (they cost nothing); every other
    # name waits for its first use, and the lazy table holds nothing unexported.
    assert lazy <= set(oathcube.__all__)
    assert eager == set(oathcube.errors.__all__)
    assert sorted(dir(oathcube)) == sorted(oathcube.__all__)


def test_type_checkers_see_what_the_lazy_table_resolves() -> None:
    """The ``if TYPE_CHECKING:`` imports name each lazy name, from its table's module."""
    tree = ast.parse(INIT.read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    )
    seen: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{ast.unparse(node)}: re-export as itself"
            seen[alias.name] = f"oathcube.{node.module}"
    assert seen == oathcube._LAZY


def test_every_error_is_exported_and_is_a_value_error() -> None:
    errors = [getattr(oathcube, n) for n in oathcube.__all__ if n.endswith("Error")]
    assert {e.__name__ for e in errors} >= set(oathcube.errors.__all__) | {"MemoryBoundError"}
    for error in errors:
        assert issubclass(error, oathcube.OathcubeError) and issubclass(error, ValueError)


def test_every_exported_function_and_type_says_what_it_is() -> None:
    for name in oathcube.__all__:
        value = getattr(oathcube, name)
        if callable(value) and not name.endswith("Like"):
            assert (value.__doc__ or "").strip(), f"oathcube.{name} has no docstring"


@pytest.mark.parametrize(
    ("names", "forbidden"),
    [
        # Downloading and the errors need no array library at all.
        (
            ("fetch_oath", "fetch_checkpoint", "fetch_themis", "ThemisFetch", "OathcubeError"),
            ("xarray", "dask", "zarr", "sklearn", "tensorflow", "matplotlib", "numba"),
        ),
        # Asking what an extractor computes builds no network.
        (
            ("feature_spec", "FeatureSpec", "extractor_names", "FeatureExtractor"),
            ("tensorflow", "openvino", "sklearn", "matplotlib", "xarray", "dask"),
        ),
    ],
)
def test_light_names(names: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    code = (
        f"import oathcube, sys; [getattr(oathcube, n) for n in {list(names)!r}]; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(forbidden)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- docs/api.md
def test_api_page_documents_every_export_once_and_nothing_else() -> None:
    documented = [name for section in SECTIONS for name in section.names]
    assert sorted(documented) == sorted(set(documented)), "a name documented twice"
    assert set(documented) == set(oathcube.__all__)
    # Nothing else is presented as oathcube's, in prose or in code.
    mentioned = set(re.findall(r"\boathcube\.(\w+)", API_MD.read_text()))
    assert mentioned - set(oathcube.__all__) - {"__all__"} == set()


def test_each_documented_name_has_its_example() -> None:
    for section in SECTIONS:
        assert section.blocks, f"docs/api.md:{section.line}: {section.heading} has no example"
        used = set().union(*(_oathcube_names(b.code) for b in section.blocks))
        missing = set(section.names) - used
        assert not missing, f"docs/api.md:{section.line}: the example never uses {missing}"


def test_examples_use_oathcube_names_alone() -> None:
    for block in BLOCKS:
        tree = ast.parse(block.code)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "oathcube" and not (node.module or "").startswith(
                    "oathcube."
                ), f"docs/api.md:{block.line}: {ast.unparse(node)} (use oathcube.NAME)"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] != "oathcube" or alias.name == "oathcube", (
                        f"docs/api.md:{block.line}: import {alias.name}"
                    )
        assert _oathcube_names(block.code) <= set(oathcube.__all__), block.line


def test_examples_not_run_say_why_and_compile() -> None:
    skipped = [b for b in BLOCKS if not b.runs]
    assert skipped and any(b.runs for b in BLOCKS)
    for block in BLOCKS:
        first = block.code.splitlines()[0]
        if block.runs:
            assert not first.startswith("# not run"), f"docs/api.md:{block.line}: mark no-run"
        else:
            assert _NOT_RUN.match(first), f"docs/api.md:{block.line}: say why it is not run"
            compile(block.code, f"docs/api.md:{block.line}", "exec")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach a server fails at once (the runnable examples need none)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("docs/api.md's runnable examples must not use the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.usefixtures("offline")
def test_runnable_examples_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__api_md__"}
    tic = time.perf_counter()
    for block in (b for b in BLOCKS if b.runs):
        code = compile(block.code, f"docs/api.md:{block.line}", "exec")
        exec(code, namespace)  # noqa: S102 -- the page's own examples, in order
    took = time.perf_counter() - tic
    printed = capsys.readouterr().out
    assert took < EXAMPLES_BUDGET_S, f"docs/api.md's examples took {took:.0f} s"

    # What the session made: a cube with features, a model and a classified station.
    cube = oathcube.Cube.open(tmp_path / "oath.zarr")
    assert cube.stations() == ["fsmi"] and cube.models() == [namespace["model"]]
    assert "features_handcrafted" in cube.labelled()
    station = cube.station("fsmi")
    assert station.sizes["time"] == 30
    assert any(str(v).startswith("predicted_") for v in station.data_vars)
    for name in ("montage.png", "confusion.png", "timeline.png", "keogram.png", "night.gif"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert (tmp_path / "keogram.nc").is_file() and (tmp_path / "nights.csv").is_file()
    assert "CubeNotFoundError  subclass of CubeError, FileNotFoundError" in printed


def test_library_functions_take_ranges_by_keyword_and_draw_no_bar() -> None:
    # One way to call every public function: the cube and the station first, time
    # ranges and bins by keyword; progress bars are the command line's, not the
    # library's (pooch's retrieve(progressbar=False) is the model).
    import inspect

    import oathcube

    checked = 0
    for name in oathcube.__all__:
        obj = getattr(oathcube, name)
        if not callable(obj) or inspect.isclass(obj) and not hasattr(obj, "__dataclass_fields__"):
            continue
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            continue
        for key in ("start", "end", "freq"):
            if key in params:
                assert params[key].kind is inspect.Parameter.KEYWORD_ONLY, (name, key)
                checked += 1
        if "progress" in params:
            assert params["progress"].default is False, name
            checked += 1
    assert checked >= 10


def test_every_command_s_function_takes_storage_options() -> None:
    # A cube at a URL needs its credentials once, in the call that opens it (as xarray's
    # open_zarr takes them), whichever command's function the caller starts with.
    import inspect

    import oathcube

    for name in (
        "build", "compute_features", "evaluate", "benchmark", "train", "ingest",
        "classify", "timeline", "keogram", "movie", "sky_map", "night_statistics",
        "describe",
    ):  # fmt: skip
        params = inspect.signature(getattr(oathcube, name)).parameters
        assert params["storage_options"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params["storage_options"].default is None, name
