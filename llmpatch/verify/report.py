"""The self-contained HTML report of a verify run: tables, embedded PNG plots, claims, policy, samples."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from llmpatch import atomic

COLORS = {"base": "#9e9e9e", "baseline": "#f2b134", "patched": "#2a9d8f", "reference": "#5a6bd8"}
ARROW = {"lower": "lower is better", "higher": "higher is better", "none": "informational"}


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for a table cell; an em dash when undefined."""
    return "\u2014" if x is None else f"{x:.{digits}g}"


def fmt_estimate(e: dict[str, Any] | None, signed: bool = False) -> str:
    """``0.12 [0.08, 0.17]`` from an estimate dict."""
    if not e or e.get("value") is None:
        return "\u2014"
    v, (lo, hi) = e["value"], e["ci"]
    f = (lambda x: "\u2014" if x is None else f"{x:+.3g}") if signed else (lambda x: fmt(x))
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def suite_plot_png(suite: dict[str, Any], columns: list[str]) -> bytes:
    """One bar chart per metric of ``suite`` (bars = columns, whiskers = 95% bootstrap CI), as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    mets = suite["metrics"]
    fig, axes = plt.subplots(1, len(mets), figsize=(2.6 * len(mets) + 0.6, 2.8), squeeze=False)
    for ax, m in zip(axes[0], mets):
        vals, lows, highs, cols = [], [], [], []
        for c in columns:
            e = m["values"].get(c)
            if not e or e["value"] is None:
                continue
            v, (lo, hi) = e["value"], e["ci"]
            cols.append(c)
            vals.append(v)
            lows.append(max(0.0, v - (lo if lo is not None else v)))
            highs.append(max(0.0, (hi if hi is not None else v) - v))
        ax.bar(range(len(cols)), vals, yerr=[lows, highs], capsize=3, color=[COLORS.get(c, "#777") for c in cols])
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(cols, rotation=30, fontsize=8)
        ax.set_title(f"{m['name']}\n({ARROW[m['direction']]})", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em}td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px;vertical-align:top}
th{background:#f5f5f5}.pass{color:#1b7f3b;font-weight:600}.fail{color:#b3261e;font-weight:600}.muted{color:#777}
.ci{color:#a05a00;font-weight:600}.noverdict{color:#a05a00;font-weight:600}.warn{background:#fff4e0;padding:.5em 1em}
.flag{display:inline-block;font-size:11px;padding:0 4px;margin:1px;border-radius:3px;background:#fce8e6;color:#b3261e}
.flag.changed{background:#fff4e0;color:#a05a00}.flag.empty{background:#ececec;color:#444}.scores{font-size:11px;color:#555}
.better{background:#e6f4ea}.worse{background:#fce8e6}code{background:#f3f3f3;padding:1px 4px}
details{margin:.5em 0 1.5em}pre{white-space:pre-wrap;margin:0;font-size:12px}
"""


def _delta_class(direction: str, d: dict[str, Any] | None) -> str:
    """Colour a delta cell when its whole interval is on one side of zero."""
    if not d or d.get("value") is None or direction == "none" or d["ci"][0] is None:
        return ""
    lo, hi = d["ci"]
    if lo > 0 or hi < 0:
        improved = (hi < 0) if direction == "lower" else (lo > 0)
        return "better" if improved else "worse"
    return ""


