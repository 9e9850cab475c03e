"""The runner's HTML index: one page that says how a run of the labs went.

Introduced with `python -m course run` (labkit/run.py), which calls `write_html_index` after the
notebooks ran. `{out}/index.html` shows, failures first:
- the notebooks that failed, each with the cell and error, linked to its executed copy;
- one card per lab: its title, status and seconds, its headline numbers (the scalar figures it
  recorded with `labkit.record`, and small tables of them), how its training ended (the final
  line of each progress bar, `labkit.progress`), and thumbnails of its saved figures, each a link
  to the full-size PNG; everything it recorded, in a fold below.
The executed notebooks are rendered to `{out}/html/{notebook}.html`. The page is self-contained
(no scripts, no fonts or styles from the network), so it opens from a folder or a CI artifact.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The last state of a tqdm bar, as labkit.progress prints it headless: "fit: 100%|███| 14/14 [...]".
PROGRESS_LINE = re.compile(r"^[^\n|]{1,60}: +\d+%\|.*\| *\d+/\d+ \[.*\]$")
MAX_TABLE = 8  # a recorded dict of at most this many numbers is a headline table; larger ones fold away

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9cfdb}main{padding:18px 28px;max-width:1400px}
.chip{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;vertical-align:middle}
.ok{background:#dff3e4;color:#1b6b34}.failed{background:#fde2e1;color:#9b1c1c}.notrun{background:#e6e8ec;color:#555}
.failures{background:#fff4f3;border:2px solid #e0514b;border-radius:8px;padding:12px 18px;margin-bottom:20px}
.failures h2{margin:0 0 8px;color:#9b1c1c;font-size:18px}.failures li{margin:6px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:14px 18px;margin-bottom:18px}
.card.failedcard{border-color:#e0514b}.card h2{margin:0 0 2px;font-size:18px}
.meta{color:#5b6475;font-size:13px;margin-bottom:10px}.meta a{color:#2456c4}
.tiles{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.tile{border:1px solid #e3e6ec;border-radius:6px;padding:6px 10px;min-width:120px;background:#fafbfc}
.tile .k{font-size:11.5px;color:#5b6475}.tile .v{font-size:17px;font-weight:600;font-variant-numeric:tabular-nums}
.tile table{border-collapse:collapse;font-size:12.5px}.tile td{padding:0 6px 0 0;font-variant-numeric:tabular-nums}
pre.train{background:#f1f3f6;border-radius:6px;padding:6px 10px;font-size:12px;overflow-x:auto;margin:8px 0}
.error{font-family:ui-monospace,monospace;font-size:13px;color:#9b1c1c;white-space:pre-wrap}
.thumbs{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}
.thumbs figure{margin:0;width:172px}.thumbs img{width:172px;height:128px;object-fit:contain;background:#fff;
border:1px solid #dde1e8;border-radius:4px}.thumbs figcaption{font-size:11.5px;color:#5b6475;overflow-wrap:anywhere}
details{margin-top:8px;font-size:13px}details table{border-collapse:collapse}
details td{border-top:1px solid #eceef2;padding:2px 10px 2px 0;vertical-align:top;font-variant-numeric:tabular-nums}
"""


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _scalar(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, (int, float, bool))
        or (isinstance(value, str) and len(value) <= 40)
    )


def headline(metrics: dict[str, Any]) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """Split recorded figures into headline entries (scalars, short lists and small tables of
    scalars) and the rest, which the page folds away."""
    shown, rest = [], {}
    for key, value in metrics.items():
        small_list = isinstance(value, list) and len(value) <= 4 and all(_scalar(v) for v in value)
        small_table = (
            isinstance(value, dict)
            and 0 < len(value) <= MAX_TABLE
            and all(_scalar(v) for v in value.values())
        )
        if _scalar(value) or small_list or small_table:
            shown.append((key, value))
        else:
            rest[key] = value
    return shown, rest


def _tile(key: str, value: Any) -> str:
    k = f'<div class="k">{html.escape(key)}</div>'
    if isinstance(value, dict):
        rows = "".join(
            f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(_number(b))}</td></tr>"
            for a, b in value.items()
        )
        return f'<div class="tile">{k}<table>{rows}</table></div>'
    if isinstance(value, list):
        value = "[" + ", ".join(_number(v) for v in value) + "]"
    return f'<div class="tile">{k}<div class="v">{html.escape(_number(value))}</div></div>'


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        return [row for k, v in value.items() for row in _flat(v, f"{prefix}{k}." if prefix or k else "")]
    if isinstance(value, list) and len(value) > 12:
        return [(prefix.rstrip("."), f"[{len(value)} values]")]
    return [(prefix.rstrip("."), _number(value) if _scalar(value) else str(value))]


