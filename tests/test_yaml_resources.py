"""The packaged YAML files read with the fast parser (`parse_yaml`) give what PyYAML's own does."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from analysis.core.io import parse_yaml

RESOURCE_FILES = sorted(
    p.name for p in resources.files("analysis.resources").iterdir() if p.name.endswith(".yaml")
)


def test_the_package_ships_yaml_resources():
    assert {"claims.yaml", "schema.yaml", "sources.yaml", "synthetic_world.yaml"} <= set(
        RESOURCE_FILES
    )


@pytest.mark.parametrize("name", RESOURCE_FILES)
def test_fast_parser_reads_each_resource_like_safe_load(name):
    text = resources.files("analysis.resources").joinpath(name).read_text()
    # repr tells 1, 1.0 and True apart, and keeps the order of mapping keys
    assert repr(parse_yaml(text)) == repr(yaml.safe_load(text))


def test_fast_parser_raises_yaml_errors():
    with pytest.raises(yaml.YAMLError):
        parse_yaml("claims: [unclosed")
