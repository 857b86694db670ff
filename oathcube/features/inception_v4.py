"""Inception-v4 features as the OATH paper computed them (TF-slim ``inception_v4.ckpt``).

The image chain is the one ``../shared/reference/README.md`` encodes, which is
slim's ``inception_preprocessing`` at evaluation as TF_FeatureExtraction ran it:

1. rotate by the image's ``rotAng`` as OATH's ``rotate.sh`` does
   (:func:`oathcube.imaging.rotate_like_oath`);
2. RGB (a greyscale frame repeated into three bands), float32 ``x * (1/255)``
   (TF's ``convert_image_dtype``);
3. ``central_crop(0.875)`` (for 256 px: rows and columns 16..239);
4. bilinear resize to 299 x 299 with TF1 semantics (``align_corners=False``,
   ``half_pixel_centers=False``: ``tf.compat.v1.image.resize_bilinear``);
5. ``(x - 0.5) * 2``;
6. the network, endpoint ``Logits`` (1001 values, pre-softmax) by default.

Steps 1-5 run in NumPy, outside the engine, so that one dask thread prepares a
batch while the network runs another.  The network is built and loaded in
TensorFlow and then runs on an engine (:mod:`oathcube.features.engines`):
OpenVINO (the default, converted in-process) or TensorFlow itself; both are
proven equal to slim by the same tests.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CheckpointError, FeatureError
from ..imaging import rotate_like_oath, to_rgb
from . import Calibration, FeatureSpec
from .engines import bf16_native, cpu_flags
from .inception_net import (
    INPUT_SIZE,
    InceptionV4Net,
    build_inception_v4,
    checkpoint_files,
    checkpoint_sha256,
    random_variables,
    read_checkpoint,
)
from .network import NetworkExtractor, configure_threads, describe_network
from .settings import LAYERS, PRECISIONS, InceptionV4Settings, settings_for

__all__ = [
    "CHECKPOINT_ENV",
    "CENTRAL_FRACTION",
    "LAYERS",
    "PRECISIONS",
    "RELEASED_CHECKPOINT_URL",
    "InceptionV4Extractor",
    "bf16_native",
    "central_crop_box",
    "configure_threads",
    "cpu_flags",
    "preprocess",
    "resize_bilinear_tf1",
    "resolve_checkpoint",
]

CHECKPOINT_ENV = "OATHCUBE_INCEPTION_V4_CHECKPOINT"
RELEASED_CHECKPOINT_URL = "http://download.tensorflow.org/models/inception_v4_2016_09_09.tar.gz"
CENTRAL_FRACTION = 0.875

# LAYERS (endpoint -> cube dimension, length) and PRECISIONS live with the settings.

PREPROCESSING = (
    "rotate_like_oath(rot_angle) -> RGB -> float32 x/255 -> central_crop(0.875) -> "
    "bilinear resize to 299x299 (TF1: align_corners=False, half_pixel_centers=False) -> "
    "(x-0.5)*2 [TF-slim inception_preprocessing, eval]"
)

RANDOM_WEIGHTS_WARNING = "features from RANDOM weights, not the released checkpoint"


def central_crop_box(size: int, fraction: float = CENTRAL_FRACTION) -> tuple[int, int]:
    """Start and length of ``tf.image.central_crop`` along one axis of ``size`` pixels."""
    # TF truncates the margin to an int and keeps what is left between the margins.
    start = int((size - size * fraction) / 2)
    return start, size - 2 * start


def _interp_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # TF1 "legacy" scaler: source = dst * (in/out), both in float32, no half-pixel shift.
    scale = np.float32(in_size / out_size)
    src = np.arange(out_size, dtype=np.float32) * scale
    low = np.floor(src)
    lower = np.maximum(low.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    return lower, upper, (src - low).astype(np.float32)


def resize_bilinear_tf1(images: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """``tf.compat.v1.image.resize_bilinear(images, [size, size])`` in NumPy, float32.

    Parameters
    ----------
    images
        ``(n, y, x, band)`` float32.
    size
        Output height and width.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size, band)`` float32, computed in the same order as TF's
        kernel (top and bottom rows interpolated along x, then along y).
    """
    images = np.asarray(images, dtype=np.float32)
    y0, y1, fy = _interp_weights(images.shape[1], size)
    x0, x1, fx = _interp_weights(images.shape[2], size)
    # TF interpolates the two source rows of every output row along x, then
    # along y.  Interpolating every source row along x once and picking rows
    # afterwards gives the same bits with a third of the gathers.
    left, right = images[:, :, x0], images[:, :, x1]
    rows = left + (right - left) * fx[None, None, :, None]
    top, bottom = rows[:, y0], rows[:, y1]
    return top + (bottom - top) * fy[None, :, None, None]


def preprocess(pixels: np.ndarray, rot_angle: np.ndarray | None = None) -> np.ndarray:
    """The OATH / TF-slim image chain: cube pixels -> network input.

    Parameters
    ----------
    pixels
        uint8 ``(n, y, x)`` (greyscale) or ``(n, y, x, 3)``.
    rot_angle
        ``(n,)`` degrees, positive = clockwise on screen, or None for no rotation
        (images that are already rotated, like the reference ``_rot`` PNGs).

    Returns
    -------
    numpy.ndarray
        float32 ``(n, 299, 299, 3)`` in ``[-1, 1]``.

    Raises
    ------
    FeatureError
        If the pixels are not uint8 images or an angle is not finite.
    """
    pixels = np.asarray(pixels)
    if (
        pixels.dtype != np.uint8
        or pixels.ndim not in (3, 4)
        or (pixels.ndim == 4 and pixels.shape[3] not in (1, 3, 4))
    ):
        raise FeatureError(
            f"cannot prepare pixels of dtype {pixels.dtype} and shape {pixels.shape}",
            expected="uint8 (n, y, x) or (n, y, x, 3)",
        )
    n = pixels.shape[0]
    if rot_angle is not None:
        rot_angle = np.asarray(rot_angle, dtype=np.float64).reshape(-1)
        if rot_angle.shape != (n,):
            raise FeatureError(
                f"{rot_angle.shape[0]} rotation angles for {n} images",
                expected="one rot_angle per image",
            )
        bad = np.flatnonzero(~np.isfinite(rot_angle))
        if bad.size:
            raise FeatureError(
                f"rot_angle is not a finite number for image {int(bad[0])} of the batch",
                expected="degrees, as rotAng in classifications.csv",
            )
    ys, ny = central_crop_box(pixels.shape[1])
    xs, nx = central_crop_box(pixels.shape[2])
    # Greyscale frames go through the chain as one band and become RGB at the
    # end: every step acts on each band alone, so the result is the same.
    bands = 1 if pixels.ndim == 3 else 3
    cropped = np.empty((n, ny, nx, bands), dtype=np.float32)
    # convert_image_dtype multiplies by 1/255 rather than dividing: same bits as TF.
    inv = np.float32(1.0 / 255.0)
    for i in range(n):
        image = pixels[i]
        if rot_angle is not None and rot_angle[i] % 360 != 0:
            image = rotate_like_oath(image, float(rot_angle[i]))
        image = image[:, :, None] if bands == 1 else to_rgb(image)
        np.multiply(image[ys : ys + ny, xs : xs + nx], inv, out=cropped[i], dtype=np.float32)
    out = resize_bilinear_tf1(cropped, INPUT_SIZE)
    out -= np.float32(0.5)
    out *= np.float32(2.0)
    if bands == 1:
        out = np.repeat(out, 3, axis=3)
    return out


def resolve_checkpoint(checkpoint: str | os.PathLike[str] | None) -> str:
    """The checkpoint to use: ``checkpoint``, else ``$OATHCUBE_INCEPTION_V4_CHECKPOINT``,
    else the one ``oathcube fetch checkpoint`` put in the data folder.

    Raises
    ------
    CheckpointError
        If none is there, saying where the released checkpoint comes from.
    """
    from ..datadir import checkpoint_dir, fetched_checkpoint

    if checkpoint is None or str(checkpoint) == "":
        checkpoint = os.environ.get(CHECKPOINT_ENV) or fetched_checkpoint()
    if checkpoint is None:
        raise CheckpointError(
            "no Inception-v4 checkpoint given, and none in "
            f"{checkpoint_dir()}. The features of the OATH paper come from "
            "inception_v4.ckpt in inception_v4_2016_09_09.tar.gz of the TF-slim model zoo "
            f"({RELEASED_CHECKPOINT_URL}). Run `oathcube fetch checkpoint` once, or download "
            f"and unpack it, then give PATH/inception_v4.ckpt as `checkpoint` or set "
            f"{CHECKPOINT_ENV}",
            parameter="checkpoint",
            expected="a path to inception_v4.ckpt",
        )
    return os.fspath(checkpoint)


class InceptionV4Extractor(NetworkExtractor):
    """TF-slim Inception-v4 features of cube images (see the module docstring).

    Parameters
    ----------
    settings
        :class:`~oathcube.features.settings.InceptionV4Settings` (default: the
        defaults): checkpoint, layer, precision, batch size, random weights,
        threads, engine, int8 calibration group and size.
    calibration
        For ``int8``: the cube frames that calibrate the quantisation, read by
        the feature computation (:func:`oathcube.features.compute.read_calibration`).

    Raises
    ------
    CheckpointError
        No checkpoint, an unreadable one, or one whose variables are not the
        slim Inception-v4's (all missing and mis-shaped variables are listed).
    FeatureError
        An engine that is not installed or lacks the precision, or int8 without
        calibration frames.
    """

    name = "inception_v4"
    output = "Logits"
    input_shape = (INPUT_SIZE, INPUT_SIZE, 3)

    def __init__(
        self,
        settings: InceptionV4Settings | None = None,
        *,
        calibration: Calibration | None = None,
    ) -> None:
        # Every check (and the checkpoint's hash) runs before TensorFlow is imported,
        # so a bad setting or a missing checkpoint fails in milliseconds.
        settings = InceptionV4Settings() if settings is None else settings
        self._start(settings, self.describe(settings), calibration)
        self.layer = self.output = settings.layer
        self.dim, self.n_features = LAYERS[self.layer]
        # TensorFlow builds and traces the network for every engine; one process has one
        # intra-op pool, set once, so it is sized for the TensorFlow engine either way.
        self.threads = configure_threads(settings.threads, strict=settings.threads is not None)
        # OpenVINO runs bf16 itself: it gets the float32 graph.
        tensorflow = self.engine_name == "tensorflow"
        net: InceptionV4Net = build_inception_v4(
            [self.layer], precision=self.precision if tensorflow else "fp32"
        )
        if self.random_weights:
            values = random_variables(net.variables)
        else:
            assert self.checkpoint is not None  # resolved by describe unless random_weights
            values = read_checkpoint(self.checkpoint, net.required_variables(), net.variables)
        net.load(values)
        del values
        self._run_on(net, preprocess, calibration)

    @classmethod
    def describe(cls, settings: InceptionV4Settings | None = None) -> FeatureSpec:
        """Check the settings and say what the extractor computes, without building it.

        The checkpoint is resolved and hashed (its SHA-256 is a value setting);
        neither TensorFlow nor the network is touched.  For ``int8`` the
        calibration frames are not read here: the feature computation reads them
        from its cube and records them (:meth:`FeatureSpec.calibrated`).

        Raises
        ------
        CheckpointError
            No checkpoint given or found.
        FeatureError
            An engine that is not installed or lacks the precision, or bf16 that
            this CPU would not run as bf16.
        """
        settings, attrs = describe_network(
            settings_for("inception_v4", settings, InceptionV4Settings),
            resolve=resolve_checkpoint,
            files=checkpoint_files,
            hasher=checkpoint_sha256,
            model="TF-slim inception_v4 (Szegedy et al. 2016), as used by Clausen & "
            "Nickisch (2018)",
            preprocessing=PREPROCESSING,
            warning=RANDOM_WEIGHTS_WARNING,
        )
        dim, n = LAYERS[settings.layer]
        return FeatureSpec(
            name=cls.name, dim=dim, n_features=n, attrs=attrs, settings=settings, threaded=True
        )

    def __call__(self, pixels: np.ndarray, rot_angle: np.ndarray | None) -> np.ndarray:
        """Features of ``n`` cube images.

        Parameters
        ----------
        pixels
            uint8 ``(n, y, x)`` or ``(n, y, x, 3)``, as stored in the cube.
        rot_angle
            ``(n,)`` OATH rotation angles in degrees (positive = clockwise), or
            None for images that need no rotation.

        Returns
        -------
        numpy.ndarray
            float32 ``(n, n_features)``.
        """
        pixels = np.asarray(pixels)
        n = pixels.shape[0]
        angles = None if rot_angle is None else np.asarray(rot_angle).reshape(-1)
        if angles is not None and angles.shape[0] != n:
            raise FeatureError(
                f"{angles.shape[0]} rotation angles for {n} images",
                expected="one rot_angle per image",
            )
        # A generator: an asynchronous engine runs one batch while the next is prepared.
        batches = (
            preprocess(
                pixels[start : start + self.batch_size],
                None if angles is None else angles[start : start + self.batch_size],
            )
            for start in range(0, n, self.batch_size)
        )
        return self._infer(batches, n)
