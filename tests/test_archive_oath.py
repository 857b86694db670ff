"""The OATH reader: the real v1.1 text files, tolerant parsing, and every bad input."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import REAL_OATH

from oathcube.archive.oath import (
    generate_split,
    parse_classifications,
    parse_files_origin,
    parse_split,
    read_oath,
)
from oathcube.cli import app
from oathcube.errors import ArchiveError

# ---------------------------------------------------------------- the real files


def test_real_classifications(shared: Path) -> None:
    table = parse_classifications((REAL_OATH / "classifications.csv").read_bytes(), "c.csv")
    assert len(table) == 5824
    assert table["label"].value_counts().to_dict() == {
        "discrete": 1400,
        "diffuse": 1102,
        "noaurora": 1082,
        "cloudy": 852,
        "arc": 774,
        "moon": 614,
    }
    first = table.iloc[1]
    assert (first.pic_num, first.class2, first.class6, first.label, first.rot_angle) == (
        2,
        0,
        2,
        "discrete",
        29,
    )


def test_real_files_origin(shared: Path) -> None:
    origin = parse_files_origin((REAL_OATH / "files_origin.csv").read_bytes(), "o.csv")
    assert len(origin) == 5823
    assert 1 not in set(origin["pic_num"])
    row = origin.set_index("pic_num").loc[2]
    assert row.station == "inuv"
    assert row.time == np.datetime64("2013-01-07T06:01:00")
    assert origin["station"].nunique() == 19


def test_real_split_is_the_seeded_permutation(shared: Path) -> None:
    split = parse_split((REAL_OATH / "train_test_split.csv").read_bytes(), "s.csv", 5824)
    np.testing.assert_array_equal(split, generate_split(5824))


def test_generate_split_leaves_global_rng_alone() -> None:
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    generate_split(10)
    assert np.random.rand() == expected


# ------------------------------------------------------------ tolerant parsing


def test_header_found_by_content_and_label_alias() -> None:
    text = b"some\npreamble\n\nclass2,class6,picNum,label,rotAng\n1,5,00007,noaurora,001\n"
    table = parse_classifications(text, "x.csv")
    assert table.pic_num.tolist() == [7] and table.label.tolist() == ["noaurora"]


@pytest.mark.parametrize(
    "text",
    [
        b"station,time,file\ninuv,2013-01-07T06:01:00,images/cropped_scaled/00002.png\n",
        b"inuv 2013-01-07 06:01:00 images/cropped_scaled/00002.png\n",
        b"inuv,2013-01-07,06:01:00,00002.png\n",
        b"inuv 07/Jan/2013 06:01:00.0,images/scaled_cropped/00002.png\n",
    ],
)
def test_files_origin_other_layouts(text: bytes) -> None:
    origin = parse_files_origin(text, "o.csv")
    assert origin.pic_num.tolist() == [2]
    assert origin.station.tolist() == ["inuv"]
    assert origin.time.tolist()[0] == np.datetime64("2013-01-07T06:01:00")


def test_image_without_origin_row_is_kept_unknown(archive: Path) -> None:
    oath = read_oath(archive)
    first = oath.table.iloc[0]
    assert first.pic_num == 1 and first.station == "unknown" and pd.isna(first.time)
    assert oath.table.station.iloc[1] != "unknown"


def test_archive_root_found_by_content(archive: Path) -> None:
    renamed = archive.rename(archive.parent / "oath_v1.1")
    (renamed / "classifications").rename(renamed / "classification")
    (renamed / "classification" / "classifications.csv").rename(
        renamed / "classification" / "classification.csv"
    )
    oath = read_oath(renamed.parent)
    assert oath.root == "oath_v1.1" and oath.n_images == 90


def test_missing_split_is_regenerated(archive: Path) -> None:
    (archive / "classifications" / "train_test_split.csv").unlink()
    (archive / "features" / "auroral_feat.h5").unlink()
    oath = read_oath(archive)
    np.testing.assert_array_equal(oath.split, generate_split(90))
    assert "1804" in oath.split_source and oath.features is None


def test_features_rows_matched_through_filenames(archive: Path) -> None:
    path = archive / "features" / "auroral_feat.h5"
    with h5py.File(path, "r") as h5:
        logits, names = h5["Logits"][()], h5["filenames"][()]
    order = np.random.default_rng(0).permutation(len(names))
    with h5py.File(path, "w") as h5:
        h5["Logits"], h5["filenames"] = logits[order], names[order]
    np.testing.assert_array_equal(read_oath(archive).features, logits)


# -------------------------------------------------------------------- bad input


def _replace_line(path: Path, old: str, new: str) -> int:
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith(old))
    lines[number] = new
    path.write_text("\n".join(lines) + "\n")
    return number + 1


LABELS = Path("classifications/classifications.csv")
ORIGIN = Path("images/files_origin.csv")


def _break_no_header(a: Path) -> tuple[str, int | None]:
    text = (a / LABELS).read_text().replace("class2,class6,picNum,picType,rotAng", "a,b,c,d,e")
    (a / LABELS).write_text(text)
    return "classifications.csv", None


def _break_class6(a: Path) -> tuple[str, int | None]:
    line = _replace_line(a / LABELS, "0,", "0,7,00005,arc,010")
    return "classifications.csv", line


def _break_class2(a: Path) -> tuple[str, int | None]:
    row = next(r for r in (a / LABELS).read_text().splitlines() if r.startswith("0,0,"))
    line = _replace_line(a / LABELS, row, "1" + row[1:])
    return "classifications.csv", line


def _break_duplicate(a: Path) -> tuple[str, int | None]:
    lines = (a / LABELS).read_text().splitlines()
    rows = [i for i, r in enumerate(lines) if r[:1].isdigit()]
    fields = lines[rows[1]].split(",")
    fields[2] = lines[rows[0]].split(",")[2]
    lines[rows[1]] = ",".join(fields)
    (a / LABELS).write_text("\n".join(lines) + "\n")
    return "classifications.csv", rows[1] + 1


def _break_origin(a: Path) -> tuple[str, int | None]:
    lines = (a / ORIGIN).read_text().splitlines()
    lines[30] = "this is not a row at all"
    (a / ORIGIN).write_text("\n".join(lines) + "\n")
    return "files_origin.csv", 31


def _break_features(a: Path) -> tuple[str, int | None]:
    with h5py.File(a / "features/auroral_feat.h5", "r+") as h5:
        logits, names = h5["Logits"][:-1], h5["filenames"][:-1]
        del h5["Logits"], h5["filenames"]
        h5["Logits"], h5["filenames"] = logits, names
    return "auroral_feat.h5", None


def _break_split(a: Path) -> tuple[str, int | None]:
    path = a / "classifications/train_test_split.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[3], "9.000000000000000000e+02", 1)
    path.write_text("\n".join(lines) + "\n")
    return "train_test_split.csv", 3


def _break_missing_png(a: Path) -> tuple[str, int | None]:
    (a / "images/cropped_scaled/00042.png").unlink()
    return "00042.png", None


def _break_corrupt_png(a: Path) -> tuple[str, int | None]:
    (a / "images/cropped_scaled/00042.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return "00042.png", None


BREAKERS = [
    _break_no_header,
    _break_class6,
    _break_class2,
    _break_duplicate,
    _break_origin,
    _break_features,
    _break_split,
    _break_missing_png,
    _break_corrupt_png,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__.removeprefix("_break_"))
def test_bad_archive_gives_one_line_and_no_cube(
    archive: Path, tmp_path: Path, runner, breaker
) -> None:
    name, line = breaker(archive)
    cube = tmp_path / "cube.zarr"
    result = runner.invoke(app, ["build", str(archive), "-o", str(cube)])
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert message.startswith("oathcube: error:") and "\n" not in message
    assert name in message
    if line is not None:
        assert f":{line}:" in message
    assert not cube.exists()
    assert not list(tmp_path.glob(".cube.zarr.building-*"))


def _tar_with(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tgz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


@pytest.mark.parametrize(
    "member,add",
    [
        ("/etc/evil", lambda t: _file(t, "/etc/evil")),
        ("oath/../evil", lambda t: _file(t, "oath/../evil")),
        ("oath/link", lambda t: _link(t, "oath/link", "/etc/passwd")),
        ("oath/hard", lambda t: _link(t, "oath/hard", "oath/x", tarfile.LNKTYPE)),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path: Path, runner, member: str, add) -> None:
    tgz = _tar_with(tmp_path, add)
    with pytest.raises(ArchiveError, match="evil.tgz") as err:
        read_oath(tgz)
    assert err.value.member == member
    result = runner.invoke(app, ["build", str(tgz), "-o", str(tmp_path / "c.zarr")])
    assert result.exit_code == 1 and member in result.output
    assert not (tmp_path / "c.zarr").exists()
