"""The ResNet-18 encoder of Aurora-FM in Keras 3, loaded from torchvision's parameter names.

Aurora-FM (Johnson et al. 2021) is torchvision's ``resnet18(weights=None)`` with its
``fc`` replaced by an identity, so its output is the 512 values of the global
average pool.  The network here is that encoder at inference, built from what
torchvision's ``models/resnet.py`` documents: a 7x7 stride-2 convolution (padding
3), batch norm (epsilon 1e-5), ReLU, a 3x3 stride-2 max pool (padding 1), four
stages of two ``BasicBlock``s (3x3 convolutions, padding 1; the first block of
stages 2-4 strides by 2 and adds a 1x1 stride-2 convolution + batch norm to its
shortcut), and a global average pool.  Keras lays tensors out as NHWC and pads
``"same"`` asymmetrically when it strides, so every strided convolution gets
torchvision's symmetric zero padding explicitly (``ZeroPadding2D`` then
``"valid"``); the max pool's padding is zeros too, which equals torch's
``-inf`` padding because it follows a ReLU (no value below 0 to lose to a pad).

Two choices that change nothing but round-off, and make it faster:

* batch norm is folded into each convolution when the weights are loaded
  (kernel ``w * s``, bias ``beta - mean * s``, ``s = gamma / sqrt(var + eps)``, in
  float64), so oneDNN and OpenVINO run one fused convolution + bias (+ ReLU);
* Aurora-FM's input has its red and blue bands at zero (themisim puts the frame
  in the green band of an RGB image), so the network takes that green band
  alone, ``(n, 224, 224, 1)``, and its first convolution keeps only the green
  input channel of the kernel: the products with zero are not computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "BN_EPSILON",
    "ENCODER_PREFIX",
    "INPUT_SIZE",
    "N_FEATURES",
    "OUTPUT",
    "ResNet18Net",
    "build_resnet18",
    "encoder_shapes",
    "random_encoder",
]

BN_EPSILON = 1e-5
INPUT_SIZE = 224
N_FEATURES = 512
#: The endpoint (output name) of the network.
OUTPUT = "embedding"
#: Where the encoder's parameters are in Aurora-FM's state dict (the SimCLR wrapper).
ENCODER_PREFIX = "encoder."
#: The input band Aurora-FM's frames are in (red 0, green 1, blue 2).
GREEN = 1

_BN_KINDS = ("weight", "bias", "running_mean", "running_var")
#: (stage, input channels, output channels, stride of its first block)
_STAGES = ((1, 64, 64, 1), (2, 64, 128, 2), (3, 128, 256, 2), (4, 256, 512, 2))


def _convs() -> list[tuple[str, str, int, int, int, int, int]]:
    """Every convolution: (its name, its batch norm's name, in, out, kernel, stride, padding)."""
    out = [("conv1", "bn1", 3, 64, 7, 2, 3)]
    for stage, cin, cout, stride in _STAGES:
        for block in (0, 1):
            name = f"layer{stage}.{block}"
            first_in, first_stride = (cin, stride) if block == 0 else (cout, 1)
            out.append((f"{name}.conv1", f"{name}.bn1", first_in, cout, 3, first_stride, 1))
            out.append((f"{name}.conv2", f"{name}.bn2", cout, cout, 3, 1, 1))
            if block == 0 and (stride != 1 or cin != cout):
                out.append(
                    (f"{name}.downsample.0", f"{name}.downsample.1", cin, cout, 1, stride, 0)
                )
    return out


def encoder_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter and buffer of torchvision's ResNet-18 without ``fc``: name -> shape.

    The names are torchvision's (``conv1.weight``, ``layer2.0.downsample.1.running_var``,
    ``bn1.num_batches_tracked``, ...), in the order its ``state_dict()`` lists them.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for conv, bn, cin, cout, k, _, _ in _convs():
        shapes[f"{conv}.weight"] = (cout, cin, k, k)
        for kind in _BN_KINDS:
            shapes[f"{bn}.{kind}"] = (cout,)
        shapes[f"{bn}.num_batches_tracked"] = ()
    # torchvision lists a block's downsample after its conv2/bn2, as _convs does.
    return shapes


