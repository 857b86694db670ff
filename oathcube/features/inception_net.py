"""Inception-v4 exactly as TF-slim builds it, in Keras 3, loaded from a slim checkpoint by name.

The network follows TF-slim ``nets/inception_v4.py`` (``num_classes=1001``,
``inception_v4_arg_scope``) at inference: every convolution is conv (no bias)
-> batch norm (epsilon 1e-3, beta only) -> ReLU, TF ``SAME`` padding unless the
slim net says ``VALID``, 3x3 stride-1 average pools that leave padded cells out
of the mean, and a 1536 -> 1001 fully connected ``Logits`` layer after an 8x8
average pool.

By default batch norm is folded into the convolution when the weights are
loaded (kernel ``w * s``, bias ``beta - mean * s``, ``s = 1 / sqrt(var + eps)``,
computed in float64), so that oneDNN runs one fused conv + bias + ReLU per
layer instead of three passes over memory; the result differs from slim's only
by float32 round-off.  ``fold_batch_norm=False`` gives the plain Keras network
(Conv2D without bias -> BatchNormalization -> ReLU), the benchmark's baseline.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError

__all__ = [
    "AUX_LOGITS_VARIABLES",
    "BN_EPSILON",
    "ENDPOINTS",
    "INPUT_SIZE",
    "NUM_CLASSES",
    "InceptionV4Net",
    "build_inception_v4",
    "checkpoint_files",
    "checkpoint_sha256",
    "random_variables",
    "read_checkpoint",
]

SCOPE = "InceptionV4"
BN_EPSILON = 1e-3
INPUT_SIZE = 299
NUM_CLASSES = 1001

#: Every endpoint the network can return, in the order slim creates them.
ENDPOINTS: tuple[str, ...] = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "Mixed_3a",
    "Mixed_4a",
    "Mixed_5a",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_5e",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_6f",
    "Mixed_6g",
    "Mixed_6h",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
    "Mixed_7d",
    "PreLogitsFlatten",
    "Logits",
)


def _bn_shapes(scope: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{scope}/BatchNorm/{kind}": (channels,) for kind in _BN_KINDS}


_BN_KINDS = ("beta", "moving_mean", "moving_variance")

#: The auxiliary head of the released checkpoint.  Features never use it, but a
#: checkpoint without it is not the released Inception-v4, so it is checked
#: (names and shapes) and then left unread.
AUX_LOGITS_VARIABLES: dict[str, tuple[int, ...]] = {
    f"{SCOPE}/AuxLogits/Conv2d_1b_1x1/weights": (1, 1, 1024, 128),
    **_bn_shapes(f"{SCOPE}/AuxLogits/Conv2d_1b_1x1", 128),
    f"{SCOPE}/AuxLogits/Conv2d_2a/weights": (5, 5, 128, 768),
    **_bn_shapes(f"{SCOPE}/AuxLogits/Conv2d_2a", 768),
    f"{SCOPE}/AuxLogits/Aux_logits/weights": (768, NUM_CLASSES),
    f"{SCOPE}/AuxLogits/Aux_logits/biases": (NUM_CLASSES,),
}


@dataclass
class _ConvUnit:
    """One Keras convolution (+ batch norm unless folded) for one slim ``conv2d`` scope."""

    conv: Any
    bn: Any | None
    kernel: tuple[int, int]
    in_channels: int
    scope: str
    filters: int


class _Builder:
    """Creates the layers of the functional model and records which slim scope each holds."""

    def __init__(self, *, fold_batch_norm: bool, dtype: Any) -> None:
        import keras

        self.keras = keras
        self.fold = fold_batch_norm
        self.dtype = dtype
        self.units: list[_ConvUnit] = []
        self.endpoints: dict[str, Any] = {}

    @staticmethod
    def _layer_name(scope: str) -> str:
        # Keras 3 refuses "/" in layer names.
        return scope.replace("/", "-")

    def conv(
        self,
        x: Any,
        scope: str,
        filters: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: str = "same",
    ) -> Any:
        """A slim ``conv2d`` (conv -> BN -> ReLU) under ``scope``."""
        size: tuple[int, int] = (kernel, kernel) if isinstance(kernel, int) else kernel
        layers = self.keras.layers
        name = self._layer_name(scope)
        conv = layers.Conv2D(
            filters,
            size,
            strides=stride,
            padding=padding,
            use_bias=self.fold,
            activation="relu" if self.fold else None,
            name=name,
            dtype=self.dtype,
        )
        y = conv(x)
        bn = None
        if not self.fold:
            bn = layers.BatchNormalization(
                epsilon=BN_EPSILON,
                momentum=0.9997,
                scale=False,
                name=name + "-BN",
                dtype=self.dtype,
            )
            y = layers.ReLU(name=name + "-relu", dtype=self.dtype)(bn(y))
        self.units.append(_ConvUnit(conv, bn, size, int(x.shape[-1]), scope, filters))
        return y

    def avg_pool_3x3(self, x: Any, scope: str) -> Any:
        # TF's SAME average pool divides by the valid cells only, as slim's does.
        return self.keras.layers.AveragePooling2D(
            3, strides=1, padding="same", name=self._layer_name(scope), dtype=self.dtype
        )(x)

    def max_pool_3x3_s2(self, x: Any, scope: str) -> Any:
        return self.keras.layers.MaxPooling2D(
            3, strides=2, padding="valid", name=self._layer_name(scope), dtype=self.dtype
        )(x)

    def concat(self, xs: Sequence[Any], scope: str) -> Any:
        y = self.keras.layers.Concatenate(axis=-1, name=self._layer_name(scope), dtype=self.dtype)(
            list(xs)
        )
        self.endpoints[scope.rsplit("/", 1)[-1]] = y
        return y


def _block_a(b: _Builder, x: Any, s: str) -> Any:
    b0 = b.conv(x, f"{s}/Branch_0/Conv2d_0a_1x1", 96, 1)
    b1 = b.conv(x, f"{s}/Branch_1/Conv2d_0a_1x1", 64, 1)
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0b_3x3", 96, 3)
    b2 = b.conv(x, f"{s}/Branch_2/Conv2d_0a_1x1", 64, 1)
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0b_3x3", 96, 3)
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0c_3x3", 96, 3)
    b3 = b.avg_pool_3x3(x, f"{s}/Branch_3/AvgPool_0a_3x3")
    b3 = b.conv(b3, f"{s}/Branch_3/Conv2d_0b_1x1", 96, 1)
    return b.concat([b0, b1, b2, b3], s)


def _reduction_a(b: _Builder, x: Any, s: str) -> Any:
    b0 = b.conv(x, f"{s}/Branch_0/Conv2d_1a_3x3", 384, 3, 2, "valid")
    b1 = b.conv(x, f"{s}/Branch_1/Conv2d_0a_1x1", 192, 1)
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0b_3x3", 224, 3)
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_1a_3x3", 256, 3, 2, "valid")
    b2 = b.max_pool_3x3_s2(x, f"{s}/Branch_2/MaxPool_1a_3x3")
    return b.concat([b0, b1, b2], s)


def _block_b(b: _Builder, x: Any, s: str) -> Any:
    b0 = b.conv(x, f"{s}/Branch_0/Conv2d_0a_1x1", 384, 1)
    b1 = b.conv(x, f"{s}/Branch_1/Conv2d_0a_1x1", 192, 1)
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0b_1x7", 224, (1, 7))
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0c_7x1", 256, (7, 1))
    b2 = b.conv(x, f"{s}/Branch_2/Conv2d_0a_1x1", 192, 1)
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0b_7x1", 192, (7, 1))
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0c_1x7", 224, (1, 7))
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0d_7x1", 224, (7, 1))
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0e_1x7", 256, (1, 7))
    b3 = b.avg_pool_3x3(x, f"{s}/Branch_3/AvgPool_0a_3x3")
    b3 = b.conv(b3, f"{s}/Branch_3/Conv2d_0b_1x1", 128, 1)
    return b.concat([b0, b1, b2, b3], s)


def _reduction_b(b: _Builder, x: Any, s: str) -> Any:
    b0 = b.conv(x, f"{s}/Branch_0/Conv2d_0a_1x1", 192, 1)
    b0 = b.conv(b0, f"{s}/Branch_0/Conv2d_1a_3x3", 192, 3, 2, "valid")
    b1 = b.conv(x, f"{s}/Branch_1/Conv2d_0a_1x1", 256, 1)
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0b_1x7", 256, (1, 7))
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0c_7x1", 320, (7, 1))
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_1a_3x3", 320, 3, 2, "valid")
    b2 = b.max_pool_3x3_s2(x, f"{s}/Branch_2/MaxPool_1a_3x3")
    return b.concat([b0, b1, b2], s)


def _block_c(b: _Builder, x: Any, s: str) -> Any:
    b0 = b.conv(x, f"{s}/Branch_0/Conv2d_0a_1x1", 256, 1)
    b1 = b.conv(x, f"{s}/Branch_1/Conv2d_0a_1x1", 384, 1)
    b1 = b.keras.layers.Concatenate(axis=-1, dtype=b.dtype)(
        [b.conv(b1, f"{s}/Branch_1/Conv2d_0b_1x3", 256, (1, 3)),
         b.conv(b1, f"{s}/Branch_1/Conv2d_0c_3x1", 256, (3, 1))]
    )  # fmt: skip
    b2 = b.conv(x, f"{s}/Branch_2/Conv2d_0a_1x1", 384, 1)
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0b_3x1", 448, (3, 1))
    b2 = b.conv(b2, f"{s}/Branch_2/Conv2d_0c_1x3", 512, (1, 3))
    b2 = b.keras.layers.Concatenate(axis=-1, dtype=b.dtype)(
        [b.conv(b2, f"{s}/Branch_2/Conv2d_0d_1x3", 256, (1, 3)),
         b.conv(b2, f"{s}/Branch_2/Conv2d_0e_3x1", 256, (3, 1))]
    )  # fmt: skip
    b3 = b.avg_pool_3x3(x, f"{s}/Branch_3/AvgPool_0a_3x3")
    b3 = b.conv(b3, f"{s}/Branch_3/Conv2d_0b_1x1", 256, 1)
    return b.concat([b0, b1, b2, b3], s)


def _stem(b: _Builder, x: Any) -> Any:
    p = SCOPE
    x = b.conv(x, f"{p}/Conv2d_1a_3x3", 32, 3, 2, "valid")
    b.endpoints["Conv2d_1a_3x3"] = x
    x = b.conv(x, f"{p}/Conv2d_2a_3x3", 32, 3, 1, "valid")
    b.endpoints["Conv2d_2a_3x3"] = x
    x = b.conv(x, f"{p}/Conv2d_2b_3x3", 64, 3)
    b.endpoints["Conv2d_2b_3x3"] = x

    s = f"{p}/Mixed_3a"
    b0 = b.max_pool_3x3_s2(x, f"{s}/Branch_0/MaxPool_0a_3x3")
    b1 = b.conv(x, f"{s}/Branch_1/Conv2d_0a_3x3", 96, 3, 2, "valid")
    x = b.concat([b0, b1], s)

    s = f"{p}/Mixed_4a"
    b0 = b.conv(x, f"{s}/Branch_0/Conv2d_0a_1x1", 64, 1)
    b0 = b.conv(b0, f"{s}/Branch_0/Conv2d_1a_3x3", 96, 3, 1, "valid")
    b1 = b.conv(x, f"{s}/Branch_1/Conv2d_0a_1x1", 64, 1)
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0b_1x7", 64, (1, 7))
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_0c_7x1", 64, (7, 1))
    b1 = b.conv(b1, f"{s}/Branch_1/Conv2d_1a_3x3", 96, 3, 1, "valid")
    x = b.concat([b0, b1], s)

    s = f"{p}/Mixed_5a"
    b0 = b.conv(x, f"{s}/Branch_0/Conv2d_1a_3x3", 192, 3, 2, "valid")
    b1 = b.max_pool_3x3_s2(x, f"{s}/Branch_1/MaxPool_1a_3x3")
    return b.concat([b0, b1], s)


class InceptionV4Net:
    """A Keras Inception-v4 plus the map from its layers to slim checkpoint names.

    Build it with :func:`build_inception_v4`, fill it with :meth:`load`, run it
    with :meth:`predict`.

    Attributes
    ----------
    model
        The ``keras.Model``; its output is a dict endpoint -> tensor.
    endpoints
        The endpoints it returns, in slim order.
    precision
        ``"fp32"`` or ``"bf16"`` (computations in bfloat16, outputs float32).
    variables
        Every slim variable the network reads: name -> shape.
    """

    def __init__(
        self,
        model: Any,
        units: list[_ConvUnit],
        logits: Any,
        endpoints: tuple[str, ...],
        precision: str,
    ) -> None:
        self.model = model
        self.endpoints = endpoints
        self.precision = precision
        self._units = units
        self._logits = logits
        self._functions: dict[bool, Any] = {}
        self.variables: dict[str, tuple[int, ...]] = {}
        for unit in units:
            self.variables[f"{unit.scope}/weights"] = (*unit.kernel, unit.in_channels, unit.filters)
            self.variables.update(_bn_shapes(unit.scope, unit.filters))
        if logits is not None:
            self.variables[f"{SCOPE}/Logits/Logits/weights"] = (1536, NUM_CLASSES)
            self.variables[f"{SCOPE}/Logits/Logits/biases"] = (NUM_CLASSES,)

    def required_variables(self) -> dict[str, tuple[int, ...]]:
        """Every variable a checkpoint must hold: the whole released Inception-v4."""
        full = dict(self.variables)
        if f"{SCOPE}/Logits/Logits/weights" not in full:
            full[f"{SCOPE}/Logits/Logits/weights"] = (1536, NUM_CLASSES)
            full[f"{SCOPE}/Logits/Logits/biases"] = (NUM_CLASSES,)
        full.update(AUX_LOGITS_VARIABLES)
        return full

    def load(self, values: Mapping[str, np.ndarray]) -> None:
        """Set the weights from slim variables ``name -> array`` (shapes already checked)."""
        for unit in self._units:
            scope = unit.scope
            kernel = np.asarray(values[f"{scope}/weights"], dtype=np.float32)
            beta, mean, var = (
                np.asarray(values[f"{scope}/BatchNorm/{kind}"], dtype=np.float32)
                for kind in _BN_KINDS
            )
            if unit.bn is None:
                # Fold in float64 so that the folding itself adds no round-off.
                scale = 1.0 / np.sqrt(var.astype(np.float64) + BN_EPSILON)
                unit.conv.set_weights(
                    [(kernel * scale).astype(np.float32), (beta - mean * scale).astype(np.float32)]
                )
            else:
                unit.conv.set_weights([kernel])
                unit.bn.set_weights([beta, mean, var])
        if self._logits is not None:
            self._logits.set_weights(
                [
                    np.asarray(values[f"{SCOPE}/Logits/Logits/weights"], np.float32),
                    np.asarray(values[f"{SCOPE}/Logits/Logits/biases"], np.float32),
                ]
            )
        self._functions.clear()

    def function(self, *, jit_compile: bool = False) -> Any:
        """A ``tf.function`` of the network for float32 ``(None, 299, 299, 3)`` input.

        One fixed input signature means one trace for every batch size, and
        graph mode lets grappler fuse conv + bias + ReLU for oneDNN.
        """
        import tensorflow as tf

        if jit_compile not in self._functions:
            model = self.model

            def run(x: Any) -> dict[str, Any]:
                out = model(x, training=False)
                return {k: tf.cast(v, tf.float32) for k, v in out.items()}

            self._functions[jit_compile] = tf.function(
                run,
                input_signature=[
                    tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32, name="images")
                ],
                jit_compile=jit_compile,
            )
        return self._functions[jit_compile]

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on preprocessed ``(n, 299, 299, 3)`` float32 images."""
        out = self.function()(np.ascontiguousarray(images, dtype=np.float32))
        return {k: v.numpy() for k, v in out.items()}


