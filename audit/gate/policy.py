"""Gate policies: the rules (TOML) a result must satisfy, read and validated.

Errors name the policy file, the rule (its 1-based index and name) and the field.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


from ..errors import FaceAuditError
from ..identification.result import IdentificationResult
from ..verification.result import AuditResult



#: What the gate reads: a 1:1 audit result or a 1:N identification result.
Result = AuditResult | IdentificationResult


class GateError(FaceAuditError, ValueError):
    """A gate policy is malformed, or asks for something the results do not have.

    The message names the policy file, the rule (its 1-based index and name) and the field, and
    lists what is available.
    """


#: Rule kinds: which table a rule reads.
KINDS: tuple[str, ...] = ("disparity", "rate", "fta", "baseline", "fpir", "fnir")

#: Rule kinds that read a 1:N identification result's rates (the kind is the metric).
IDENTIFICATION_KINDS: tuple[str, ...] = ("fpir", "fnir")

#: What a rate or FTA rule compares with its limits: the point estimate or an end of the 95% interval.
BOUNDS: tuple[str, ...] = ("point", "upper", "lower")

#: The fixed columns of :attr:`GateReport.checks`.
CHECK_COLUMNS: list[str] = [
    "rule", "kind", "grouping", "group", "threshold", "metric",
    "value", "bound_used", "limit", "status", "detail",
]

#: Grouping id of the whole population in the rates and FTA tables (not one of ``AuditResult.groupings``).
OVERALL = "all"

_COMMON_KEYS = frozenset({"name", "kind", "grouping"})
_KIND_KEYS: dict[str, frozenset[str]] = {
    "disparity": _COMMON_KEYS | {"threshold", "metric", "summary", "min", "max"},
    "rate": _COMMON_KEYS | {"threshold", "metric", "min", "max", "bound", "skip_insufficient", "min_trials"},
    "fta": _COMMON_KEYS | {"min", "max", "bound", "min_trials"},
    "baseline": _COMMON_KEYS | {"threshold", "metric", "tolerance", "skip_insufficient", "min_trials"},
    "fpir": _COMMON_KEYS | {"threshold", "min", "max", "bound", "skip_insufficient", "min_trials"},
    "fnir": _COMMON_KEYS | {"threshold", "min", "max", "bound", "skip_insufficient", "min_trials"},
}
_ALL_RULE_KEYS = frozenset().union(*_KIND_KEYS.values())
_TOP_KEYS = frozenset({"title", "rule"})


# ================================================================================ policy


@dataclass(frozen=True)
class Rule:
    """One rule of a policy, validated.

    Attributes
    ----------
    index : int
        1-based position of the rule in its policy (the n-th ``[[rule]]`` table).
    name : str
        Unique within the policy; names the JUnit test case.
    kind : {"disparity", "rate", "fta", "baseline", "fpir", "fnir"}
        ``"fpir"``/``"fnir"`` read an identification result's rates of that metric.
    grouping : str
        A grouping id (``"ethnicity"``, ``"ethnicity+gender"``), ``"all"`` for the whole
        population, or ``"*"`` for every grouping in ``AuditResult.groupings``.
    threshold : str or None
        A threshold name (``"FMR=1e-3"``, ``"default 0.6"``); ``None`` for FTA.
    metric : str
        ``"fmr"`` or ``"fnmr"`` (as the results have them); ``"fta"`` for kind ``"fta"`` and for a
        baseline rule on FTA.
    summary : str or None
        The disparity summary (``"max_min_ratio"``, ...); kind ``"disparity"`` only.
    min, max : float or None
        Limits, inclusive: a check passes when ``min <= x <= max``.
    bound : {"point", "upper", "lower"}
        Which number is compared with the limits (rate and FTA rules): the point estimate, or the
        upper or lower end of its 95% interval.
    skip_insufficient : bool
        Skip groups the results flag ``insufficient`` (rate and baseline rules).
    min_trials : int
        Skip groups with fewer trials (comparisons; attempts for FTA).
    tolerance : float
        Baseline rules: absolute slack added to the baseline's upper interval end.
    """

    index: int
    name: str
    kind: str
    grouping: str
    threshold: str | None = None
    metric: str = ""
    summary: str | None = None
    min: float | None = None
    max: float | None = None
    bound: str = "point"
    skip_insufficient: bool = False
    min_trials: int = 0
    tolerance: float = 0.0

    @property
    def label(self) -> str:
        """``rule 2 ('FTA of every group')``: how messages name this rule."""
        return f"rule {self.index} ({self.name!r})"

    def limit_text(self) -> str:
        """The limits as text: ``<= 0.05``, ``>= 0.8`` or ``in [0.001, 0.05]``."""
        return _limit_text(self.min, self.max)


@dataclass(frozen=True)
class Policy:
    """A validated gate policy.

    Attributes
    ----------
    rules : tuple of Rule
        In file order.
    path : pathlib.Path or None
        The policy file, when read from one.
    title : str
        Optional ``title`` from the file; ``""`` when absent.
    """

    rules: tuple[Rule, ...]
    path: Path | None = None
    title: str = ""

    @property
    def source(self) -> str:
        """How messages name this policy: its path, or ``<policy>``."""
        return str(self.path) if self.path is not None else "<policy>"

    def rule(self, name: str) -> Rule:
        """The rule called ``name``."""
        for r in self.rules:
            if r.name == name:
                return r
        raise GateError(f"{self.source}: no rule named {name!r}; rules are {[r.name for r in self.rules]}")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a gate policy (TOML).

    Checks the policy's own structure (keys, kinds, types, limits). Whether the thresholds,
    groupings, metrics and summaries it names exist is checked by :func:`evaluate`, which sees
    the results.

    Raises
    ------
    GateError
        Naming the file, the rule (index and name) and the field, saying what was expected and
        what was found.

    Examples
    --------
    >>> policy = load_policy("examples/policies/london-pass.toml")     # doctest: +SKIP
    >>> [r.kind for r in policy.rules]                                 # doctest: +SKIP
    ['fta', 'disparity', 'rate']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise GateError(f"policy file {path} does not exist; give the path of a policy TOML file") from exc
    except IsADirectoryError as exc:
        raise GateError(f"policy file {path} is a folder; give the path of a policy TOML file") from exc
    except UnicodeDecodeError as exc:
        raise GateError(f"{path}: not UTF-8 text ({exc.reason}); a policy is a TOML file") from exc
    except OSError as exc:
        raise GateError(f"policy file {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{path}: not valid TOML ({exc})") from exc
    return policy_from_dict(raw, path=path)


def policy_from_dict(raw: Mapping[str, Any], *, path: str | Path | None = None) -> Policy:
    """Validate a policy given as a dict (as parsed from TOML: ``{"rule": [{...}, ...]}``).

    Parameters
    ----------
    raw : Mapping
        ``rule``: a list of rule tables; optional ``title``.
    path : str or pathlib.Path, optional
        Where it came from, for messages.

    Raises
    ------
    GateError
        As :func:`load_policy`.
    """
    src = str(path) if path is not None else "<policy>"
    if not isinstance(raw, Mapping):
        raise GateError(f"{src}: expected a table of [[rule]] entries, found {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise GateError(
            f"{src}: field {unknown[0]!r}: unknown top-level key; a policy has [[rule]] tables and an "
            f"optional title (allowed: {sorted(_TOP_KEYS)})"
        )
    title = raw.get("title", "")
    if not isinstance(title, str):
        raise GateError(f"{src}: field 'title': expected a string, found {title!r}")
    rules_raw = raw.get("rule")
    if rules_raw is None or (isinstance(rules_raw, list) and not rules_raw):
        raise GateError(f"{src}: field 'rule': the policy has no rules; add at least one [[rule]] table (see docs/gate.md)")
    if not isinstance(rules_raw, list):
        raise GateError(f"{src}: field 'rule': expected [[rule]] tables (a list of tables), found {type(rules_raw).__name__}")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(rules_raw, start=1):
        rule = _parse_rule(r, i, src)
        if rule.name in seen:
            raise GateError(
                f"{src}: {rule.label}: field 'name': the name is also used by rule {seen[rule.name]}; "
                "give every rule its own name (it names the JUnit test case)"
            )
        seen[rule.name] = i
        rules.append(rule)
    return Policy(rules=tuple(rules), path=Path(path) if path is not None else None, title=title)


def _parse_rule(r: Any, i: int, src: str) -> Rule:
    if not isinstance(r, Mapping):
        raise GateError(f"{src}: rule {i}: expected a [[rule]] table, found {r!r}")
    name = r.get("name")
    label = f"rule {i} ({name!r})" if isinstance(name, str) and name.strip() else f"rule {i}"

    def err(fld: str, msg: str) -> GateError:
        return GateError(f"{src}: {label}: field {fld!r}: {msg}")

    if "name" not in r:
        raise err("name", 'missing; give every rule a name = "..." (it names the JUnit test case)')
    if not isinstance(name, str) or not name.strip():
        raise err("name", f"expected a non-empty string, found {name!r}")
    kind = r.get("kind")
    if kind is None:
        raise err("kind", f"missing; give one of {list(KINDS)}")
    if kind not in KINDS:
        raise err("kind", f"unknown kind {kind!r}; kinds are {list(KINDS)}")
    allowed = _KIND_KEYS[kind]
    for key in sorted(set(r) - allowed):
        if key in _ALL_RULE_KEYS:
            raise err(key, f"does not apply to kind {kind!r}; keys for kind {kind!r} are {sorted(allowed)}")
        raise err(key, f"unknown key; keys for kind {kind!r} are {sorted(allowed)}")

    def string(fld: str, *, required: bool) -> str | None:
        if fld not in r:
            if required:
                raise err(fld, f"missing; kind {kind!r} needs it{_HINTS.get(fld, '')}")
            return None
        v = r[fld]
        if not isinstance(v, str) or not v.strip():
            raise err(fld, f"expected a non-empty string, found {v!r}{_HINTS.get(fld, '')}")
        return v

    def number(fld: str) -> float | None:
        if fld not in r:
            return None
        v = r[fld]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise err(fld, f"expected a finite number, found {v!r}")
        return float(v)

    grouping = string("grouping", required=True)
    metric = "fta" if kind == "fta" else (kind if kind in IDENTIFICATION_KINDS else string("metric", required=True))
    threshold = None
    if kind in ("disparity", "rate", *IDENTIFICATION_KINDS):
        threshold = string("threshold", required=True)
    elif kind == "baseline":
        if metric == "fta":
            if "threshold" in r:
                raise err("threshold", "does not apply to metric 'fta' (failure to acquire does not depend on a threshold); remove it")
        else:
            threshold = string("threshold", required=True)
    summary = string("summary", required=True) if kind == "disparity" else None

    lo, hi = number("min"), number("max")
    if kind != "baseline" and lo is None and hi is None:
        raise err("max", f"missing; a {kind!r} rule needs max (and/or min), e.g. max = 0.05")
    if lo is not None and hi is not None and lo > hi:
        raise err("min", f"min ({lo:g}) is above max ({hi:g}); no value could pass")

    bound = r.get("bound", "point")
    if bound not in BOUNDS:
        raise err("bound", f"expected one of {list(BOUNDS)}, found {bound!r}")
    skip = r.get("skip_insufficient", False)
    if not isinstance(skip, bool):
        raise err("skip_insufficient", f"expected true or false, found {skip!r}")
    min_trials = r.get("min_trials", 0)
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 0:
        raise err("min_trials", f"expected an integer >= 0, found {min_trials!r}")
    tolerance = number("tolerance")
    if tolerance is not None and tolerance < 0:
        raise err("tolerance", f"expected a number >= 0 (an absolute rate added to the baseline's bound), found {tolerance!r}")

    return Rule(
        index=i, name=name, kind=kind, grouping=grouping or "", threshold=threshold, metric=metric or "",
        summary=summary, min=lo, max=hi, bound=bound, skip_insufficient=skip, min_trials=min_trials,
        tolerance=tolerance or 0.0,
    )


def _limit_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo:g}, {hi:g}]"
    if hi is not None:
        return f"<= {hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    return ""


_HINTS = {
    "grouping": ' (a grouping id such as "ethnicity" or "ethnicity+gender", or "*" for every grouping)',
    "threshold": ' (a threshold name such as "FMR=1e-3" or "default 0.6")',
    "metric": ' ("fmr" or "fnmr"; "fta" for a baseline rule on failure to acquire)',
    "summary": ' (a disparity summary such as "max_min_ratio" or "max_geomean_ratio")',
}
