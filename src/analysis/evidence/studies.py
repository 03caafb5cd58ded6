"""The curated table of published results (data/evidence/studies.csv): load, check, pool.

The column rules live in ``resources/evidence_schema.yaml``. ``load_studies`` enforces
them row by row and raises ``EvidenceValidationError`` naming the file, the row
(1 = first data row; the file line is row + 1) and the field. Beyond single
fields it checks that a CI contains its estimate, that ratio figures are positive,
that a verified row says where it was read, that only verified rows are pooled,
and that the rows of a pool group share claim, measure and direction.

``effect_sizes`` turns each pooled row into an effect on the analysis scale (log
for ratios) with its variance; ``pool`` fits the random-effects model per group;
``evidence_findings`` turns pooled groups and unpooled verified rows into
``Finding`` objects for the claims step.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from analysis.core.findings import Finding
from analysis.core.io import parse_yaml
from analysis.core.paths import evidence_dir
from analysis.evidence import meta

__all__ = [
    "EvidenceValidationError",
    "schema",
    "studies_path",
    "load_studies",
    "validate_studies",
    "effect_sizes",
    "pool",
    "evidence_table",
    "evidence_findings",
    "study_finding",
    "PooledGroup",
]


class EvidenceValidationError(ValueError):
    """studies.csv breaks a rule; ``problems`` lists (row, field, message)."""

    def __init__(self, path: str, problems: list[tuple[int | None, str, str]]):
        self.path = path
        self.problems = problems
        lines = [f"{path}: {len(problems)} problem(s)"]
        for row, fld, msg in problems:
            where = f"row {row} (line {row + 1})" if row is not None else "file"
            lines.append(f"  {where}, field '{fld}': {msg}")
        super().__init__("\n".join(lines))


@lru_cache(maxsize=1)
def schema() -> dict:
    """The studies.csv schema (columns, types, allowed values), read from the YAML resource."""
    text = resources.files("analysis.resources").joinpath("evidence_schema.yaml").read_text()
    return parse_yaml(text)


def studies_path() -> Path:
    return evidence_dir() / "studies.csv"


def _parse(value: str, spec: dict, name: str) -> tuple[object, str | None]:
    """Parse one cell by its schema spec; return (value, error message or None)."""
    if value == "":
        if spec.get("required"):
            return None, "is required but empty"
        return spec.get("default"), None
    kind = spec["type"]
    parsed: object = value
    if kind == "int":
        try:
            f = float(value)
        except ValueError:
            return None, f"expected an integer, got {value!r}"
        if not f.is_integer():
            return None, f"expected an integer, got {value!r}"
        parsed = int(f)
    elif kind == "float":
        try:
            parsed = float(value)
        except ValueError:
            return None, f"expected a number, got {value!r}"
        if not math.isfinite(parsed):
            return None, f"expected a finite number, got {value!r}"
    if kind in ("int", "float"):
        if "min" in spec and parsed < spec["min"]:
            return None, f"must be >= {spec['min']}, got {value!r}"
        if "max" in spec and parsed > spec["max"]:
            return None, f"must be <= {spec['max']}, got {value!r}"
    allowed = spec.get("allowed")
    if (
        "allowed_from" in spec
    ):  # a list (claim_ids) or a mapping whose keys are allowed (pool_groups)
        allowed = list(schema()[spec["allowed_from"]])
    if allowed is not None and parsed not in allowed:
        return None, f"must be one of {list(allowed)}, got {value!r}"
    if "pattern" in spec and not re.fullmatch(spec["pattern"], value):
        return None, f"does not match the expected form {spec['pattern']!r}: {value!r}"
    if "needs_one_of" in spec and not any(p in value for p in spec["needs_one_of"]):
        return None, f"needs at least one of {spec['needs_one_of']}, got {value!r}"
    return parsed, None


def _row_checks(r: dict, ratio_measures: list[str]) -> list[tuple[str, str]]:
    """Rules that involve more than one field of a row."""
    out: list[tuple[str, str]] = []
    est, lo, hi = r["estimate"], r["ci_low"], r["ci_high"]
    if (lo is None) != (hi is None):
        out.append(("ci_low" if lo is None else "ci_high", "give both CI bounds or neither"))
    if lo is not None and hi is not None:
        if lo > hi:
            out.append(("ci_low", f"lower bound {lo} is above upper bound {hi}"))
        elif est is not None and not (lo <= est <= hi):
            out.append(("estimate", f"{est} lies outside its CI [{lo}, {hi}]"))
        if est is None:
            out.append(("estimate", "a CI is given without its estimate"))
    if r["effect_measure"] in ratio_measures:
        for fld in ("estimate", "ci_low", "ci_high"):
            if r[fld] is not None and r[fld] <= 0:
                out.append((fld, f"a {r['effect_measure']} must be positive, got {r[fld]}"))
    basis = r["basis"]
    counts = ("events_treat", "n_treat", "events_ctrl", "n_ctrl")
    arms = ("mean_treat", "lo_treat", "hi_treat", "mean_ctrl", "lo_ctrl", "hi_ctrl")
    if basis == "counts":
        for fld in counts:
            if r[fld] is None:
                out.append((fld, "required when basis is 'counts'"))
        if r["effect_measure"] != "RR":
            out.append(("effect_measure", "basis 'counts' computes a risk ratio: use RR"))
        if all(r[f] is not None for f in counts):
            if r["events_treat"] > r["n_treat"]:
                out.append(("events_treat", f"{r['events_treat']} events > n_treat {r['n_treat']}"))
            if r["events_ctrl"] > r["n_ctrl"]:
                out.append(("events_ctrl", f"{r['events_ctrl']} events > n_ctrl {r['n_ctrl']}"))
    if basis == "arm_cis":
        for fld in arms:
            if r[fld] is None:
                out.append((fld, "required when basis is 'arm_cis'"))
        if r["effect_measure"] != "MD":
            out.append(("effect_measure", "basis 'arm_cis' computes a mean difference: use MD"))
        for arm in ("treat", "ctrl"):
            m, a, b = r[f"mean_{arm}"], r[f"lo_{arm}"], r[f"hi_{arm}"]
            if None not in (m, a, b) and not (a <= m <= b):
                out.append((f"mean_{arm}", f"{m} lies outside its CI [{a}, {b}]"))
    if basis != "reported" and est is not None:
        out.append(("estimate", f"leave empty when basis is '{basis}' (the library computes it)"))
    if r["verified"] == "yes":
        if not r["ids"]:
            out.append(
                (
                    "ids",
                    "a verified row needs an identifier that was seen (doi, pmid, pmcid, trial)",
                )
            )
        if not r["where_read"]:
            out.append(("where_read", "a verified row must say where its figures were read"))
        if basis == "reported" and est is None and r["effect_measure"] != "recommendation":
            out.append(("estimate", "a verified numeric row needs its estimate"))
    if r["pool_group"]:
        if r["verified"] != "yes":
            out.append(("pool_group", "only verified rows may be pooled (verified is 'no')"))
        if basis == "reported" and (lo is None or est is None):
            out.append(("pool_group", "a pooled reported row needs an estimate and CI"))
    return out


def validate_studies(raw: pd.DataFrame, path: str = "studies.csv") -> pd.DataFrame:
    """Check a frame of strings (as read from the CSV) and return it typed. Raises on any problem."""
    spec = schema()
    cols = spec["columns"]
    problems: list[tuple[int | None, str, str]] = []
    missing = [c for c, s in cols.items() if c not in raw.columns and s.get("required")]
    for c in missing:
        problems.append((None, c, "required column is missing"))
    unknown = [c for c in raw.columns if c not in cols]
    for c in unknown:
        problems.append((None, c, f"unknown column (schema columns: {list(cols)})"))
    if problems:
        raise EvidenceValidationError(path, problems)
    records = []
    for i, (_, row) in enumerate(raw.iterrows(), start=1):
        rec: dict = {}
        for c, s in cols.items():
            value = "" if c not in raw.columns or pd.isna(row[c]) else str(row[c]).strip()
            rec[c], err = _parse(value, s, c)
            if err:
                problems.append((i, c, err))
        if not any(p[0] == i for p in problems):
            problems.extend((i, f, m) for f, m in _row_checks(rec, spec["ratio_measures"]))
        records.append(rec)
    # table-level rules
    seen: dict[str, int] = {}
    for i, rec in enumerate(records, start=1):
        sid = rec["study_id"]
        if sid in seen:
            problems.append((i, "study_id", f"{sid!r} already used in row {seen[sid]}"))
        elif sid:
            seen[sid] = i
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records, start=1):
        if rec["pool_group"]:
            groups.setdefault(rec["pool_group"], []).append(i)
    for g, rows in groups.items():
        if len(rows) < 2:
            problems.append(
                (rows[0], "pool_group", f"group {g!r} has only one row; pooling needs 2+")
            )
            continue
        first = records[rows[0] - 1]
        for i in rows[1:]:
            for fld in ("claim_id", "effect_measure", "direction"):
                if records[i - 1][fld] != first[fld]:
                    problems.append(
                        (
                            i,
                            fld,
                            f"differs from row {rows[0]} of pool group {g!r} "
                            f"({records[i - 1][fld]!r} vs {first[fld]!r})",
                        )
                    )
    if problems:
        raise EvidenceValidationError(path, problems)
    out = pd.DataFrame.from_records(records, columns=list(cols))
    for c, s in cols.items():
        out[c] = out[c].astype({"int": "Int64", "float": "float64", "str": "string"}[s["type"]])
    return out


def load_studies(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate studies.csv (default: data/evidence/studies.csv)."""
    path = Path(path) if path is not None else studies_path()
    if not path.is_file():
        raise FileNotFoundError(f"evidence table not found: {path}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return validate_studies(raw, str(path))


def _effect(row: pd.Series) -> tuple[float, float]:
    level = float(row["ci_level"]) if pd.notna(row["ci_level"]) else 95.0
    basis = row["basis"]
    if basis == "counts":
        return meta.log_risk_ratio(
            row["events_treat"], row["n_treat"], row["events_ctrl"], row["n_ctrl"]
        )
    if basis == "arm_cis":
        return meta.difference_from_arm_cis(
            row["mean_treat"], row["lo_treat"], row["hi_treat"],
            row["mean_ctrl"], row["lo_ctrl"], row["hi_ctrl"],
            level=level, shared_control=int(row["shared_control"] or 1),
        )  # fmt: skip
    if row["effect_measure"] in schema()["ratio_measures"]:
        return meta.log_ratio_from_ci(row["estimate"], row["ci_low"], row["ci_high"], level)
    se = meta.se_from_ci(row["ci_low"], row["ci_high"], level)
    return float(row["estimate"]), se**2


def effect_sizes(studies: pd.DataFrame) -> pd.DataFrame:
    """Rows with a computable effect: yi (log scale for ratios), vi, and the reporting-scale
    estimate with its 95% CI (computed for counts/arm_cis rows, as read otherwise)."""
    rows = []
    ratio = schema()["ratio_measures"]
    z = meta._z_crit(95.0)
    for _, r in studies.iterrows():
        computable = r["basis"] != "reported" or (
            pd.notna(r["estimate"]) and pd.notna(r["ci_low"]) and pd.notna(r["ci_high"])
        )
        if not computable:
            continue
        yi, vi = _effect(r)
        log = r["effect_measure"] in ratio
        back = math.exp if log else (lambda x: x)
        computed = r["basis"] != "reported"
        rows.append(
            {
                "study_id": r["study_id"],
                "yi": yi,
                "vi": vi,
                "estimate_shown": back(yi) if computed else r["estimate"],
                "ci_low_shown": back(yi - z * math.sqrt(vi)) if computed else r["ci_low"],
                "ci_high_shown": back(yi + z * math.sqrt(vi)) if computed else r["ci_high"],
                "estimate_source": "reported" if not computed else f"computed ({r['basis']})",
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PooledGroup:
    """A pool group's REML fit (the primary result) and its DL fit (sensitivity)."""

    key: str
    claim_id: str
    label: str
    measure: str
    direction: str
    study_ids: tuple[str, ...]
    n_total: int | None
    reml: meta.MetaResult
    dl: meta.MetaResult

    def to_frame(self) -> pd.DataFrame:
        frame = pd.concat([self.reml.to_frame(), self.dl.to_frame()], ignore_index=True)
        frame.insert(0, "pool_group", self.key)
        frame.insert(1, "claim_id", self.claim_id)
        return frame

    def summary(self) -> str:
        return (
            f"{self.key} ({self.claim_id}): {self.label}\n"
            f"studies: {', '.join(self.study_ids)}; benefit = {self.direction}\n\n"
            f"{self.reml.summary()}\n\nSensitivity (DL): "
            f"{self.dl.reported()['estimate']:.3f} "
            f"[{self.dl.reported()['ci_low']:.3f}, {self.dl.reported()['ci_high']:.3f}]"
        )


def pool(studies: pd.DataFrame) -> dict[str, PooledGroup]:
    """Random-effects fits (REML, z-based CI, metafor's defaults; DL alongside) per pool group."""
    pooled: dict[str, PooledGroup] = {}
    eff = effect_sizes(studies).set_index("study_id")
    members = studies[studies["pool_group"].notna() & (studies["verified"] == "yes")]
    for key, g in members.groupby("pool_group", sort=True):
        ids = tuple(g["study_id"])
        yi = eff.loc[list(ids), "yi"].to_numpy()
        vi = eff.loc[list(ids), "vi"].to_numpy()
        first = g.iloc[0]
        measure = str(first["effect_measure"])
        labels = [_short_label(r) for _, r in g.iterrows()]
        fits = {
            m: meta.random_effects(yi, vi, method=m, labels=labels, measure=measure)
            for m in ("REML", "DL")
        }
        n = g.drop_duplicates("citation")["n"].dropna()  # a multi-arm trial counts once
        pooled[str(key)] = PooledGroup(
            key=str(key),
            claim_id=str(first["claim_id"]),
            label=str(schema()["pool_groups"][key]),
            measure=measure,
            direction=str(first["direction"]),
            study_ids=ids,
            n_total=int(n.sum()) if len(n) else None,
            reml=fits["REML"],
            dl=fits["DL"],
        )
    return pooled


def _short_label(r: pd.Series) -> str:
    first_author = str(r["citation"]).split(" ")[0].rstrip(",")
    return f"{first_author} {r['year']}: {r['comparison']}"


def evidence_table(studies: pd.DataFrame, verified_only: bool = False) -> pd.DataFrame:
    """The table for display, by claim: citation, design, n, outcome, the figure (as read or
    computed from read counts/arms), verification and pool group."""
    eff = effect_sizes(studies).set_index("study_id")
    t = studies.copy()
    if verified_only:
        t = t[t["verified"] == "yes"]
    t = t.join(
        eff[["estimate_shown", "ci_low_shown", "ci_high_shown", "estimate_source"]], on="study_id"
    )
    cols = [
        "claim_id", "study_id", "citation", "design", "n", "comparison", "outcome", "timepoint",
        "effect_measure", "estimate_shown", "ci_low_shown", "ci_high_shown", "estimate_source",
        "direction", "verified", "pool_group",
    ]  # fmt: skip
    return t[cols].sort_values(["claim_id", "study_id"]).reset_index(drop=True)


_NULLS = {"RR": 1.0, "OR": 1.0, "HR": 1.0, "MD": 0.0, "SMD": 0.0, "risk difference": 0.0}


def evidence_findings(
    studies: pd.DataFrame, pooled: dict[str, PooledGroup] | None = None
) -> list[Finding]:
    """One Finding per pool group (REML estimate) and per verified row outside any pool.

    Unverified rows never become findings. Estimates are on the reporting scale; the
    ``extra`` dict carries what a verdict rule may need (direction of benefit,
    heterogeneity, prediction interval, the DL sensitivity fit)."""
    pooled = pool(studies) if pooled is None else pooled
    findings: list[Finding] = []
    for key, pg in pooled.items():
        rep, dl = pg.reml.reported(), pg.dl.reported()
        caveats = [f"random-effects (REML) pool of {pg.reml.k} studies; I² = {pg.reml.I2:.0f}%"]
        if pg.reml.k < FEW_STUDIES:
            caveats.append("few studies: tau² and the prediction interval are imprecise")
        findings.append(
            Finding(
                claim_id=pg.claim_id,
                estimand=f"pooled_{key}",
                label=pg.label,
                source="published",
                estimate=rep["estimate"],
                ci_low=rep["ci_low"],
                ci_high=rep["ci_high"],
                measure=pg.measure,
                null_value=_NULLS.get(pg.measure),
                n=pg.n_total,
                design=f"random-effects meta-analysis of {pg.reml.k} {_members(studies, pg)}",
                caveats=caveats,
                extra={
                    "pool_group": key,
                    "direction": pg.direction,
                    "study_ids": list(pg.study_ids),
                    "method": "REML",
                    "tau2": pg.reml.tau2,
                    "I2": pg.reml.I2,
                    "Q": pg.reml.Q,
                    "Q_pval": pg.reml.Q_pval,
                    "pi_low": rep["pi_low"],
                    "pi_high": rep["pi_high"],
                    "dl_estimate": dl["estimate"],
                    "dl_ci_low": dl["ci_low"],
                    "dl_ci_high": dl["ci_high"],
                },
            )
        )
    eff = effect_sizes(studies).set_index("study_id")
    singles = studies[(studies["verified"] == "yes") & studies["pool_group"].isna()]
    for _, r in singles.iterrows():
        findings.append(_study_finding(r, eff))
    return findings


FEW_STUDIES = 5  # below this, tau² and the prediction interval are imprecise


def _members(studies: pd.DataFrame, pg: PooledGroup) -> str:
    """'RCTs' when every pooled study is a randomised trial, else 'published results'."""
    designs = studies.set_index("study_id").loc[list(pg.study_ids), "design"]
    return "RCTs" if designs.str.contains("RCT").all() else "published results"


def study_finding(studies: pd.DataFrame, study_id: str) -> Finding:
    """The single-study Finding of one verified row, pooled or not (as ``evidence_findings``
    builds it for unpooled rows); used when one member of a pool is itself on point."""
    rows = studies[(studies["study_id"] == study_id) & (studies["verified"] == "yes")]
    if rows.empty:
        raise KeyError(f"studies.csv: no verified row with study_id {study_id!r}")
    return _study_finding(rows.iloc[0], effect_sizes(studies).set_index("study_id"))


def _study_finding(r: pd.Series, eff: pd.DataFrame) -> Finding:
    sid = r["study_id"]
    has = sid in eff.index
    measure = str(r["effect_measure"])
    return Finding(
        claim_id=str(r["claim_id"]),
        estimand=f"study_{sid}",
        label=f"{_short_label(r)} — {r['outcome']}"
        + (f" ({r['timepoint']})" if pd.notna(r["timepoint"]) else ""),
        source="published",
        estimate=float(eff.loc[sid, "estimate_shown"]) if has else _opt(r["estimate"]),
        ci_low=float(eff.loc[sid, "ci_low_shown"]) if has else None,
        ci_high=float(eff.loc[sid, "ci_high_shown"]) if has else None,
        measure=measure,
        null_value=_NULLS.get(measure),
        n=int(r["n"]) if pd.notna(r["n"]) else None,
        design=str(r["design"]),
        caveats=[str(r["note"])],
        extra={
            "study_id": sid,
            "direction": str(r["direction"]),
            "citation": str(r["citation"]),
            "ids": str(r["ids"]),
            "where_read": str(r["where_read"]),
            "estimate_source": str(eff.loc[sid, "estimate_source"]) if has else "reported",
        },
    )


def _opt(x) -> float | None:
    return None if pd.isna(x) else float(x)


def plot_course(studies: pd.DataFrame):
    """Seaborn line plot of the C8 course rows that report mean pain over time (with CIs).
    Returns the Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = studies[
        (studies["claim_id"] == "C8")
        & (studies["verified"] == "yes")
        & (studies["effect_measure"] == "mean score")
    ].copy()
    if rows.empty:
        raise ValueError("no verified C8 'mean score' rows to plot")
    rows["weeks"] = rows["timepoint"].str.extract(r"(\d+)").astype(float).fillna(0.0)[0]
    rows["cohorts"] = rows["population"].astype(str)
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=rows, x="weeks", y="estimate", hue="cohorts", marker="o", ax=ax)
    for _, r in rows.iterrows():
        ax.vlines(r["weeks"], r["ci_low"], r["ci_high"], color="0.5", lw=1)
    ax.set_xlabel("weeks since onset")
    ax.set_ylabel("mean pain (0-100)")
    ax.set_title("Course of low back pain in inception cohorts (Menezes Costa 2012)", fontsize=10)
    fig.tight_layout()
    return fig
