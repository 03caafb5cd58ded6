"""The synthetic world's spec file, ``resources/synthetic_world.yaml``, read with yaml alone.

It lives outside the ``analysis.data.synthetic`` package because importing any module of that
package loads the world's generator (numpy, scipy, pandas), while `painanx run` only needs the
scenario names to check ``--scenario``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

SPEC_FILE = "synthetic_world.yaml"


@lru_cache(maxsize=1)
def load_spec() -> dict:
    """The parsed ``synthetic_world.yaml`` (parameters, scenarios, checks, computation)."""
    text = resources.files("analysis.resources").joinpath(SPEC_FILE).read_text()
    return yaml.safe_load(text)


def scenario_names() -> tuple[str, ...]:
    """The scenarios the world declares, in their order in the file."""
    return tuple(load_spec()["scenarios"])
