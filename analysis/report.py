"""`tdw report`: a self-contained HTML report comparing models on everything the warehouse holds.

The report reads the serving snapshot through one read-only connection. Each probe area has a
section builder (``analysis/report_sections/``) that asks whether its marts exist and hold
rows for the chosen models, and returns nothing otherwise, so a warehouse built with some
probes only gets the sections it can fill. Figures are matplotlib PNGs, written next to the
HTML file and embedded in it as base64 ``data:`` URIs: the page needs no network and no
other file at view time. A few lines of inline JavaScript record, once the page has loaded,
how many figures decoded (``data-plots-drawn`` on ``<body>``), which the browser test reads.

Steps can be normalised by each model's training length (its last ingested step), so models
trained for different lengths line up (``normalise_steps``).
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from analysis.report_sections import Context, Section
from analysis.report_sections.registry import SECTIONS
from ingest.errors import TdwError
from warehouse.paths import safe_component


@dataclass
class ReportResult:
    html: Path
    sections: list[str]
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
figure { display: inline-block; margin: .5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; max-width: 640px; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
th { background: #f4f4f4; } .note { color: #666; font-size: .9em; }
nav a { margin-right: 1em; }
"""

CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img.plot'));
  var drawn = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-plots-drawn', drawn + '/' + imgs.length);
});
"""


def check_models(con: duckdb.DuckDBPyConnection, models: list[str]) -> None:
    if not models:
        raise TdwError("--models is empty: name at least one model")
    try:
        present = [
            r[0] for r in con.execute("select distinct model_id from marts.dim_checkpoint order by 1").fetchall()
        ]
    except duckdb.Error:
        raise TdwError("the warehouse has no marts yet: run `tdw build` first") from None
    missing = [m for m in models if m not in present]
    if missing:
        raise TdwError(f"not in the warehouse: {', '.join(missing)}; it holds: {', '.join(present) or 'no models'}")


def _figure_html(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img class="plot" alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)


def render(section: Section, out_dir: Path, written: list[Path]) -> str:
    parts = [f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>']
    if section.note:
        parts.append(f'<p class="note">{html.escape(section.note)}</p>')
    for fig in section.figures:
        path = out_dir / safe_component(f"{section.key}_{fig.name}.png")
        path.write_bytes(fig.png)
        written.append(path)
        parts.append(_figure_html(fig.name, fig.png, fig.caption))
    for caption, frame in section.tables:
        parts.append(f"<h3>{html.escape(caption)}</h3>{_table_html(frame)}")
    parts.append("</section>")
    return "\n".join(parts)


def write_report(
    warehouse: Path, models: list[str], out: Path, normalise_steps: bool = False, graph_steps: list[int] | None = None
) -> ReportResult:
    """Write ``out`` (HTML) and its figures (PNG, in ``out``'s folder) comparing ``models``."""
    from warehouse.snapshot import connect

    t0 = time.perf_counter()
    models = list(dict.fromkeys(models))
    out = Path(out)
    con = connect(Path(warehouse))
    try:
        check_models(con, models)
        ctx = Context(con, models, normalise_steps, graph_steps)
        sections = [s for build in SECTIONS if (s := build(ctx)) is not None]
    finally:
        con.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    body = [render(s, out.parent, written) for s in sections]
    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    axis = "steps as a fraction of each model's last step" if normalise_steps else "training steps"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tdw report: {html.escape(", ".join(models))}</title>
<style>{STYLE}</style></head>
<body data-plots-drawn="">
<h1>Training dynamics: {html.escape(", ".join(models))}</h1>
<p class="note">From {html.escape(str(Path(warehouse)))}; x axes show {axis}. {len(sections)} sections,
{len(written)} figures. Sections appear only where the warehouse holds their marts.</p>
<nav>{nav}</nav>
{"".join(body) if body else "<p>No mart holds data for these models.</p>"}
<script>{CHECK_SCRIPT}</script>
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return ReportResult(out, [s.key for s in sections], written, time.perf_counter() - t0)
