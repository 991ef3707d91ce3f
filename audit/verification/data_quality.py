"""The data-quality step of a 1:1 run: duplicates found and handled by ``[data] duplicates``, wrong
faces listed, and the covariate analysis of ``[analysis] adjust_for`` gathered for the result.

The finding itself is :mod:`audit.quality` (pure); this module applies it to an acquired dataset
(leaving out what the policy says, before any pair is scored) and says what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..quality import DUPLICATE_COLUMNS, WRONG_FACE_COLUMNS, duplicate_exclusions, find_duplicates, near_duplicate_bound, wrong_faces

__all__ = ["DataQuality", "apply_data_quality", "result_tables"]

POLICY_TEXT = {
    "default": "default: exact copies across subjects left out, other duplicates kept and warned about",
    "exclude": "exclude: copies across subjects left out, one copy kept within a subject",
    "warn": "warn: every image kept, duplicates warned about",
    "keep": "keep: every image kept, duplicates listed only",
}


@dataclass(frozen=True)
class DataQuality:
    duplicates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DUPLICATE_COLUMNS))
    wrong_faces: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=WRONG_FACE_COLUMNS))
    provenance: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _metric(info) -> str:
    return "cosine" if info.metric in ("cosine", "similarity") else "euclidean"


def apply_data_quality(acq, config, log):
    """Find duplicates and wrong faces in an acquired dataset and apply the duplicate policy.

    Returns the acquisition with the left-out images removed (samples, acquired rows and
    embeddings together) and a :class:`DataQuality`. A scores file's pairs are taken as given:
    its duplicates are listed, never left out."""
    policy = config.data.duplicates
    samples = acq.samples.reset_index(drop=True)
    emb = acq.embeddings
    metric = _metric(acq.info)
    bound = near_duplicate_bound(acq.info.backend, acq.info.model) if emb is not None and acq.info.metric in ("cosine", "euclidean") else None
    dups = find_duplicates(samples, acq.ok_rows, emb, metric=metric, bound=bound)
    wrong = wrong_faces(samples, acq.ok_rows, emb, metric=metric) if emb is not None else pd.DataFrame(columns=WRONG_FACE_COLUMNS)
    listed_only = acq.pairs is not None
    out, dups = duplicate_exclusions(dups, "keep" if listed_only else policy)
    across = dups["scope"] == "across subjects"
    counts = {
        "duplicates_policy": POLICY_TEXT[policy] + (" (a scores file: listed only)" if listed_only else ""),
        "near_duplicate_bound": bound,
        "near_duplicate_units": ("cosine distance" if metric == "cosine" else "Euclidean distance") if bound is not None else None,
        "exact_pairs_across_subjects": int(((dups["kind"] == "exact") & across).sum()),
        "exact_pairs_within_subject": int(((dups["kind"] == "exact") & ~across).sum()),
        "near_pairs_across_subjects": int(((dups["kind"] == "near") & across).sum()),
        "near_pairs_within_subject": int(((dups["kind"] == "near") & ~across).sum()),
        "images_excluded": len(out),
        "wrong_face_images": int((~wrong["reason"].str.contains("faces detected")).sum()) if len(wrong) else 0,
        "several_face_images": int(wrong["reason"].str.contains("faces detected").sum()) if len(wrong) else 0,
    }
    warnings = []
    if len(dups):
        what = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if k.endswith(("subjects", "subject")) and v)
        if out:
            warnings.append(f"duplicate images ({what}): {len(out)} image(s) left out ({counts['duplicates_policy']}); see the duplicates table")
        if policy != "keep" and len(dups) > dups["excluded"].sum():
            warnings.append(f"{int(len(dups) - dups['excluded'].sum())} duplicate pair(s) kept in the audit ({what}); an image under two "
                            "identities is an impostor pair that is really mated: check the duplicates table")
    if counts["wrong_face_images"]:
        warnings.append(f"{counts['wrong_face_images']} image(s) look like another subject rather than their own (possibly the wrong "
                        "face or a wrong label): see the wrong-face table")
    if counts["several_face_images"]:
        warnings.append(f"{counts['several_face_images']} image(s) hold several faces; one was taken by the backend's face policy: "
                        "see the wrong-face table")
    if bound is None and emb is not None:
        counts["near_duplicates"] = f"not looked for: no near-duplicate bound is measured for {acq.info.backend}:{acq.info.model}"
    if out:
        keep = ~samples["sample_id"].astype(str).isin(out).to_numpy()
        new_pos = np.cumsum(keep) - 1
        ok_keep = keep[acq.ok_rows]
        acq = replace(acq, samples=samples[keep].reset_index(drop=True), ok_rows=new_pos[acq.ok_rows[ok_keep]],
                      embeddings=emb[ok_keep] if emb is not None else None)
        log(f"data quality: {len(out)} duplicate image(s) left out")
    return acq, DataQuality(dups, wrong, counts, tuple(warnings))


def result_tables(quality: DataQuality | None, confounders) -> dict[str, Any]:
    """The optional tables of the result (keyword arguments of AuditResult)."""
    out: dict[str, Any] = {}
    if quality is not None:
        out.update(duplicates=quality.duplicates, wrong_faces=quality.wrong_faces)
    if confounders is not None:
        out.update(covariates=confounders.covariates, balance=confounders.balance, stratum_rates=confounders.stratum_rates,
                   adjusted=confounders.adjusted)
    return out
