"""Read a PyTorch ``torch.save``'d state_dict into NumPy arrays, without torch and safely.

The format
----------
Since torch 1.6, ``torch.save`` writes a zip archive (members stored, not
compressed) whose members all sit under one folder ``<prefix>/`` (the file's stem,
or ``archive``):

* ``<prefix>/data.pkl``: a pickle (protocol 2) of the saved object.  Each tensor in
  it is ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
  requires_grad, backward_hooks[, metadata])``, with offset, size and stride in
  elements; a ``Parameter`` wraps such a tensor in ``torch._utils._rebuild_parameter
  (data, requires_grad, backward_hooks)``.  A storage is a pickle *persistent id*
  ``('storage', storage_class, key, location, numel)``, where ``storage_class`` is a
  global such as ``torch.FloatStorage`` (the element type) and ``numel`` counts
  elements.  A module's ``state_dict()`` is a ``collections.OrderedDict`` whose
  instance state carries ``_metadata`` (module versions), which is not needed here.
* ``<prefix>/data/<key>``: the raw bytes of storage ``key``.  ``location``
  (``cpu``, ``cuda:0``) only says where the tensor lived, the bytes are the same.
* ``<prefix>/byteorder``: ``little`` or ``big`` (absent in old files: little).
* ``<prefix>/version``, ``.format_version``, ``.storage_alignment``,
  ``.data/serialization_id``: bookkeeping, not needed to read the tensors.

Why it is safe
--------------
Unpickling runs whatever callables a pickle names.  Here, the unpickler's
``find_class`` resolves only the few globals above, and each one to oathcube's own
stand-in (a plain dict, a storage description, a function that builds an array);
any other global (``os.system``, ``builtins.eval``, ``torch.nn.Module``) raises
:class:`~oathcube.errors.CheckpointError` when the pickle *names* it, before it can
be called.  The stand-ins check their arguments, so every view stays inside its
storage, and every array is a fresh copy that owns its memory.  torch is never
imported.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import CheckpointError

__all__ = ["read_state_dict", "check_keys"]

_EXPECTED = "a torch zip checkpoint of a state_dict, as torch.save writes since 1.6"
#: The first object pickled in torch's legacy (pre-1.6) format.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: How many names an error lists before "...".
_SHOWN = 5


class _StorageType(str):
    """Stand-in for ``torch.<Name>Storage``: the NumPy code of its elements ("bf16": raw bits)."""

    __slots__ = ()


#: The typed storages that torch writes, e.g. ``torch.FloatStorage`` (torch 2.14 too).
_STORAGE_TYPES = {
    name: _StorageType(code)
    for name, code in [
        ("FloatStorage", "f4"),
        ("DoubleStorage", "f8"),
        ("HalfStorage", "f2"),
        ("BFloat16Storage", "bf16"),
        ("LongStorage", "i8"),
        ("IntStorage", "i4"),
        ("ShortStorage", "i2"),
        ("CharStorage", "i1"),
        ("ByteStorage", "u1"),
        ("BoolStorage", "b1"),
    ]
}


class _StateDict(dict):
    """Stand-in for ``collections.OrderedDict``: a plain dict keeps insertion order too."""

    def __setstate__(self, state: Any) -> None:
        # state_dict() pickles its `_metadata` (module versions) as instance state;
        # nothing here needs it, and setting attributes from a file is not wanted.
        pass


class _Sealed:
    """Base of the stand-ins' objects: a pickle's BUILD opcode cannot change them afterwards.

    Without it, BUILD could set attributes on an object already checked (a storage's
    length) or, through a bound method, on the function behind it.
    """

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"a pickle sets the state of a {type(self).__name__[1:]}")


class _Storage(_Sealed):
    __slots__ = ("kind", "data", "numel")

    def __init__(self, kind: _StorageType, data: bytes, numel: int) -> None:
        self.kind, self.data, self.numel = kind, data, numel


class _Tensor(_Sealed):
    """What the tensor stand-ins return, so that only they can put an array in the result."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


