"""``read_state_dict`` reads what ``torch.load(weights_only=True)`` reads, and runs nothing.

torch writes the files (and reads them back as the reference); the module under test
never imports it.
"""

from __future__ import annotations

import builtins
import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from oathcube.errors import CheckpointError
from oathcube.features.torch_weights import check_keys, read_state_dict


class SimCLR(nn.Module):
    """The shape of the Aurora-FM wrapper: a resnet18 encoder and a two-layer projector."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = resnet18(weights=None)
        self.encoder.fc = nn.Identity()
        self.projector = nn.Sequential(
            nn.Linear(512, 512, bias=False), nn.ReLU(), nn.Linear(512, 64, bias=False)
        )


def _same(ours: dict[str, np.ndarray], path: Path) -> None:
    """``ours`` equals torch's reading of ``path`` bitwise, key for key and in order."""
    ref = torch.load(path, weights_only=True)
    assert list(ours) == list(ref)
    for key, tensor in ref.items():
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        want = tensor.detach().numpy()
        got = ours[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        assert np.array_equal(got, want, equal_nan=got.dtype.kind == "f"), key
        assert got.flags.c_contiguous and got.flags.owndata and got.flags.writeable, key


def _one_line_error(path: Path) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    text = str(info.value)
    assert str(path) in text
    assert "\n" not in text
    return info.value


def test_simclr_resnet18_equals_torch_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SimCLR()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(123)
    path = tmp_path / "aurora-fm-no-finetune.tar"
    torch.save(model.state_dict(), path)

    ours = read_state_dict(path)
    _same(ours, path)
    assert ours["encoder.bn1.num_batches_tracked"].dtype == np.int64
    assert ours["encoder.conv1.weight"].shape == (64, 3, 7, 7)
    assert "encoder.fc.weight" not in ours
    assert ours["projector.2.weight"].shape == (64, 512)

    expected = {k: tuple(v.shape) for k, v in model.encoder.state_dict().items()}
    check_keys(ours, {f"encoder.{k}": s for k, s in expected.items()}, path,
               ignore_prefixes=("projector.",))  # fmt: skip


def test_views_shared_storage_and_dtypes(tmp_path: Path) -> None:
    t = torch.arange(30, dtype=torch.float32).reshape(5, 6)
    state = OrderedDict(
        whole=t,
        sliced=t[1:, ::2],  # offset 6, strides (6, 2)
        transposed=t.t(),
        row=t[3],  # shares t's storage
        again=t,  # the same tensor under a second name
        half=torch.randn(3, 4).half()[:, 1:],
        bf16=torch.randn(4, 5).bfloat16().t(),
        double=torch.randn(2, 3, dtype=torch.float64),
        long=torch.tensor([-(2**40), 0, 2**62], dtype=torch.int64),
        int32=torch.tensor([[1, -2], [3, 4]], dtype=torch.int32).t(),
        int8=torch.tensor([-128, 127], dtype=torch.int8),
        uint8=torch.tensor([0, 255], dtype=torch.uint8),
        flags=torch.tensor([True, False, True]),
        scalar=torch.tensor(7),
        empty=torch.zeros(0, 3),
        param=nn.Parameter(torch.ones(2, 2)),
    )
    path = tmp_path / "views.pt"
    torch.save(state, path)
    ours = read_state_dict(path)
    _same(ours, path)
    assert ours["bf16"].dtype == np.float32
    assert ours["flags"].dtype == np.bool_
    assert ours["scalar"].shape == ()
    assert not np.shares_memory(ours["whole"], ours["again"])


def test_location_is_ignored(tmp_path: Path) -> None:
    """A state_dict saved from a GPU names ``cuda:0``; its bytes are read the same."""
    good = _saved(tmp_path)
    with zipfile.ZipFile(good) as z:
        pkl = z.read("good/data.pkl")
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    assert cpu in pkl
    path = _rewrite(good, tmp_path / "cuda.pt", {"good/data.pkl": pkl.replace(cpu, cuda)})
    ours = read_state_dict(path)
    ref = torch.load(path, weights_only=True, map_location="cpu")
    assert list(ours) == list(ref) == ["a", "b"]
    assert all(np.array_equal(ours[k], ref[k].numpy()) for k in ref)


def _evil_file(tmp_path: Path, func: object, arg: str) -> Path:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return func, (arg,)

    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(2), "evil": Evil()}, path)
    return path


