"""Aurora-FM features: the 512 values of Johnson et al. (2021)'s SimCLR ResNet-18, as themisim.

Aurora-FM is a ResNet-18 trained self-supervised (SimCLR) on THEMIS all-sky frames
(arXiv:2109.13899; weights ``aurora-fm-no-finetune.tar``, Hugging Face
``Jwjohnson314/Aurora-FM``, CC-BY-4.0).  themisim embeds the THEMIS archive with it,
and is the reference these features equal.  Its input from one raw 16-bit frame, as
the Berkeley CDF holds it, is (themisim ``preprocess.py``):

1. float32; subtract the 1st percentile; divide by the 99th percentile of the result
   when it is above 0 (else a min..max stretch, or zeros for a flat frame); clip to
   ``[0, 1]``; zero outside a disc of radius ``int(0.85 * 128)`` about (128, 128);
2. that value as the green band of an RGB image (red and blue 0), ``uint8(x * 255)``;
3. torchvision ``Resize(224)`` (PIL bilinear, antialiased), then ``x / 255``.

How oathcube splits it
----------------------
Step 1 and the byte of step 2 are a recorded preparation of the station's frames,
made at ingest: :meth:`oathcube.rawprep.RawPreparation.aurora_fm` stores exactly
themisim's bytes (proven equal on the real Gakona CDF), in the cube's orientation.
This extractor does the rest on what the cube stores: it turns each frame by 180 deg
back to the CDF's orientation (the cube holds CDF frames turned, see
:mod:`oathcube.archive.orientation`; the network is not rotation-invariant and was
trained on the CDF's), resizes it with PIL to 224 x 224, divides by 255, and runs
the network on that green band alone (:mod:`oathcube.features.resnet_net`).  A
station prepared otherwise (the default OATH-like preparation) gets features of
its own stored frames through the same steps 2-3; they are Aurora-FM features of
another stretch, not themisim's embedding, and the computation warns so.

The labelled OATH images are 8-bit PNGs already scaled and cropped by OATH: their
bytes stand where themisim's byte stands, turned by 180 deg like every cube frame;
OATH's ``rotAng`` is not applied (it turns images to the paper's north-up for
Inception-v4; Aurora-FM was trained on unrotated frames).

The checkpoint is read by :mod:`oathcube.features.torch_weights`, which runs no code
from the file; every encoder parameter's name and shape is checked, and the file's
SHA-256 is recorded and compared as Inception-v4's is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, FeatureError
from . import Calibration, FeatureSpec
from .network import NetworkExtractor, configure_threads, describe_network, file_list
from .resnet_net import (
    ENCODER_PREFIX,
    INPUT_SIZE,
    N_FEATURES,
    OUTPUT,
    ResNet18Net,
    build_resnet18,
    encoder_shapes,
    random_encoder,
)
from .settings import AuroraFMSettings, settings_for

__all__ = [
    "CHECKPOINT_ENV",
    "CHECKPOINT_URL",
    "PREPROCESSING",
    "AuroraFMExtractor",
    "load_encoder",
    "preprocess",
    "resolve_checkpoint",
]

CHECKPOINT_ENV = "OATHCUBE_AURORA_FM_CHECKPOINT"
CHECKPOINT_URL = (
    "https://huggingface.co/Jwjohnson314/Aurora-FM/resolve/main/aurora-fm-no-finetune.tar"
)
#: The unused SimCLR projection head, allowed beside the encoder in the checkpoint.
PROJECTOR_SHAPES: dict[str, tuple[int, ...]] = {
    "projector.0.weight": (512, 512),
    "projector.2.weight": (64, 512),
}

PREPROCESSING = (
    "cube frames as stored (themisim's bytes where the station is prepared with "
    "RawPreparation.aurora_fm()) -> turned 180 deg to the Berkeley CDF's orientation -> "
    "PIL bilinear resize to 224x224 (torchvision Resize(224)) -> x/255 -> green band of "
    "an RGB input whose red and blue are 0 [themisim preprocess_frame]"
)
RANDOM_WEIGHTS_WARNING = "features from RANDOM weights, not the released Aurora-FM checkpoint"


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """Cube pixels -> the network's input: turned 180 deg, resized to 224 by PIL, ``/ 255``.

    Parameters
    ----------
    pixels
        uint8 ``(n, y, x)`` (or ``(n, y, x, 1)``) frames as the cube stores them.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, 224, 224, 1)`` in ``[0, 1]``: the green band of themisim's input.

    Raises
    ------
    FeatureError
        Pixels that are not one-band uint8 frames (an RGB station among them).
    """
    from PIL import Image

    pixels = np.asarray(pixels)
    if pixels.ndim == 4 and pixels.shape[3] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise FeatureError(
            f"Aurora-FM takes one-band uint8 frames, not {pixels.dtype} {pixels.shape}",
            expected="(n, y, x) uint8: Aurora-FM was trained on THEMIS frames, one band "
            "(an RGB station has three)",
        )
    out = np.empty((len(pixels), INPUT_SIZE, INPUT_SIZE, 1), np.float32)
    for i, frame in enumerate(pixels):
        # The turn is exact (only the order of pixels changes); PIL's resize of one
        # band is its resize of the green band of an RGB image whose other bands are 0.
        image = Image.fromarray(np.ascontiguousarray(frame[::-1, ::-1]), mode="L")
        resized = image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
        # torchvision's ToTensor divides by 255 (not a multiply by 1/255).
        np.divide(np.asarray(resized, np.float32), np.float32(255), out=out[i, :, :, 0])
    return out


def resolve_checkpoint(checkpoint: str | os.PathLike[str] | None) -> str:
    """The checkpoint to use: ``checkpoint``, else ``$OATHCUBE_AURORA_FM_CHECKPOINT``,
    else the one ``oathcube fetch aurora-fm`` put in the data folder.

    Raises
    ------
    CheckpointError
        If none is there, saying where the released checkpoint comes from.
    """
    from ..datadir import aurora_fm_dir, fetched_aurora_fm

    if checkpoint is None or str(checkpoint) == "":
        checkpoint = os.environ.get(CHECKPOINT_ENV) or fetched_aurora_fm()
    if checkpoint is None:
        raise CheckpointError(
            f"no Aurora-FM checkpoint given, and none in {aurora_fm_dir()}. Run `oathcube "
            f"fetch aurora-fm` once, or download {CHECKPOINT_URL} and give its path as "
            f"`checkpoint` or set {CHECKPOINT_ENV}",
            parameter="checkpoint",
            expected="a path to aurora-fm-no-finetune.tar",
        )
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(
            "no such file", path=path, expected="aurora-fm-no-finetune.tar (a torch state dict)"
        )
    return os.fspath(checkpoint)


def _sha256(path: str) -> str:
    from ..fetch.http import sha256_of

    return sha256_of(Path(path))


def load_encoder(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The encoder's parameters from an Aurora-FM checkpoint, every name and shape checked.

    Parameters
    ----------
    path
        A torch state dict of the SimCLR wrapper (``encoder.*`` and ``projector.*``).

    Returns
    -------
    dict
        torchvision names (without ``encoder.``) -> float32 arrays.

    Raises
    ------
    CheckpointError
        A file that is not a torch state dict, carries anything but tensors, or
        lacks, adds or mis-shapes a parameter (named in one line).
    """
    from .torch_weights import check_keys, read_state_dict

    weights = read_state_dict(path)
    expected = {ENCODER_PREFIX + k: v for k, v in encoder_shapes().items()}
    expected.update(PROJECTOR_SHAPES)
    # The projector is optional (an encoder saved alone is the same network).
    present = {k: v for k, v in expected.items() if k in weights or k not in PROJECTOR_SHAPES}
    check_keys(weights, present, path)
    return {
        k.removeprefix(ENCODER_PREFIX): np.asarray(weights[k], np.float32)
        for k in expected
        if k.startswith(ENCODER_PREFIX)
    }