class _Function(_Sealed):
    """A stand-in function as the pickle sees it (calls pass through, BUILD is refused)."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., _Tensor]) -> None:
        self.function = function

    def __call__(self, *args: Any) -> _Tensor:
        return self.function(*args)


def _show(text: str, limit: int = 80) -> str:
    """``text`` safe for a one-line message: escaped if not printable, cut if long."""
    text = text if text.isprintable() else ascii(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _few(names: list[str]) -> str:
    shown = ", ".join(_show(n) for n in names[:_SHOWN])
    return shown + (", ..." if len(names) > _SHOWN else "")


class _Unpickler(pickle.Unpickler):
    """Unpickler of ``data.pkl`` that knows only tensors, storages and ordered dicts."""

    def __init__(
        self, data: bytes, path: str, members: Mapping[str, bytes], prefix: str, order: str
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._path, self._members, self._prefix = path, members, prefix
        self._order = "<" if order == "little" else ">"
        self._storages: dict[str, _Storage] = {}

    def _error(self, message: str, expected: str | None = None) -> CheckpointError:
        return CheckpointError(message, path=self._path, expected=expected)

    def find_class(self, module: str, name: str, /) -> Any:
        # The names are compared raw: pickle maps Python 2 names (__builtin__) only in
        # the find_class this overrides, so they are refused like any other.
        if (module, name) == ("collections", "OrderedDict"):
            return _StateDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Function(self._rebuild_tensor_v2)
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _Function(_rebuild_parameter)
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise self._error(
            f"carries a reference to {_show(str(module))}.{_show(str(name))}, "
            "and a weights file holds only tensors in ordered dicts"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
            and isinstance(pid[3], str)
            and type(pid[4]) is int
            and pid[4] >= 0
        ):
            raise self._error(
                f"data.pkl names a storage as {_show(repr(pid))}",
                expected="('storage', torch storage type, key, location, numel)",
            )
        _, kind, key, _location, numel = pid
        known = self._storages.get(key)
        if known is not None:
            if (known.kind, known.numel) != (kind, numel):
                raise self._error(f"storage {_show(key)} is named with two types or lengths")
            return known
        name = f"{self._prefix}/data/{key}"
        data = self._members.get(name)
        if data is None:
            raise self._error(f"storage member {_show(name)} is missing")
        need = numel * (2 if kind == "bf16" else np.dtype(kind).itemsize)
        if len(data) < need:
            raise self._error(
                f"storage member {_show(name)} holds {len(data)} bytes, "
                f"fewer than the {need} of its {numel} elements"
            )
        self._storages[key] = _Storage(kind, data, numel)
        return self._storages[key]

    def _rebuild_tensor_v2(
        self, storage: Any, offset: Any, size: Any, stride: Any, *autograd: Any
    ) -> _Tensor:
        # `autograd` is (requires_grad, backward_hooks[, metadata]): not the values.
        def ints(v: Any) -> bool:
            return isinstance(v, tuple) and all(type(i) is int and i >= 0 for i in v)

        if not (
            len(autograd) in (2, 3)
            and isinstance(storage, _Storage)
            and type(offset) is int
            and offset >= 0
            and ints(size)
            and ints(stride)
            and len(size) == len(stride)
        ):
            raise self._error("a tensor's storage, offset, size or stride is malformed")
        count = math.prod(size)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        # A view with more elements than its storage (an expand()) never appears in a
        # state_dict; refusing it stops a tiny file from asking for a huge copy.
        if count and (count > storage.numel or last >= storage.numel):
            raise self._error(
                f"a tensor of size {list(size)}, stride {list(stride)} at offset {offset} "
                f"reaches past its storage of {storage.numel} elements"
            )
        code = str(storage.kind)
        raw = {"bf16": "u2", "b1": "u1"}.get(code, code)
        base = np.frombuffer(storage.data, dtype=self._order + raw, count=storage.numel)
        view = np.lib.stride_tricks.as_strided(
            base[offset:] if count else base[:0],
            shape=size,
            strides=[s * base.itemsize for s in stride],
            writeable=False,
        )
        # A C-ordered copy in native byte order: the result owns its memory and no
        # longer refers to the file's bytes.
        array = np.array(view, dtype=np.dtype(raw).newbyteorder("="), order="C")
        if code == "bf16":
            # bfloat16 is the top half of a float32: widening it is exact.
            out = np.empty(size, dtype=np.float32)
            out.view(np.uint32)[...] = array.astype(np.uint32) << 16
            array = out
        elif code == "b1":
            array = array != 0
        return _Tensor(array)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> _Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter``: a Parameter is its tensor's data."""
    if not isinstance(data, _Tensor):
        raise pickle.UnpicklingError("a Parameter wraps something that is not a tensor")
    return data


def _is_legacy(path: str) -> bool:
    """Whether ``path`` starts like torch's pre-1.6 format (a pickled magic number)."""

    class NoGlobals(pickle.Unpickler):
        def find_class(self, module: str, name: str, /) -> Any:
            raise pickle.UnpicklingError("no globals here")

    try:
        with open(path, "rb") as fh:
            first = NoGlobals(fh).load()
    except Exception:  # anything else is simply not that format
        return False
    return type(first) is int and first == _LEGACY_MAGIC


def _fail(path: str, message: str, expected: str | None = _EXPECTED) -> CheckpointError:
    return CheckpointError(message, path=path, expected=expected)


