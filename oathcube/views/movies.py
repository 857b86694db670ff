"""Movies of a station's frames, each captioned with its UTC time, predicted class and score.

Frames are drawn in the cube's orientation with row 0 at the top (north up, east left:
the sky seen from below), scaled up by a whole factor to at least 256 px wide, above a
caption band: ``YYYY-MM-DD HH:MM:SS UTC`` on the first line, the class (in its colour)
and the model's decision score for it on the second.  MP4 (H.264) is written by
ffmpeg through imageio (the ``imageio-ffmpeg`` wheel carries the binary), one frame at
a time; GIF by Pillow.  Either goes to a hidden temporary name first and is renamed
into place only when complete.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..cube.store import Cube, CubeLike
from ..errors import OptionError
from ..outputs import check_output, replacing
from ._common import Classes, classes_of, require_one_band, station_range

__all__ = ["movie", "caption_frame", "MOVIE_SUFFIXES", "CAPTION_HEIGHT"]

log = logging.getLogger(__name__)

MOVIE_SUFFIXES = (".mp4", ".gif")
#: Height of the caption band below each frame, in pixels (a multiple of 16, for H.264).
CAPTION_HEIGHT = 48
#: Frames a movie may hold: a night at 3 s is ~5,000; beyond this, ask for a shorter range.
MAX_FRAMES = 20_000


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def caption_frame(
    frame: np.ndarray, time: np.datetime64, label: str, score: float, scale: int, station: str
) -> np.ndarray:
    """One movie frame: ``frame`` scaled by ``scale`` above a caption band, ``uint8`` RGB.

    Parameters
    ----------
    frame
        ``(y, x)`` ``uint8`` frame in the cube's orientation (row 0 drawn at the top).
    time, label, score
        The caption: UTC time, predicted class (``unclassified`` for none) and its score.
    scale
        Whole factor by which the frame is enlarged (nearest neighbour).
    station
        Station code, shown beside the time.
    """
    from PIL import Image, ImageDraw

    from .figures import class_color

    big = np.repeat(np.repeat(np.asarray(frame, dtype=np.uint8), scale, 0), scale, 1)
    h, w = big.shape
    width = -(-w // 16) * 16  # H.264 wants sizes in multiples of 16
    out = np.zeros((h + CAPTION_HEIGHT, width, 3), dtype=np.uint8)
    out[:h, :w] = big[..., None]
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    stamp = str(np.asarray(time).astype("datetime64[s]")).replace("T", " ")
    draw.text((6, h + 4), f"{station} {stamp} UTC", fill=(255, 255, 255), font=_font(15))
    if label == "unclassified":
        text, colour = "not classified", (160, 160, 160)
    else:
        text = f"{label}  score {score:+.2f}" if np.isfinite(score) else label
        colour = _rgb(class_color(label))
    draw.rectangle((6, h + 27, 18, h + 39), fill=colour)
    draw.text((24, h + 24), text, fill=colour, font=_font(15))
    return np.asarray(image)


def _scale_for(width: int) -> int:
    return max(1, -(-256 // max(1, width)))


def check_fps(fps: float) -> float:
    """Refuse a frame rate outside 0.1..120 per second."""
    value = float(fps)
    if not 0.1 <= value <= 120:
        raise OptionError(f"{fps} frames per second", parameter="fps", expected="0.1 to 120")
    return value


def movie(
    cube: CubeLike,
    station: str,
    *,
    start: Any,
    end: Any,
    out: str | os.PathLike[str],
    fps: float = 10.0,
    model: str | None = None,
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Path:
    """Write a captioned movie of a station's frames from ``start`` to ``end``.

    Parameters
    ----------
    cube
        Path, URL or :class:`~oathcube.cube.store.Cube`.
    station
        Station code.
    start, end
        Time range (inclusive).
    out
        ``FILE.mp4`` (H.264 through ffmpeg) or ``FILE.gif``.
    fps
        Frames per second of the movie.
    model
        Whose predictions caption the frames (default: the only one; none is fine).
    progress
        Show a progress bar.
    storage_options
        fsspec options of a cube at a URL (credentials, an endpoint), as for
        :meth:`~oathcube.cube.store.Cube.open`; or pass a Cube that carries them.

    Returns
    -------
    pathlib.Path
        The movie written.

    Raises
    ------
    OptionError
        A bad suffix, frame rate or time, or more than ``MAX_FRAMES`` frames.
    CubeError
        No such station or no frames in the range.
    """
    path = check_output(out, MOVIE_SUFFIXES)
    fps = check_fps(fps)
    opened = Cube.open(cube, storage_options=storage_options)
    ds, _, _ = station_range(opened, station, start, end)
    require_one_band(ds, opened, station, "movie")
    n = ds.sizes["time"]
    if n > MAX_FRAMES:
        raise OptionError(
            f"{n} frames between {start} and {end}",
            parameter="start/end",
            expected=f"at most {MAX_FRAMES} frames: a shorter range",
        )
    classes = classes_of(ds, opened, model)
    with replacing(path) as tmp:
        if path.suffix.lower() == ".mp4":
            _write_mp4(ds, classes, station, tmp, fps, progress)
        else:
            _write_gif(ds, classes, station, tmp, fps, progress)
    log.info("%s: %d frames in %s", station, n, path)
    return path


def _frames(ds: Any, classes: Classes, station: str, progress: bool) -> Any:
    """Captioned frames one at a time, reading the cube a chunk at a time."""
    from tqdm.auto import tqdm

    pixels = ds["pixels"]
    times = ds["time"].values
    scale = _scale_for(pixels.shape[2])
    step = int(pixels.encoding.get("chunks", (256,))[0]) or 256
    bar = tqdm(
        total=len(times),
        desc=f"{station} movie",
        unit="frame",
        disable=not progress,
        file=sys.stderr,
    )
    try:
        for lo in range(0, len(times), step):
            block = pixels.isel(time=slice(lo, lo + step)).values
            for j, frame in enumerate(block):
                i = lo + j
                yield caption_frame(
                    frame, times[i], str(classes.names[i]), float(classes.scores[i]), scale, station
                )
                bar.update(1)
    finally:
        bar.close()


def _write_mp4(
    ds: Any, classes: Classes, station: str, tmp: Path, fps: float, progress: bool
) -> None:
    import imageio.v2 as iio2

    writer = iio2.get_writer(
        str(tmp),
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        quality=8,
        pixelformat="yuv420p",
        macro_block_size=16,
        ffmpeg_log_level="error",
    )
    try:
        for frame in _frames(ds, classes, station, progress):
            writer.append_data(frame)
    finally:
        writer.close()


def _write_gif(
    ds: Any, classes: Classes, station: str, tmp: Path, fps: float, progress: bool
) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in _frames(ds, classes, station, progress)]
    images[0].save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(10, int(round(1000 / fps))),
        loop=0,
    )
