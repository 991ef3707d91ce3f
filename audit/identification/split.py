"""Galleries and probes: who is enrolled, which images search, which searches are mated.

A 1:N audit enrols a *gallery* (one or more images of each enrolled subject) and searches it with
*probes*. A probe is **mated** when its subject is enrolled (its mate can be found) and
**non-mated** when it is not (any candidate it returns is a false match). A probe image is never
in the gallery itself.

Builders (all seeded, all sizes configurable; each returns a validated :class:`GalleryProbeSplit`):

- :func:`split_gallery_probes`: the general rule. Leave a fraction of subjects out of the
  gallery (their images become non-mated probes), enrol ``gallery_per_subject`` images of every
  other subject (``enrol_rule``) and search with their remaining images (mated probes).
- :func:`london_half_split` (scenario ``"london-half"``): the London set: neutral photo enrolled,
  smiling photo searched, half the subjects (stratified by ethnicity) left out as non-mated.
- :func:`lfw_singletons_split` (scenario ``"lfw-singletons"``): LFW: one image of every identity
  with 2+ images enrolled, their other images mated probes, the single-image identities
  non-mated probes; optionally a seeded subset of each.
- :func:`cross_dataset_split` (scenario ``"cross-dataset"``): gallery from one table, probes from
  another (the ACLU's test: members of Congress searched against arrest photos).

Inputs are :class:`~audit.datasets.SampleTable` objects or their ``data`` frames. When the frame
has a ``status`` column (as :func:`audit.verification.acquire.embed_table` returns), enrolment only picks
images whose status is ``ok``; probes keep their status (a failed probe is a result, see
:mod:`audit.identification.analysis`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..datasets import SampleTable
from ..errors import FaceAuditError

__all__ = [
    "IdentificationError",
    "GalleryProbeSplit",
    "ENROL_RULES",
    "split_gallery_probes",
    "london_half_split",
    "lfw_singletons_split",
    "cross_dataset_split",
]

ENROL_RULES = ("first", "random")
_REQUIRED = ("sample_id", "subject", "sha256")


class IdentificationError(FaceAuditError, ValueError):
    """A gallery, probe set, search or identification config is unusable.

    The message says what was expected, what was found, and how to fix it.
    """


def _frame(table: SampleTable | pd.DataFrame, what: str) -> tuple[pd.DataFrame, tuple[str, ...], dict]:
    if isinstance(table, SampleTable):
        return table.data.reset_index(drop=True), tuple(table.group_columns), dict(table.dataset)
    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True), (), {}
    raise IdentificationError(f"{what} must be a SampleTable or a pandas DataFrame of samples, got {type(table).__name__}")


@dataclass(frozen=True)
class GalleryProbeSplit:
    """An enrolled gallery and the probes that search it. Validated on construction.

    Attributes
    ----------
    gallery : pandas.DataFrame
        One row per enrolled image: ``sample_id``, ``subject``, ``sha256`` (and any other columns
        of the sample table: ``path``, group labels, ``status``).
    probes : pandas.DataFrame
        One row per search: the same columns plus ``mated`` (bool).
    group_columns : tuple of str
        Label columns usable as groupings.
    scenario : str
        ``"london-half"``, ``"lfw-singletons"``, ``"cross-dataset"`` or ``"custom"``.
    params : dict
        The builder's arguments (recorded in provenance).
    dataset : dict
        Provenance of the dataset(s).
    warnings : tuple of str
        What the builder left out and why (e.g. subjects none of whose images could be enrolled).

    Raises
    ------
    IdentificationError
        An empty gallery; the same sample or the same image bytes (sha256) enrolled twice; a
        probe image that is also in the gallery; a non-mated probe whose subject is enrolled; a
        mated probe whose subject is not; a repeated probe.
    """

    gallery: pd.DataFrame
    probes: pd.DataFrame
    group_columns: tuple[str, ...] = ()
    scenario: str = "custom"
    params: Mapping[str, Any] = field(default_factory=dict)
    dataset: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        g, p = self.gallery, self.probes
        for name, df, cols in (("gallery", g, _REQUIRED), ("probes", p, (*_REQUIRED, "mated"))):
            if not isinstance(df, pd.DataFrame):
                raise IdentificationError(f"GalleryProbeSplit.{name} must be a pandas DataFrame, got {type(df).__name__}")
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise IdentificationError(f"GalleryProbeSplit.{name} lacks the columns {missing}; it has {list(df.columns)}")
        if g.empty:
            raise IdentificationError(
                "the gallery is empty: no subject could be enrolled. Check the enrolment rule (enrol_rule) and that "
                "the enrolled images were acquired (status 'ok'), and that not every subject was left out as non-mated."
            )
        object.__setattr__(self, "gallery", g.reset_index(drop=True))
        object.__setattr__(self, "probes", p.reset_index(drop=True).assign(mated=p["mated"].astype(bool).to_numpy()))
        g, p = self.gallery, self.probes
        dup = g["sample_id"].duplicated(keep=False)
        if dup.any():
            raise IdentificationError(
                f"sample {g.loc[dup, 'sample_id'].iloc[0]!r} is enrolled {int(dup.sum())} times; each gallery entry must be a "
                "different image (drop the repeated rows)"
            )
        dup = g["sha256"].duplicated(keep=False)
        if dup.any():
            rows = g.loc[g["sha256"] == g.loc[dup, "sha256"].iloc[0]]
            raise IdentificationError(
                f"the same image bytes (sha256 {rows['sha256'].iloc[0][:12]}…) are enrolled twice, as "
                f"{rows['sample_id'].tolist()} (subjects {rows['subject'].tolist()}); a duplicate gallery image would be "
                "returned twice by every search. Keep one copy."
            )
        dup = p["sample_id"].duplicated(keep=False)
        if dup.any():
            raise IdentificationError(f"probe {p.loc[dup, 'sample_id'].iloc[0]!r} appears {int(dup.sum())} times; search each image once")
        both = p["sha256"].isin(set(g["sha256"]))
        if both.any():
            r = p.loc[both].iloc[0]
            raise IdentificationError(
                f"probe {r['sample_id']!r} (subject {r['subject']!r}) is also in the gallery (same sha256); a probe must be a "
                f"different image from every enrolled one. {int(both.sum())} probe(s) are affected."
            )
        enrolled = set(g["subject"].astype(str))
        subj = p["subject"].astype(str)
        bad = (~p["mated"]) & subj.isin(enrolled)
        if bad.any():
            r = p.loc[bad].iloc[0]
            raise IdentificationError(
                f"probe {r['sample_id']!r} is marked non-mated but its subject {r['subject']!r} is enrolled in the gallery; "
                f"a non-mated probe's subject must not be enrolled ({int(bad.sum())} such probe(s)). Mark it mated or "
                "remove the subject from the gallery."
            )
        bad = p["mated"] & ~subj.isin(enrolled)
        if bad.any():
            r = p.loc[bad].iloc[0]
            raise IdentificationError(
                f"probe {r['sample_id']!r} is marked mated but its subject {r['subject']!r} is not enrolled; "
                f"{int(bad.sum())} such probe(s). Mark it non-mated or enrol the subject."
            )

    # ---------------------------------------------------------------------------- summaries
    @property
    def n_gallery_subjects(self) -> int:
        return int(self.gallery["subject"].nunique())

    @property
    def n_mated(self) -> int:
        return int(self.probes["mated"].sum())

    @property
    def n_nonmated(self) -> int:
        return int((~self.probes["mated"]).sum())

    def sample_ids(self) -> list[str]:
        """Every image the split uses (gallery then probes)."""
        return self.gallery["sample_id"].tolist() + self.probes["sample_id"].tolist()

    def describe(self) -> dict[str, Any]:
        """Sizes, for provenance and logs."""
        return {
            "scenario": self.scenario,
            "gallery_subjects": self.n_gallery_subjects,
            "gallery_images": int(len(self.gallery)),
            "mated_probes": self.n_mated,
            "mated_subjects": int(self.probes.loc[self.probes["mated"], "subject"].nunique()),
            "nonmated_probes": self.n_nonmated,
            "nonmated_subjects": int(self.probes.loc[~self.probes["mated"], "subject"].nunique()),
            "params": dict(self.params),
        }

    def with_status(self, samples: pd.DataFrame) -> "GalleryProbeSplit":
        """Copy ``status`` (and ``n_faces``/``detail``) from ``samples`` by ``sample_id``."""
        cols = [c for c in ("status", "n_faces", "detail") if c in samples.columns]
        look = samples.set_index("sample_id")[cols]
        g = self.gallery.drop(columns=[c for c in cols if c in self.gallery.columns]).join(look, on="sample_id")
        p = self.probes.drop(columns=[c for c in cols if c in self.probes.columns]).join(look, on="sample_id")
        return GalleryProbeSplit(g, p, self.group_columns, self.scenario, self.params, self.dataset, self.warnings)


# -------------------------------------------------------------------------------- helpers
def _matches(df: pd.DataFrame, rule: Mapping[str, Any] | None, what: str) -> np.ndarray:
    """Rows that satisfy a ``{column: value or [values]}`` filter (all rows when None)."""
    if rule is None:
        return np.ones(len(df), dtype=bool)
    if not isinstance(rule, Mapping) or not rule:
        raise IdentificationError(f"{what} must be a mapping such as {{'expression': 'neutral'}}, got {rule!r}")
    keep = np.ones(len(df), dtype=bool)
    for col, val in rule.items():
        if col not in df.columns:
            raise IdentificationError(f"{what} filters on column {col!r}, which the samples lack; columns are {sorted(df.columns)}")
        vals = [str(v) for v in (val if isinstance(val, (list, tuple, set)) else [val])]
        keep &= df[col].astype(str).isin(vals).to_numpy()
    return keep


def _acquired(df: pd.DataFrame) -> np.ndarray:
    if "status" not in df.columns:
        return np.ones(len(df), dtype=bool)
    return (df["status"].astype(str) == "ok").to_numpy()


def _check_fraction(x: float, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0.0 <= float(x) <= 1.0):
        raise IdentificationError(f"{name} must be a number in [0, 1], got {x!r}")
    return float(x)


def _check_count(x: int | None, name: str, minimum: int = 1) -> int | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise IdentificationError(f"{name} must be an integer >= {minimum} (or None for no limit), got {x!r}")
    return int(x)


def _stratified_pick(subjects: pd.DataFrame, fraction: float, strata: str | None, rng: np.random.Generator) -> set[str]:
    """Choose round(fraction × n) subjects at random, spread over strata in proportion."""
    subjects = subjects.assign(subject=subjects["subject"].astype(str)).sort_values("subject", kind="stable")  # row order must not matter
    n = len(subjects)
    want = int(round(fraction * n))
    if want == 0:
        return set()
    if not strata:
        return set(rng.permutation(subjects["subject"].to_numpy())[:want].tolist())
    groups = {k: rng.permutation(v["subject"].to_numpy()) for k, v in subjects.groupby(strata, sort=True)}
    base = {k: int(np.floor(fraction * len(v))) for k, v in groups.items()}
    rest = want - sum(base.values())
    rem = [k for k in groups if base[k] < len(groups[k])]
    if rest > 0 and rem:
        weights = np.array([fraction * len(groups[k]) - base[k] for k in rem], dtype=float)
        if weights.sum() <= 0:
            weights = np.ones(len(rem))
        extra = rng.choice(len(rem), size=min(rest, len(rem)), replace=False, p=weights / weights.sum())
        for i in extra:
            base[rem[i]] += 1
    return {s for k, v in groups.items() for s in v[: base[k]].tolist()}


def _order(df: pd.DataFrame, rule: str, rng: np.random.Generator) -> pd.DataFrame:
    if rule == "first":
        return df.sort_values("sample_id", kind="stable")
    return df.iloc[rng.permutation(len(df))]


def _assemble(
    df: pd.DataFrame,
    enrolled: Sequence[str],
    nonmated: Sequence[str],
    *,
    gallery_per_subject: int,
    enrol_rule: str | Mapping[str, Any],
    probe_rule: Mapping[str, Any] | None,
    max_probes_per_subject: int | None,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Gallery and probe rows for the given enrolled and non-mated subjects."""
    rng = np.random.default_rng(seed)
    if isinstance(enrol_rule, str):
        if enrol_rule not in ENROL_RULES:
            raise IdentificationError(f"enrol_rule must be one of {list(ENROL_RULES)} or a column filter such as "
                                      f"{{'expression': 'neutral'}}, got {enrol_rule!r}")
        enrol_ok = np.ones(len(df), dtype=bool)
        order_rule = enrol_rule
    else:
        enrol_ok = _matches(df, enrol_rule, "enrol_rule")
        order_rule = "first"
    probe_ok = _matches(df, probe_rule, "probe_rule")
    acquired = _acquired(df)
    df = df.assign(_enrol=enrol_ok & acquired, _probe=probe_ok)
    by_subject = dict(tuple(df.groupby("subject", sort=True)))
    gallery_rows, probe_rows, warnings = [], [], []
    not_enrolled = []
    for s in sorted(enrolled):
        rows = _order(by_subject[s], order_rule, rng)
        g = rows[rows["_enrol"]].head(gallery_per_subject)
        if g.empty:
            not_enrolled.append(s)
            continue
        gallery_rows.append(g)
        rest = rows[~rows.index.isin(g.index) & rows["_probe"]].sort_values("sample_id", kind="stable")
        if max_probes_per_subject is not None:
            rest = rest.head(max_probes_per_subject)
        probe_rows.append(rest.assign(mated=True))
    for s in sorted(nonmated):
        rows = by_subject[s]
        rows = rows[rows["_probe"]].sort_values("sample_id", kind="stable")
        if max_probes_per_subject is not None:
            rows = rows.head(max_probes_per_subject)
        probe_rows.append(rows.assign(mated=False))
    if not_enrolled:
        warnings.append(
            f"{len(not_enrolled)} subject(s) chosen for the gallery had no image that could be enrolled (no acquired image "
            f"matching the enrolment rule) and were left out with their probes, e.g. {not_enrolled[:5]}"
        )
    cols = [c for c in df.columns if not c.startswith("_")]
    gallery = pd.concat(gallery_rows)[cols] if gallery_rows else pd.DataFrame(columns=cols)
    probes = pd.concat(probe_rows)[cols + ["mated"]] if probe_rows else pd.DataFrame(columns=cols + ["mated"])
    return gallery.reset_index(drop=True), probes.reset_index(drop=True), warnings