def build_inception_v4(
    endpoints: Iterable[str] = ("Logits",),
    *,
    precision: str = "fp32",
    fold_batch_norm: bool = True,
) -> InceptionV4Net:
    """Build the slim Inception-v4 (inference only) with the requested endpoints.

    Parameters
    ----------
    endpoints
        Names from :data:`ENDPOINTS`; layers past the last one are not built.
    precision
        ``"fp32"``, or ``"bf16"`` for Keras' ``mixed_bfloat16`` policy (float32
        weights, bfloat16 arithmetic) on this network only.
    fold_batch_norm
        Fold batch norm into the convolutions (see the module docstring);
        False gives the plain Keras network.

    Returns
    -------
    InceptionV4Net
        The network, weights not yet set.
    """
    import keras

    asked = set(endpoints)
    wanted = tuple(e for e in ENDPOINTS if e in asked)
    unknown = asked - set(ENDPOINTS)
    if unknown or not wanted:
        raise ValueError(
            f"unknown Inception-v4 endpoint(s) {sorted(unknown)}; "
            f"choose from {', '.join(ENDPOINTS)}"
        )
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}")
    dtype = keras.DTypePolicy("mixed_bfloat16" if precision == "bf16" else "float32")
    b = _Builder(fold_batch_norm=fold_batch_norm, dtype=dtype)
    last = ENDPOINTS.index(wanted[-1])

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images", dtype="float32")
    x = _stem(b, inputs)
    stages = (
        [(_block_a, f"Mixed_5{c}") for c in "bcde"]
        + [(_reduction_a, "Mixed_6a")]
        + [(_block_b, f"Mixed_6{c}") for c in "bcdefgh"]
        + [(_reduction_b, "Mixed_7a")]
        + [(_block_c, f"Mixed_7{c}") for c in "bcd"]
    )
    for block, name in stages:
        if ENDPOINTS.index(name) > last:
            break
        x = block(b, x, f"{SCOPE}/{name}")

    logits_layer = None
    if last >= ENDPOINTS.index("PreLogitsFlatten"):
        # slim's 8x8 VALID average pool over the 8x8 map is the global mean.  The head
        # runs in float32 whatever the precision: it costs nothing, and the features
        # are not rounded to bfloat16's 8-bit mantissa on their way out.
        flat = keras.layers.GlobalAveragePooling2D(name="AvgPool_1a", dtype="float32")(x)
        b.endpoints["PreLogitsFlatten"] = flat
        if last >= ENDPOINTS.index("Logits"):
            logits_layer = keras.layers.Dense(NUM_CLASSES, name="Logits", dtype="float32")
            b.endpoints["Logits"] = logits_layer(flat)
    outputs = {name: b.endpoints[name] for name in wanted}
    model = keras.Model(inputs, outputs, name="InceptionV4")
    return InceptionV4Net(model, b.units, logits_layer, wanted, precision)


