"""The kit every HTML report is built with: one page skeleton and the figure helpers.

Each capability's report module (bias, explain, Debugger, Profiler, monitoring, AutoML exploration
and leaderboard) writes only its sections; :func:`page` wraps them in the common skeleton (title,
the shared style plus the report's own rules, a heading) and :func:`figure_img` inlines a
matplotlib figure as a PNG ``data:`` URI, so every report is one self-contained file.

Adding a report: build the sections as HTML strings (escape every value with ``html.escape``),
draw figures with :func:`pyplot`, and return ``page(title, sections, style=...)``.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable

# The look every report shares; a report appends its own rules (later rules win).
BASE_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
              "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px}"
              "th{background:#f3f3f3}img{max-width:100%}")


def page(title: str, sections: Iterable[str] | str, *, style: str = "") -> str:
    """One self-contained HTML document: ``title`` as the page title and first heading, then ``sections``.

    Args:
        title: plain text (escaped here).
        sections: HTML fragments, already escaped, joined in order.
        style: the report's own CSS rules, after :data:`BASE_STYLE`.

    Returns:
        The document, starting with ``<!doctype html>``.
    """
    body = sections if isinstance(sections, str) else "".join(sections)
    title = html.escape(title)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{BASE_STYLE}{style}</style></head><body><h1>{title}</h1>{body}</body></html>")


def pyplot(*, optional: bool = False):
    """``matplotlib.pyplot`` on the non-interactive Agg backend.

    Args:
        optional: return ``None`` instead of raising when matplotlib is not installed (a bare GPU
            image), for a report that keeps its tables without charts.

    Raises:
        ImportError: matplotlib is missing and ``optional`` is false.
    """
    try:
        import matplotlib
    except ImportError:
        if optional:
            return None
        raise
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_data_uri(fig, *, dpi: int = 90, tight: bool = True) -> str:
    """Render a matplotlib figure as a PNG ``data:image/png;base64,...`` URI and close it.

    Args:
        fig: the figure.
        dpi: the resolution.
        tight: crop to the drawn content (``bbox_inches="tight"``); ``False`` keeps the figure's size.
    """
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_img(fig, alt: str, **options) -> str:
    """An ``<img>`` element showing ``fig`` inline (:func:`figure_to_data_uri`; ``options`` go to it).

    Args:
        fig: the figure (closed afterwards).
        alt: the text alternative, plain text (escaped here).
    """
    return f"<img src='{figure_to_data_uri(fig, **options)}' alt='{html.escape(alt)}'>"
