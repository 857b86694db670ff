"""``oathcube info``: what a cube holds, for people who would rather not open it.

Labels and pixels are read through :meth:`~oathcube.cube.store.Cube.read_checked`: a
chunk missing from the store (it would read as class 0 and black images) or one
that cannot be decoded is an error naming the chunk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cube.store import Cube, CubeLike
from ..labels import CLASS6_NAMES

__all__ = ["describe", "montage_images", "size_on_disk"]


def size_on_disk(cube: CubeLike) -> int | None:
    """Bytes under a local cube folder (None for URLs)."""
    return Cube.open(cube, complete=False).size_on_disk()


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _variables(ds: xr.Dataset) -> list[str]:
    lines = []
    for name, var in ds.variables.items():
        chunks = var.encoding.get("chunks") or var.encoding.get("preferred_chunks")
        if isinstance(chunks, dict):
            chunks = tuple(chunks.values())
        lines.append(f"  {name:<24} {str(var.dims):<28} {str(var.dtype):<12} chunks {chunks}")
    return lines


def describe(
    cube: CubeLike,
    *,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Return a multi-line summary of ``cube``.

    ``storage_options``: fsspec options of a cube at a URL, as for
    :meth:`~oathcube.cube.store.Cube.open`.
    """
    cube = Cube.open(cube, storage_options=storage_options)
    ds = cube.labelled()
    out = [f"cube {cube.location}"]
    if ds.attrs.get("synthetic_archive"):
        out.append("  built from a SYNTHETIC archive (oathcube synth), not the OATH data")
    size = cube.size_on_disk()
    if size is not None:
        out.append(f"  size on disk: {_human(size)}")
    if "class6" in ds:
        labels = cube.read_checked("class6", slice(0, ds.sizes["image"]))
        table = pd.DataFrame(
            {
                "station": ds["station"].values.astype(str),
                "class": np.array(CLASS6_NAMES)[labels.astype(int)],
            }
        )
        out.append(f"\n{ds.sizes['image']} labelled images; per class:")
        counts = table["class"].value_counts().reindex(CLASS6_NAMES, fill_value=0)
        out += [f"  {k:<10} {v:>6}" for k, v in counts.items()]
        out.append("\nimages per station and class:")
        cross = pd.crosstab(table["station"], table["class"]).reindex(
            columns=CLASS6_NAMES, fill_value=0
        )
        out += ["  " + line for line in cross.to_string().splitlines()]
        times = ds["time"].values
        known = times[~np.isnat(times)]
        if known.size:
            out.append(
                f"\ntime range: {known.min()} .. {known.max()} UTC "
                f"({int(np.isnat(times).sum())} images without a time)"
            )
    out.append("\nvariables:")
    out += _variables(ds)
    models = cube.models()
    if models:
        out.append("\nmodels: " + ", ".join(models))
    for code in cube.stations():
        st = cube.station(code)
        t = st["time"].values
        extra = [str(v) for v in st.data_vars if v != "pixels"]
        out.append(f"\nstation {code}: {t.size} frames, {t.min()} .. {t.max()} UTC")
        out += _variables(st)
        if extra:
            out.append("  computed: " + ", ".join(extra))
    return "\n".join(out)


def montage_images(cube: CubeLike, per_class: int = 6) -> dict[str, list[np.ndarray]]:
    """Up to ``per_class`` example images of each class (the first of each in the cube).

    Raises
    ------
    CubeError
        A chunk of the labels or of the picked images is missing or damaged: named,
        rather than drawn as black images.
    """
    opened = Cube.open(cube)
    labels = opened.read_checked("class6")
    examples: dict[str, list[np.ndarray]] = {}
    for k, name in enumerate(CLASS6_NAMES):
        picks = np.flatnonzero(labels == k)[:per_class]
        # Only the chunks that hold the picked images are looked up and read.
        if picks.size:
            examples[name] = list(opened.read_checked("pixels", picks))
        else:
            examples[name] = []
    return examples
