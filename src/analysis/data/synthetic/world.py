"""The synthetic survey world: a structural causal model with a complex sample design.

Synthetic data validate the pipeline; they are never evidence. The world exists so that
every estimator and notebook can be checked against a truth that is known exactly.

* The parameters (effect sizes, calibration targets with their citations, the design)
  live in ``resources/synthetic_world.yaml`` (`spec`). Intercepts and thresholds are
  *solved* at run time (`calibration`) so that the population reproduces the published
  margins (39.0% back pain, 15.6% GAD-7 >= 5, ...) whatever the scenario or the overrides.
* Persons follow the structural causal model of `model`; a sample is drawn with a
  stratified two-stage design (`sample_design`) and built as Arrow tables (`arrow_io`).
* The truth of the estimands (true prevalences, census values of the adjusted odds ratios,
  natural direct and indirect effects, the benzodiazepine effect) is a models-layer
  computation: ``analysis.models.synthetic_truth``, from the world's `metadata`.

Use ``generate`` for an in-memory sample (30,000 adults in well under a second) and
``generate_to_parquet`` to stream millions of rows to a Parquet file.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from analysis.core.io import atomic_path
from analysis.data import schema
from analysis.data.synthetic.arrow_io import (
    arrow_schema,
    arrow_table,
    to_schema_frame,
    write_parquet_in_background,
)
from analysis.data.synthetic.calibration import world_model
from analysis.data.synthetic.model import WorldModel, simulate_people
from analysis.data.synthetic.sample_design import draw_sample_design, kish_deff, random_stream
from analysis.data.synthetic.spec import check_seed, check_size
from analysis.data.world_spec import load_spec

_ROWS_CHUNK = 500_000  # respondents simulated per attribute chunk


def _iter_tables(m: WorldModel, n: int, seed: int, *, progress: Any = None) -> Iterator[pa.Table]:
    """The sample as Arrow tables of at most ``_ROWS_CHUNK`` rows (bounded memory): the
    design first, then each chunk's persons from a random stream of their own."""
    sample = draw_sample_design(m, n, seed)
    fx = sample.psu_effects
    for k, start in enumerate(range(0, n, _ROWS_CHUNK)):
        sl = slice(start, min(start + _ROWS_CHUNK, n))
        psu = sample.psu[sl]
        rng = random_stream(seed, 2, k)
        people = simulate_people(
            m,
            rng,
            psu // m.params["psus_per_stratum"],
            sample.age_group[sl],
            sample.female[sl],
            fx["anxiety"][psu],
            fx["tension"][psu],
            fx["pain"][psu],
        )
        yield arrow_table(m, people, psu, sample.weight[sl], start, n)
        if progress is not None:
            progress.update(psu.shape[0])


