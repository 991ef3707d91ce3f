"""Skin tone measured from pixels: colour normalisation, CIELAB, ITA, hue, bins. Pure numpy; no I/O.

Per image (:func:`measure_skin`): the skin region a landmark mask selects (cheeks and nose
bridge: the face outline less the eyes, brows, nostrils and mouth; see
:mod:`audit.skintone.landmarks`) is converted from sRGB to CIELAB (D65) after a simple colour
normalisation, its pixels trimmed to the central L* range (dropping specular highlights and
shadows), and summarised by medians:

- ``L*`` (lightness, 0–100), ``a*``, ``b*``;
- the hue angle ``h = atan2(b*, a*)`` in degrees (redder skin has a smaller angle);
- the Individual Typology Angle, ``ITA = atan((L* − 50) / b*) × 180/π`` degrees (Chardon et
  al. 1991), computed from the median L* and b*; higher is lighter.

Bins (:func:`ita_category`): the ITA skin categories of Chardon et al. / Del Bino et al. —
very light (> 55°), light (41°, 55°], intermediate (28°, 41°], tan (10°, 28°], brown
(−30°, 10°], dark (≤ −30°) — labelled ``"ITA I (very light)"`` … ``"ITA VI (dark)"`` as a
Fitzpatrick-*like* six-step scale (it is not a Fitzpatrick type, which is about a skin's response
to sun), and Gender Shades' binary split (I–III lighter, IV–VI darker). :func:`monk_tone`
gives the nearest of the ten Monk Skin Tone scale swatches in CIELAB (ΔE*76).

Caveat: pixel colour depends on lighting, white balance, exposure and make-up; image-derived
lightness is a noisy proxy for constitutive skin colour (Howard et al. 2021). Use the bins as
"photographed lighter/darker", with the per-person consistency beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import MetricError

__all__ = [
    "SkinMeasure", "normalise_colour", "srgb_to_lab", "ita_degrees", "hue_degrees", "measure_skin",
    "ita_category", "ITA_CATEGORIES", "lighter_darker", "monk_tone", "MONK_SWATCHES", "NORMALISATIONS",
]

#: Colour normalisations :func:`normalise_colour` knows.
NORMALISATIONS = ("white_patch", "grey_world", "none")

#: (lower bound, exclusive; label), from light to dark. ITA above 55 is very light.
ITA_CATEGORIES = (
    (55.0, "ITA I (very light)"),
    (41.0, "ITA II (light)"),
    (28.0, "ITA III (intermediate)"),
    (10.0, "ITA IV (tan)"),
    (-30.0, "ITA V (brown)"),
    (-math.inf, "ITA VI (dark)"),
)

#: The ten Monk Skin Tone scale swatches (sRGB hex), 1 lightest … 10 darkest (Monk 2019).
MONK_SWATCHES = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96", "#a07e56", "#825c43", "#604134", "#3a312a", "#292420")


@dataclass(frozen=True)
class SkinMeasure:
    """One image's skin colour (medians over the masked, trimmed skin pixels).

    Attributes
    ----------
    L, a, b : float
        CIELAB (D65) medians.
    ita : float
        Individual Typology Angle in degrees (from the median L* and b*).
    hue : float
        Hue angle ``atan2(b*, a*)`` in degrees.
    pixels : int
        Skin pixels used (after trimming).
    """

    L: float
    a: float
    b: float
    ita: float
    hue: float
    pixels: int


def normalise_colour(rgb: np.ndarray, method: str = "white_patch", *, percentile: float = 99.0) -> np.ndarray:
    """A simple colour normalisation of an RGB ``uint8`` image; returns float64 in [0, 1].

    ``"white_patch"``: each channel is scaled so that its ``percentile`` maps to 1 (corrects a
    colour cast and underexposure when the photo holds something white: eyes, teeth, a
    background; keeps skin's own chroma). ``"grey_world"``: each channel is scaled so the
    channel means are equal at their mean (corrects a cast only; on a tight face crop it pulls
    skin towards grey, so it is not the default). ``"none"``: only rescaled to [0, 1].

    Examples
    --------
    >>> img = np.zeros((2, 2, 3), np.uint8); img[..., 0] = 200; img[..., 1] = 100; img[..., 2] = 50
    >>> normalise_colour(img, "white_patch")[0, 0].round(3).tolist()
    [1.0, 1.0, 1.0]
    """
    x = np.asarray(rgb)
    if x.ndim != 3 or x.shape[2] != 3:
        raise MetricError(f"expected an RGB image of shape (H, W, 3), got {x.shape}")
    f = x.astype(np.float64) / 255.0
    if method == "none":
        return f
    if method == "white_patch":
        top = np.percentile(f.reshape(-1, 3), percentile, axis=0)
        return np.clip(f / np.where(top > 0, top, 1.0), 0.0, 1.0)
    if method == "grey_world":
        mean = f.reshape(-1, 3).mean(axis=0)
        return np.clip(f * (mean.mean() / np.where(mean > 0, mean, 1.0)), 0.0, 1.0)
    raise MetricError(f"unknown colour normalisation {method!r}; use one of {list(NORMALISATIONS)}")


_M = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb01: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] (shape (..., 3)) -> CIELAB (D65/2°), shape (..., 3).

    Examples
    --------
    >>> (srgb_to_lab(np.array([1.0, 1.0, 1.0])).round(2) + 0.0).tolist()
    [100.0, 0.0, 0.0]
    >>> srgb_to_lab(np.array([0.0, 0.0, 0.0])).round(2).tolist()
    [0.0, 0.0, 0.0]
    """
    c = np.asarray(rgb01, dtype=np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _M.T / _WHITE
    d = 6.0 / 29.0
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4.0 / 29.0)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def ita_degrees(L: float, b: float) -> float:
    """Individual Typology Angle ``atan((L* − 50) / b*)`` in degrees, in (−90, 90].

    ``b* = 0`` gives ±90 (the sign of ``L* − 50``); ``L* = 50, b* = 0`` gives NaN.

    Examples
    --------
    >>> round(ita_degrees(70.0, 20.0), 2)
    45.0
    >>> round(ita_degrees(30.0, 20.0), 2)
    -45.0
    """
    if b == 0:
        return math.nan if L == 50 else math.copysign(90.0, L - 50)
    return math.degrees(math.atan((L - 50.0) / b))


def hue_degrees(a: float, b: float) -> float:
    """Hue angle ``atan2(b*, a*)`` in degrees, in (−180, 180].

    >>> hue_degrees(10.0, 10.0)
    45.0
    """
    return math.degrees(math.atan2(b, a))


def measure_skin(rgb: np.ndarray, mask: np.ndarray, *, normalisation: str = "white_patch", trim: float = 0.1,
                 min_pixels: int = 50) -> SkinMeasure | None:
    """Skin colour of the masked pixels of one image.

    Parameters
    ----------
    rgb : numpy.ndarray of uint8, shape (H, W, 3)
    mask : numpy.ndarray of bool, shape (H, W)
        The skin region (from landmarks).
    normalisation : {"white_patch", "grey_world", "none"}, default "white_patch"
        Applied to the whole image before the skin pixels are read.
    trim : float, default 0.1
        Pixels with L* below the ``trim`` or above the ``1 − trim`` quantile of the region are
        dropped (shadows, highlights, stray hair).
    min_pixels : int, default 50
        Fewer skin pixels than this (after trimming) gives None.

    Returns
    -------
    SkinMeasure or None

    Examples
    --------
    >>> img = np.full((20, 20, 3), (224, 172, 105), np.uint8)    # one flat skin colour
    >>> m = measure_skin(img, np.ones((20, 20), bool), normalisation="none")
    >>> round(m.L, 1), round(m.ita, 1), ita_category(m.ita)
    (73.8, 29.8, 'ITA III (intermediate)')
    """
    mask = np.asarray(mask, bool)
    if mask.shape != np.asarray(rgb).shape[:2]:
        raise MetricError(f"mask shape {mask.shape} does not match the image's {np.asarray(rgb).shape[:2]}")
    if not 0 <= trim < 0.5:
        raise MetricError(f"trim must be in [0, 0.5), got {trim}")
    lab = srgb_to_lab(normalise_colour(rgb, normalisation)[mask])
    if len(lab) and trim > 0:
        lo, hi = np.quantile(lab[:, 0], [trim, 1 - trim])
        lab = lab[(lab[:, 0] >= lo) & (lab[:, 0] <= hi)]
    if len(lab) < min_pixels:
        return None
    L, a, b = (float(v) for v in np.median(lab, axis=0))
    return SkinMeasure(L=L, a=a, b=b, ita=ita_degrees(L, b), hue=hue_degrees(a, b), pixels=int(len(lab)))


def ita_category(ita: float) -> str | None:
    """The ITA skin category of an angle (see the module docstring); None for NaN.

    Boundaries belong to the darker category (``ita > 55`` is very light; 55 is light).

    Examples
    --------
    >>> ita_category(60.0), ita_category(55.0), ita_category(-30.0)
    ('ITA I (very light)', 'ITA II (light)', 'ITA VI (dark)')
    """
    if ita is None or not np.isfinite(ita):
        return None
    for lower, label in ITA_CATEGORIES:
        if ita > lower:
            return label
    return ITA_CATEGORIES[-1][1]


def lighter_darker(category: str | None) -> str | None:
    """Gender Shades' binary split of a six-step category: I–III ``"Lighter"``, IV–VI ``"Darker"``.

    >>> lighter_darker("ITA IV (tan)")
    'Darker'
    """
    if category is None:
        return None
    labels = [lab for _, lab in ITA_CATEGORIES]
    if category not in labels:
        raise MetricError(f"unknown skin category {category!r}; expected one of {labels}")
    return "Lighter" if labels.index(category) < 3 else "Darker"


def _hex_lab(hexes: Sequence[str]) -> np.ndarray:
    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes], dtype=np.float64) / 255.0
    return srgb_to_lab(rgb)


_MONK_LAB = _hex_lab(MONK_SWATCHES)


def monk_tone(L: float, a: float, b: float) -> int | None:
    """The nearest Monk Skin Tone swatch (1–10) in CIELAB (ΔE*76); None for NaN input.

    The swatches are reference colours, not photographs: a measured skin colour is nearest to
    a swatch only as far as lighting and normalisation allow.

    Examples
    --------
    >>> monk_tone(*srgb_to_lab(np.array([0xf6, 0xed, 0xe4]) / 255.0))
    1
    """
    v = np.array([L, a, b], dtype=np.float64)
    if not np.all(np.isfinite(v)):
        return None
    return int(np.argmin(np.linalg.norm(_MONK_LAB - v, axis=1))) + 1
