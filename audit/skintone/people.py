"""Per-person skin tone from per-image measurements: the median, how consistent it is, the bins. Pure pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MetricError
from .measure import ita_category, lighter_darker, monk_tone

__all__ = ["IMAGE_COLUMNS", "PERSON_COLUMNS", "person_tones"]

#: Columns of the per-image table the runner builds (one row per image).
IMAGE_COLUMNS = ["sample_id", "subject", "status", "L", "a", "b", "ita", "hue", "pixels", "skin_tone_image"]
#: Columns of :func:`person_tones` (the label file's columns, with ``subject`` its key).
PERSON_COLUMNS = [
    "subject", "skin_tone", "skin_tone_binary", "skin_monk", "skin_ita", "skin_L", "skin_hue",
    "skin_ita_spread", "skin_images", "skin_consistency",
]


def person_tones(images: pd.DataFrame) -> pd.DataFrame:
    """One row per person: the median of their images' measures, its bins, and its consistency.

    Parameters
    ----------
    images : pandas.DataFrame
        One row per image with ``subject``, ``status`` (``"ok"`` where measured), ``L``, ``a``,
        ``b``, ``ita`` and ``hue``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PERSON_COLUMNS`. ``skin_ita`` is ITA of the person's median L* and b*
        (the median of the angles differs when b* varies); ``skin_tone`` its category,
        ``skin_tone_binary`` Lighter/Darker, ``skin_monk`` the nearest Monk swatch;
        ``skin_ita_spread`` the range (max − min) of the images' ITA; ``skin_consistency`` the
        share of the person's measured images whose own category equals the person's;
        ``skin_images`` the images measured. A person with no measured image gets
        ``"not measured"`` in every bin column.

    Examples
    --------
    >>> im = pd.DataFrame({"subject": ["p", "p", "q"], "status": ["ok", "ok", "no_face"],
    ...                    "L": [70.0, 60.0, np.nan], "a": [10.0, 12.0, np.nan], "b": [20.0, 20.0, np.nan],
    ...                    "ita": [45.0, 26.57, np.nan], "hue": [63.4, 59.0, np.nan]})
    >>> t = person_tones(im)
    >>> t[["subject", "skin_tone", "skin_images", "skin_consistency"]].values.tolist()
    [['p', 'ITA III (intermediate)', 2, 0.0], ['q', 'not measured', 0, nan]]

    (p's median L* 65 and b* 20 give 36.9°, intermediate, while its two images alone are light
    and tan: a consistency of 0 flags a person whose photos disagree.)
    """
    need = ["subject", "status", "L", "a", "b", "ita", "hue"]
    missing = [c for c in need if c not in images.columns]
    if missing:
        raise MetricError(f"per-image skin measures lack the column(s) {missing}; they have {list(images.columns)}")
    rows = []
    for subj, g in images.groupby(images["subject"].astype(str), sort=True):
        ok = g[g["status"].astype(str) == "ok"]
        if ok.empty:
            rows.append({"subject": subj, "skin_tone": "not measured", "skin_tone_binary": "not measured", "skin_monk": "not measured",
                         "skin_ita": np.nan, "skin_L": np.nan, "skin_hue": np.nan, "skin_ita_spread": np.nan,
                         "skin_images": 0, "skin_consistency": np.nan})
            continue
        L, a, b = (float(ok[c].median()) for c in ("L", "a", "b"))
        ita = float(np.degrees(np.arctan((L - 50.0) / b))) if b != 0 else float(np.sign(L - 50) * 90.0)
        cat = ita_category(ita)
        own = ok["ita"].map(ita_category)
        rows.append({
            "subject": subj, "skin_tone": cat, "skin_tone_binary": lighter_darker(cat), "skin_monk": f"Monk {monk_tone(L, a, b)}",
            "skin_ita": ita, "skin_L": L, "skin_hue": float(np.degrees(np.arctan2(b, a))),
            "skin_ita_spread": float(ok["ita"].max() - ok["ita"].min()), "skin_images": int(len(ok)),
            "skin_consistency": float((own == cat).mean()),
        })
    return pd.DataFrame(rows, columns=PERSON_COLUMNS)