@dataclass
class SyntheticWorld:
    """One sample from the synthetic world, and the calibrated world it was drawn from.

    ``data`` follows the tidy respondent schema (source "synthetic"); ``params`` holds every
    parameter, the scenario, the seed and the solved (derived) parameters; ``model`` is the
    calibrated `WorldModel` (what ``analysis.models.synthetic_truth`` computes truths of).
    Synthetic data validate the pipeline; they are never evidence.
    """

    data: pd.DataFrame
    params: dict[str, Any]
    model: WorldModel = field(repr=False)

    @property
    def scenario(self) -> str:
        return self.model.scenario

    @property
    def metadata(self) -> dict[str, Any]:
        """Plain facts naming the world and the sample (`load` keeps them in the frame's
        ``attrs["synthetic_world"]``): scenario, overrides, seed, size, parameter hash."""
        return {
            "scenario": self.model.scenario,
            "overrides": copy.deepcopy(self.model.overrides),
            "seed": self.params["seed"],
            "n": self.params["n"],
            "params_hash": self.model.hash,
        }

    def summary(self) -> str:
        """A readable account of the sample and its calibration."""
        df = self.data
        w = df["weight"].to_numpy()
        lines = [
            "Synthetic survey world (validates the pipeline; NEVER evidence)",
            f"  scenario {self.scenario!r}, seed {self.params['seed']}, "
            f"parameters {self.model.hash}"
            + (f", overrides {self.model.overrides}" if self.model.overrides else ""),
            f"  {len(df):,} respondents in {df['psu'].nunique()} PSUs, "
            f"{df['stratum'].nunique()} strata; weights sum to {w.sum():,.0f}, "
            f"range {w.min():,.0f}-{w.max():,.0f}, Kish design effect {kish_deff(w):.2f}",
            "",
            "  Weighted sample margins vs the published figures they are calibrated to:",
        ]
        for key, est in sample_margins(df).items():
            pub = load_spec()["published_checks"].get(key)
            if pub is None:
                continue
            lines.append(
                f"    {key:<22} {100 * est:5.1f}%   published {100 * pub['value']:5.1f}%"
                f"   ({pub['source']})"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def sample_margins(df: pd.DataFrame) -> dict[str, float]:
    """Weighted margins of a synthetic sample, named like ``published_checks``."""
    w = df["weight"].to_numpy()
    women = (df["sex"] == "female").to_numpy()
    pain = (df["back_pain_severity"] != "not at all").to_numpy()
    gad = df["gad7_score"].to_numpy(dtype=float)
    cat = df["gad7_category"]

    def mean(x: np.ndarray, mask: np.ndarray | None = None) -> float:
        mask = np.ones_like(w, dtype=bool) if mask is None else mask
        return float((w * x)[mask].sum() / w[mask].sum())

    return {
        "back_pain_any": mean(pain),
        "back_pain_any_women": mean(pain, women),
        "back_pain_any_men": mean(pain, ~women),
        "gad7_ge5": mean(gad >= 5),
        "gad7_ge5_women": mean(gad >= 5, women),
        "gad7_ge5_men": mean(gad >= 5, ~women),
        "gad7_mild": mean((cat == "mild").to_numpy()),
        "gad7_moderate": mean((cat == "moderate").to_numpy()),
        "gad7_severe": mean((cat == "severe").to_numpy()),
        "chronic_pain": mean(df["chronic_pain"].to_numpy(dtype=bool)),
        "phq8_ge5": mean(df["phq8_score"].to_numpy(dtype=float) >= 5),
    }


def _describe_params(m: WorldModel, n: int, seed: int) -> dict[str, Any]:
    return {
        **copy.deepcopy(m.params),
        "scenario": m.scenario,
        "overrides": dict(m.overrides),
        "seed": seed,
        "n": n,
        "params_hash": m.hash,
        "derived": copy.deepcopy(m.derived),
    }


def generate(
    n: int = 30_000,
    seed: int = 2019,
    scenario: str = "literature",
    overrides: Mapping[str, Any] | None = None,
) -> SyntheticWorld:
    """Draw one survey sample of ``n`` adults from the synthetic world (deterministic in seed).

    ``scenario``: "literature" (default) or "null"; ``overrides``: {parameter: value} for
    any parameter of ``synthetic_world.yaml``. Bad values raise `SynthParameterError`.
    """
    n = check_size(n)
    seed = check_seed(seed)
    m = world_model(scenario, overrides)
    table = pa.concat_tables(list(_iter_tables(m, n, seed)))
    df = schema.validate(to_schema_frame(table), where="synthetic world sample")
    return SyntheticWorld(data=df, params=_describe_params(m, n, seed), model=m)


@dataclass
class SyntheticParquet:
    """What `generate_to_parquet` wrote: the file, its size, parameters and the world's model."""

    path: Path
    n: int
    params: dict[str, Any]
    model: WorldModel = field(repr=False)

    def summary(self) -> str:
        return "\n".join(
            [
                "Synthetic survey world (validates the pipeline; NEVER evidence)",
                f"  wrote {self.n:,} rows to {self.path}",
                f"  scenario {self.model.scenario!r}, seed {self.params['seed']}, "
                f"parameters {self.model.hash}",
            ]
        )


def generate_to_parquet(
    path: str | os.PathLike[str],
    n: int = 10_000_000,
    seed: int = 2019,
    scenario: str = "literature",
    overrides: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
) -> SyntheticParquet:
    """Stream a sample of ``n`` adults to Parquet, chunk by chunk (bounded memory).

    The file is written to a temporary file beside ``path`` and renamed at the end, so a
    failure never leaves a half-written file. Parameters are checked before anything is
    written. The rows are identical to ``generate(n, seed, scenario, overrides).data``.
    """
    n = check_size(n)
    seed = check_seed(seed)
    m = world_model(scenario, overrides)
    params = _describe_params(m, n, seed)
    sch = arrow_schema().with_metadata(
        {
            **arrow_schema().metadata,
            b"painanx.synthetic": json.dumps(
                {"scenario": scenario, "seed": seed, "params_hash": m.hash}
            ).encode(),
        }
    )
    bar = tqdm(total=n, unit="rows", desc="synthetic world", disable=not progress)
    try:
        with atomic_path(path) as tmp:
            write_parquet_in_background(tmp, sch, _iter_tables(m, n, seed, progress=bar))
    finally:
        bar.close()
    return SyntheticParquet(path=Path(path), n=n, params=params, model=m)
