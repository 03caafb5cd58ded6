"""The NHIS codebook file, ``resources/nhis_codebook.yaml``, read with yaml alone.

`analysis.data.nhis.codebook` builds the codebook object from it (with the tidy schema, so
pandas and pandera); `painanx run --years` only needs the years it covers, read here.
"""

from __future__ import annotations

from importlib import resources

from analysis.core.io import parse_yaml

CODEBOOK_FILE = "nhis_codebook.yaml"


def load_codebook_spec() -> dict:
    """The parsed ``nhis_codebook.yaml`` (a new dict on each call)."""
    text = resources.files("analysis.resources").joinpath(CODEBOOK_FILE).read_text()
    return parse_yaml(text)


def codebook_years() -> tuple[int, ...]:
    """The survey years the codebook covers (`NHISCodebook.years`, without building it)."""
    return tuple(int(y) for y in load_codebook_spec()["years"])