def _read_members(path: str) -> dict[str, bytes]:
    """Every member of the zip at ``path``, each read in full so that zipfile checks its CRC."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        zf = zipfile.ZipFile(path)
    except OSError as exc:
        raise _fail(path, f"cannot be read: {_show(str(exc))}") from exc
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        if head == b"PK\x03\x04":
            message = f"is a truncated or damaged zip, its central directory unreadable ({exc})"
        elif _is_legacy(path):
            message = (
                "is in torch's legacy (pre-1.6) format, which is not read here; "
                "re-saving it with a current torch.save gives the zip format"
            )
        else:
            message = "is not a zip file"
        raise _fail(path, _show(message, 300)) from exc
    members: dict[str, bytes] = {}
    with zf:
        for info in zf.infolist():
            name = info.filename
            if name in members:  # which of the two would torch read?
                raise _fail(path, f"holds member {_show(name)} twice")
            try:
                members[name] = zf.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
                raise _fail(path, f"member {_show(name)} is damaged ({_show(str(exc))})") from exc
    return members


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``torch.save``'d state_dict as arrays, without torch and running no code from it.

    Parameters
    ----------
    path
        A zip-format torch checkpoint (``torch.save`` since torch 1.6) of a
        state_dict: a dict of tensor name -> tensor.

    Returns
    -------
    dict[str, numpy.ndarray]
        Each tensor as a C-contiguous array in native byte order that owns its memory,
        in the order stored.  bfloat16 becomes float32 (exactly); other dtypes stay.

    Raises
    ------
    CheckpointError
        In one line naming the file: not a zip (or torch's legacy format), a damaged
        or truncated zip, a missing or short storage, a reference to any global that
        is not a tensor, storage or ordered dict, or anything but str -> tensor.
    """
    path = os.fspath(path)
    members = _read_members(path)
    pickles = [n for n in members if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        listed = f" ({_few(pickles)})" if pickles else ""
        raise _fail(path, f"holds {len(pickles)} <prefix>/data.pkl members{listed}")
    prefix = pickles[0].split("/")[0]
    order = members.get(f"{prefix}/byteorder", b"little").decode("ascii", "replace")
    if order not in ("little", "big"):
        raise _fail(path, f"byteorder is {_show(order)}", expected="'little' or 'big'")
    try:
        obj = _Unpickler(members[pickles[0]], path, members, prefix, order).load()
    except CheckpointError:
        raise
    except Exception as exc:  # a damaged pickle raises many types (EOFError, TypeError, ...)
        message = f"data.pkl cannot be read: {type(exc).__name__}: {_show(str(exc))}"
        raise _fail(path, message) from exc
    names = {
        _StateDict: "OrderedDict",
        _Tensor: "tensor",
        _Storage: "storage",
        _Function: "function",
    }
    if not isinstance(obj, dict):
        raise _fail(path, f"holds a {names.get(type(obj), type(obj).__name__)}, not a state_dict")
    out: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise _fail(path, f"holds a key of type {type(key).__name__}, not a tensor name")
        if not isinstance(value, _Tensor):
            kind = names.get(type(value), type(value).__name__)
            raise _fail(path, f"holds a {kind} under '{_show(key)}', not a tensor")
        # One tensor pickled under two names must still give two independent arrays.
        out[key] = value.array.copy() if id(value) in seen else value.array
        seen.add(id(value))
    return out


def check_keys(
    weights: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]],
    path: str | os.PathLike[str],
    *,
    ignore_prefixes: tuple[str, ...] = (),
) -> None:
    """Check that ``weights`` holds exactly the ``expected`` keys with their shapes.

    Parameters
    ----------
    weights
        What :func:`read_state_dict` returned.
    expected
        Exact key -> shape that the caller needs.
    path
        The checkpoint, for the error message.
    ignore_prefixes
        Keys (of either mapping) that start with one of these are left out, e.g.
        ``("projector.",)`` for a head the caller does not use.

    Raises
    ------
    CheckpointError
        In one line: the missing keys, the unexpected keys and the shape mismatches,
        each with its count and the first few names.
    """
    want = [k for k in expected if not k.startswith(ignore_prefixes)]
    have = [k for k in weights if not k.startswith(ignore_prefixes)]
    missing = [k for k in want if k not in weights]
    unexpected = [k for k in have if k not in expected]
    wrong = [
        f"{_show(k)} has shape {list(weights[k].shape)}, expected {list(expected[k])}"
        for k in want
        if k in weights and tuple(weights[k].shape) != tuple(expected[k])
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} key(s) missing: {_few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_few(unexpected)}")
    if wrong:
        more = "; ..." if len(wrong) > _SHOWN else ""
        parts.append(f"{len(wrong)} with the wrong shape: {'; '.join(wrong[:_SHOWN])}{more}")
    if parts:
        raise _fail(
            os.fspath(path),
            "does not hold the expected weights: " + "; ".join(parts),
            expected=f"the {len(want)} keys with their shapes",
        )