def notebook_story(executed: str | Path | None) -> tuple[str | None, list[str]]:
    """The title of an executed notebook (its first heading) and the final progress lines it printed."""
    if not executed or not Path(executed).is_file():
        return None, []
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    title = None
    lines: list[str] = []
    for cell in nb.cells:
        if title is None and cell.cell_type == "markdown" and cell.source.startswith("# "):
            title = cell.source.splitlines()[0][2:].strip()
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "stream":
                lines += [
                    ln.strip()
                    for ln in output.get("text", "").splitlines()
                    if PROGRESS_LINE.match(ln.strip())
                ]
    return title, lines


def _figures(out_dir: Path, notebook: str) -> str:
    items = []
    for png in sorted((out_dir / "figures" / notebook).glob("*.png")):
        href = html.escape(png.relative_to(out_dir).as_posix())
        name = html.escape(png.stem)
        caption = name.replace("_", "_<wbr>")  # long names break at their underscores
        items.append(
            f'<figure><a href="{href}" target="_blank" title="open {name} full size">'
            f'<img src="{href}" alt="{name}"></a><figcaption>{caption}</figcaption></figure>'
        )
    return f'<div class="thumbs">{"".join(items)}</div>' if items else ""


def _status(status: str) -> str:
    css = {"ok": "ok", "failed": "failed"}.get(status, "notrun")
    return f'<span class="chip {css}">{html.escape(status)}</span>'


def _card(out_dir: Path, outcome: Any, link: str | None) -> str:
    title, lines = notebook_story(outcome.executed if outcome.status != "not run" else None)
    shown, rest = headline(outcome.metrics)
    name = html.escape(outcome.notebook)
    meta = [
        f"{outcome.seconds:.1f} s" if outcome.status != "not run" else "not run",
        f'<a href="{link}">executed notebook</a>' if link else "",
    ]
    parts = [
        f'<section class="card{" failedcard" if outcome.status == "failed" else ""}" id="{name}">',
        f"<h2>{html.escape(title or outcome.notebook)} {_status(outcome.status)}</h2>",
        f'<div class="meta">{name} · {" · ".join(m for m in meta if m)}</div>',
    ]
    if outcome.error:
        parts.append(f'<div class="error">{html.escape(outcome.error)}</div>')
    if shown:
        parts.append(f'<div class="tiles">{"".join(_tile(k, v) for k, v in shown)}</div>')
    if lines:
        parts.append(f'<pre class="train">{html.escape(chr(10).join(lines))}</pre>')
    parts.append(_figures(out_dir, outcome.notebook))
    if rest:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in _flat(rest))
        parts.append(
            f"<details><summary>more recorded figures ({len(rest)})</summary><table>{rows}</table></details>"
        )
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def write_html_index(out_dir: Path, outcomes: Sequence[Any], profile: str) -> Path:
    """Render each executed notebook to `html/` and write `index.html` (see the module docstring).

    Args:
        out_dir: the run's folder (`{out}` of `python -m course run`).
        outcomes: the runner's `Outcome`s, in lab order.
        profile: the profile the labs ran under.

    Returns:
        the path of `index.html`.
    """
    from nbconvert import HTMLExporter

    out_dir = Path(out_dir)
    html_dir = out_dir / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    links: dict[str, str] = {}
    for o in outcomes:
        if o.status != "not run" and o.executed and Path(o.executed).is_file():
            body, _ = exporter.from_filename(o.executed)
            (html_dir / f"{o.notebook}.html").write_text(body, encoding="utf-8")
            links[o.notebook] = f"html/{o.notebook}.html"

    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "not run")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    total = sum(o.seconds for o in outcomes)
    failures = ""
    if failed:
        items = "".join(
            f'<li><a href="#{html.escape(o.notebook)}"><b>{html.escape(o.notebook)}</b></a>: '
            f'<span class="error">{html.escape(o.error or "failed")}</span>'
            + (f' · <a href="{links[o.notebook]}">executed notebook</a>' if o.notebook in links else "")
            + "</li>"
            for o in failed
        )
        failures = f'<section class="failures"><h2>{len(failed)} failed</h2><ul>{items}</ul></section>'
    cards = "\n".join(_card(out_dir, o, links.get(o.notebook)) for o in outcomes)
    page = (
        "<!doctype html>\n<html lang='en'><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>CNN Lab: {html.escape(profile)} run</title><style>{_STYLE}</style>\n"
        f"<header><h1>CNN Lab · {html.escape(profile)} profile</h1>"
        f"<p>{len(outcomes)} notebook(s): {summary} · {total:.0f} s in all · "
        f"{html.escape(str(out_dir))}</p></header>\n"
        f"<main>{failures}\n{cards}</main></html>\n"
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


__all__ = ["headline", "notebook_story", "write_html_index"]