def random_encoder(seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random parameters of the encoder, none of them an identity.

    Convolutions are He-normal (so activations neither vanish nor explode through
    18 layers); batch-norm scale, shift, mean and variance are all random, so that
    no batch norm is the identity and a wrong folding or a swapped buffer shows.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in encoder_shapes().items():
        kind = name.rsplit(".", 1)[-1]
        if kind == "num_batches_tracked":
            out[name] = np.array(1000, dtype=np.int64)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            out[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        elif kind == "weight":
            out[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif kind == "running_var":
            out[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:  # bias, running_mean
            out[name] = rng.normal(0.0, 0.2, shape).astype(np.float32)
    return out


class ResNet18Net:
    """A Keras ResNet-18 encoder and the map from its layers to torchvision's names.

    Build it with :func:`build_resnet18`, fill it with :meth:`load`, run it with
    :meth:`predict` or hand :meth:`function` to an engine.

    Attributes
    ----------
    model
        The ``keras.Model``; its output is ``{OUTPUT: (n, 512)}``.
    precision
        ``"fp32"`` or ``"bf16"`` (computations in bfloat16, outputs float32).
    """

    def __init__(self, model: Any, convs: dict[str, Any], precision: str) -> None:
        self.model = model
        self.precision = precision
        self._convs = convs
        self._function: Any = None

    def load(self, encoder: Mapping[str, np.ndarray]) -> None:
        """Set the weights from torchvision-named parameters (shapes already checked).

        Parameters
        ----------
        encoder
            ``name -> array`` as :func:`encoder_shapes` names them (without the
            ``encoder.`` prefix of the SimCLR wrapper).
        """
        for conv, bn, *_ in _convs():
            kernel = np.asarray(encoder[f"{conv}.weight"], np.float64)
            gamma, beta, mean, var = (
                np.asarray(encoder[f"{bn}.{kind}"], np.float64) for kind in _BN_KINDS
            )
            scale = gamma / np.sqrt(var + BN_EPSILON)
            # torch (out, in, kh, kw) -> Keras (kh, kw, in, out); batch norm folded in float64.
            folded = np.transpose(kernel * scale[:, None, None, None], (2, 3, 1, 0))
            if conv == "conv1":
                folded = folded[:, :, GREEN : GREEN + 1, :]
            self._convs[conv].set_weights(
                [folded.astype(np.float32), (beta - mean * scale).astype(np.float32)]
            )
        self._function = None

    def function(self) -> Any:
        """A ``tf.function`` of the network for float32 ``(None, 224, 224, 1)`` green bands."""
        import tensorflow as tf

        if self._function is None:
            model = self.model

            def run(x: Any) -> dict[str, Any]:
                out = model(x, training=False)
                return {k: tf.cast(v, tf.float32) for k, v in out.items()}

            self._function = tf.function(
                run,
                input_signature=[
                    tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 1], tf.float32, name="images")
                ],
            )
        return self._function

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on ``(n, 224, 224, 1)`` float32 green bands in ``[0, 1]``."""
        out = self.function()(np.ascontiguousarray(images, dtype=np.float32))
        return {k: v.numpy() for k, v in out.items()}


def build_resnet18(*, precision: str = "fp32") -> ResNet18Net:
    """Build the Aurora-FM encoder (inference only, batch norm folded), weights not yet set.

    Parameters
    ----------
    precision
        ``"fp32"``, or ``"bf16"`` for Keras' ``mixed_bfloat16`` policy (float32
        weights, bfloat16 arithmetic) on this network only; the pool runs in float32.

    Returns
    -------
    ResNet18Net
    """
    import keras

    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}")
    dtype = keras.DTypePolicy("mixed_bfloat16" if precision == "bf16" else "float32")
    layers = keras.layers
    convs: dict[str, Any] = {}

    def conv(x: Any, name: str, filters: int, kernel: int, stride: int, pad: int) -> Any:
        # Keras 3 refuses "." in layer names.
        label = name.replace(".", "-")
        if stride > 1 and pad:
            x = layers.ZeroPadding2D(pad, name=label + "-pad", dtype=dtype)(x)
            padding = "valid"
        else:
            # Stride 1: "same" pads kernel // 2 on every side, as torchvision does.
            padding = "same" if pad else "valid"
        layer = layers.Conv2D(
            filters, kernel, strides=stride, padding=padding, name=label, dtype=dtype
        )
        convs[name] = layer
        return layer(x)

    relu = layers.ReLU
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="images", dtype="float32")
    x = relu(name="relu", dtype=dtype)(conv(inputs, "conv1", 64, 7, 2, 3))
    x = layers.ZeroPadding2D(1, name="maxpool-pad", dtype=dtype)(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool", dtype=dtype)(x)
    for stage, cin, cout, stride in _STAGES:
        for block in (0, 1):
            name = f"layer{stage}.{block}"
            block_stride = stride if block == 0 else 1
            y = relu(name=f"{name}-relu1".replace(".", "-"), dtype=dtype)(
                conv(x, f"{name}.conv1", cout, 3, block_stride, 1)
            )
            y = conv(y, f"{name}.conv2", cout, 3, 1, 1)
            shortcut = x
            if block == 0 and (stride != 1 or cin != cout):
                shortcut = conv(x, f"{name}.downsample.0", cout, 1, stride, 0)
            x = layers.Add(name=f"{name}-add".replace(".", "-"), dtype=dtype)([y, shortcut])
            x = relu(name=f"{name}-relu2".replace(".", "-"), dtype=dtype)(x)
    embedding = layers.GlobalAveragePooling2D(name="avgpool", dtype="float32")(x)
    model = keras.Model(inputs, {OUTPUT: embedding}, name="AuroraFM_ResNet18")
    return ResNet18Net(model, convs, precision)