# -------------------------------------------------------------------------------- builders
def split_gallery_probes(
    table: SampleTable | pd.DataFrame,
    *,
    gallery_per_subject: int = 1,
    nonmated_fraction: float = 0.5,
    seed: int = 0,
    enrol_rule: str | Mapping[str, Any] = "first",
    probe_rule: Mapping[str, Any] | None = None,
    max_probes_per_subject: int | None = None,
    stratify: str | None = None,
) -> GalleryProbeSplit:
    """Split a sample table into an enrolled gallery, mated probes and non-mated probes.

    A seeded random ``nonmated_fraction`` of the subjects (stratified by ``stratify``, default the
    first group column) is left out of the gallery: their images (those matching ``probe_rule``)
    are non-mated probes. Every other subject enrols ``gallery_per_subject`` images chosen by
    ``enrol_rule``, and its remaining images matching ``probe_rule`` are mated probes. A subject
    with no further image stays enrolled (a distractor) with no probe.

    Parameters
    ----------
    table : SampleTable or pandas.DataFrame
        Rows with ``sample_id``, ``subject``, ``sha256``; a ``status`` column restricts enrolment to
        acquired images.
    gallery_per_subject : int, default 1
    nonmated_fraction : float in [0, 1], default 0.5
    seed : int, default 0
    enrol_rule : {"first", "random"} or mapping, default "first"
        ``"first"``: the first images by ``sample_id``; ``"random"``: seeded random ones; a mapping
        ``{column: value or [values]}``: only images matching it (then the first).
    probe_rule : mapping, optional
        Only images matching it search (both mated and non-mated).
    max_probes_per_subject : int, optional
        At most this many probes per subject (the first by ``sample_id``).
    stratify : str, optional
        Column to stratify the non-mated draw by.

    Returns
    -------
    GalleryProbeSplit

    Examples
    --------
    >>> df = pd.DataFrame({"sample_id": list("abcdef"), "subject": ["1", "1", "2", "2", "3", "3"],
    ...                    "sha256": list("uvwxyz")})
    >>> s = split_gallery_probes(df, nonmated_fraction=1 / 3, seed=0)
    >>> s.n_gallery_subjects, s.n_mated, s.n_nonmated
    (2, 2, 2)
    """
    df, groups, dataset = _frame(table, "table")
    f = _check_fraction(nonmated_fraction, "nonmated_fraction")
    gps = _check_count(gallery_per_subject, "gallery_per_subject")
    mpps = _check_count(max_probes_per_subject, "max_probes_per_subject")
    strata = stratify if stratify is not None else (groups[0] if groups else None)
    if strata is not None and strata not in df.columns:
        raise IdentificationError(f"stratify names column {strata!r}, which the samples lack; columns are {sorted(df.columns)}")
    subjects = df.drop_duplicates("subject")[["subject"] + ([strata] if strata else [])]
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    nonmated = _stratified_pick(subjects, f, strata, rng)
    enrolled = [s for s in subjects["subject"] if s not in nonmated]
    gallery, probes, warnings = _assemble(
        df, enrolled, sorted(nonmated), gallery_per_subject=gps, enrol_rule=enrol_rule, probe_rule=probe_rule,
        max_probes_per_subject=mpps, seed=seed,
    )
    params = {"gallery_per_subject": gps, "nonmated_fraction": f, "seed": seed, "enrol_rule": enrol_rule,
              "probe_rule": probe_rule, "max_probes_per_subject": mpps, "stratify": strata}
    return GalleryProbeSplit(gallery, probes, groups, "custom", params, dataset, tuple(warnings))


