"""Writing explanations: ``analysis.json`` with Clarify's ``explanations.kernel_shap`` and ``report.html``."""

from __future__ import annotations

import html
import json
from pathlib import Path

from sagestack.data.atomic import atomic_dir
from sagestack.report import figure_img, page, pyplot

STYLE = ".charts{display:flex;flex-wrap:wrap;gap:12px}.review{border:1px solid #ddd;padding:8px;margin:8px 0;line-height:1.7}"


def _bar_chart(title: str, importance: dict[str, float], alt: str) -> str:
    """An ``<img>``: one bar per word, its mean |SHAP value|."""
    plt = pyplot()
    names, values = list(importance), list(importance.values())
    fig, ax = plt.subplots(figsize=(5, 0.25 * len(names) + 1.0))
    ax.barh(names, values, color="#4a7ab5")
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("mean |SHAP value|")
    ax.tick_params(labelsize=8)
    return figure_img(fig, alt)


def _colored_text(entry: dict) -> str:
    """The review with each token shaded by its SHAP value for the predicted class (red -, green +)."""
    values = entry["shap_values"][entry["predicted_label"]]
    peak = max((abs(v) for v in values), default=1.0) or 1.0
    spans = []
    for token, value in zip(entry["tokens"], values):
        alpha = min(abs(value) / peak, 1.0)
        color = f"rgba(42,157,58,{alpha:.2f})" if value > 0 else f"rgba(196,78,82,{alpha:.2f})"
        spans.append(f"<span style='background:{color}' title='{value:+.4f}'>{html.escape(token)}</span>")
    return "".join(spans)


def render_html(explanations: dict, title: str) -> str:
    """A page with the top words per class and every explained review, word by word."""
    kernel = explanations["kernel_shap"]
    parts = [
        "<p>SHAP values say how much each word moved the model's probability of a class away from its average "
        "(the expected value). Bars: mean absolute SHAP value per word over the explained reviews. Below, each "
        "review is shaded by its words' SHAP values for the predicted class: green pushed toward it, red away.</p>",
        "<div class='charts'>",
    ]
    for label, data in kernel.items():
        importance = data.get("global_top_shap_text") or data.get("global_shap_values") or {}
        if importance:
            parts.append(_bar_chart(f"class {label} (expected {data['expected_value']:.3f})", importance, label))
    parts.append("</div>")
    for entry in explanations.get("local", []):
        if "tokens" in entry:
            probs = ", ".join(f"{k}: {v:.2f}" for k, v in entry["probabilities"].items())
            parts.append(f"<div class='review'><b>predicted {html.escape(entry['predicted_label'])}</b> ({probs})<br>"
                         f"{_colored_text(entry)}</div>")
    return page(title, parts, style=STYLE)


def write_explanations(explanations: dict, out_dir: Path, title: str = "Explanations", *,
                       overwrite: bool = False) -> dict[str, Path]:
    """Write ``analysis.json`` (``{"version", "explanations": {"kernel_shap": ...}, "sagestack": {"local": ...}}``)
    and ``report.html`` into ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    document = {
        "version": "1.0",
        "explanations": {"kernel_shap": explanations["kernel_shap"]},
        "sagestack": {k: v for k, v in explanations.items() if k != "kernel_shap"},
    }
    with atomic_dir(out_dir, command="explain", overwrite=overwrite) as tmp:
        (tmp / "analysis.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
        (tmp / "report.html").write_text(render_html(explanations, title), encoding="utf-8")
    return {"analysis": out_dir / "analysis.json", "report": out_dir / "report.html"}