class AuroraFMExtractor(NetworkExtractor):
    """Aurora-FM's 512 features of cube images (see the module docstring).

    Parameters
    ----------
    settings
        :class:`~oathcube.features.settings.AuroraFMSettings` (default: the defaults).
    calibration
        For ``int8``: the cube frames that calibrate the quantisation.

    Raises
    ------
    CheckpointError
        No checkpoint, an unreadable one, or one that is not Aurora-FM's network.
    FeatureError
        An engine that is not installed or lacks the precision, or int8 without
        calibration frames.
    """

    name = "aurora_fm"
    dim = "embedding"
    n_features = N_FEATURES
    output = OUTPUT
    input_shape = (INPUT_SIZE, INPUT_SIZE, 1)

    def __init__(
        self,
        settings: AuroraFMSettings | None = None,
        *,
        calibration: Calibration | None = None,
    ) -> None:
        settings = AuroraFMSettings() if settings is None else settings
        self._start(settings, self.describe(settings), calibration)
        if self.random_weights:
            encoder = random_encoder()
        else:
            assert self.checkpoint is not None  # resolved by describe
            encoder = load_encoder(self.checkpoint)
        self.threads = configure_threads(settings.threads, strict=settings.threads is not None)
        # OpenVINO runs bf16 itself: it gets the float32 graph.
        tensorflow = self.engine_name == "tensorflow"
        net: ResNet18Net = build_resnet18(precision=self.precision if tensorflow else "fp32")
        net.load(encoder)
        del encoder
        # Calibration frames are made the input as any frame is (rot_angle is not used).
        self._run_on(net, lambda pixels, _angles: preprocess(pixels), calibration)

    @classmethod
    def describe(cls, settings: AuroraFMSettings | None = None) -> FeatureSpec:
        """Check the settings and say what the extractor computes, without building it.

        The checkpoint is resolved and hashed (its SHA-256 is a value setting);
        neither TensorFlow nor the network is touched.

        Raises
        ------
        CheckpointError
            No checkpoint given or found.
        FeatureError
            An engine that is not installed or lacks the precision, or bf16 that
            this CPU would not run as bf16.
        """
        settings, attrs = describe_network(
            settings_for("aurora_fm", settings, AuroraFMSettings),
            resolve=resolve_checkpoint,
            files=file_list,
            hasher=_sha256,
            model="Aurora-FM: SimCLR ResNet-18 encoder (Johnson et al. 2021, "
            "arXiv:2109.13899), as themisim embeds THEMIS frames",
            preprocessing=PREPROCESSING,
            warning=RANDOM_WEIGHTS_WARNING,
        )
        return FeatureSpec(
            name=cls.name,
            dim=cls.dim,
            n_features=N_FEATURES,
            attrs=attrs,
            settings=settings,
            threaded=True,
        )

    def __call__(self, pixels: np.ndarray, rot_angle: np.ndarray | None = None) -> np.ndarray:
        """Features of ``n`` cube images (``rot_angle`` is not applied; see the module).

        Parameters
        ----------
        pixels
            uint8 ``(n, y, x)`` as stored in the cube.
        rot_angle
            Ignored: Aurora-FM takes frames unrotated.

        Returns
        -------
        numpy.ndarray
            float32 ``(n, 512)``.
        """
        pixels = np.asarray(pixels)
        step = self.batch_size
        # A generator: an asynchronous engine runs one batch while the next is prepared.
        batches = (preprocess(pixels[i : i + step]) for i in range(0, len(pixels), step))
        return self._infer(batches, len(pixels))
