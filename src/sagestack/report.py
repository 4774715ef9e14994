"""The kit every HTML report is built with: one page skeleton and the figure helpers.

Each capability's report module (bias, explain, Debugger, Profiler, monitoring, AutoML exploration
and leaderboard) writes only its sections; :func:`page` wraps them in the common skeleton (title,
the shared style plus the report's own rules, a heading) and :func:`figure_img` inlines a
matplotlib figure as a PNG ``data:`` URI, so every report is one self-contained file.
:func:`bar_chart` draws horizontal bars as inline SVG without matplotlib, for reports with many
small charts (the bias report draws one per metric: as PNGs they cost seconds per pipeline step).

Adding a report: build the sections as HTML strings (escape every value with ``html.escape``),
draw figures with :func:`bar_chart` or :func:`pyplot`, and return ``page(title, sections, style=...)``.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence

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


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not high > low:
        low, high = low - 1, high + 1
    step = 10 ** math.floor(math.log10((high - low) / count))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if (high - low) / (step * m) <= count)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def bar_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], *,
              errors: tuple[Sequence[float], Sequence[float]] | None = None,
              reference: tuple[float, str] | None = None) -> str:
    """A horizontal bar chart as an inline ``<svg>`` element: one row per label, the first label on top.

    Args:
        title: plain text (escaped here), above the bars.
        labels: the rows' names (plain text).
        series: ``(name, values, colour)`` per series, one value per label; several series are
            stacked (each bar starts where the previous one ends). Names show in a legend when
            there are several series or a reference; every bar's value shows on hover.
        errors: amounts below and above the first series' values, drawn as whiskers.
        reference: ``(value, name)`` drawn as a dashed vertical line (e.g. a metric's ideal value).

    Returns:
        The ``<svg>`` element (its ``aria-label`` is ``title``).
    """
    esc = html.escape
    row, bar, plot_width, font = 18, 12, 360, 11
    label_width = min(220, 12 + 6.5 * max((len(str(label)) for label in labels), default=1))
    starts = [[0.0] * len(labels)]
    for _, values, _ in series[:-1]:
        starts.append([s + v for s, v in zip(starts[-1], values)])
    ends = [[s + v for s, v in zip(start, values)] for start, (_, values, _) in zip(starts, series)]
    extent = [0.0, *(x for line in starts + ends for x in line)]
    if errors is not None:
        extent += [v - e for v, e in zip(series[0][1], errors[0])] + [v + e for v, e in zip(series[0][1], errors[1])]
    if reference is not None:
        extent.append(reference[0])
    ticks = _ticks(min(extent), max(extent))
    low, high = ticks[0], ticks[-1]
    top, left = 22, label_width
    bottom = top + row * len(labels)

    def x(value: float) -> float:
        return round(left + (value - low) / (high - low) * plot_width, 1)

    parts = [f"<text x='{left + plot_width / 2}' y='14' text-anchor='middle' font-size='{font + 1}'>{esc(title)}</text>"]
    for tick in ticks:
        parts.append(f"<line x1='{x(tick)}' x2='{x(tick)}' y1='{top}' y2='{bottom + 3}' stroke='#ddd'/>"
                     f"<text x='{x(tick)}' y='{bottom + 14}' text-anchor='middle'>{tick:g}</text>")
    for i, label in enumerate(labels):
        y = top + i * row + (row - bar) / 2
        parts.append(f"<text x='{left - 6}' y='{y + bar - 2}' text-anchor='end'>{esc(str(label))}</text>")
        for (name, values, colour), start in zip(series, starts):
            a, b = sorted((x(start[i]), x(start[i] + values[i])))
            parts.append(f"<rect x='{a}' y='{y}' width='{round(b - a, 1)}' height='{bar}' fill='{colour}'>"
                         f"<title>{esc(str(label))}: {esc(name)} {values[i]:.4g}</title></rect>")
        if errors is not None:
            value, middle = series[0][1][i], y + bar / 2
            a, b = x(value - errors[0][i]), x(value + errors[1][i])
            parts.append(f"<path d='M{a} {middle}H{b}M{a} {middle - 3}v6M{b} {middle - 3}v6' stroke='#333'/>")
    parts.append(f"<line x1='{x(0) if low <= 0 <= high else left}' x2='{x(0) if low <= 0 <= high else left}' "
                 f"y1='{top}' y2='{bottom}' stroke='#666'/>")
    keys = [(name, f"<rect width='10' height='10' fill='{colour}'/>") for name, _, colour in series] if len(series) > 1 else []
    if reference is not None:
        value, name = reference
        parts.append(f"<line x1='{x(value)}' x2='{x(value)}' y1='{top - 2}' y2='{bottom}' stroke='#2a9d3a' "
                     f"stroke-dasharray='4 3' stroke-width='1.5'/>")
        keys.append((name, "<line x1='0' x2='10' y1='5' y2='5' stroke='#2a9d3a' stroke-dasharray='4 3' stroke-width='1.5'/>"))
    height = bottom + 22
    offset = left
    for name, key in keys:
        parts.append(f"<g transform='translate({offset},{height - 2})'>{key}<text x='14' y='9'>{esc(name)}</text></g>")
        offset += 24 + 6.5 * len(name)
    height += 14 if keys else 0
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + plot_width + 16}' height='{height}' "
            f"font-family='system-ui,sans-serif' font-size='{font}' role='img' aria-label='{esc(title)}'>"
            + "".join(parts) + "</svg>")