def london_half_split(
    table: SampleTable | pd.DataFrame,
    *,
    nonmated_fraction: float = 0.5,
    seed: int = 0,
    stratify: str | None = "ethnicity",
    enrol_rule: Mapping[str, Any] | None = None,
    probe_rule: Mapping[str, Any] | None = None,
) -> GalleryProbeSplit:
    """The London set as a 1:N search: neutral photos enrolled, smiling photos searched.

    Half the subjects (``nonmated_fraction``, stratified by ethnicity, seeded) are left out of the
    gallery; their smiling photos are the non-mated probes. The enrolled subjects' smiling photos
    are the mated probes. With all 102 subjects: 51 enrolled, 51 mated and 51 non-mated searches.

    Examples
    --------
    >>> from audit.datasets import load_dataset                             # doctest: +SKIP
    >>> s = london_half_split(load_dataset("london", data_dir="../shared/datasets"))  # doctest: +SKIP
    >>> s.n_gallery_subjects, s.n_mated, s.n_nonmated                      # doctest: +SKIP
    (51, 51, 51)
    """
    df, groups, _ = _frame(table, "table")
    if stratify is not None and stratify not in df.columns:
        stratify = groups[0] if groups else None
    split = split_gallery_probes(
        table, gallery_per_subject=1, nonmated_fraction=nonmated_fraction, seed=seed,
        enrol_rule=enrol_rule or {"expression": "neutral"}, probe_rule=probe_rule or {"expression": "smiling"},
        stratify=stratify,
    )
    return GalleryProbeSplit(split.gallery, split.probes, split.group_columns, "london-half", split.params,
                             split.dataset, split.warnings)


