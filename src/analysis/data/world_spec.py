"""The synthetic world's spec file, ``resources/synthetic_world.yaml``, read with yaml alone,
and the columns of the frames the world generates.

They live outside the ``analysis.data.synthetic`` package because importing any module of that
package loads the world's generator (numpy, scipy, pandas), while `painanx run` only needs the
scenario names to check ``--scenario`` and the columns to know which notebooks have what they
need (``measures`` in sources.yaml).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

SPEC_FILE = "synthetic_world.yaml"
# the tidy columns of a synthetic frame, in the order the generator writes them
COLUMNS = (
    "source",
    "survey_year",
    "respondent_id",
    "weight",
    "stratum",
    "psu",
    "age",
    "sex",
    "bmi",
    "education",
    "physical_activity",
    "back_pain_severity",
    "chronic_pain",
    "pain_intensity",
    "gad7_score",
    "gad7_category",
    "anxiety_frequency",
    "anxiety_medication",
    "phq8_score",
    "phq8_category",
    "muscle_tension",
    "benzodiazepine_use",
)


@lru_cache(maxsize=1)
def load_spec() -> dict:
    """The parsed ``synthetic_world.yaml`` (parameters, scenarios, checks, computation)."""
    text = resources.files("analysis.resources").joinpath(SPEC_FILE).read_text()
    return yaml.safe_load(text)


def scenario_names() -> tuple[str, ...]:
    """The scenarios the world declares, in their order in the file."""
    return tuple(load_spec()["scenarios"])
