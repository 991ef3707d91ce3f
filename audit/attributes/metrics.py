"""Error rates of an attribute classifier (gender, age band) by group: pure pandas/numpy, no I/O.

A classifier audit asks a different question from a 1:1 audit: not "are two photos the same
person?" but "is the label the system assigns to one photo right?". Every image gives one
trial: its prediction is an error when it differs from the image's true label (``truth``). An
image the classifier could not read or found no face in (prediction missing) is a *failure to
acquire*: counted per group (``failed``), never as a right or a wrong answer.

Uncertainty
-----------
Where the data have identities (some subject has several images), errors of one person's images
are not independent, and each group's interval resamples *people* (the subject bootstrap of
:func:`audit.metrics.bootstrap.subject_bootstrap`: per-subject errors and trials, resampled
within the group). Without identities (FairFace: every image a different person), the images
are the people and the interval is Wilson's (or Clopper–Pearson's), labelled as such. Both
intervals are always given: ``ci_low``/``ci_high`` are the ones to read (``ci_method`` names
them) and ``wilson_low``/``wilson_high`` the comparison-level ones.

Tables (long, fixed columns)
----------------------------
:func:`classification_errors` -> :data:`ERROR_COLUMNS`, one row per (grouping, group);
:func:`confusion_long` -> :data:`CONFUSION_COLUMNS`, one row per (grouping, group, true,
predicted); :func:`intersectional_table` -> :data:`INTERSECTIONAL_COLUMNS`, Gender Shades'
table (All, each class, each group, each group × class) in long form; :func:`wide_intersectional`
pivots it into the published layout.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import MetricError, MissingDependencyError
from ..metrics.bootstrap import subject_bootstrap
from ..metrics.uncertainty import interval_arrays

__all__ = [
    "ERROR_COLUMNS",
    "CONFUSION_COLUMNS",
    "INTERSECTIONAL_COLUMNS",
    "ALL",
    "classification_errors",
    "confusion_long",
    "intersectional_table",
    "wide_intersectional",
    "age_band_of",
]

#: The label of the whole set in every table.
ALL = "All"
#: Columns of :func:`classification_errors`.
ERROR_COLUMNS = [
    "grouping", "group", "images", "subjects", "failed", "classified", "errors", "error_rate",
    "ci_low", "ci_high", "ci_method", "wilson_low", "wilson_high",
]
#: Columns of :func:`confusion_long`.
CONFUSION_COLUMNS = ["grouping", "group", "true", "predicted", "count"]
#: Columns of :func:`intersectional_table`.
INTERSECTIONAL_COLUMNS = ["column", "kind", "group", "cls", "classified", "errors", "error_rate", "accuracy"]

_WILSON = "wilson (images taken as independent)"
_CP = "clopper-pearson (images taken as independent)"


def _check_frame(frame: pd.DataFrame, cols: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise MetricError(f"expected a pandas DataFrame of one row per image, got {type(frame).__name__}")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise MetricError(f"the predictions frame lacks the column(s) {missing}; it has {list(frame.columns)}. "
                          "Give one row per image with the true label, the prediction and the group columns.")


def _predicted_mask(pred: pd.Series) -> np.ndarray:
    """True where a prediction exists (not NaN, not the empty string)."""
    return (pred.notna() & (pred.astype(str).str.len() > 0)).to_numpy()


def _labels(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    if len(columns) == 1:
        return frame[columns[0]].astype(str)
    return frame[list(columns)].astype(str).agg(" / ".join, axis=1)


def classification_errors(
    frame: pd.DataFrame,
    *,
    truth: str,
    predicted: str,
    groupings: Sequence[Sequence[str]] = (),
    subject: str | None = None,
    interval: str = "wilson",
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Error rate of a classifier overall and in every group of every grouping.

    Parameters
    ----------
    frame : pandas.DataFrame, one row per image
        Columns ``truth``, ``predicted``, the group columns and, optionally, ``subject``. A
        missing prediction (NaN or ``""``) is a failure to acquire.
    truth, predicted : str
        Column names of the true label and the classifier's label (compared as strings).
    groupings : sequence of sequences of str
        Each a list of group columns (``[["race"], ["race", "gender"]]``); the whole set is
        always the first row (grouping and group ``"All"``).
    subject : str, optional
        Identity column. When some subject has two or more classified images the interval is
        the subject bootstrap (people resampled within each group); otherwise Wilson's or
        Clopper–Pearson's over images.
    interval : {"wilson", "clopper-pearson"}, default "wilson"
    bootstrap : int, default 1000
        Subject-bootstrap replicates (0 turns the people-level interval off).
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ERROR_COLUMNS`. ``error_rate = errors / classified`` (``nan`` when
        ``classified`` is 0); ``images = classified + failed``.

    Examples
    --------
    >>> df = pd.DataFrame({"gender": ["F", "F", "M", "M"], "pred": ["F", "M", "M", None],
    ...                    "skin": ["darker", "darker", "lighter", "lighter"]})
    >>> t = classification_errors(df, truth="gender", predicted="pred", groupings=[["skin"]])
    >>> t[["group", "classified", "errors", "failed"]].values.tolist()
    [['All', 3, 1, 1], ['darker', 2, 1, 0], ['lighter', 1, 0, 1]]
    """
    groupings = [tuple(g) for g in groupings]
    cols = {truth, predicted, *(c for g in groupings for c in g), *([subject] if subject else [])}
    _check_frame(frame, cols)
    if interval not in ("wilson", "clopper-pearson"):
        raise MetricError(f"interval must be 'wilson' or 'clopper-pearson', got {interval!r}")
    df = frame.reset_index(drop=True)
    ok = _predicted_mask(df[predicted])
    wrong = ok & (df[truth].astype(str).to_numpy() != df[predicted].astype(str).to_numpy())
    subj = df[subject].astype(str).to_numpy() if subject else np.arange(len(df)).astype(str)
    people_level = bool(subject) and bootstrap > 0 and pd.Series(subj[ok]).duplicated().any()

    rows = []
    for grouping, labels in [(ALL, pd.Series([ALL] * len(df)))] + [("+".join(g), _labels(df, g)) for g in groupings]:
        lab = labels.to_numpy()
        for grp in sorted(pd.unique(lab)) if grouping != ALL else [ALL]:
            m = lab == grp
            n_ok, n_err = int((m & ok).sum()), int((m & wrong).sum())
            rows.append({
                "grouping": grouping, "group": str(grp), "images": int(m.sum()),
                "subjects": int(pd.unique(subj[m]).size), "failed": int((m & ~ok).sum()),
                "classified": n_ok, "errors": n_err,
                "error_rate": n_err / n_ok if n_ok else np.nan,
            })
    out = pd.DataFrame(rows, columns=[c for c in ERROR_COLUMNS if c not in ("ci_low", "ci_high", "ci_method", "wilson_low", "wilson_high")])
    iv = interval_arrays(out["errors"].to_numpy(), out["classified"].to_numpy(), method=interval, confidence=confidence)
    out["wilson_low"], out["wilson_high"] = np.asarray(iv.low, float), np.asarray(iv.high, float)
    empty = out["classified"].to_numpy() == 0
    out.loc[empty, ["wilson_low", "wilson_high"]] = np.nan
    out["ci_low"], out["ci_high"] = out["wilson_low"], out["wilson_high"]
    out["ci_method"] = _WILSON if interval == "wilson" else _CP
    if people_level:
        _people_intervals(out, df, ok, wrong, subj, groupings, bootstrap=bootstrap, seed=seed, confidence=confidence)
    return out[ERROR_COLUMNS]