def lfw_singletons_split(
    table: SampleTable | pd.DataFrame,
    *,
    mated_subjects: int | None = None,
    nonmated_subjects: int | None = None,
    max_probes_per_subject: int | None = None,
    gallery_per_subject: int = 1,
    seed: int = 0,
) -> GalleryProbeSplit:
    """LFW as a 1:N search: identities with 2+ images enrolled, single-image identities non-mated.

    Each identity with more than ``gallery_per_subject`` images enrols its first
    ``gallery_per_subject`` acquired images (by file name); its other images are mated probes. Each
    identity with exactly one image is a non-mated probe (LFW's 4,069 single-image people are by
    construction absent from the gallery).

    Parameters
    ----------
    mated_subjects, nonmated_subjects : int, optional
        Keep a seeded random subset of this many enrolled / single-image identities (for runs
        that must finish quickly); all when None.
    max_probes_per_subject : int, optional
        At most this many mated probes per identity.
    gallery_per_subject : int, default 1
        Identities with more images than this are enrolled; those with 2..gallery_per_subject
        images (only when it is above 1) are neither enrolled nor searched.
    seed : int, default 0

    Notes
    -----
    Image counts are taken from the table as given (before embedding); after embedding, pass
    the samples with their ``status`` and the same seed without subset sizes to re-split with
    enrolment restricted to acquired images (this is what :func:`~audit.identification.run_identification` does).
    """
    df, groups, dataset = _frame(table, "table")
    gps = _check_count(gallery_per_subject, "gallery_per_subject")
    mpps = _check_count(max_probes_per_subject, "max_probes_per_subject")
    n_mated = _check_count(mated_subjects, "mated_subjects")
    n_non = _check_count(nonmated_subjects, "nonmated_subjects")
    counts = df.groupby("subject", sort=True).size()
    multi = counts[counts > gps].index.to_numpy()
    single = counts[counts == 1].index.to_numpy()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    if n_mated is not None and n_mated < multi.size:
        multi = np.sort(rng.choice(multi, size=n_mated, replace=False))
    if n_non is not None and n_non < single.size:
        single = np.sort(rng.choice(single, size=n_non, replace=False))
    gallery, probes, warnings = _assemble(
        df, list(multi), list(single), gallery_per_subject=gps, enrol_rule="first", probe_rule=None,
        max_probes_per_subject=mpps, seed=seed,
    )
    params = {"mated_subjects": n_mated, "nonmated_subjects": n_non, "max_probes_per_subject": mpps,
              "gallery_per_subject": gps, "seed": seed}
    return GalleryProbeSplit(gallery, probes, groups, "lfw-singletons", params, dataset, tuple(warnings))


