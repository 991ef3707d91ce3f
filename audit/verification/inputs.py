"""Audit systems we cannot run: read a vendor's scores file or a file of embeddings.

Both give the pipeline what a backend would: a per-image sample table (with group labels and a
status) and the compared pairs' scores, so the metrics, report and gate work unchanged.

Scores file (CSV or Parquet), one row per compared pair:

====================  ===========================================================================
``sample_a``          id of one image (any string)
``sample_b``          id of the other
``score``             the system's score; ``higher_is_similar`` says which way it points
``mated``             optional: true for a same-person pair (else derived from the subjects)
``subject_a/_b``      optional when a samples table is given: the two identities
``<group>_a/_b``      optional when a samples table is given: each side's group labels
====================  ===========================================================================

A samples table (CSV or Parquet) has ``sample_id``, ``subject``, the group columns and optionally
``status`` (``ok`` unless given; other statuses count as failures to acquire).

Decisions on bad input (each raises :class:`~audit.errors.DataError` naming the file, the row and
the column, before anything is computed):

- a score that is text but not a number, or infinite; a pair that compares an image with itself;
- the same pair twice (in either order): duplicates would count one comparison twice;
- a pair naming a sample the samples table lacks; a pair involving a sample whose status is not ok;
- ``mated`` contradicting the subjects;
- a subject whose images carry different group labels (demographic labels belong to people).

A group with a single subject is allowed and reported as a warning in the result: its same-group
FMR then comes from one person's images only.

A missing score (an empty cell or NaN) is a *failed comparison* (a vendor's comparison that
returned nothing): following NIST, it counts as a non-match, so a failed mated pair is a false
non-match at every threshold and a failed impostor pair is never a false match; the result reports
how many there were.

Scores without identities: most published score dumps only say, per pair, genuine or impostor. A
scores file with a ``mated`` (or ``genuine``) column and no ``subject_a/_b`` (and no samples table)
is accepted; each sample then stands for its own person, joined with the samples it is mated with.
These stand-ins are not people, so the result assumes independent pairs (its intervals are
labelled so, and no people-level interval is given) and does not report subject counts. The group
columns are optional (none: one population).

Two-sided scores (``two_sided=True``, ``[scores] two_sided = true``): ``sample_a`` is always the
probe and ``sample_b`` the reference image (a search of new photos against enrolled ones), so the
cross-group FMR matrix is directional (row: the probe's group) and FNMR counts in the probe's
group. A sample that is a probe on one row and a reference on another is an error; the same probe
and reference in both orders cannot occur then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..backends.base import BackendInfo
from .protocol import PairScores
from ..errors import DataError
from ..images import sha256_file

__all__ = ["ScoredInput", "read_table", "read_scores", "read_embeddings", "check_subject_labels", "check_numeric_text", "single_subject_groups"]


@dataclass(frozen=True)
class ScoredInput:
    """What a scores or embeddings file yields: samples (with status), the acquired rows, the pairs,
    and a BackendInfo describing the source for provenance and threshold units."""

    samples: pd.DataFrame
    ok_rows: np.ndarray
    pairs: PairScores | None
    info: BackendInfo
    group_columns: tuple[str, ...]
    embeddings: np.ndarray | None = None
    side: np.ndarray | None = None  # two-sided scores: 0 (probe) or 1 (reference) per acquired row
    # False when the file gave no identities (only a mated/genuine flag per pair): intervals then
    # assume independent pairs, and the subjects in `samples` are stand-ins (each mated pair's two
    # samples joined), not people
    identities: bool = True
    failed_mated: int = 0      # pairs whose score is missing (a failed comparison), per kind
    failed_impostor: int = 0


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (by extension); CSV cells are read as text (empty cells as NaN)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        # every cell as text: a label "NaN", "Infinity" or "007" stays what it says; numeric columns are converted by their readers
        return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)
    except (ValueError, OSError, ImportError) as exc:
        raise DataError(f"{path}: cannot read it as {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'} ({exc})") from exc


def _need(df: pd.DataFrame, cols: Sequence[str], path: Path, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{path}: {what} lacks the column(s) {missing}; it has {list(df.columns)}")


def check_subject_labels(samples: pd.DataFrame, group_columns: Sequence[str], source: str) -> None:
    """Raise when a subject's images carry different labels in any group column."""
    for col in group_columns:
        n = samples.groupby("subject")[col].nunique(dropna=False)
        bad = n[n > 1]
        if len(bad):
            subj = bad.index[0]
            vals = sorted(samples.loc[samples["subject"] == subj, col].astype(str).unique())
            raise DataError(
                f"{source}: subject {subj!r} has images labelled {vals} in column {col!r} ({len(bad)} subject(s) disagree); "
                "demographic labels belong to the person: give every image of a subject the same value"
            )


