"""The OATH reader: the real v1.1 text files, tolerant parsing, and every bad input."""

from __future__ import annotations

import io
import re
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from conftest import REAL_OATH

from oathcube.archive.oath import (
    decode_png,
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


def _break_16bit_rgb_png(a: Path) -> tuple[str, int | None]:
    (a / "images/cropped_scaled/00042.png").write_bytes(_png(_rgb16(32)))
    return "00042.png", None


def _break_split_repeat(a: Path) -> tuple[str, int | None]:
    path = a / "classifications/train_test_split.csv"
    split = np.loadtxt(path, delimiter=",")
    split[3, 80] = split[3, 0]
    np.savetxt(path, split, delimiter=",")
    return "train_test_split.csv", 4


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
    _break_16bit_rgb_png,
    _break_split_repeat,
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


# ------------------------------------------------------------- PNG bit depth


def _png(array: np.ndarray, colour_type: int | None = None, depth: int | None = None) -> bytes:
    """PNG bytes written by hand (Pillow cannot write 16-bit RGB): uint8 or uint16 samples.

    ``depth`` below 8 packs grey samples (values must fit) into 1, 2 or 4 bits.
    """
    height, width = array.shape[:2]
    bands = 1 if array.ndim == 2 else array.shape[2]
    if colour_type is None:
        colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[bands]
    if depth is None:
        depth = 8 * array.dtype.itemsize
    if depth < 8:
        rows = []
        for row in array.astype(np.uint8):
            bits = np.unpackbits(row[:, None], axis=1)[:, 8 - depth :].ravel()
            rows.append(np.packbits(bits).tobytes())
    else:
        samples = array.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1)
        rows = [row.tobytes() for row in samples]
    raw = b"".join(b"\x00" + row for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _rgb16(size: int) -> np.ndarray:
    image = np.full((size, size, 3), 1000, dtype=np.uint16)
    image[0, 0] = (65535, 256, 7)
    return image


def test_hand_written_png_is_what_pillow_reads() -> None:
    # The helper is right: an 8-bit RGB file round-trips through imageio exactly.
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(iio.imread(_png(image)), image)
    grey4 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    data = _png(grey4, 0, 4)
    assert (data[24], data[25]) == (4, 0)
    assert iio.imread(data).shape == (3, 4)


def test_16bit_rgb_png_cannot_come_from_imageio(tmp_path: Path) -> None:
    # Why the tests write 16-bit RGB by hand; if Pillow learns to, the file must say 16.
    path = tmp_path / "x.png"
    try:
        iio.imwrite(path, _rgb16(4))
    except TypeError:
        return
    data = path.read_bytes()
    assert (data[24], data[25]) == (16, 2)
    with pytest.raises(ArchiveError, match="expected 8-bit"):
        decode_png(data, str(path))


PNG_DEPTHS = [
    ("grey", 0, 16, lambda: np.full((32, 32), 1000, dtype=np.uint16)),
    ("grey+alpha", 4, 16, lambda: np.full((32, 32, 2), 1000, dtype=np.uint16)),
    ("RGB", 2, 16, lambda: _rgb16(32)),
    ("RGBA", 6, 16, lambda: np.full((32, 32, 4), 1000, dtype=np.uint16)),
    ("grey", 0, 4, lambda: np.full((32, 32), 9, dtype=np.uint8)),
    ("grey", 0, 1, lambda: np.ones((32, 32), dtype=np.uint8)),
]


@pytest.mark.parametrize(
    "kind,colour_type,depth,make", PNG_DEPTHS, ids=[f"{k}-{d}" for k, _, d, _ in PNG_DEPTHS]
)
def test_png_not_8_bit_is_refused_in_both_passes(
    archive: Path, tmp_path: Path, kind: str, colour_type: int, depth: int, make
) -> None:
    data = _png(make(), colour_type, depth)
    assert (data[24], data[25]) == (depth, colour_type)  # what the file really holds
    pattern = rf"00042\.png.*{depth}-bit {re.escape(kind)} PNG.*expected 8-bit"
    # The decode pass, directly and as the cube writer calls it.
    with pytest.raises(ArchiveError, match=pattern):
        decode_png(data, "images/cropped_scaled/00042.png", (32, 32))
    oath = read_oath(archive)
    image = archive / "images/cropped_scaled/00042.png"
    image.write_bytes(data)
    loaders = [load for _, load in oath.iter_image_blocks([0, 32, 64], 32)]
    loaders[0]()
    with pytest.raises(ArchiveError, match=pattern) as err:
        loaders[1]()
    assert "\n" not in str(err.value)
    # The header pass, from a folder and from a tarball.
    with pytest.raises(ArchiveError, match=pattern):
        read_oath(archive)
    tgz = tmp_path / "oath.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(archive, arcname="oath")
    with pytest.raises(ArchiveError, match=pattern) as err:
        read_oath(tgz)
    assert "oath.tgz[oath/images/cropped_scaled/00042.png]" in str(err.value)


def test_16bit_rgb_png_refused_in_the_tarball_decode_pass(archive: Path, tmp_path: Path) -> None:
    # The tarball read twice: headers first (fine), pixels later (now 16-bit).
    tgz = tmp_path / "oath.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(archive, arcname="oath")
    oath = read_oath(tgz)
    (archive / "images/cropped_scaled/00042.png").write_bytes(_png(_rgb16(32)))
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(archive, arcname="oath")
    with pytest.raises(ArchiveError, match=r"00042\.png\]: 16-bit RGB PNG.*expected 8-bit"):
        for _, load in oath.iter_image_blocks([0, 32, 64], 32):
            load()


def test_8_bit_pngs_of_every_colour_type_still_read(archive: Path) -> None:
    grey = iio.imread(archive / "images/cropped_scaled/00002.png")
    rgba = np.stack([grey, grey // 2, grey // 3, np.full_like(grey, 255)], axis=-1)
    (archive / "images/cropped_scaled/00002.png").write_bytes(_png(rgba))
    (archive / "images/cropped_scaled/00003.png").write_bytes(
        _png(np.stack([grey, np.full_like(grey, 255)], axis=-1))
    )
    oath = read_oath(archive)
    assert oath.image_shape == (32, 32, 3)
    block = next(load for _, load in oath.iter_image_blocks([0], 32))()
    np.testing.assert_array_equal(block[1], rgba[..., :3])
    np.testing.assert_array_equal(block[2][..., 0], grey)


def test_non_png_image_file_is_refused(archive: Path) -> None:
    (archive / "images/cropped_scaled/00042.png").write_bytes(b"GIF89a" + bytes(40))
    with pytest.raises(ArchiveError, match=r"00042\.png: not a PNG file.*expected an 8-bit PNG"):
        read_oath(archive)


# ------------------------------------------------------------- archive roots


def test_two_archive_roots_in_a_folder_are_refused(archive: Path, tmp_path: Path) -> None:
    top = tmp_path / "two"
    shutil.copytree(archive, top / "a" / "oath")
    shutil.copytree(archive, top / "b" / "oath")
    with pytest.raises(ArchiveError) as err:
        read_oath(top)
    message = str(err.value)
    assert message.startswith(f"{top}: 2 archive roots: 'a/oath', 'b/oath'")
    assert "expected one archive root" in message and "\n" not in message
    # Each copy alone is one root, two folders below the folder given.
    shutil.rmtree(top / "b")
    assert read_oath(top).root == "a/oath"


def test_archive_root_inside_another_is_refused(archive: Path) -> None:
    shutil.copytree(archive / "classifications", archive / "old" / "classifications")
    with pytest.raises(ArchiveError, match=r"2 archive roots: '\.', 'old' \(expected one archive"):
        read_oath(archive)


def test_two_labels_files_in_one_root_are_refused(archive: Path) -> None:
    shutil.copytree(archive / "classifications", archive / "classification")
    (archive / "classification/classifications.csv").rename(
        archive / "classification/classification.csv"
    )
    with pytest.raises(ArchiveError, match="2 labels files in archive root.*expected one labels"):
        read_oath(archive)


def test_two_archive_roots_in_a_tarball_are_refused(archive: Path, tmp_path: Path) -> None:
    tgz = tmp_path / "two.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(archive, arcname="oath")
        tar.add(archive, arcname="oath_v1.1")
    with pytest.raises(ArchiveError) as err:
        read_oath(tgz)
    assert str(err.value).startswith(f"{tgz}: 2 archive roots: 'oath', 'oath_v1.1'")
    assert "expected one archive root" in str(err.value)


# ----------------------------------------------------------------- the split


def _split_path(archive: Path) -> Path:
    return archive / "classifications/train_test_split.csv"


def test_split_repeating_a_training_image_in_the_test_part_is_refused(
    archive: Path, tmp_path: Path
) -> None:
    path = _split_path(archive)
    split = np.loadtxt(path, delimiter=",").astype(int)
    dropped, repeated = int(split[1, 70]), int(split[1, 5])
    split[1, 70] = repeated  # round(0.7 * 90) = 63: position 5 trains, 70 tests
    np.savetxt(path, split, delimiter=",")
    pattern = (
        rf"train_test_split\.csv\]?:2: repeats index {repeated} at positions 5 and 70 "
        rf"\(in both the training and the test part\); misses index {dropped} "
        r"\(expected a permutation of 0\.\.89\)$"
    )
    with pytest.raises(ArchiveError, match=pattern) as err:
        read_oath(archive)
    assert err.value.line == 2
    tgz = tmp_path / "oath.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(archive, arcname="oath")
    with pytest.raises(ArchiveError, match=pattern) as err:
        read_oath(tgz)
    assert err.value.path == f"{tgz}[oath/classifications/train_test_split.csv]"


def test_split_not_a_permutation_is_refused_not_warned() -> None:
    rows = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 0, 2, 3, 4, 5, 6, 7, 9, 9]]
    data = "\n".join(",".join(f"{v:.18e}" for v in row) for row in rows).encode()
    with pytest.raises(
        ArchiveError,
        match=r"^s\.csv:2: repeats index 0 at positions 0 and 1 \(twice in the training part\) "
        r"and 1 more repeated; misses index 1 and 1 more \(expected a permutation of 0\.\.9\)$",
    ):
        parse_split(data, "s.csv", 10)
    rows[1] = [9, 1, 2, 3, 4, 5, 6, 8, 7, 7]
    data = "\n".join(",".join(str(v) for v in row) for row in rows).encode()
    with pytest.raises(ArchiveError, match="index 7 .*twice in the test part.*misses index 0"):
        parse_split(data, "s.csv", 10)


def test_split_out_of_range_still_named() -> None:
    with pytest.raises(ArchiveError, match=r"s\.csv:1: index 3 at position 1.*integers in 0\.\.2"):
        parse_split(b"0,3,1\n", "s.csv", 3)


@pytest.mark.parametrize("rows", [1, 2, 5, 7])
def test_n_folds_is_the_number_of_split_rows(archive: Path, rows: int) -> None:
    path = _split_path(archive)
    split = np.argsort(np.random.default_rng(rows).random((rows, 90)), axis=1)
    np.savetxt(path, split, delimiter=",")
    oath = read_oath(archive)
    assert oath.n_folds == rows and oath.split.shape == (rows, 90)
    np.testing.assert_array_equal(oath.split, split)


def test_n_folds_of_the_generated_and_the_real_split(archive: Path, shared: Path) -> None:
    _split_path(archive).unlink()
    assert read_oath(archive).n_folds == 5
    real = parse_split((REAL_OATH / "train_test_split.csv").read_bytes(), "s.csv", 5824)
    assert real.shape == (5, 5824)
    assert all(np.array_equal(np.sort(row), np.arange(5824)) for row in real)
