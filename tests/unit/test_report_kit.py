"""The kit every HTML report is built with (sagestack.report): the page skeleton and the inline figures."""

import re
import sys

from sagestack.report import BASE_STYLE, bar_chart, figure_img, page, pyplot


def test_page_wraps_sections_in_one_self_contained_document():
    document = page("Run <1>", ["<h2>A</h2>", "<p>b</p>"], style=".x{color:red}")
    assert document.startswith("<!doctype html><html><head><meta charset='utf-8'><title>Run &lt;1&gt;</title>")
    assert f"<style>{BASE_STYLE}.x{{color:red}}</style>" in document  # the report's rules come after the shared ones
    assert "<body><h1>Run &lt;1&gt;</h1><h2>A</h2><p>b</p></body></html>" in document
    assert page("T", "<p>one</p>").endswith("<h1>T</h1><p>one</p></body></html>")


def test_a_figure_is_inlined_as_a_png_and_closed():
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    element = figure_img(fig, "a <line>")
    assert re.fullmatch(r"<img src='data:image/png;base64,[A-Za-z0-9+/=]{100,}' alt='a &lt;line&gt;'>", element)
    assert not plt.fignum_exists(fig.number)


def test_pyplot_is_optional_where_a_report_can_do_without_charts(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert pyplot(optional=True) is None


def test_a_bar_chart_is_inline_svg_with_every_bar_whisker_and_reference():
    chart = bar_chart("DPL <x>", ["a&b", "c"], [("DPL", [0.25, -0.5], "#4a7ab5")], errors=([0.1, 0.0], [0.05, 0.2]),
                      reference=(0.0, "ideal 0"))
    assert chart.startswith("<svg xmlns='http://www.w3.org/2000/svg'") and chart.endswith("</svg>")
    assert "aria-label='DPL &lt;x&gt;'" in chart and ">a&amp;b</text>" in chart  # labels escaped
    assert chart.count("<rect") == 2 and chart.count("<path") == 2  # a bar and a whisker per row
    assert "<title>c: DPL -0.5</title>" in chart and ">ideal 0</text>" in chart and ">-0.4</text>" in chart  # ticks
    xs = [float(x) for x in re.findall(r"<rect x='([\d.]+)'", chart)]
    widths = [float(w) for w in re.findall(r"width='([\d.]+)' height='12'", chart)]
    assert xs[1] + widths[1] == xs[0] and widths[1] == 2 * widths[0]  # -0.5 ends where 0.25 starts: both start at 0


def test_stacked_bars_start_where_the_previous_series_ends_and_have_a_legend():
    chart = bar_chart("labels", ["x"], [("positive", [2], "green"), ("other", [3], "red")])
    (x1, w1), (x2, w2) = [(float(a), float(b)) for a, b in re.findall(r"<rect x='([\d.]+)' y='[\d.]+' width='([\d.]+)'", chart)]
    assert x2 == x1 + w1 and w2 == 1.5 * w1
    assert ">positive</text>" in chart and ">other</text>" in chart
