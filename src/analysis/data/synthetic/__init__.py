"""The synthetic survey world: a population with known parameters, sampled with a complex design.
It validates the pipeline; it is never evidence.

`spec` (parameters, scenarios, checks) -> `model` (the structural causal model) ->
`calibration` (solved intercepts and thresholds; `world_model`) -> `sample_design` ->
`arrow_io` -> `world` (`generate`, `generate_to_parquet`). The truths of the estimands are
computed in ``analysis.models.synthetic_truth``. The spec file itself is read by
`analysis.data.world_spec`, outside this package, so that the build checks ``--scenario``
without loading numpy and pandas.
"""

from analysis.data.synthetic.arrow_io import COLUMNS, read_parquet
from analysis.data.synthetic.calibration import cache_dir, world_model
from analysis.data.synthetic.model import WorldModel
from analysis.data.synthetic.sample_design import kish_deff
from analysis.data.synthetic.spec import (
    AGE_GROUPS,
    SCENARIOS,
    SynthParameterError,
    age_group,
    params_hash,
    resolve_params,
)
from analysis.data.synthetic.world import (
    SyntheticParquet,
    SyntheticWorld,
    generate,
    generate_to_parquet,
    sample_margins,
)
from analysis.data.world_spec import load_spec

__all__ = [
    "AGE_GROUPS",
    "COLUMNS",
    "SCENARIOS",
    "SynthParameterError",
    "SyntheticParquet",
    "SyntheticWorld",
    "WorldModel",
    "age_group",
    "cache_dir",
    "generate",
    "generate_to_parquet",
    "kish_deff",
    "load_spec",
    "params_hash",
    "read_parquet",
    "resolve_params",
    "sample_margins",
    "world_model",
]
