"""Helpers notebooks use to show figures and tables the way the site needs them.

- `figure` shows a matplotlib/seaborn figure as a PNG whose alt text (for screen readers)
  is derived from its title, or from the caption you give.
- `table` shows a frame and writes it as CSV beside the page (``<output_dir>/tables/``),
  with a link to the CSV under the table: every table on the site is also a CSV.
- `show` displays a figure or frame, or one line when the source did not measure it (an
  empty frame, or a figure whose every panel is marked by ``analysis.models.figures``).
"""

from __future__ import annotations

import html
import io
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.core.io import atomic_path

if TYPE_CHECKING:
    import pandas as pd

NOT_MEASURED_ATTR = "painanx_not_measured"  # set on Axes by analysis.models.figures
NOT_MEASURED_LINE = "Not measured in this source: nothing to show here."
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def format_number(x) -> str:
    """Numbers as a reader wants them: about 3 significant figures, thousands separated."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool) or not isinstance(x, int | float):
        try:  # numpy scalars
            x = x.item()
        except AttributeError:
            return str(x)
        if isinstance(x, bool) or not isinstance(x, int | float):
            return str(x)
    ax = abs(x)
    if isinstance(x, int) or (ax >= 1000 and float(x).is_integer()):
        return f"{int(x):,}"
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.01 or ax == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"


def figure_alt_text(fig, caption: str | None = None) -> str:
    """A short description of a figure: the caption, else its titles, else its axis labels."""
    fig = getattr(fig, "figure", fig)  # seaborn FacetGrid / JointGrid carry .figure
    if caption:
        return caption.strip()
    parts: list[str] = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text().strip():
        parts.append(suptitle.get_text().strip())
    titles = [ax.get_title().strip() for ax in fig.axes if ax.get_title().strip()]
    parts.extend(t for t in titles if t not in parts)
    if parts:
        return "; ".join(parts)
    labels = []
    for ax in fig.axes:
        x, y = ax.get_xlabel().strip(), ax.get_ylabel().strip()
        if x and y:
            labels.append(f"{y} by {x}")
        elif x or y:
            labels.append(x or y)
    if labels:
        return "Chart of " + "; ".join(labels)
    return "Figure (no title or caption was given)"


def figure(fig, caption: str | None = None, *, dpi: int = 110) -> None:
    """Display a figure as a PNG with alt text (and the caption below it), then close it."""
    # notebook-only libraries (pyplot is slow to import): the site imports this module outside
    # a kernel, for format_number
    import matplotlib.pyplot as plt
    from IPython.display import Image, Markdown, display

    fig_obj = getattr(fig, "figure", fig)
    alt = figure_alt_text(fig_obj, caption)
    buffer = io.BytesIO()
    fig_obj.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig_obj)
    display(Image(data=buffer.getvalue(), format="png", metadata={"alt": alt}))
    if caption:
        display(Markdown(f"*{caption}*"))


def table_csv_path(output_dir: str | os.PathLike[str], name: str) -> Path:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"table name {name!r} must be a plain file name (letters, digits, '_', '-', '.')"
        )
    return Path(output_dir) / "tables" / f"{name}.csv"


def write_table_csv(
    df: pd.DataFrame, output_dir: str | os.PathLike[str], name: str, *, index: bool = False
) -> Path:
    """Write a table as ``<output_dir>/tables/<name>.csv`` (atomically) and return the path."""
    target = table_csv_path(output_dir, name)
    with atomic_path(target) as tmp:
        df.to_csv(tmp, index=index)
    return target


def table_html(
    df: pd.DataFrame, name: str, caption: str | None = None, *, index: bool = False
) -> str:
    """The HTML shown for a table: a captioned, scrollable table with a link to its CSV."""
    cap = html.escape(caption) if caption else html.escape(name)
    body = df.to_html(
        index=index, border=0, classes="dataframe", na_rep="–", float_format=format_number
    )
    return (
        f'<figure class="painanx-table"><figcaption>{cap} '
        f'<a class="csv-link" href="tables/{html.escape(name)}.csv">CSV</a></figcaption>'
        f'<div class="table-scroll" tabindex="0" role="region" aria-label="{cap}">{body}</div>'
        "</figure>"
    )


def table(
    df: pd.DataFrame,
    name: str,
    output_dir: str | os.PathLike[str],
    caption: str | None = None,
    *,
    index: bool = False,
) -> None:
    """Display a table in the notebook and write it as CSV beside the page
    (``<output_dir>/tables/<name>.csv``; `write_table_csv` alone returns the path)."""
    from IPython.display import HTML, display  # notebook-only, as in `figure`

    write_table_csv(df, output_dir, name, index=index)
    display(HTML(table_html(df, name, caption, index=index)))


def is_not_measured(obj) -> bool:
    """True for an empty frame, or a figure whose every panel says 'not measured'."""
    if getattr(obj, "empty", False) is True:
        return True
    fig = getattr(obj, "figure", obj)
    axes = getattr(fig, "axes", None)
    return bool(axes) and all(getattr(ax, NOT_MEASURED_ATTR, False) for ax in axes)


def show(obj, what: str | None = None) -> None:
    """Display a figure (as `figure` does) or a frame, or one line saying the source did not
    measure it (``what`` names it), with no empty figure or table."""
    from IPython.display import Markdown, display  # notebook-only, as in `figure`

    if is_not_measured(obj):
        if hasattr(obj, "savefig") or hasattr(getattr(obj, "figure", None), "savefig"):
            import matplotlib.pyplot as plt  # notebook-only, as in `figure`

            plt.close(getattr(obj, "figure", obj))
        line = f"{what}: not measured in this source." if what else NOT_MEASURED_LINE
        display(Markdown(f"*{line}*"))
    elif hasattr(getattr(obj, "figure", obj), "savefig"):
        figure(obj)
    else:
        display(obj)