def single_subject_groups(samples: pd.DataFrame, group_columns: Sequence[str]) -> list[str]:
    """Warnings for groups with exactly one subject."""
    out = []
    for col in group_columns:
        counts = samples.groupby(col)["subject"].nunique()
        for g, n in counts.items():
            if n == 1:
                out.append(f"group {col} = {g!r} has a single subject: its same-group FMR comes from one person's images")
    return out


_MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none"})


#: The largest magnitude accepted for a score: far beyond any system's scale, small enough that
#: score ranges, histogram bins and their widths stay finite.
MAX_ABS_SCORE = 1e12


def check_numeric_text(df: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Raise a DataError naming row and column for a cell of a numeric column that holds text
    which is not a number (``"abc"``, ``"1,5"``), or a finite number beyond ±:data:`MAX_ABS_SCORE`.
    Empty and NaN-like cells are left to the caller."""
    for col in columns:
        if col not in df.columns:
            continue
        num = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            huge = np.isfinite(num) & (np.abs(num) > MAX_ABS_SCORE)
        if huge.any():
            i = int(np.flatnonzero(huge)[0])
            raise DataError(
                f"{path}: row {i + 2}: column {col!r} is {num[i]:.6g}, beyond ±{MAX_ABS_SCORE:.0e}, the range accepted for "
                f"scores ({int(huge.sum())} cell(s) like it); rescale the scores"
            )
        if pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            continue
        text = df[col].map(lambda v: isinstance(v, str) and v.strip().lower() not in _MISSING_TEXT).astype(bool)
        bad = text & pd.to_numeric(df[col], errors="coerce").isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: row {i + 2}: column {col!r} is {str(df[col].iloc[i])[:40]!r}, not a number "
                f"({int(bad.sum())} cell(s) like it); write scores as plain numbers such as 0.83 or 1e-3"
            )


def _blank(col: pd.Series) -> pd.Series:
    return col.map(lambda v: isinstance(v, str) and v.strip() == "").astype(bool)


def _load_npy(path: Path, n_rows: int, samples_path) -> np.ndarray:
    """A 2-D numeric ``.npy`` array with one row per samples-table row (never a pickle)."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if head != b"\x93NUMPY":
        kind = "a .npz archive" if head[:2] == b"PK" else ("empty" if not head else "not a .npy array")
        raise DataError(f"{path}: the file is {kind}; save one 2-D float array with numpy.save(path, array)")
    try:
        emb = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc
    if not isinstance(emb, np.ndarray) or emb.dtype.kind not in "fiu":
        raise DataError(f"{path}: expected a numeric array, found dtype {getattr(emb, 'dtype', type(emb).__name__)}")
    if emb.ndim != 2 or emb.shape[0] != n_rows or emb.shape[1] == 0:
        raise DataError(f"{path}: expected an array of shape ({n_rows}, d), one row per row of {samples_path}; found {emb.shape}")
    return emb


def _file_identity(path: Path) -> str:
    return sha256_file(path)


def _load_samples(samples_path: Path, group_columns: Sequence[str]) -> pd.DataFrame:
    s = read_table(samples_path)
    _need(s, ["sample_id", "subject", *group_columns], samples_path, "the samples table")
    s = s.copy()
    for col in ("sample_id", "subject", *group_columns):
        empty = s[col].isna() | _blank(s[col])
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(
                f"{samples_path}: row {i + 2}: column {col!r} is empty ({int(empty.sum())} row(s) like it); "
                f"give every image its {'label' if col in group_columns else col}"
                + (" (use a value such as \"unknown\" for a missing label)" if col in group_columns else "")
            )
    s["sample_id"] = s["sample_id"].astype(str)
    s["subject"] = s["subject"].astype(str)
    dup = s["sample_id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{samples_path}: row {i + 2}: sample_id {s['sample_id'].iloc[i]!r} appears twice")
    if "status" not in s.columns:
        s["status"] = "ok"
    for col, default in (("n_faces", 1), ("detail", ""), ("path", "")):
        if col not in s.columns:
            s[col] = default
    n_faces = pd.to_numeric(s["n_faces"], errors="coerce")
    if n_faces.isna().any():
        i = int(np.flatnonzero(n_faces.isna().to_numpy())[0])
        raise DataError(f"{samples_path}: row {i + 2}, column 'n_faces': {str(s['n_faces'].iloc[i])!r} is not a number")
    s["n_faces"] = n_faces.astype(np.int64)
    s["detail"] = s["detail"].fillna("").astype(str)
    s["path"] = s["path"].fillna("").astype(str)
    s["status"] = s["status"].astype(str).str.strip()
    for col in group_columns:
        s[col] = s[col].astype(str)
    return s.reset_index(drop=True)


def read_scores(
    path: str | Path,
    *,
    higher_is_similar: bool,
    group_columns: Sequence[str],
    samples_path: str | Path | None = None,
    name: str = "",
    two_sided: bool = False,
) -> ScoredInput:
    """Read a scores file (see the module docstring) into samples and pair scores.

    Parameters
    ----------
    path : path
        CSV or Parquet, one row per pair.
    higher_is_similar : bool
        True for similarities (e.g. Rekognition's 0–100), False for distances (negated once here).
    group_columns : sequence of str
        The label columns to audit (``["ethnicity", "gender"]``).
    samples_path : path, optional
        A samples table; without it the scores file must carry ``subject_a/_b`` and ``<group>_a/_b``.
    two_sided : bool, default False
        ``sample_a`` is the probe and ``sample_b`` the reference of every pair: the pairs keep that
        order and ``side`` of the result gives each acquired row's side.
    """
    path = Path(path)
    df = read_table(path)
    _need(df, ["sample_a", "sample_b", "score"], path, "the scores file")
    df = df.reset_index(drop=True)
    check_numeric_text(df, ["score"], path)
    a = df["sample_a"].astype(str).to_numpy()
    b = df["sample_b"].astype(str).to_numpy()
    score = pd.to_numeric(df["score"], errors="coerce").to_numpy(np.float64)
    # A missing score (empty cell, NaN) is a failed comparison: per NIST it counts as a non-match,
    # for mated and impostor pairs alike. Text that is not a number, and infinite scores, are errors.
    missing = df["score"].isna().to_numpy() | (df["score"].astype(str).str.strip().str.lower().isin(["", "nan"])).to_numpy()
    bad = ~np.isfinite(score) & ~missing
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row {i + 2}: column 'score' is {str(df['score'].iloc[i])!r}, not a finite number "
            f"({int(bad.sum())} row(s) like it); fix those cells (an empty cell or NaN marks a failed comparison)"
        )
    same = a == b
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise DataError(f"{path}: row {i + 2}: compares sample {a[i]!r} with itself")
    if two_sided:
        both_sides = np.intersect1d(a, b)
        if both_sides.size:
            sid = both_sides[0]
            ra, rb = int(np.flatnonzero(a == sid)[0]), int(np.flatnonzero(b == sid)[0])
            raise DataError(
                f"{path}: sample {sid!r} is a probe (sample_a) on row {ra + 2} and a reference (sample_b) on row {rb + 2} "
                f"({both_sides.size} sample(s) like it); with two_sided = true every image is on one side"
            )
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = pd.Series(lo + "\x00" + hi)
    dup = key.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((key == key.iloc[i]).to_numpy())[0])
        raise DataError(
            f"{path}: row {i + 2}: the pair ({a[i]!r}, {b[i]!r}) was already scored on row {first + 2} "
            f"({int(dup.sum())} duplicate row(s)); keep one score per pair"
        )

    identities = True
    if samples_path is not None:
        samples = _load_samples(Path(samples_path), group_columns)
        index = pd.Index(samples["sample_id"])
        ia, ib = index.get_indexer(a), index.get_indexer(b)
        unknown = (ia < 0) | (ib < 0)
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            name_ = a[i] if ia[i] < 0 else b[i]
            raise DataError(
                f"{path}: row {i + 2}: sample {name_!r} is not in the samples table {samples_path} "
                f"({int(unknown.sum())} pair(s) name unknown samples)"
            )
        source = str(samples_path)
    else:
        flag_col = "mated" if "mated" in df.columns else ("genuine" if "genuine" in df.columns else None)
        identities = "subject_a" in df.columns or "subject_b" in df.columns or flag_col is None
        if identities:
            cols = ["subject_a", "subject_b", *[f"{g}_{s}" for g in group_columns for s in "ab"]]
            _need(df, cols, path, "a scores file without a samples table (or give only a 'mated' column: pairs are then assumed independent)")
            subj_a, subj_b = df["subject_a"].astype(str), df["subject_b"].astype(str)
        else:
            _need(df, [f"{g}_{s}" for g in group_columns for s in "ab"], path, "a scores file without a samples table")
            subj_a, subj_b = _stand_in_subjects(a, b, _flag(df[flag_col], path, flag_col))
        side_a = pd.DataFrame({"sample_id": a, "subject": subj_a, **{g: df[f"{g}_a"].astype(str) for g in group_columns}})
        side_b = pd.DataFrame({"sample_id": b, "subject": subj_b, **{g: df[f"{g}_b"].astype(str) for g in group_columns}})
        both = pd.concat([side_a, side_b], ignore_index=True)
        conflict = both.groupby("sample_id")[["subject", *group_columns]].nunique().gt(1).any(axis=1)
        if conflict.any():
            sid = conflict[conflict].index[0]
            raise DataError(f"{path}: sample {sid!r} is given different subjects or labels on different rows")
        samples = both.drop_duplicates("sample_id").sort_values("sample_id").reset_index(drop=True)
        samples = samples.assign(status="ok", n_faces=1, detail="", path="")
        index = pd.Index(samples["sample_id"])
        ia, ib = index.get_indexer(a), index.get_indexer(b)
        source = str(path)

    check_subject_labels(samples, group_columns, source)
    status = samples["status"].astype(str).to_numpy()
    failed_pair = (status[ia] != "ok") | (status[ib] != "ok")
    if failed_pair.any():
        i = int(np.flatnonzero(failed_pair)[0])
        raise DataError(
            f"{path}: row {i + 2}: pair ({a[i]!r}, {b[i]!r}) involves a sample whose status is not 'ok'; "
            "a failed acquisition has no score: drop the pair or set the status to ok"
        )
    subj = samples["subject"].to_numpy()
    mated = subj[ia] == subj[ib]
    if "mated" in df.columns or "genuine" in df.columns:
        col = "mated" if "mated" in df.columns else "genuine"
        given = _flag(df[col], path, col)
        wrong = given != mated
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise DataError(
                f"{path}: row {i + 2}: column {col!r} says {bool(given[i])} but the subjects are "
                f"{subj[ia[i]]!r} and {subj[ib[i]]!r}; fix the flag or the subjects"
            )
    sim = score if higher_is_similar else -score
    sim = np.where(missing, -np.inf, sim)  # a failed comparison never matches: a false non-match when mated
    ok_rows = np.flatnonzero(status == "ok")
    pos = np.full(len(samples), -1, dtype=np.int64)
    pos[ok_rows] = np.arange(len(ok_rows))
    pa, pb = pos[ia], pos[ib]
    side = None
    if two_sided:  # keep the probe first
        lo_i, hi_i = pa, pb
        side = np.zeros(len(ok_rows), dtype=np.int64)
        side[pb] = 1
    else:
        lo_i, hi_i = np.minimum(pa, pb), np.maximum(pa, pb)
    pairs = PairScores(sim[mated], lo_i[mated], hi_i[mated], sim[~mated], lo_i[~mated], hi_i[~mated])
    digest = _file_identity(path)
    if samples_path is not None:
        digest = hashlib.sha256((digest + _file_identity(Path(samples_path))).encode()).hexdigest()
    info = BackendInfo(
        backend="scores-file", model=name or path.stem, version="", weights_sha256=digest, dim=0,
        metric="similarity" if higher_is_similar else "distance",
        options={"path": str(path), "samples": str(samples_path) if samples_path else None},
    )
    return ScoredInput(samples, ok_rows, pairs, info, tuple(group_columns), side=side, identities=identities,
                       failed_mated=int(np.sum(missing & mated)), failed_impostor=int(np.sum(missing & ~mated)))


