"""The 1:1 report's fixed sections: what was tested (in plain words), composition, failure to
acquire, limitations, provenance."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import pandas as pd

from ..verification.result import AuditResult
from ..verdict import _unresolved, threshold_units
from . import plots
from .plots import _f, flag, fmt_count, fmt_rate, group_order
from .viewkit import (
    CI_NAMES,
    SMALL_GROUP_SUBJECTS,
    _figure,
    _first,
    _label,
    _link,
    _names,
    _needed,
    _plain,
    _short,
    _sub,
    _text,
)


def _tested(result: AuditResult) -> dict[str, Any]:
    prov = result.provenance or {}
    backend = prov.get("backend") or {}
    dataset = prov.get("dataset") or {}
    protocol = prov.get("protocol") or {}
    if not isinstance(backend, Mapping):
        backend = {"backend": backend}
    if not isinstance(dataset, Mapping):
        dataset = {"title": dataset}
    if not isinstance(protocol, Mapping):
        protocol = {"protocol": protocol}

    def item(label: str, value: Any, *, full: str = "", link: bool = False) -> dict[str, str]:
        d = _link(value) if link else {"text": _text(value), "href": ""}
        d.update(label=label, title=full)
        return d

    b_items = [item("Backend", backend.get("backend")), item("Model", backend.get("model")),
               item("Version", backend.get("version"))]
    sha = str(backend.get("weights_sha256") or "")
    b_items.append(item("Weights sha256", _short(sha) if sha else None, full=sha))
    for key, label in (("metric", "Score"), ("dim", "Embedding size")):
        if key in backend:
            value = backend.get(key)
            if key == "metric" and result.thresholds:
                unit = threshold_units(result.thresholds[0], result.provenance)
                value = f"{unit.split(' ≤ ')[0].split(' ≥ ')[0]} ({'smaller' if '≤' in unit else 'larger'} is more alike)"
            b_items.append(item(label, value))
    if backend.get("default_threshold") is not None:
        src = backend.get("default_threshold_source")
        b_items.append(item("Library's default threshold", f"{_text(backend.get('default_threshold'))}"
                                                          + (f" ({_text(src)})" if src else "")))
    if backend.get("options"):
        opts = backend.get("options")
        b_items.append(item("Options", ", ".join(f"{str(k).replace('_', ' ')} {_text(v)}" for k, v in opts.items())
                            if isinstance(opts, Mapping) else opts))
    if backend.get("fingerprint"):
        b_items.append(item("Fingerprint", _short(backend.get("fingerprint")), full=str(backend.get("fingerprint"))))

    d_items = [item("Dataset", dataset.get("title") or dataset.get("name"))]
    if dataset.get("name") and dataset.get("title"):
        d_items.append(item("Manifest name", dataset.get("name")))
    d_items.append(item("Licence", dataset.get("licence")))
    if dataset.get("licence_url"):
        d_items.append(item("Licence text", dataset.get("licence_url"), link=True))
    d_items.append(item("Citation", dataset.get("citation")))
    if dataset.get("homepage"):
        d_items.append(item("Homepage", dataset.get("homepage"), link=True))
    d_items.append(item("Label source", dataset.get("label_source") or "not recorded"))
    if dataset.get("manifest_sha256"):
        msha = str(dataset.get("manifest_sha256"))
        d_items.append(item("Manifest sha256", _short(msha), full=msha))

    mated = _first(protocol, "mated_comparisons", "mated", "n_mated")
    impostor = _first(protocol, "impostor_comparisons", "impostors", "impostor", "n_impostor")
    if impostor is None and result.thresholds:
        impostor = result.thresholds[0].impostors
    if mated is None and result.groupings and result.thresholds:
        fnmr = _sub(result.rates, grouping=result.groupings[0], threshold_name=result.thresholds[0].name, metric="fnmr")
        if not fnmr.empty:
            mated = float(pd.to_numeric(fnmr["trials"], errors="coerce").fillna(0).sum())
    p_items = [item("Mated comparisons", fmt_count(mated) if mated is not None else None),
               item("Impostor comparisons", fmt_count(impostor) if impostor is not None else None)]
    used = {"mated_comparisons", "mated", "n_mated", "impostor_comparisons", "impostors", "impostor", "n_impostor"}
    p_items += [item(*_protocol_words(k, v)) for k, v in protocol.items() if k not in used and _protocol_words(k, v)]
    if not result.samples.empty:
        status = result.samples["status"].astype(str).value_counts(sort=False)
        if len(status):
            p_items.append(item("Images by status", ", ".join(f"{k} {fmt_count(v)}" for k, v in status.items())))

    thresholds = []
    for t in result.thresholds:
        thresholds.append({
            "name": t.name, "kind": str(t.kind).replace("_", " "),
            "target": fmt_rate(t.target_fmr) if t.target_fmr is not None else "—",
            "achieved": fmt_rate(t.achieved_fmr),
            "counts": f"{fmt_count(t.false_matches)} / {fmt_count(t.impostors)}",
            "fnmr": fmt_rate(t.achieved_fnmr),
            "value": threshold_units(t, result.provenance),
            "insufficient": flag(t.insufficient), "needed": _needed(t),
        })
    return {"backend": b_items, "dataset": d_items, "protocol": p_items, "thresholds": thresholds}


#: Protocol fields as the report words them: key -> label (values worded by _protocol_words).
_PROTOCOL_LABELS = {
    "kind": "Comparisons", "groupings": "Groupings", "failed_images_excluded": "Images with no usable face",
    "bootstrap_replicates": "People-level resamples", "disparity_weights": "Weights of the joint summaries",
    "interval": "Interval beside it, if comparisons were independent", "identities": "Identities",
    "failed_comparisons": "Failed comparisons", "people_interval": "People-level interval",
    "reference": "Reference group", "impostors": "Impostor pairs", "pairs": "Pair list", "sides": "Sides",
    "seed": "Random seed",
}


def _protocol_words(key: str, v: Any) -> tuple[str, str] | None:
    """(label, value) of one protocol field in plain words; None to leave it out (it is in provenance)."""
    label = _PROTOCOL_LABELS.get(key, str(key).replace("_", " ").capitalize())
    if key == "interval":
        return label, f"95% {CI_NAMES.get(str(v).lower(), _text(v))}"
    if key == "kind":
        return label, {"all_pairs": "every pair of images", "pairs": "a given list of pairs",
                       "same_group": "impostor pairs within a group only"}.get(str(v), str(v).replace("_", " "))
    if key == "groupings" and isinstance(v, (list, tuple)):
        return label, ", ".join(_label(str(g)) for g in v)
    if key == "failed_images_excluded":
        return label, ("left out of the comparisons and counted as failures to acquire" if v else "compared as they are")
    if key == "disparity_weights" and isinstance(v, Mapping):
        names = {"fdr_alpha": "FDR α", "garbe_alpha": "GARBE α", "inequity_alpha": "Inequity Rate α", "inequity_beta": "β"}
        return label, ", ".join(f"{names.get(k, k)} {x:g}" if isinstance(x, (int, float)) else f"{names.get(k, k)} {x}"
                                for k, x in v.items())
    if key == "failed_comparisons" and isinstance(v, Mapping):
        m, i = v.get("mated", 0) or 0, v.get("impostor", 0) or 0
        return label, ("none" if not (m or i) else f"{fmt_count(m)} mated and {fmt_count(i)} impostor comparisons "
                       "had no score (counted as non-matches)")
    if key == "identities":
        return label, {"given": "given (people resampled)"}.get(str(v), _text(v))
    if isinstance(v, bool):
        return label, "yes" if v else "no"
    if isinstance(v, Mapping):
        return label, "; ".join(f"{str(k).replace('_', ' ')}: {_text(x)}" for k, x in v.items())
    return label, _text(v)


def _composition(result: AuditResult) -> list[dict[str, Any]]:
    out = []
    for grouping in result.groupings:
        df = _sub(result.composition, grouping=grouping)
        if df.empty:
            continue
        rows = [{"group": str(g), "subjects": fmt_count(s), "images": fmt_count(i)}
                for g, s, i in zip(df["group"], df["subjects"], df["images"])]
        out.append({
            "label": _label(grouping), "rows": rows,
            "subjects": fmt_count(pd.to_numeric(df["subjects"], errors="coerce").sum()),
            "images": fmt_count(pd.to_numeric(df["images"], errors="coerce").sum()),
        })
    return out


def _fta(result: AuditResult) -> list[dict[str, Any]]:
    out = []
    for grouping in result.groupings:
        df = _sub(result.fta, grouping=grouping)
        if df.empty:
            continue
        by = {str(r.group): r for r in df.itertuples(index=False)}
        rows, desc = [], []
        for g in group_order(result, grouping):
            r = by.get(g)
            if r is None:
                continue
            attempts = _f(r.attempts)
            lo, hi = _f(r.ci_low), _f(r.ci_high)
            value = fmt_rate(r.value) if attempts > 0 else "n/a"
            rows.append({"group": g, "value": value,
                         "ci": f"({fmt_rate(lo)}–{fmt_rate(hi)})" if math.isfinite(lo) and math.isfinite(hi) else "",
                         "counts": f"{fmt_count(r.failures)} / {fmt_count(attempts)}"})
            desc.append(f"{g} {value} ({fmt_count(r.failures)}/{fmt_count(attempts)})")
        fig = _figure(
            plots.fta_bars(result, grouping),
            alt=f"Bar chart of the failure-to-acquire rate by {_label(grouping)} with 95% intervals: "
                + _names(desc) + ". The same numbers are in the table.",
            caption=f"Failure to acquire by {_label(grouping)}: images for which the backend produced no "
                    "embedding (no face, several faces, unreadable, error), with 95% intervals.",
        )
        out.append({"label": _label(grouping), "rows": rows, "figure": fig})
    return out


def _weights_text(result: AuditResult, summary: str) -> str:
    """The weights a joint summary was computed with (``[disparity]``), from provenance."""
    prov = result.provenance if isinstance(result.provenance, Mapping) else {}
    proto = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    w = proto.get("disparity_weights") if isinstance(proto.get("disparity_weights"), Mapping) else None
    if not w:
        return ""
    keys = {"fairness_discrepancy_rate": [("α", "fdr_alpha")], "garbe": [("α", "garbe_alpha")],
            "inequity_rate": [("α", "inequity_alpha"), ("β", "inequity_beta")]}.get(summary, [])
    parts = [f"{sym} = {w[k]:g}" for sym, k in keys if isinstance(w.get(k), (int, float))]
    return f" Weights here: {', '.join(parts)}." if parts else ""


def _two_sided(result: AuditResult) -> dict[str, str] | None:
    """The probe and reference selections of a two-sided protocol (directional cross-group
    matrices), as text; None for one set compared with itself."""
    prov = result.provenance if isinstance(result.provenance, Mapping) else {}
    proto = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    sides = proto.get("sides") if isinstance(proto.get("sides"), Mapping) else None
    if not sides:
        return None

    def text(sel: Any) -> str:
        if not isinstance(sel, Mapping):
            return str(sel)
        return ", ".join(f"{k} = {' or '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sel.items())

    return {"probe": text(sides.get("probe")), "reference": text(sides.get("reference"))}


def _limitations(result: AuditResult) -> list[str]:
    out: list[str] = []
    prov = result.provenance or {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    src = (dataset or {}).get("label_source")
    if src:
        out.append(f"Group labels come from this source: {_text(src)} Labels are categories assigned by that "
                   "source; they do not capture everything about how a face looks, and results speak only for "
                   "the categories used.")
    else:
        out.append("The dataset does not record where its group labels come from; treat group membership as "
                   "uncertain.")
    for t in result.thresholds:
        if flag(t.insufficient):
            need = _needed(t)
            out.append(f"Threshold {t.name} was set on {fmt_count(t.impostors)} impostor comparisons"
                       + (f", fewer than the {need} (3/FMR) needed to estimate an FMR of "
                          f"{fmt_rate(plots.fmr_basis(t))}" if need else "")
                       + f"; its achieved FMR ({fmt_rate(t.achieved_fmr)}) is only approximate.")
    total_mated = _sub(result.rates, metric="fnmr")
    if not total_mated.empty and not (pd.to_numeric(total_mated["trials"], errors="coerce").fillna(0) > 0).any():
        out.append("There are no mated comparisons (the dataset has no subject with two usable images), so FNMR "
                   "is not measured.")
    for grouping in result.groupings:
        label = _label(grouping)
        comp = _sub(result.composition, grouping=grouping)
        subjects = {str(g): _f(s) for g, s in zip(comp["group"], comp["subjects"])}
        small = [f"{g} ({fmt_count(s)})" for g, s in subjects.items() if math.isfinite(s) and 1 < s < SMALL_GROUP_SUBJECTS]
        one = [g for g, s in subjects.items() if s == 1]
        if small:
            out.append(f"By {label}: {len(small)} of {len(subjects)} groups have fewer than {SMALL_GROUP_SUBJECTS} "
                       f"subjects ({_names(small)}); their intervals are wide and their rates can change a lot with "
                       "a few people.")
        if one:
            out.append(f"By {label}: {_names(one)} {'has' if len(one) == 1 else 'have'} a single subject; "
                       "its rates describe one person, not a group, and intervals that resample subjects cannot be "
                       "computed.")
        rates = _sub(result.rates, grouping=grouping)
        order = group_order(result, grouping)
        for t in result.thresholds:
            at = _sub(rates, threshold_name=t.name, metric="fmr")
            basis = plots.fmr_basis(t)
            flagged_set = {str(r["group"]) for r in at.to_dict("records")
                           if flag(r.get("insufficient")) and (basis is None or _unresolved(r, basis))}
            flagged = [g for g in order if g in flagged_set]
            if flagged:
                need = _needed(t)
                out.append(f"At {t.name}, too few comparisons: the FMR of {len(flagged)} of {len(at)} {label} groups "
                           f"({_names(flagged)}) rests on " + (f"fewer than 3/FMR = {need} " if need else "too few ")
                           + "same-group impostor comparisons (counted effectively) and its interval contains the "
                             "target, so the sample cannot say whether it is above or below it.")
        fn = _sub(rates, metric="fnmr")
        if not fn.empty:
            trials: dict[str, float] = {}
            for g, n in zip(fn["group"], fn["trials"]):
                trials[str(g)] = max(trials.get(str(g), 0.0), _f(n) if math.isfinite(_f(n)) else 0.0)
            none = [g for g in order if g in trials and trials[g] <= 0]
            if none and len(none) < len(trials):
                out.append(f"By {label}: FNMR cannot be measured for {_names(none)} (no mated comparisons).")
    out.extend(str(w) for w in result.warnings)
    return out


def _overview(result: AuditResult) -> str:
    """One sentence: what was tested on what, and how much data there was."""
    system = _backend_label(result)
    prov = result.provenance or {}
    dataset = prov.get("dataset") if isinstance(prov.get("dataset"), Mapping) else {}
    protocol = prov.get("protocol") if isinstance(prov.get("protocol"), Mapping) else {}
    name = _text((dataset or {}).get("title") or (dataset or {}).get("name")) if dataset else "the dataset"
    parts = []
    if result.groupings:
        comp = _sub(result.composition, grouping=result.groupings[0])
        if not comp.empty:
            parts.append(f"{fmt_count(pd.to_numeric(comp['subjects'], errors='coerce').sum())} subjects")
    if not result.samples.empty:
        parts.append(f"{fmt_count(len(result.samples))} images")
    mated = _first(protocol or {}, "mated_comparisons", "mated", "n_mated")
    impostor = _first(protocol or {}, "impostor_comparisons", "impostors", "impostor", "n_impostor")
    if mated is not None and impostor is not None:
        parts.append(f"{fmt_count(mated)} mated and {fmt_count(impostor)} impostor comparisons")
    size = f" ({', '.join(parts)})" if parts else ""
    return (f"{system} tested on {name}{size}. There is one threshold for everyone: every group is measured at "
            "the same thresholds.")


def _backend_label(result: AuditResult) -> str:
    prov = result.provenance or {}
    backend = prov.get("backend") if isinstance(prov.get("backend"), Mapping) else {}
    return " / ".join(_text(backend.get(k)) for k in ("backend", "model") if backend.get(k)) or "The system"


def _provenance(result: AuditResult) -> list[dict[str, str]]:
    items = []
    for k, v in (result.provenance or {}).items():
        pv = _plain(v)
        if isinstance(pv, (dict, list)):
            items.append({"key": str(k), "text": "", "block": json.dumps(pv, indent=2, ensure_ascii=False)})
        else:
            items.append({"key": str(k), "text": _text(pv), "block": ""})
    return items


#: At most this many thumbnails of images that failed to acquire.
MAX_FACE_IMAGES = 24


def _failed_face_images(result: AuditResult) -> dict[str, Any]:
    """Thumbnails (96 px JPEG data URIs) of the images that failed to acquire, read from the
    samples' paths. The one place the report reads files, and only when asked to."""
    import base64
    import io

    from PIL import Image

    from ..errors import UnreadableImageError
    from ..images import read_rgb

    failed = result.samples[result.samples["status"].astype(str) != "ok"]
    label_cols = [c for c in result.samples.columns if c not in ("sample_id", "subject", "path", "status", "n_faces", "detail")]
    items = []
    for r in failed.head(MAX_FACE_IMAGES).itertuples(index=False):
        labels = ", ".join(_text(getattr(r, c)) for c in label_cols)
        caption = f"{_text(r.sample_id)} · {_text(r.status).replace('_', ' ')}" + (f" · {labels}" if labels else "")
        uri = ""
        try:
            im = Image.fromarray(read_rgb(str(r.path)))
            im.thumbnail((96, 96))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
            alt = f"Face image {_text(r.sample_id)} ({labels}), status {_text(r.status)}"
        except (UnreadableImageError, OSError, ValueError):
            alt = f"{_text(r.sample_id)}: no picture (the file cannot be read here)"
        items.append({"uri": uri, "alt": alt, "caption": caption})
    return {"thumbs": items, "total": len(failed), "more": len(failed) > len(items)}


