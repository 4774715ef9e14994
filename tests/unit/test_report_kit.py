"""The kit every HTML report is built with (sagestack.report): the page skeleton and the inline figures."""

import re
import sys

from sagestack.report import BASE_STYLE, figure_img, page, pyplot


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