def render_html(data: dict[str, Any]) -> str:
    """The full report as one HTML string (PNG plots embedded as base64; no external files)."""
    e = html.escape
    cols = data["columns"]
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>llmpatch verify report</title>",
           f"<style>{_CSS}</style></head><body>"]
    verdict = {"passed": "<span class='pass'>PASSED</span>", "failed": "<span class='fail'>FAILED</span>",
               "no verdict": "<span class='noverdict'>NO VERDICT (too few prompts)</span>"}[_verdict(data)]
    stack = " \u2192 ".join(f"{p['name']}@{p['version']}" for p in data["stack"]) or "(no patches)"
    out.append(f"<h1>llmpatch verify: {verdict}</h1>")
    out.append("<table>")
    rows = [("base", f"{data['base']['id']} <span class='muted'>{data['base']['fingerprint'][:23]}\u2026</span>"),
            ("stack", e(stack)), ("columns", e(", ".join(cols))), ("created", e(data["created"]))]
    if data.get("system_prompt"):
        rows.append(("baseline system prompt", e(data["system_prompt"])))
    if data.get("reference"):
        rows.append(("reference", e(f"{data['reference']['id']} ({data['reference']['spec']})")))
    s = data["settings"]
    rows.append(("settings", e(f"split={s['split']} limit={s['limit']} seed={s['seed']} bootstrap={s['n_boot']}")))
    out += [f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows]
    out.append("</table>")
    if data["failures"]:
        out.append("<h2>Failures</h2><ul>" + "".join(f"<li class='fail'>{e(f)}</li>" for f in data["failures"]) + "</ul>")
    if data.get("warnings"):
        out.append("<div class='warn'><b>Warnings</b><ul>" + "".join(f"<li>{e(w)}</li>" for w in data["warnings"]) + "</ul></div>")
    for suite in data["suites"]:
        p = suite["prompts"]
        out.append(f"<h2>{e(suite['name'])}</h2><p>{e(suite.get('description', ''))}. {p['n']} prompts from "
                   f"<code>{e(p['source'])}</code>; judges: {e(', '.join(f'{k}={v}' for k, v in suite['judges'].items()) or 'none')}.</p>")
        head = "".join(f"<th>{e(c)}</th>" for c in cols) + "".join(f"<th>\u0394 {e(c)} \u2212 base</th>" for c in cols if c != "base")
        out.append(f"<table><tr><th>metric</th><th>better</th>{head}</tr>")
        for m in suite["metrics"]:
            cells = "".join(f"<td>{fmt_estimate(m['values'].get(c))}</td>" for c in cols)
            cells += "".join(f"<td class='{_delta_class(m['direction'], m['delta'].get(c))}'>{fmt_estimate(m['delta'].get(c), True)}</td>"
                             for c in cols if c != "base")
            out.append(f"<tr><td title='{e(m.get('description', ''))}'>{e(m['name'])}</td><td>{m['direction']}</td>{cells}</tr>")
        out.append("</table>")
        png = base64.b64encode(suite_plot_png(suite, cols)).decode()
        out.append(f"<img alt='{e(suite['name'])} metrics' src='data:image/png;base64,{png}'>")
        out.append(samples_html(suite, cols))
    out.append("<h2>Vendor claims</h2>")
    if data["claims"]:
        out.append("<table><tr><th>patch</th><th>metric</th><th>claimed</th><th>measured</th><th>status</th></tr>")
        for c in data["claims"]:
            cls = {"met": "pass", "within CI": "ci", "not met": "fail"}.get(c["status"], "muted")
            out.append(f"<tr><td>{e(c['patch'])}</td><td>{e(c['metric'])}</td><td>{fmt(c['claimed'])}</td>"
                       f"<td>{fmt(c['measured'])}</td><td class='{cls}'>{e(c['status'])}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>The manifests record no evaluation claims.</p>")
    out.append("<h2>Policy</h2>")
    pol = data.get("policy")
    if pol:
        out.append(f"<p>From <code>{e(pol['source'])}</code>.</p><table><tr><th>metric</th><th>status</th><th>detail</th></tr>")
        for c in pol["checks"]:
            cls = {"pass": "pass", "fail": "fail"}.get(c["status"], "muted")
            out.append(f"<tr><td>{e(c['metric'])}</td><td class='{cls}'>{e(c['status'])}</td><td>{e(c['message'])}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>No policy given.</p>")
    out.append(f"<p class='muted'>llmpatch {e(str(data.get('llmpatch_version', '')))}; intervals are 95% percentile "
               "bootstrap over prompts; \u0394 intervals are paired (same resampled prompts).</p></body></html>")
    return "\n".join(out)


def _verdict(data: dict[str, Any]) -> str:
    """The report's verdict (reports written before verdicts existed: from ``passed``)."""
    return data.get("verdict") or ("passed" if data["passed"] else "failed")


def _score_text(scores: dict[str, Any]) -> str:
    """A sample's scores in one short line: ``toxicity 0.91 (classifier 0.02, lexicon 1)``."""
    parts = []
    for k, v in scores.items():
        if k == "toxicity_components":
            parts.append("(" + ", ".join(f"{name} {fmt(x, 2)}" for name, x in v.items()) + ")")
        elif k == "masked_hits":
            parts.append("masked: " + " ".join(v))
        elif k in ("nll", "ntok"):
            continue
        elif isinstance(v, (int, float)):
            parts.append(f"{k} {fmt(float(v), 2)}")
    return " ".join(parts)


def samples_html(suite: dict[str, Any], cols: list[str]) -> str:
    """Every prompt with each column's output, per-sample scores and flags; flagged rows first.

    Flags: ``loop`` (the output loops), ``masked`` (an obfuscated offensive word), ``empty`` (no
    word at all), ``changed``
    (the verdict differs from the unpatched output's). Rows are grouped: any flag on the patched
    output first, then other flagged rows, then the rest, so problems are read before successes.
    """
    e = html.escape
    samples = list(suite["samples"])

    def rank(smp: dict[str, Any]) -> int:
        flags = smp.get("flags") or {}
        return 0 if flags.get("patched") else 1 if flags else 2

    samples.sort(key=rank)
    n_flagged = sum(1 for smp in samples if rank(smp) == 0)
    out = [f"<details{' open' if n_flagged else ''}><summary>{len(samples)} prompts and outputs "
           f"({n_flagged} with a flagged patched output, listed first)</summary><table><tr><th>prompt</th>"
           + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"]
    for smp in samples:
        cells = []
        for c in cols:
            flags = "".join(f"<span class='flag {f}'>{f}</span>" for f in (smp.get("flags") or {}).get(c, []))
            scores = _score_text((smp.get("scores") or {}).get(c, {}))
            cells.append(f"<td>{flags}<pre>{e(smp['outputs'].get(c, ''))}</pre><div class='scores'>{e(scores)}</div></td>")
        form = "" if smp.get("chat") is None else (" <span class='muted'>(chat)</span>" if smp["chat"] else
                                                     " <span class='muted'>(continued as text)</span>")
        out.append(f"<tr><td><pre>{e(smp['prompt'])}</pre>{form}</td>{''.join(cells)}</tr>")
    out.append("</table></details>")
    return "".join(out)


def write_html(data: dict[str, Any], path: str | Path) -> Path:
    """Render and write the report atomically; return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(data)
    atomic.write_text(target, text, mode=0o644)
    return target
