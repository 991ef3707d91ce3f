"""The committed example outputs stay readable, and the example policies do what they say on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.gate import gate_main
from audit.verification.result import AuditResult

REPO = Path(__file__).resolve().parents[1]
LONDON = REPO / "reports" / "london-dlib" / "results.json"


def test_committed_london_result_loads_and_covers_every_group():
    res = AuditResult.from_json(LONDON)
    assert res.provenance["dataset"]["name"] == "london"
    assert res.provenance["protocol"]["mated_comparisons"] == 102
    assert res.provenance["protocol"]["impostor_comparisons"] == 20604
    eth = set(res.rates.loc[res.rates.grouping == "ethnicity", "group"])
    assert eth == {"White", "Black", "East Asian", "West Asian", "East Asian/White"}


@pytest.mark.parametrize("policy, code", [("london-pass.toml", 0), ("london-fail.toml", 1)])
def test_gate_on_london_results(policy, code, tmp_path, capsys):
    junit = tmp_path / "gate.xml"
    md = tmp_path / "gate.md"
    assert gate_main([str(REPO / "examples" / "policies" / policy), str(LONDON), "--junit", str(junit), "--markdown", str(md)]) == code
    out = capsys.readouterr().out
    assert ("PASSED" if code == 0 else "FAILED") in out
    assert junit.read_text().startswith("<?xml") and md.read_text().strip()
