"""Covariates in a 1:1 audit: composition by group, rates within strata, crude and adjusted ratios.

``[analysis] adjust_for = ["age_band"]`` asks, for every grouping, threshold and metric:

- the covariate's composition by group (people and images per stratum) and its balance
  (:mod:`audit.metrics.balance`: standardised differences against the reference group, Cramér's V),
  with a warning when a group differs materially;
- each group's rate within each stratum (impostor pairs by the unordered pair of their two people's
  strata; mated pairs by their person's);
- each group's ratio to the reference group, crude and adjusted (Mantel–Haenszel over the strata),
  both with the people-level, simultaneous intervals of the reference table
  (:mod:`audit.metrics.adjust`). Strata that only one side has are named in ``strata_missing``.

A covariate is taken per person (the value of their first acquired image); several covariates
together form joint strata. Pure computation from the analysis' cell data; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..datasets.table import group_labels, grouping_id, join_group_values
from ..errors import ConfigError
from ..metrics.adjust import adjusted_comparisons, greenland_robins_variance, mantel_haenszel, pair_strata, stratum_counts
from ..metrics.balance import MATERIAL_DIFFERENCE, covariate_balance, standardised_difference
from ..metrics.people import people_bootstrap
from ..metrics.people_jackknife import people_jackknife
from ..metrics.reference import rate_dof
from .result import TABLE_COLUMNS

__all__ = ["ConfounderTables", "confounder_tables", "covariate_tables", "CONFOUNDER_COLUMNS", "UNKNOWN_STRATUM"]

UNKNOWN_STRATUM = "unknown"

CONFOUNDER_COLUMNS: dict[str, list[str]] = {k: TABLE_COLUMNS[k] for k in ("covariates", "balance", "stratum_rates", "adjusted")}

#: How the adjusted intervals are made (the crude ones of the same rows are the reference table's).
ADJUSTED_METHOD = "Mantel-Haenszel over strata; people bootstrap, max-t simultaneous over the comparisons"
ADJUSTED_METHOD_INDEPENDENT = "Mantel-Haenszel over strata; Greenland-Robins interval (comparisons assumed independent)"


@dataclass(frozen=True)
class ConfounderTables:
    """The tables of :data:`CONFOUNDER_COLUMNS` and the warnings they raise."""

    covariates: pd.DataFrame
    balance: pd.DataFrame
    stratum_rates: pd.DataFrame
    adjusted: pd.DataFrame
    warnings: tuple[str, ...]


def _order(values: Sequence[str], levels: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(values))
    known = [v for v in (levels or []) if v in present]
    rest = sorted(v for v in present if v not in known and v != UNKNOWN_STRATUM)
    return known + rest + ([UNKNOWN_STRATUM] if UNKNOWN_STRATUM in present else [])


def _reference(reference, cols, cats, trials) -> tuple[int | None, str]:
    if int(np.sum(trials > 0)) < 2:
        return None, ""
    if isinstance(reference, Mapping) and cols and all(c in reference for c in cols):
        name = join_group_values([str(reference[c]) for c in cols])
        if name in cats:
            return cats.index(name), ""
    note = "; reference: the group with the most comparisons ('overall' has no strata of its own)" if reference == "overall" else ""
    return int(np.argmax(trials)), note


def _gr_interval(e1, n1, e0, n0, z=1.959963984540054) -> tuple[float, float]:
    r = float(mantel_haenszel(e1, n1, e0, n0))
    v = float(greenland_robins_variance(e1, n1, e0, n0))
    if not (np.isfinite(v) and 0 < r < np.inf):
        return (0.0, np.inf)
    return float(np.exp(np.log(r) - z * np.sqrt(v))), float(np.exp(np.log(r) + z * np.sqrt(v)))


def _crude_dof(sc, metric: str, k: int, jack, person_group: np.ndarray, g: int) -> np.ndarray:
    """Each group's degrees of freedom for threshold ``k``, as the reference table's intervals use
    them (:func:`audit.metrics.reference.rate_dof`), from the crude counts and raw replicates."""
    if metric == "fmr":
        e, n, re_, rn, jk = sc.fm[:, :, k].sum(1), sc.imp.sum(1), sc.rep_fm[:, :, :, k].sum(2), sc.rep_imp.sum(2), jack[0]
    else:
        e, n, re_, rn, jk = sc.fnm[:, :, k].sum(1), sc.mated.sum(1), sc.rep_fnm[:, :, :, k].sum(2), sc.rep_mated.sum(2), jack[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        point = np.where(n > 0, e / np.where(n > 0, n, 1), np.nan)
        reps = np.where(rn > 0, re_ / np.where(rn > 0, rn, 1), np.nan)
    members = person_group[:, None] == np.arange(g)[None, :]
    return rate_dof(metric, point, e, n, reps, jk[:, :g, k], members, sc.people)


def confounder_tables(
    samples: pd.DataFrame,
    ok_rows: np.ndarray,
    data,
    cell_labels: Sequence[tuple[str, ...]],
    columns: Sequence[str],
    groupings: Sequence[Sequence[str]],
    thresholds,
    *,
    adjust_for: Sequence[str],
    reference=None,
    bootstrap: int = 1000,
    seed: int = 0,
    levels: Mapping[str, Sequence[str]] | None = None,
) -> ConfounderTables:
    """Composition, balance, stratum rates and crude/adjusted ratios for every grouping.

    Parameters
    ----------
    samples, ok_rows, data, cell_labels, columns, groupings, thresholds
        As for :func:`audit.verification.analyse_cells` (``data.people`` holds the per-person counts).
    adjust_for : sequence of str
        Covariate columns of ``samples`` (``[analysis] adjust_for``).
    reference, bootstrap, seed
        The analysis' own: the replicates resample the same people as the crude intervals.
    levels : mapping, optional
        Each covariate's bands in order (the manifest's); others are sorted, ``"unknown"`` last.
    """
    samples = samples.reset_index(drop=True)
    missing = [c for c in adjust_for if c not in samples.columns]
    if missing:
        shown = [c for c in samples.columns if c not in ("sample_id", "path", "sha256", "status", "n_faces", "detail", "subject")]
        raise ConfigError(f"field 'analysis.adjust_for' names {missing}, which the samples lack; their label columns are {shown} "
                          "(declare a covariate under 'covariates' in the dataset's manifest)")
    name = "+".join(adjust_for)
    empty = {k: pd.DataFrame(columns=v) for k, v in CONFOUNDER_COLUMNS.items()}
    if data.people is None:
        return ConfounderTables(**empty, warnings=(f"no adjustment for {name}: it needs the identities of the people compared",))
    ok_rows = np.asarray(ok_rows, np.int64)
    ok = samples.iloc[ok_rows]
    cov_img = group_labels(ok, list(adjust_for)).map(lambda v: UNKNOWN_STRATUM if UNKNOWN_STRATUM in str(v).split(" / ") else v)
    cov_img = cov_img.to_numpy(object)
    subj_labels, pcode = np.unique(ok["subject"].to_numpy(), return_inverse=True)
    pcode = pcode.reshape(-1)
    if subj_labels.size != data.people.n_people:
        raise ConfigError(f"the adjustment found {subj_labels.size} people where the analysis has {data.people.n_people}")
    first = np.full(subj_labels.size, len(pcode), np.int64)
    np.minimum.at(first, pcode, np.arange(len(pcode)))
    strata = _order(cov_img[first].tolist(), (levels or {}).get(adjust_for[0]) if len(adjust_for) == 1 else None)
    k = len(strata)
    lookup = {s: i for i, s in enumerate(strata)}
    sigma = np.array([lookup[v] for v in cov_img[first]], np.int64)
    warnings = []
    varies = int(np.sum(pd.Series(cov_img).groupby(pcode).nunique().to_numpy() > 1))
    if varies:
        warnings.append(f"{varies} person(s) have images in different {name} strata; each is counted in the stratum of their first image")
    ps, pt, _ = pair_strata(k)
    pair_names = [strata[a] if a == b else f"{strata[a]} × {strata[b]}" for a, b in zip(ps, pt)]
    col_pos = {c: i for i, c in enumerate(columns)}
    rows = {key: [] for key in CONFOUNDER_COLUMNS}
    targets = [t.target_fmr for t in thresholds]
    for cols in groupings:
        gid = grouping_id(cols)
        cats = sorted(group_labels(samples, cols).unique().tolist())
        g = len(cats)
        glook = {c: i for i, c in enumerate(cats)}
        base = np.array([glook[join_group_values([lab[col_pos[c]] for c in cols])] for lab in cell_labels], np.int64)
        mapping = np.tile(base, data.n_sides)
        person_group = mapping[data.people.person_first_cell]
        people = np.zeros((g, k), np.int64)
        np.add.at(people, (person_group, sigma), 1)
        img_group = person_group[pcode]
        images = np.zeros((g, k), np.int64)
        np.add.at(images, (img_group, sigma[pcode]), 1)
        op = None
        if bootstrap and data.people.mated_person.size and any(t is not None for t in targets) and data.people.tail_score is not None:
            op = people_bootstrap(data.people, mapping, g, n_replicates=bootstrap, seed=seed, targets=targets).op_threshold
        sc = stratum_counts(data.people, mapping, g, sigma, k, n_replicates=bootstrap, seed=seed, op_threshold=op)
        jack = people_jackknife(data.people, mapping, g) if bootstrap else None
        ref, note = _reference(reference, cols, cats, sc.imp.sum(1))  # as the reference table: same-group impostor comparisons
        share = people / np.maximum(people.sum(1, keepdims=True), 1)
        for c in range(g):
            d = standardised_difference(share[c], share[ref]) if ref is not None else np.full(k, np.nan)
            for s in range(k):
                if people[c, s] or images[c, s]:
                    rows["covariates"].append((gid, name, cats[c], strata[s], int(people[c, s]), int(images[c, s]), float(share[c, s]),
                                               float(d[s]) if c != ref else 0.0))
        if ref is not None:
            bal, v = covariate_balance(people, cats, strata, ref)
            for b in bal:
                rows["balance"].append((gid, name, b.group, b.reference, b.max_difference, b.stratum, b.material, v))
            worst = [b for b in bal if b.material]
            if worst:
                w = max(worst, key=lambda b: abs(b.max_difference))
                warnings.append(f"{gid}: the groups differ in {name} (standardised difference {w.max_difference:+.2f} between "
                                f"{w.group} and {w.reference} in {w.stratum}, over the {MATERIAL_DIFFERENCE} cut-off; Cramér's V {v:.2f}): "
                                f"compare the crude ratios with the {name}-adjusted ones")
        op_cols = np.isfinite(op).mean(axis=0) >= 0.9 if op is not None and op.size else np.zeros(len(thresholds), bool)
        for kk, t in enumerate(thresholds):
            for metric, e, n, names in (("fmr", sc.fm[:, :, kk], sc.imp, pair_names), ("fnmr", sc.fnm[:, :, kk], sc.mated, strata)):
                used = np.flatnonzero(n.sum(0) > 0)
                for c in range(g):
                    for s in used:
                        rows["stratum_rates"].append((gid, t.name, t.value, metric, cats[c], names[s], int(round(e[c, s])), int(round(n[c, s])),
                                                      e[c, s] / n[c, s] if n[c, s] else np.nan))
                if ref is None or n[ref].sum() == 0:
                    continue
                method = (ADJUSTED_METHOD if bootstrap else ADJUSTED_METHOD_INDEPENDENT) + note
                dof = _crude_dof(sc, metric, kk, jack, person_group, g) if bootstrap else None
                for a in adjusted_comparisons(cats, sc, metric, kk, ref, op_column=bool(metric == "fnmr" and op_cols[kk]), dof=dof):
                    miss = "; ".join(names[s] for s in a.strata_missing)
                    crude = (a.crude, a.crude_low, a.crude_high)
                    adj = (a.adjusted, a.adjusted_low, a.adjusted_high)
                    if not bootstrap:  # no replicates: the intervals if every comparison were independent
                        gi = cats.index(a.group)
                        crude = (a.crude, *_gr_interval(e[gi].sum(keepdims=True), n[gi].sum(keepdims=True), e[ref].sum(keepdims=True),
                                                        n[ref].sum(keepdims=True)))
                        adj = (a.adjusted, a.independent_low, a.independent_high)
                    rows["adjusted"].append((gid, t.name, t.value, metric, a.group, a.reference, name, *crude, bool(crude[1] > 1 or crude[2] < 1),
                                             *adj, bool(adj[1] > 1 or adj[2] < 1), a.p_adjusted if bootstrap else np.nan, a.strata_used, miss,
                                             a.independent_low, a.independent_high, method))
    frames = {key: pd.DataFrame(r, columns=CONFOUNDER_COLUMNS[key]) for key, r in rows.items()}
    return ConfounderTables(**frames, warnings=tuple(warnings))


def covariate_tables(samples: pd.DataFrame, ok_rows: np.ndarray, scored, groupings, config, dataset: Mapping | None) -> ConfounderTables:
    """:func:`confounder_tables` for a run: the scored cell data, the config's ``[analysis]`` and
    ``[run]`` settings, and the covariates' band order from the dataset's manifest."""
    declared = (dataset or {}).get("covariates") or {}
    levels = {k: v.get("levels") for k, v in declared.items() if isinstance(v, Mapping)}
    return confounder_tables(samples, ok_rows, scored.data, scored.labels, scored.columns, groupings, scored.thresholds,
                             adjust_for=list(config.analysis.adjust_for), reference=config.analysis.reference,
                             bootstrap=config.run.bootstrap, seed=config.run.seed, levels=levels)