_TRUE = {"true", "1", "yes", "t", "y", "genuine", "mated"}
_FALSE = {"false", "0", "no", "f", "n", "impostor", "non-mated", "nonmated"}


def _flag(col: pd.Series, path: Path, name: str) -> np.ndarray:
    """A genuine/impostor column as booleans; anything unrecognised is an error naming the row."""
    text = col.astype(str).str.strip().str.lower()
    known = text.isin(_TRUE | _FALSE).to_numpy()
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise DataError(f"{path}: row {i + 2}: column {name!r} is {str(col.iloc[i])!r}; expected true/false "
                        "(or 1/0, yes/no, genuine/impostor)")
    return text.isin(_TRUE).to_numpy()


def _stand_in_subjects(a: np.ndarray, b: np.ndarray, mated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in subjects for a file without identities: each sample its own, mated pairs joined
    (connected components), so that the mated flag and the subjects agree. They are not people:
    the result says identities are unknown and assumes independent pairs."""
    ids = pd.Index(pd.unique(np.concatenate([a, b])))
    parent = np.arange(len(ids))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ia, ib = ids.get_indexer(a), ids.get_indexer(b)
    for x, y in zip(ia[mated], ib[mated]):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    root = np.array([find(x) for x in range(len(ids))])
    label = np.array([f"~{r}" for r in root], dtype=object)
    return label[ia], label[ib]


def read_embeddings(
    path: str | Path,
    *,
    samples_path: str | Path,
    group_columns: Sequence[str],
    metric: str = "cosine",
    name: str = "",
) -> ScoredInput:
    """Read embeddings (``.npy`` with one row per samples-table row, or Parquet with ``sample_id`` and
    one column per dimension). The pipeline scores every pair of acquired images (the all-pairs
    protocol) with the tiled engine; ``pairs`` is None and ``embeddings`` holds the acquired rows."""
    path = Path(path)
    if metric not in ("cosine", "euclidean"):
        raise DataError(f"{path}: metric must be 'cosine' or 'euclidean', got {metric!r}")
    samples = _load_samples(Path(samples_path), group_columns)
    if path.suffix.lower() == ".npy":
        emb = _load_npy(path, len(samples), samples_path)
        where = lambda r, c: (f"{path}: row {r} (sample {samples['sample_id'].iloc[r]!r})", f"column {c}")  # noqa: E731
    else:
        t = read_table(path)
        _need(t, ["sample_id"], path, "the embeddings table")
        ids = t["sample_id"].astype(str)
        empty_id = t["sample_id"].isna() | (ids.str.strip() == "")
        if empty_id.any():
            i = int(np.flatnonzero(empty_id.to_numpy())[0])
            raise DataError(f"{path}: row {i + 2}: column 'sample_id' is empty; every embedding needs its sample's id")
        dup = ids.duplicated(keep=False)
        if dup.any():
            rows = np.flatnonzero(dup.to_numpy())
            first = ids.iloc[rows[0]]
            again = [int(r) + 2 for r in rows if ids.iloc[r] == first]
            raise DataError(
                f"{path}: sample_id {first!r} appears on rows {again[:5]} ({int(ids.duplicated().sum())} duplicate row(s)); "
                "each sample needs exactly one embedding"
            )
        extra = ids[~ids.isin(samples["sample_id"])]
        if len(extra):
            i = int(extra.index[0])
            raise DataError(
                f"{path}: row {i + 2}: sample_id {extra.iloc[0]!r} is not in the samples table {samples_path} "
                f"({len(extra)} row(s) like it; the file has {len(t)} rows, the samples table {len(samples)})"
            )
        missing = samples.loc[~samples["sample_id"].isin(ids), "sample_id"]
        if len(missing):
            raise DataError(f"{path}: no embedding for sample {missing.iloc[0]!r} ({len(missing)} missing)")
        vec = t.drop(columns=["sample_id"])
        if vec.shape[1] == 0:
            raise DataError(f"{path}: the embeddings table has a sample_id column but no dimension columns")
        line = pd.Series(np.arange(len(t)) + 2, index=ids.to_numpy())
        for col in vec.columns:
            num = pd.to_numeric(vec[col], errors="coerce")
            bad = num.isna() & ~_blank(vec[col]) if not pd.api.types.is_numeric_dtype(vec[col]) else pd.Series(False, index=vec.index)
            blank = vec[col].isna() | _blank(vec[col])
            for kind, mask in (("not a number", bad), ("empty", blank)):
                if mask.any():
                    i = int(np.flatnonzero(mask.to_numpy())[0])
                    raise DataError(
                        f"{path}: row {i + 2}, column {str(col)!r}: {kind} ({str(vec[col].iloc[i])[:40]!r}); "
                        f"{int(mask.sum())} cell(s) in that column like it. Every embedding value must be a finite number"
                    )
            vec[col] = num
        vec.index = ids.to_numpy()
        emb = vec.loc[samples["sample_id"]].to_numpy(np.float64)
        order = line.loc[samples["sample_id"]].to_numpy()
        cols = list(vec.columns)
        where = lambda r, c: (f"{path}: row {int(order[r])} (sample {samples['sample_id'].iloc[r]!r})", f"column {cols[c]!r}")  # noqa: E731
    emb = np.asarray(emb, dtype=np.float64)
    status = samples["status"].astype(str).to_numpy()
    ok_rows = np.flatnonzero(status == "ok")
    finite = np.isfinite(emb[ok_rows])
    if not finite.all():
        k, c = (int(x) for x in np.argwhere(~finite)[0])
        r = int(ok_rows[k])
        row, col = where(r, c)
        raise DataError(f"{row} has NaN or infinite values: {col} is {float(emb[r, c])} ({int((~finite.all(axis=1)).sum())} row(s) like it)")
    huge = np.abs(emb[ok_rows]) > MAX_ABS_SCORE
    if huge.any():
        k, c = (int(x) for x in np.argwhere(huge)[0])
        r = int(ok_rows[k])
        row, col = where(r, c)
        raise DataError(f"{row}: {col} is {float(emb[r, c]):.6g}, beyond ±{MAX_ABS_SCORE:.0e}; rescale the embeddings")
    zero = ~np.any(emb[ok_rows] != 0, axis=1)
    if zero.any():
        # an all-zero vector has no direction: a failure to acquire, not an embedding
        samples = samples.copy()
        rows = ok_rows[zero]
        samples.loc[rows, "status"] = "error"
        samples.loc[rows, "detail"] = "all-zero embedding in the embeddings file"
        status = samples["status"].astype(str).to_numpy()
        ok_rows = np.flatnonzero(status == "ok")
    check_subject_labels(samples, group_columns, str(samples_path))
    info = BackendInfo(
        backend="embeddings-file", model=name or path.stem, version="",
        weights_sha256=hashlib.sha256((_file_identity(path) + _file_identity(Path(samples_path))).encode()).hexdigest(),
        dim=int(emb.shape[1]), metric=metric, options={"path": str(path), "samples": str(samples_path)},
    )
    return ScoredInput(samples, ok_rows, None, info, tuple(group_columns), emb[ok_rows])
