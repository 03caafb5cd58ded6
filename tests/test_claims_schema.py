"""claims.json follows its committed JSON Schema (src/analysis/resources/claims.schema.json)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from analysis.claims.registry import load_registry
from analysis.claims.verdicts import evaluate_claims, write_claims
from analysis.core.findings import Finding
from analysis.evidence.studies import evidence_findings, load_studies

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "src/analysis/resources/claims.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def claims_json(tmp_path_factory):
    """claims.json as the build writes it: published evidence, one survey and one synthetic finding."""
    reg = load_registry()
    e = reg.estimands["prevalence_ratio_gad7_ge10_chronic_back_pain"]
    survey = dict(claim_id=e.claim_id, estimand=e.key, label=e.description, estimate=2.9,
                  ci_low=2.5, ci_high=3.3, measure=e.measure, null_value=e.null,
                  design="cross-sectional survey", notebook="02_comorbidity")  # fmt: skip
    findings = [
        *evidence_findings(load_studies()),
        Finding(source="nhis", **survey),
        Finding(source="synthetic", truth=3.0, **survey),
    ]
    out = tmp_path_factory.mktemp("claims")
    write_claims(evaluate_claims(findings, reg), out / "claims.json", out / "claims.csv")
    return json.loads((out / "claims.json").read_text())


def test_claims_json_follows_its_schema(validator, claims_json):
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(claims_json)]
    assert errors == []
    assert {c["verdict"] for c in claims_json} > {"insufficient evidence"}
    assert any(c["validation_findings"] for c in claims_json)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("verdict",), "probably true"),
        (("certainty", "level"), "certain"),
        (("findings", 0, "source"), "synthetic"),  # synthetic is never evidence
        (("quotation",), []),
        (("unexpected_field",), 1),
    ],
)
def test_schema_rejects_what_a_reader_could_misread(validator, claims_json, path, value):
    claims = copy.deepcopy(claims_json)
    claim = next(c for c in claims if c["findings"])
    target = claim
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not validator.is_valid(claims)
