"""The synthetic sky: one fisheye all-sky frame of one of the six OATH classes.

:func:`render_sky` draws what the synthetic OATH archive (:mod:`.oath`) and the
synthetic station nights (:mod:`.nights`) hold: a circular fisheye view with sky
background, vignetting, stars and sensor noise, plus what makes the class.  The frame
is a deterministic function of the random generator's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import OptionError

__all__ = ["render_sky"]


@dataclass(frozen=True)
class _Grid:
    """Pixel coordinates of a fisheye frame, in units of the sky-disc radius."""

    x: np.ndarray  # east-west axis, +1 at the right-hand horizon
    y: np.ndarray  # north-south axis, +1 at the bottom horizon
    r2: np.ndarray  # squared distance from the zenith (0) to the horizon (1)
    disc: np.ndarray  # float32, 1 inside the sky disc, 0 outside
    squeeze: np.ndarray  # how much thinner a form looks here than at the zenith
    noise: np.ndarray  # (2 size, 2 size) standard normal bank, see render_sky
    size: int


@lru_cache(maxsize=8)
def _grid(size: int) -> _Grid:
    c = (size - 1) / 2
    radius = 0.49 * size  # a thin black rim, as the cropped OATH frames show
    ax = ((np.arange(size, dtype=np.float32) - c) / radius).astype(np.float32)
    y, x = np.meshgrid(ax, ax, indexing="ij")
    r2 = x * x + y * y
    disc = (r2 <= 1.0).astype(np.float32)
    # An equidistant fisheye shows a form at low elevation thinner than at the zenith.
    squeeze = (1.0 / (1.0 - 0.55 * np.minimum(r2, 1.0))).astype(np.float32)
    noise = np.random.default_rng(20181026).standard_normal((2 * size, 2 * size), np.float32)
    for a in (x, y, r2, disc, squeeze, noise):
        a.setflags(write=False)
    return _Grid(x=x, y=y, r2=r2, disc=disc, squeeze=squeeze, noise=noise, size=size)


@lru_cache(maxsize=32)
def _smooth_basis(size: int, n_coarse: int) -> np.ndarray:
    """``(size, n_coarse)`` Gaussian interpolation weights from a coarse to the pixel grid.

    A smooth random field is then ``B @ C @ B.T`` for a random ``C``: two small matrix
    products instead of a convolution, which keeps 5,824 frames fast.
    """
    px = np.linspace(-1.0, 1.0, size)
    # Nodes reach beyond the frame so that the field is as rough at the rim as in the middle.
    nodes = np.linspace(-1.25, 1.25, n_coarse)
    spacing = nodes[1] - nodes[0]
    w = np.exp(-0.5 * ((px[:, None] - nodes[None, :]) / (0.8 * spacing)) ** 2)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    out = w.astype(np.float32)
    out.setflags(write=False)
    return out


def _field(rng: np.random.Generator, size: int, n_coarse: int) -> np.ndarray:
    """A smooth random field with zero mean and unit variance, features ~ ``2 / n_coarse``."""
    b = _smooth_basis(size, n_coarse)
    c = rng.standard_normal((n_coarse, n_coarse), dtype=np.float32)
    f = b @ c @ b.T
    return f / max(float(f.std()), 1e-6)


# Note on scalars: every random scalar that meets a frame is a Python float (``.tolist()``,
# ``math``), because a NumPy float64 scalar would promote the float32 frames to float64
# (NEP 50) and make rendering several times slower.


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def _stars(rng: np.random.Generator, g: _Grid, count: int, scale: float) -> np.ndarray:
    """Point sources: one bright pixel each with some light in its four neighbours."""
    size = g.size
    rad = 0.49 * size
    c = (size - 1) / 2
    rr = np.sqrt(rng.random(count)) * rad
    th = rng.random(count) * 2 * np.pi
    row = np.clip(np.rint(c + rr * np.sin(th)).astype(np.int64), 1, size - 2)
    col = np.clip(np.rint(c + rr * np.cos(th)).astype(np.int64), 1, size - 2)
    # Magnitudes follow a power law: many faint stars, a few bright ones.
    flux = np.minimum(scale * 20.0 * rng.random(count) ** -0.6, 400.0)
    idx = row * size + col
    offsets = np.array([0, 1, -1, size, -size])
    weights = np.array([1.0, 0.3, 0.3, 0.3, 0.3])
    flat = np.bincount(
        (idx[:, None] + offsets[None, :]).ravel(),
        weights=(flux[:, None] * weights[None, :]).ravel(),
        minlength=size * size,
    )
    return flat.reshape(size, size).astype(np.float32)


def _band(d: np.ndarray, width: float, edge: float) -> np.ndarray:
    """A top-hat across ``d`` = 0 with half-width ``width / 2`` and edges ``edge`` wide."""
    h = 0.5 * width
    return _sigmoid((d + h) / edge) * _sigmoid((h - d) / edge)


def _arc(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """One to three east-west bands with sharp edges, spanning the sky, possibly curved."""
    out = np.zeros_like(g.x)
    squeeze = g.squeeze
    n_arcs = int(rng.choice([1, 1, 1, 2, 2, 3]))
    y0s = sorted(rng.uniform(-0.65, 0.65, n_arcs).tolist())
    # Arcs of one display run nearly parallel: they share tilt and curvature.
    tilt = rng.uniform(-0.12, 0.12)
    curv = rng.uniform(-0.35, 0.35)
    for y0 in y0s:
        yc = (
            y0
            + (tilt + rng.uniform(-0.03, 0.03)) * g.x
            + (curv + rng.uniform(-0.05, 0.05)) * g.x**2
            + rng.uniform(0.0, 0.03) * np.sin(rng.uniform(1, 4) * np.pi * g.x + rng.uniform(0, 6))
        )
        d = (g.y - yc) * squeeze
        width = rng.uniform(0.04, 0.14)
        edge = rng.uniform(0.004, 0.012)
        bright = rng.uniform(45, 190)
        along = 1.0 + rng.uniform(0, 0.25) * np.sin(
            rng.uniform(1, 3) * np.pi * g.x + rng.uniform(0, 6)
        )
        core = _band(d, width, edge)
        # A faint, diffuse glow on the poleward (upper) side, as arcs often have.
        tail = np.exp(-np.maximum(-d - 0.5 * width, 0.0) / rng.uniform(0.03, 0.12)) * (d < 0)
        out += bright * along * (core + rng.uniform(0.05, 0.3) * tail)
    return out


def _diffuse(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """Broad fuzzy glow, patchy, about as bright as the stars; no sharp edges."""
    bright = rng.uniform(20, 70)
    broad = _field(rng, g.size, 4)
    patches = _field(rng, g.size, int(rng.integers(6, 11)))
    glow = np.maximum(broad + rng.uniform(-0.3, 1.0), 0.0) + rng.uniform(0.2, 0.7) * np.maximum(
        patches + rng.uniform(-0.5, 0.5), 0.0
    )
    if rng.random() < 0.5:
        # Diffuse aurora often fills an east-west belt of the sky.
        y0 = rng.uniform(-0.6, 0.6)
        glow *= 0.3 + np.exp(-0.5 * ((g.y - y0) / rng.uniform(0.25, 0.5)) ** 2)
    return bright * glow / max(float(glow.max()), 1e-6) * 1.6


def _discrete(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """Bright, sharp, irregular forms: folded bands, curls or a spiral."""
    kind = rng.choice(["contour", "fold", "spiral"], p=[0.45, 0.35, 0.2])
    bright = rng.uniform(130, 320)  # often saturates, unlike the stars
    if kind == "contour":
        # Level lines of a smooth random field curl and fold like a discrete display.
        f = _field(rng, g.size, int(rng.integers(6, 10)))
        eps = rng.uniform(0.04, 0.09)
        level = rng.uniform(-0.8, 0.8)
        form = np.exp(-(((f - level) / eps) ** 2))
        if rng.random() < 0.5:
            form += 0.7 * np.exp(-(((f - level - rng.uniform(0.3, 0.6)) / eps) ** 2))
        env = np.exp(-0.5 * ((g.y - rng.uniform(-0.5, 0.5)) / rng.uniform(0.3, 0.7)) ** 2)
        form *= env
    elif kind == "fold":
        # A thin band whose centre line swings far north and south: folds and curls.
        amp = rng.uniform(0.1, 0.3)
        x = g.x + 0.25 * _field(rng, g.size, 5)  # bends the band back on itself in places
        yc = rng.uniform(-0.4, 0.4) + sum(
            amp / (k + 1) * np.sin(rng.uniform(1.0, 3.5) * (k + 1) * np.pi * x + rng.uniform(0, 6))
            for k in range(3)
        )
        d = (g.y - yc) * g.squeeze
        form = _band(d, rng.uniform(0.02, 0.07), rng.uniform(0.003, 0.01))
        form += rng.uniform(0.0, 0.8) * _band(
            d - rng.uniform(0.08, 0.2), rng.uniform(0.02, 0.05), 0.006
        )
    else:
        cx, cy = rng.uniform(-0.4, 0.4, 2).tolist()
        dx, dy = g.x - cx, g.y - cy
        rr = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx) * float(rng.choice([-1.0, 1.0]))
        pitch = rng.uniform(0.2, 0.4)
        # A distorted spiral of one to two turns: real auroral spirals are never regular.
        wobble = rng.uniform(0.3, 0.6) * _field(rng, g.size, 5)
        phase = np.mod(rr / pitch - theta / (2 * np.pi) + wobble, 1.0)
        form = np.exp(-(((phase - 0.5) / rng.uniform(0.05, 0.1)) ** 2))
        form *= np.exp(-((rr / rng.uniform(0.3, 0.6)) ** 4))
    # Fine structure along the forms (rays), a texture the smooth classes lack.
    rays = 0.65 + 0.35 * _field(rng, g.size, 28)
    return bright * form * rays


def _cloud_cover(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """Cloud opacity in [0, 1]: smooth blotches, sometimes a near-uniform overcast."""
    if rng.random() < 0.25:
        return np.clip(rng.uniform(0.85, 1.0) + 0.05 * _field(rng, g.size, 3), 0.0, 1.0)
    f = _field(rng, g.size, int(rng.integers(4, 8)))
    return _sigmoid((f + rng.uniform(-0.3, 1.5)) / rng.uniform(0.1, 0.3))


def _moon(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """A saturated disc with wide glare; sometimes a bleed streak and a lens ghost."""
    rr = math.sqrt(rng.uniform(0.0, 0.85**2))
    th = rng.uniform(0, 2 * np.pi)
    mx, my = rr * math.cos(th), rr * math.sin(th)
    d2 = (g.x - mx) ** 2 + (g.y - my) ** 2
    s = rng.uniform(0.05, 0.14)
    q = 1.0 + d2 / s**2
    glare = rng.uniform(180, 420) / (q * np.sqrt(q))
    glare += rng.uniform(20, 70) * np.exp(-np.sqrt(d2) / rng.uniform(0.4, 0.9))
    disc = (d2 < rng.uniform(0.03, 0.06) ** 2).astype(np.float32)
    out = glare + 2000.0 * disc  # saturates whatever else
    if rng.random() < 0.4:
        # CCD bleed: charge overflowing along the readout columns through the moon.
        out += rng.uniform(60, 200) * np.exp(-(((g.x - mx) / 0.012) ** 2))
    if rng.random() < 0.5:
        gx, gy = -0.6 * mx, -0.6 * my
        gd2 = (g.x - gx) ** 2 + (g.y - gy) ** 2
        out += rng.uniform(15, 50) * _band(np.sqrt(gd2), 0.08, 0.01)
    return out


def _milky_way(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    a = rng.uniform(0, np.pi)
    d = g.x * math.sin(a) - g.y * math.cos(a) - rng.uniform(-0.5, 0.5)
    clumps = 0.6 + 0.4 * _field(rng, g.size, 12)
    return rng.uniform(3, 10) * np.exp(-0.5 * (d / rng.uniform(0.1, 0.2)) ** 2) * clumps


_CLOUD, _MOON = 3, 4


def render_sky(class6: int, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Draw one synthetic all-sky frame of an OATH class.

    The frame is a circular fisheye view (zenith at the centre, horizon at the rim,
    black outside the sky disc, east-west along the rows) with sky background,
    brighter towards the horizon, vignetting, stars and sensor noise, plus what makes
    the class: east-west bands with sharp edges (arc), broad fuzzy glow about as bright
    as the stars (diffuse), bright sharp folds, curls or spirals (discrete), smooth
    blotches hiding the stars (cloudy), a saturated disc with wide glare (moon), or
    nothing but stars (clear, ``noaurora``).  Positions, widths, brightness and star
    counts vary at random so that the classes overlap somewhat.

    Parameters
    ----------
    class6
        0 arc, 1 diffuse, 2 discrete, 3 cloudy, 4 moon, 5 clear (``noaurora``).
    rng
        Source of randomness; the frame is a deterministic function of its state.
    size
        Frame width and height in pixels.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8 greyscale, not rotated.

    Raises
    ------
    ValueError
        If ``class6`` is not in 0..5 or ``size`` is below 16.
    """
    if class6 not in range(6):
        raise OptionError(f"class6 must be 0..5 (arc..noaurora), got {class6!r}")
    if size < 16:
        raise OptionError(f"size must be at least 16 pixels, got {size}")
    g = _grid(size)

    # The sky itself: airglow and light pollution grow towards the horizon.
    sky = rng.uniform(4, 16) + rng.uniform(4, 28) * g.r2**2
    if rng.random() < 0.3:
        az = rng.uniform(0, 2 * np.pi)
        dome2 = (g.x - math.cos(az)) ** 2 + (g.y - math.sin(az)) ** 2
        sky = sky + rng.uniform(10, 40) * np.exp(-dome2 / 0.12)  # a town below the horizon
    star_scale = rng.uniform(0.7, 1.4)
    n_stars = int(rng.integers(120, 520)) * size * size // 65536
    if class6 == _MOON:
        star_scale *= 0.5  # the camera's scaling for a bright sky leaves the stars fainter
    stars = _stars(rng, g, max(n_stars, 3), star_scale)

    if class6 == 0:
        sky = sky + _arc(rng, g)
    elif class6 == 1:
        sky = sky + _diffuse(rng, g)
    elif class6 == 2:
        sky = sky + _discrete(rng, g)
        if rng.random() < 0.3:
            sky = sky + 0.5 * _diffuse(rng, g)
    elif class6 == 5 and rng.random() < 0.5:
        sky = sky + _milky_way(rng, g)

    img = sky + stars
    if class6 == _CLOUD:
        cover = _cloud_cover(rng, g)
        # Clouds scatter light from towns and moon: brighter, uneven, brighter low down.
        lit = rng.uniform(18, 90) * (1.0 + 0.15 * _field(rng, size, 5)) * (1.0 + 0.6 * g.r2)
        img = (1.0 - cover) * img + cover * lit
    img = img * (1.0 - rng.uniform(0.15, 0.35) * g.r2)  # lens vignetting
    if class6 == _MOON:
        img = img + _moon(rng, g)  # after vignetting, so that the disc stays saturated

    # Read noise plus photon noise.
    sigma = np.sqrt(rng.uniform(1.0, 3.0) ** 2 + 0.15 * np.maximum(img, 0.0))
    # A random window of a fixed bank of normal deviates, flipped at random: as good as fresh
    # noise for every purpose here and far cheaper than drawing 65,536 numbers per frame.
    oy, ox = rng.integers(0, size + 1, 2)
    sy, sx = rng.choice([-1, 1], 2)
    img = img + sigma * g.noise[oy : oy + size, ox : ox + size][::sy, ::sx]
    img = np.clip(img, 0.0, 255.0) * g.disc
    return (img + 0.5).astype(np.uint8)  # rounds, all values being >= 0