def checkpoint_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files that make up the checkpoint ``path``, in a fixed order.

    A V1 checkpoint (the released ``inception_v4.ckpt``) is one file; a V2
    checkpoint ``PREFIX`` is ``PREFIX.index`` followed by its data shards in
    shard order; a directory means its latest checkpoint.

    Raises
    ------
    CheckpointError
        If nothing checkpoint-like is at ``path``.
    """
    p = Path(path)
    if p.is_dir():
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(p))
        if latest is None:
            raise CheckpointError(
                "directory holds no TensorFlow checkpoint",
                path=p,
                expected="a checkpoint file such as inception_v4.ckpt, or a V2 prefix",
            )
        p = Path(latest)
    # A V2 checkpoint may be named by any of its files: reduce it to the prefix.
    v2_part = re.fullmatch(r"(.+)\.(index|data-\d+-of-\d+)", p.name)
    prefix = p.with_name(v2_part.group(1)) if v2_part else p
    if not v2_part and p.is_file():
        return [p]
    index = Path(str(prefix) + ".index")
    if index.is_file():
        shard = re.compile(re.escape(prefix.name) + r"\.data-\d+-of-\d+")
        # Shard numbers are zero-padded, so name order is shard order.
        shards = sorted(f for f in index.parent.iterdir() if shard.fullmatch(f.name))
        return [index, *shards]
    raise CheckpointError(
        "no checkpoint here",
        path=p,
        expected="inception_v4.ckpt (V1 file) or a V2 prefix with .index and .data-* files",
    )


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the checkpoint's bytes, all its files read in :func:`checkpoint_files` order."""
    digest = hashlib.sha256()
    for f in checkpoint_files(path):
        with open(f, "rb") as fh:
            for block in iter(functools.partial(fh.read, 1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def read_checkpoint(
    path: str | os.PathLike[str], required: Mapping[str, tuple[int, ...]], needed: Iterable[str]
) -> dict[str, np.ndarray]:
    """Check a slim checkpoint against ``required`` and read the ``needed`` variables.

    Parameters
    ----------
    path
        V1 checkpoint file, V2 prefix, or a directory with a ``checkpoint`` file.
    required
        Every variable that must be present, name -> shape.  Other keys of the
        checkpoint (``global_step``, optimizer slots) are ignored.
    needed
        The names to read and return (a subset of ``required``).

    Raises
    ------
    CheckpointError
        If the checkpoint cannot be read, or lists every missing variable and
        every shape that differs.
    """
    import tensorflow as tf

    files = checkpoint_files(path)
    source = str(files[0].with_suffix("")) if files[0].suffix == ".index" else str(files[0])
    try:
        reader = tf.train.load_checkpoint(source)
        shapes = reader.get_variable_to_shape_map()
    except Exception as exc:  # TF raises several types (DataLossError, NotFoundError, ...)
        raise CheckpointError(
            f"cannot read TensorFlow checkpoint: {type(exc).__name__}: {exc}".splitlines()[0],
            path=path,
            expected="a TF-slim Inception-v4 checkpoint (V1 or V2)",
        ) from exc
    missing = sorted(n for n in required if n not in shapes)
    mismatched = sorted(
        f"{n} has shape {list(shapes[n])}, expected {list(required[n])}"
        for n in required
        if n in shapes and tuple(shapes[n]) != tuple(required[n])
    )
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} variable(s) missing: {', '.join(missing)}")
        if mismatched:
            parts.append(f"{len(mismatched)} with the wrong shape: {'; '.join(mismatched)}")
        raise CheckpointError(
            "not the TF-slim Inception-v4 checkpoint: " + "; ".join(parts),
            path=path,
            expected=f"all {len(required)} variables of inception_v4.ckpt with their shapes",
        )
    return {n: reader.get_tensor(n) for n in needed}


def random_variables(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random values for ``shapes`` that keep activations in a sane range.

    Weights are He-normal (so ReLU activations neither vanish nor explode),
    batch-norm statistics are the identity plus a small beta.  For tests and
    benchmarks only: features from these weights mean nothing.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        kind = name.rsplit("/", 1)[-1]
        if kind == "weights":
            fan_in = int(np.prod(shape[:-1]))
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        elif kind == "moving_variance":
            value = np.ones(shape, np.float32)
        elif kind == "moving_mean":
            value = np.zeros(shape, np.float32)
        else:  # beta, biases
            value = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
        out[name] = value
    return out