def _people_intervals(out, df, ok, wrong, subj, groupings, *, bootstrap, seed, confidence) -> None:
    """Fill ci_low/ci_high with subject-bootstrap intervals, grouping by grouping."""
    per = pd.DataFrame({"subject": subj, "ok": ok.astype(np.int64), "wrong": wrong.astype(np.int64)})
    for grouping, labels in [(ALL, pd.Series([ALL] * len(df)))] + [("+".join(g), _labels(df, g)) for g in groupings]:
        per["group"] = labels.to_numpy()
        # a person belongs to one group per grouping; a person whose images disagree is split by label
        agg = per.groupby(["group", "subject"], sort=True)[["wrong", "ok"]].sum().reset_index()
        groups = sorted(agg["group"].unique())
        codes = agg["group"].map({g: i for i, g in enumerate(groups)}).to_numpy(np.int64)
        res = subject_bootstrap(agg["wrong"].to_numpy(), agg["ok"].to_numpy(), codes, n_groups=len(groups),
                                group_labels=groups, n_replicates=bootstrap, seed=seed, confidence=confidence)
        for i, g in enumerate(groups):
            sel = (out["grouping"] == grouping) & (out["group"] == str(g))
            out.loc[sel, "ci_low"] = res.low[i, 0]
            out.loc[sel, "ci_high"] = res.high[i, 0]
            out.loc[sel, "ci_method"] = f"subject bootstrap ({bootstrap} replicates; people resampled)"