def cross_dataset_split(
    gallery_table: SampleTable | pd.DataFrame,
    probe_table: SampleTable | pd.DataFrame,
    *,
    gallery_per_subject: int = 1,
    enrol_rule: str | Mapping[str, Any] = "first",
    probe_rule: Mapping[str, Any] | None = None,
    max_probes_per_subject: int | None = None,
    gallery_subjects: int | None = None,
    probe_subjects: int | None = None,
    shared_subjects: bool = False,
    seed: int = 0,
) -> GalleryProbeSplit:
    """Gallery from one table, probes from another (e.g. members of Congress against arrest photos).

    Subject ids and sample ids are prefixed with each table's dataset name (``"lfw:George_W_Bush"``)
    so that two datasets' ids cannot collide (the original sample id is kept in ``source_id``,
    the dataset's name in ``dataset``); every probe is then non-mated. Pass
    ``shared_subjects=True`` when both tables name the same people with the same ids (a
    mugshot set and a probe set of the same people): probes whose subject is enrolled are then
    mated. Group columns present in only one table are filled with ``"Unknown"`` in the other.

    Raises
    ------
    IdentificationError
        An image (sha256) present in both tables, or the errors of :class:`GalleryProbeSplit`.
    """
    gdf, ggroups, gds = _frame(gallery_table, "gallery_table")
    pdf, pgroups, pds = _frame(probe_table, "probe_table")
    gname = str(gds.get("name") or "gallery")
    pname = str(pds.get("name") or "probes")
    if gname == pname:
        gname, pname = gname + "-gallery", pname + "-probes"
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    n_g = _check_count(gallery_subjects, "gallery_subjects")
    n_p = _check_count(probe_subjects, "probe_subjects")

    def prep(df: pd.DataFrame, name: str, n: int | None) -> pd.DataFrame:
        subs = np.sort(df["subject"].astype(str).unique())
        if n is not None and n < subs.size:
            keep = set(rng.choice(subs, size=n, replace=False).tolist())
            df = df[df["subject"].astype(str).isin(keep)]
        df = df.assign(dataset=name, source_id=df["sample_id"].astype(str), sample_id=name + ":" + df["sample_id"].astype(str))
        if not shared_subjects:
            df = df.assign(subject=name + ":" + df["subject"].astype(str))
        return df

    gdf = prep(gdf, gname, n_g)
    pdf = prep(pdf, pname, n_p)
    groups = tuple(dict.fromkeys([*pgroups, *ggroups]))
    for c in groups:
        for df in (gdf, pdf):
            if c not in df.columns:
                df[c] = "Unknown"
    both = pdf["sha256"].isin(set(gdf["sha256"]))
    if both.any():
        raise IdentificationError(
            f"image {pdf.loc[both, 'sample_id'].iloc[0]!r} is in both the gallery dataset and the probe dataset (same sha256); "
            f"{int(both.sum())} image(s) are shared. Remove them from one side."
        )
    gps = _check_count(gallery_per_subject, "gallery_per_subject")
    mpps = _check_count(max_probes_per_subject, "max_probes_per_subject")
    gal, _, warn_g = _assemble(gdf, sorted(gdf["subject"].unique()), [], gallery_per_subject=gps, enrol_rule=enrol_rule,
                               probe_rule=None, max_probes_per_subject=None, seed=seed)
    pr = pdf[_matches(pdf, probe_rule, "probe_rule")].sort_values("sample_id", kind="stable")
    if mpps is not None:
        pr = pr.groupby("subject", sort=False).head(mpps)
    pr = pr.assign(mated=pr["subject"].isin(set(gal["subject"])).to_numpy())
    cols = list(dict.fromkeys([c for c in gal.columns] + [c for c in pr.columns if c != "mated"]))
    gal = gal.reindex(columns=cols)
    pr = pr.reindex(columns=cols + ["mated"])
    params = {"gallery_dataset": gname, "probe_dataset": pname, "gallery_per_subject": gps, "enrol_rule": enrol_rule,
              "probe_rule": probe_rule, "max_probes_per_subject": mpps, "gallery_subjects": n_g, "probe_subjects": n_p,
              "shared_subjects": bool(shared_subjects), "seed": seed}
    dataset = {"gallery": gds, "probes": pds, "name": f"{gname} + {pname}"}
    return GalleryProbeSplit(gal.reset_index(drop=True), pr.reset_index(drop=True), groups, "cross-dataset", params,
                             dataset, tuple(warn_g))