def test_os_system_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = _evil_file(tmp_path, os.system, f"touch {marker}")
    err = _one_line_error(path)
    assert "os.system" in str(err) or "posix.system" in str(err)
    assert not marker.exists()


def test_eval_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = _evil_file(
        tmp_path, builtins.eval, f"__import__('pathlib').Path({str(marker)!r}).touch()"
    )
    err = _one_line_error(path)
    assert ".eval" in str(err)  # builtins.eval, or __builtin__.eval at protocol 2
    assert not marker.exists()


def test_a_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), path)
    assert "torch.nn" in str(_one_line_error(path))


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> Path:
    """Copy the zip ``src`` to ``dst``, replacing (or with None, dropping) some members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change.get(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
    return dst


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt"
    torch.save(OrderedDict(a=torch.arange(6.0), b=torch.ones(2, dtype=torch.int64)), path)
    return path


def test_damaged_files(tmp_path: Path) -> None:
    good = _saved(tmp_path)
    raw = good.read_bytes()

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(raw[: len(raw) // 2])
    assert "truncated" in str(_one_line_error(truncated))

    # Flip one byte inside storage a's bytes (stored uncompressed): its CRC fails.
    flipped = tmp_path / "flipped.pt"
    at = raw.index(np.arange(6.0, dtype="<f4").tobytes()) + 5
    flipped.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    assert "CRC" in str(_one_line_error(flipped))

    text = tmp_path / "text.pt"
    text.write_text("model_checkpoint_path: 'model.ckpt'\n")
    assert "zip" in str(_one_line_error(text))

    legacy = tmp_path / "legacy.pt"
    torch.save({"a": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert "legacy" in str(_one_line_error(legacy))

    no_pickle = _rewrite(good, tmp_path / "nopkl.pt", {"good/data.pkl": None})
    assert "data.pkl" in str(_one_line_error(no_pickle))

    two = tmp_path / "two.pt"
    _rewrite(good, two, {})
    with zipfile.ZipFile(two, "a") as z:
        z.writestr("other/data.pkl", raw[:10])
    assert "2 <prefix>/data.pkl" in str(_one_line_error(two))

    missing = _rewrite(good, tmp_path / "missing.pt", {"good/data/0": None})
    assert "good/data/0 is missing" in str(_one_line_error(missing))

    short = _rewrite(good, tmp_path / "short.pt", {"good/data/0": b"\0" * 20})
    assert "fewer than the 24" in str(_one_line_error(short))

    assert "cannot be read" in str(_one_line_error(tmp_path / "absent.pt"))


def test_out_of_bounds_view_and_wrong_shapes_are_refused(tmp_path: Path) -> None:
    good = _saved(tmp_path)
    with zipfile.ZipFile(good) as z:
        pkl = z.read("good/data.pkl")
    # Storage a holds 6 floats; claim the tensor has 7 (size is a BININT1 after it).
    bad = pkl.replace(b"K\x06\x85", b"K\x07\x85", 1)
    assert bad != pkl
    path = _rewrite(good, tmp_path / "oob.pt", {"good/data.pkl": bad})
    assert "reaches past its storage" in str(_one_line_error(path))


def test_not_a_state_dict(tmp_path: Path) -> None:
    cases = {
        "list.pt": [torch.ones(1)],
        "nested.pt": {"state_dict": OrderedDict(a=torch.ones(1))},
        "int_key.pt": {1: torch.ones(1)},
        "number.pt": {"a": 3},
    }
    for name, obj in cases.items():
        path = tmp_path / name
        torch.save(obj, path)
        _one_line_error(path)


def _zip_with_pickle(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x/data.pkl", payload)
        z.writestr("x/byteorder", "little")
    return path


def test_handwritten_pickles_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    # STACK_GLOBAL (protocol 4) of __builtin__.getattr and builtins.exec.
    for module, name in [("__builtin__", "getattr"), ("builtins", "exec")]:
        payload = (
            b"\x80\x04\x8c" + bytes([len(module)]) + module.encode()
            + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93"
            + b"\x8c\x05touch\x85R."
        )  # fmt: skip
        path = _zip_with_pickle(tmp_path / f"{name}.pt", payload)
        err = _one_line_error(path)
        assert f"{module}.{name}" in str(err)
    assert not marker.exists()
    # A name with a newline is escaped, so the message stays on one line.
    payload = b"\x80\x04\x8c\x03o\ns\x8c\x01x\x93."
    assert "o\\ns.x" in str(_one_line_error(_zip_with_pickle(tmp_path / "nl.pt", payload)))


def test_build_cannot_change_what_was_checked(tmp_path: Path) -> None:
    """BUILD (set an object's state) on a stand-in function or a checked storage is refused."""
    good = _saved(tmp_path)

    def unicode(text: str) -> bytes:
        return b"X" + len(text).to_bytes(4, "little") + text.encode()

    numel_7 = b"}" + unicode("numel") + b"K\x07sb"
    function = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + numel_7 + b"."
    storage = (
        b"\x80\x02(" + unicode("storage") + b"ctorch\nFloatStorage\n"
        + unicode("0") + unicode("cpu") + b"K\x06tQ" + numel_7 + b"."
    )  # fmt: skip
    for name, payload in [("function", function), ("storage", storage)]:
        path = _rewrite(good, tmp_path / f"{name}.pt", {"good/data.pkl": payload})
        assert f"sets the state of a {name.capitalize()}" in str(_one_line_error(path))


def test_check_keys() -> None:
    weights = {"a.w": np.zeros((2, 3)), "a.b": np.zeros(2), "head.w": np.zeros(4)}
    expected = {"a.w": (2, 3), "a.b": (2,)}
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): head\.w"):
        check_keys(weights, expected, "ck.pt")
    check_keys(weights, expected, "ck.pt", ignore_prefixes=("head.",))
    with pytest.raises(CheckpointError, match=r"1 key\(s\) missing: a\.c"):
        check_keys(weights, {**expected, "a.c": (1,)}, "ck.pt", ignore_prefixes=("head.",))
    with pytest.raises(CheckpointError, match=r"a\.w has shape \[2, 3\], expected \[3, 2\]") as e:
        check_keys(weights, {"a.w": (3, 2), "a.b": (2,)}, "ck.pt", ignore_prefixes=("head.",))
    assert str(e.value).startswith("ck.pt: ") and "\n" not in str(e.value)
    many = {f"k{i}": (1,) for i in range(8)}
    with pytest.raises(
        CheckpointError, match=r"8 key\(s\) missing: k0, k1, k2, k3, k4, \.\.\. \(expected the 8"
    ):
        check_keys({}, many, "ck.pt")


def test_big_endian_byteorder(tmp_path: Path) -> None:
    good = _saved(tmp_path)
    with zipfile.ZipFile(good) as z:
        a, b = z.read("good/data/0"), z.read("good/data/1")
    swapped = {
        "good/byteorder": b"big",
        "good/data/0": np.frombuffer(a, "<f4").astype(">f4").tobytes(),
        "good/data/1": np.frombuffer(b, "<i8").astype(">i8").tobytes(),
    }
    ours = read_state_dict(_rewrite(good, tmp_path / "big.pt", swapped))
    assert ours["a"].dtype == np.float32 and ours["a"].dtype.isnative
    assert np.array_equal(ours["a"], np.arange(6.0, dtype=np.float32))
    assert np.array_equal(ours["b"], np.ones(2, dtype=np.int64))
    bad = _rewrite(good, tmp_path / "odd.pt", {"good/byteorder": b"middle"})
    assert "byteorder is middle" in str(_one_line_error(bad))