def confusion_long(
    frame: pd.DataFrame,
    *,
    truth: str,
    predicted: str,
    groupings: Sequence[Sequence[str]] = (),
    labels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Confusion matrices (scikit-learn's ``confusion_matrix``) overall and per group, long form.

    Parameters
    ----------
    frame : pandas.DataFrame, one row per image
    truth, predicted : str
    groupings : sequence of sequences of str
    labels : sequence of str, optional
        The classes, in order (default: the sorted union of true and predicted values). Images
        without a prediction are left out (they are failures to acquire).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONFUSION_COLUMNS`; every (true, predicted) pair of ``labels`` appears
        in every group, zeros included, so a group's rows reshape to a square matrix.

    Examples
    --------
    >>> df = pd.DataFrame({"t": ["F", "F", "M"], "p": ["F", "M", "M"]})
    >>> confusion_long(df, truth="t", predicted="p")["count"].tolist()
    [1, 1, 0, 1]
    """
    try:
        from sklearn.metrics import confusion_matrix
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("confusion matrices need scikit-learn: pip install 'face-audit[attributes]'") from exc
    groupings = [tuple(g) for g in groupings]
    _check_frame(frame, {truth, predicted, *(c for g in groupings for c in g)})
    df = frame.reset_index(drop=True)
    ok = _predicted_mask(df[predicted])
    df = df[ok].reset_index(drop=True)
    t, p = df[truth].astype(str).to_numpy(), df[predicted].astype(str).to_numpy()
    classes = list(labels) if labels is not None else sorted(set(t) | set(p))
    rows = []
    for grouping, lab in [(ALL, np.array([ALL] * len(df)))] + [("+".join(g), _labels(df, g).to_numpy()) for g in groupings]:
        for grp in ([ALL] if grouping == ALL else sorted(pd.unique(lab))):
            m = lab == grp
            cm = confusion_matrix(t[m], p[m], labels=classes) if m.any() else np.zeros((len(classes),) * 2, np.int64)
            for i, a in enumerate(classes):
                for j, b in enumerate(classes):
                    rows.append((grouping, str(grp), a, b, int(cm[i, j])))
    return pd.DataFrame(rows, columns=CONFUSION_COLUMNS)


def intersectional_table(frame: pd.DataFrame, *, truth: str, predicted: str, group: str) -> pd.DataFrame:
    """Gender Shades' table for one group column: All, each true class, each group, each group × class.

    Buolamwini & Gebru (2018, Table 4) and Raji & Buolamwini (2019) report a gender
    classifier's error on the Pilot Parliaments Benchmark overall, by gender (F, M), by skin
    type (Darker, Lighter) and by their intersections (DF, DM, LF, LM). Here ``truth`` plays
    gender's part and ``group`` skin type's; any label column works (race, skin-tone bin).

    Parameters
    ----------
    frame : pandas.DataFrame, one row per image
    truth, predicted : str
        The true and predicted class columns (the classes become the "gender" columns).
    group : str
        The group column (the "skin type" columns).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`INTERSECTIONAL_COLUMNS`, rows in the published order: ``kind`` is
        ``"all"``, ``"class"``, ``"group"`` or ``"intersection"``; ``column`` is the printed
        heading (``"All"``, ``"Female"``, ``"Darker"``, ``"Darker Female"``); ``error_rate =
        errors / classified`` (misclassified share; failures to acquire left out) and
        ``accuracy = 1 - error_rate``.

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["Female", "Female", "Male"], "p": ["Male", "Female", "Male"],
    ...                    "skin": ["Darker", "Lighter", "Darker"]})
    >>> t = intersectional_table(df, truth="g", predicted="p", group="skin")
    >>> t.set_index("column")["errors"].to_dict()["Darker Female"]
    1
    """
    _check_frame(frame, {truth, predicted, group})
    df = frame[_predicted_mask(frame[predicted])].reset_index(drop=True)
    t, p, g = df[truth].astype(str), df[predicted].astype(str), df[group].astype(str)
    wrong = (t != p).to_numpy()
    classes, groups = sorted(t.unique()), sorted(g.unique())
    specs = [("all", ALL, "", "", np.ones(len(df), bool))]
    specs += [("class", c, "", c, (t == c).to_numpy()) for c in classes]
    specs += [("group", s, s, "", (g == s).to_numpy()) for s in groups]
    specs += [("intersection", f"{s} {c}", s, c, ((g == s) & (t == c)).to_numpy()) for s in groups for c in classes]
    rows = []
    for kind, column, grp, cls, m in specs:
        n, e = int(m.sum()), int((m & wrong).sum())
        rate = e / n if n else np.nan
        rows.append((column, kind, grp, cls, n, e, rate, 1.0 - rate if n else np.nan))
    return pd.DataFrame(rows, columns=INTERSECTIONAL_COLUMNS)


def wide_intersectional(table: pd.DataFrame, *, percent: bool = True, digits: int = 1) -> pd.DataFrame:
    """Pivot :func:`intersectional_table` into the published layout: rows "Accuracy (%)" and
    "Error rate (%)", one column per heading, values rounded to ``digits``.

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["F", "M"], "p": ["M", "M"], "s": ["D", "D"]})
    >>> float(wide_intersectional(intersectional_table(df, truth="g", predicted="p", group="s")).loc["Error rate (%)", "D F"])
    100.0
    """
    scale = 100.0 if percent else 1.0
    suffix = " (%)" if percent else ""
    acc = (table["accuracy"] * scale).round(digits).to_numpy()
    err = (table["error_rate"] * scale).round(digits).to_numpy()
    return pd.DataFrame([acc, err], index=[f"Accuracy{suffix}", f"Error rate{suffix}"], columns=table["column"].tolist())


_BAND = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_ABOVE = re.compile(r"^\s*(?:more than|over|>)\s*(\d+)\s*$|^\s*(\d+)\s*\+\s*$", re.I)


def age_band_of(age: float, bands: Sequence[str]) -> str | None:
    """The band (``"20-29"``, ``"more than 70"``, ``"70+"``) an estimated age falls in.

    Parameters
    ----------
    age : float
        An estimated age in years (NaN gives None).
    bands : sequence of str
        Band labels such as FairFace's ``0-2, 3-9, ..., 60-69, more than 70``. ``"a-b"`` holds
        ages from a up to (not including) b + 1; ``"more than N"`` / ``"N+"`` holds ages >= N
        (FairFace's "more than 70" follows "60-69", so 70 belongs to it).

    Returns
    -------
    str or None
        None when no band holds the age or the labels cannot be parsed.

    Examples
    --------
    >>> age_band_of(29.6, ["20-29", "30-39", "more than 70"])
    '30-39'
    >>> age_band_of(71, ["20-29", "more than 70"])
    'more than 70'
    """
    if age is None or not np.isfinite(age):
        return None
    a = int(np.floor(float(age) + 0.5))
    for b in bands:
        m = _BAND.match(str(b))
        if m and int(m.group(1)) <= a <= int(m.group(2)):
            return str(b)
        m = _ABOVE.match(str(b))
        if m and a >= int(m.group(1) or m.group(2)):
            return str(b)
    return None
