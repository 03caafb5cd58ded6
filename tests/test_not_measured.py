"""A notebook run on a source that lacks a measure says so in one line: no empty figure or table."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from analysis.build import display
from analysis.models import figures


@pytest.fixture
def shown(monkeypatch):
    """The objects `display.show` sends to the notebook."""
    import IPython.display

    out = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: out.append(obj))
    return out


def test_marker_names_agree():
    assert figures.NOT_MEASURED == display.NOT_MEASURED_ATTR


def test_placeholder_figure_becomes_one_line(shown):
    plt.close("all")  # figures other tests in this process left open
    fig = figures.comorbidity(SimpleNamespace(measures={}, table=pd.DataFrame()))
    assert display.is_not_measured(fig)
    display.show(fig, "Prevalence by back pain")
    assert [type(o).__name__ for o in shown] == ["Markdown"]
    assert shown[0].data == "*Prevalence by back pain: not measured in this source.*"
    assert not plt.get_fignums()  # the empty figure was closed, never drawn


def test_empty_table_becomes_one_line_and_real_ones_show(shown):
    display.show(pd.DataFrame(), "The estimates")
    frame = pd.DataFrame({"a": [1]})
    display.show(frame)
    assert shown[0].data == "*The estimates: not measured in this source.*"
    assert shown[1] is frame


def test_a_drawn_figure_is_shown_as_an_image(shown):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_title("A line")
    assert not display.is_not_measured(fig)
    display.show(fig)
    assert type(shown[0]).__name__ == "Image" and shown[0].metadata == {"alt": "A line"}
