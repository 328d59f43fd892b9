"""`report.html`: the report to browse, one self-contained page (inline CSS, script and SVG charts;
the report's PNGs beside it), written by `aurora manifest report` next to `report.md`.

Per pool: the funnel (documents kept, removed per rule, malformed per reason) with each rule's
threshold; the length distribution of the kept documents (tokens, from the shards' indexes); the
distribution of every metric in the run's signals with the rule's threshold drawn on it; and a
document browser: for each reason and for the kept documents, the first `SAMPLE` documents, in
task order (id, an excerpt, the metric's value against the threshold, or for a rule without a
metric what the signals say instead: the dedup cluster's size, the language), with a search by id.

Where things come from. The manifest records the recipe only by its sha256, so the thresholds are
the ones the run recorded in its signals (`removed_threshold` of the documents a rule removed): a
rule that removed no document has no threshold drawn. A rule's metric is the signals column it
names: `<group>.min_<metric>` and `<group>.max_<metric>` are `<group>.<metric>`, and a reason
ending in `_<column>` is that column (`low_language_score`, `perplexity.max_perplexity`); any rule
of a step that records one metric is that metric (`quality.keep_top_fraction`). Removed
documents' text is in `rejects/` (each task's ledger says which reasons a rejects file holds, so
reading stops once they have their sample); kept documents' text is their tokens in the shards,
decoded with the manifest's tokenizer (the kept rows of the signals, in order, are the shards'
documents, in order).

All document text is escaped (and lone surrogates and control characters replaced) before it
goes into the page: a document is shown as text, never run. Same inputs, same bytes: nothing
depends on the time, the machine or the order files are listed in.
"""

import base64
import hashlib
import html
import os

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.atomic import LOCAL, write_atomic
from core.errors import AuroraError
from core.ledger import read_task_records
from core.rejects import read_rejects, reject_files
from core.storage import local_asset
from core.tokenizer import file_sha256, load_tokenizer
from manifests.manifest import format_ratio

SAMPLE = 20  # documents shown per reason and for the kept ones
EXCERPT = 400  # characters of each document shown
BINS = 30  # bars of each metric's histogram
MAX_LINES = 3  # thresholds a rule may draw on a histogram; more are a threshold per document
KEPT = "kept"
# What a removed document shows for a rule without a metric (dedup, wrong language, code filters):
# the first of these its signals have.
DETAILS = {"cluster_size": "cluster of {}", "language": "language {}", "code_language": "{}"}
NOT_METRICS = {"removed_value", "removed_threshold"}
FONTS = ('system-ui, "Noto Sans", "Noto Sans CJK JP", "Noto Sans JP", "Noto Sans Devanagari", "Hiragino Sans", '
         '"Yu Gothic", "Nirmala UI", "Mangal", "DejaVu Sans", sans-serif')


def _text(value) -> str:
    """Document text for the page: lone surrogates and control characters (bar tab and newline) as U+FFFD."""
    text = str(value).encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return "".join(c if c >= " " or c in "\t\n" else "\ufffd" for c in text.replace("\r\n", "\n")).replace("\x7f", "\ufffd")


def _e(value) -> str:
    return html.escape(_text(value), quote=True)


def _excerpt(text: str) -> str:
    return _text(text[:EXCERPT]) + (" …" if len(text) > EXCERPT else "")


def _number(value) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def metric_of(reason: str, columns: list[str]) -> str | None:
    """The signals column a reason's rule bounds, by name (see the module's docstring), or None."""
    for column in columns:
        group, _, metric = column.rpartition(".")
        if group and reason in (f"{group}.min_{metric}", f"{group}.max_{metric}"):
            return column
        if not group and reason.endswith(f"_{column}"):
            return column
    # A step that records one metric: any of its rules bounds it (`quality.keep_top_fraction`).
    of_group = [column for column in columns if "." in reason and column.rpartition(".")[0] == reason.partition(".")[0]]
    return of_group[0] if len(of_group) == 1 else None


# --- reading a pool -----------------------------------------------------------------------------


def _sample_rejects(folder, reasons: set[str]) -> dict[str, list[dict]]:
    """The first SAMPLE rejects of each reason, in (step, task) order: {reason: [{id, text}]}."""
    samples: dict[str, list[dict]] = {reason: [] for reason in reasons}
    ledgers: dict[int, dict] = {}
    for path, step, task in reject_files(folder):
        if task not in ledgers:
            ledgers[task] = read_task_records(folder, task)
        ledger = ledgers[task]
        # The reasons the file holds, from the task's ledger (malformed records: the read step's); None: read it all.
        held = ledger.get("read", {}).get("malformed") if step == "malformed" else ledger.get(step, {}).get("removed")

        def full(reasons_here) -> bool:
            return reasons_here is not None and all(len(samples.get(r, ())) >= SAMPLE for r in reasons_here)

        if full(held):
            continue
        for _, reject in read_rejects(folder, path):
            shown = samples.setdefault(reject["reason"], [])
            if len(shown) < SAMPLE:
                text = reject.get("text", reject.get("raw", ""))
                shown.append({"id": str(reject.get("id")), "text": _excerpt(text if isinstance(text, str) else orjson.dumps(text).decode())})
            if full(held):
                break
    return samples


def _tables(folder, files: list[dict], columns: list[str]):
    for entry in files:
        with folder.open(entry["path"], "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1 << 16, columns=columns):
                yield pa.Table.from_batches([batch])


def _finite(values) -> np.ndarray:
    values = values.to_numpy() if hasattr(values, "to_numpy") else values
    values = np.asarray(values, dtype=float)  # nulls are NaN
    return values[np.isfinite(values)]


def _read_signals(folder, files: list[dict], removed_samples: dict[str, list[dict]]):
    """Two passes over the pool's signals files: the metrics' ranges, the rules' thresholds, the
    sampled documents' values and the first kept rows; then each metric's histogram (kept, removed
    by the metric's rule, removed by another)."""
    if not files:
        return [], {}, {}, []
    with folder.open(files[0]["path"], "rb") as f:
        schema = pq.ParquetFile(f).schema_arrow
    metrics = [f.name for f in schema if f.type == pa.float64() and f.name not in NOT_METRICS]
    wanted = pa.array(sorted({d["id"] for docs in removed_samples.values() for d in docs}), pa.string())
    ranges = {m: [np.inf, -np.inf] for m in metrics}
    thresholds: dict[str, set] = {}
    values: dict[tuple, tuple] = {}
    kept: list[dict] = []
    extra = [c for c in ("perplexity", "tokens") if c in schema.names]
    removal = ["removed_by", "removed_value", "removed_threshold"]
    details = [c for c in DETAILS if c in schema.names]

    for table in _tables(folder, files, list(dict.fromkeys(["id", *metrics, *extra, *removal, *details]))):
        for m in metrics:
            column = _finite(table.column(m))
            if len(column):
                ranges[m] = [min(ranges[m][0], float(column.min())), max(ranges[m][1], float(column.max()))]
        bounded = table.select(["removed_by", "removed_threshold"]).filter(pc.is_valid(table.column("removed_threshold")))
        for row in bounded.group_by(["removed_by", "removed_threshold"]).aggregate([]).to_pylist():
            thresholds.setdefault(row["removed_by"], set()).add(row["removed_threshold"])
        if len(kept) < SAMPLE:
            rows = table.take(pc.indices_nonzero(pc.is_null(table.column("removed_by")))[: SAMPLE - len(kept)])
            kept += rows.select(["id", *extra]).to_pylist()
        for row in table.select(["id", *removal, *details]).filter(pc.is_in(table.column("id"), value_set=wanted)).to_pylist():
            detail = next((DETAILS[c].format(row[c]) for c in details if row[c] is not None), None)
            values[(row["id"], row["removed_by"])] = (row["removed_value"], row["removed_threshold"], detail)
    for reason, docs in removed_samples.items():
        for doc in docs:
            doc["value"], doc["threshold"], doc["detail"] = values.get((doc["id"], reason), (None, None, None))
    rule_of: dict[str, list[str]] = {}  # metric -> the reasons that bound it
    for reason in sorted(thresholds):
        column = metric_of(reason, metrics)
        if column is not None:
            rule_of.setdefault(column, []).append(reason)

    charts = {}
    for m in metrics:
        low, high = ranges[m]
        if low > high:  # no document has a value
            continue
        # A rule whose threshold differs per document (GPT-3's Pareto keep) draws no line.
        lines = sorted({t for r in rule_of.get(m, []) if len(thresholds[r]) <= MAX_LINES for t in thresholds[r] if np.isfinite(t)})
        low, high = min([low, *lines]), max([high, *lines])
        charts[m] = {"edges": np.linspace(low, high if high > low else low + 1, BINS + 1), "counts": np.zeros((3, BINS), dtype=np.int64),
                     "thresholds": lines, "rules": rule_of.get(m, [])}
    if charts:
        for table in _tables(folder, files, list(dict.fromkeys([*charts, "removed_by"]))):
            removed_by = table.column("removed_by")
            kept_mask = pc.is_null(removed_by).to_numpy()
            for m, chart in charts.items():
                rule_mask = pc.fill_null(pc.is_in(removed_by, value_set=pa.array(chart["rules"], pa.string())), False).to_numpy()
                column = np.asarray(table.column(m).to_numpy(), dtype=float)
                for kind, mask in enumerate((kept_mask, rule_mask, ~kept_mask & ~rule_mask)):
                    chart["counts"][kind] += np.histogram(_finite(column[mask]), bins=chart["edges"])[0]
    return metrics, {r: sorted(t) for r, t in thresholds.items()}, charts, kept


def _kept_texts(manifest: dict, folder, kept: list[dict]) -> str | None:
    """Fills in each sampled kept document's text from the shards; returns why it cannot, or None."""
    if not kept:
        return None
    info = manifest["tokenizer"]
    try:
        tokenizer = load_tokenizer(info["path"])
        with open(local_asset(info["path"]), "rb") as f:
            if file_sha256(f) != info["sha256"]:
                return f"the tokenizer at {info['path']} is not the one the shards were made with (sha256 differs)"
    except (AuroraError, OSError) as e:
        return f"cannot load the tokenizer {info['path']}: {e}"
    from manifests.audit import read_index

    docs = iter(kept)
    for shard in manifest["shards"]:
        index = read_index(folder, shard["prefix"])
        if isinstance(index, str):
            raise AuroraError(f"{index} (aurora manifest audit lists every problem)")
        with folder.open(f"{shard['prefix']}.bin", "rb") as f:
            for position in range(len(index.lengths)):
                doc = next(docs, None)
                if doc is None:
                    return None
                tokens = np.frombuffer(index.read(f, position), dtype=index.dtype)[:-1]  # the EOD off
                doc["text"] = _excerpt(tokenizer.decode(tokens[: EXCERPT * 4].tolist(), skip_special_tokens=False))
    return None


def pool_view(manifest: dict, folder, lengths: np.ndarray) -> dict:
    funnel = manifest["funnel"]
    reasons = set(funnel["removed"]) | set(funnel["malformed"])
    removed = _sample_rejects(folder, reasons)
    files = manifest.get("signals", {}).get("files", [])
    metrics, thresholds, charts, kept = _read_signals(folder, files, removed)
    kept_note = _kept_texts(manifest, folder, kept)
    return {"manifest": manifest, "lengths": lengths, "samples": removed, "kept": kept, "kept_note": kept_note,
            "metrics": metrics, "thresholds": thresholds, "charts": charts, "signals": bool(files)}


# --- drawing ------------------------------------------------------------------------------------

COLORS = ("#2e7d32", "#c62828", "#9e9e9e")  # kept, removed by this rule, removed by another


def _histogram_svg(title: str, edges: np.ndarray, counts: np.ndarray, thresholds: list[float], log_x: bool = False) -> str:
    """A stacked histogram as inline SVG: counts is (series, bins); thresholds are red dashed lines."""
    width, height, left, bottom, top = 300, 150, 8, 28, 18
    plot_w, plot_h = width - 2 * left, height - bottom - top
    totals = counts.sum(axis=0)
    peak = max(int(totals.max()) if totals.size else 0, 1)
    span = edges[-1] - edges[0] or 1.0
    x = lambda v: left + (v - edges[0]) / span * plot_w  # noqa: E731
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">',
             f"<title>{html.escape(title)}</title>",
             f'<text x="{left}" y="12" class="t">{html.escape(title)}</text>']
    for b in range(counts.shape[1]):
        base = 0
        for series in range(counts.shape[0]):
            n = int(counts[series, b])
            if n:
                y0 = top + plot_h - (base + n) / peak * plot_h
                parts.append(f'<rect x="{x(edges[b]):.2f}" y="{y0:.2f}" width="{max(x(edges[b + 1]) - x(edges[b]) - 0.5, 0.5):.2f}" '
                             f'height="{n / peak * plot_h:.2f}" fill="{COLORS[series]}"><title>{n:,}</title></rect>')
                base += n
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>')
    for t in thresholds:
        parts.append(f'<line x1="{x(t):.2f}" y1="{top - 4}" x2="{x(t):.2f}" y2="{top + plot_h}" class="threshold">'
                     f"<title>threshold {_number(t)}</title></line>")
    low, high = (10 ** edges[0], 10 ** edges[-1]) if log_x else (edges[0], edges[-1])
    parts.append(f'<text x="{left}" y="{height - 8}" class="l">{_number(low)}</text>')
    parts.append(f'<text x="{left + plot_w}" y="{height - 8}" class="l" text-anchor="end">{_number(high)}</text>')
    parts.append(f'<text x="{left + plot_w}" y="12" class="l" text-anchor="end">max {peak:,}/bar</text>')
    parts.append("</svg>")
    return "".join(parts)


def _lengths_svg(lengths: np.ndarray) -> str:
    if not len(lengths):
        return "<p>No kept documents.</p>"
    logs = np.log10(np.maximum(lengths.astype(float), 1))
    edges = np.linspace(0, max(float(logs.max()), 1.0), BINS + 1)
    counts = np.histogram(logs, bins=edges)[0][None, :]
    return _histogram_svg("tokens per kept document (log scale)", edges, counts, [], log_x=True)


CSS = """
:root { color-scheme: light; }
body { font-family: FONTS; margin: 0 auto; max-width: 1200px; padding: 0 1em 3em; color: #212121; line-height: 1.45; }
h1 { margin-top: .6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 1.6em; }
nav a { margin-right: .8em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; vertical-align: top; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.kept td:first-child { color: #2e7d32; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 6px; }
svg.chart { border: 1px solid #eee; background: #fff; }
svg .t { font-size: 11px; font-weight: 600; } svg .l { font-size: 10px; fill: #555; }
svg .axis { stroke: #999; } svg .threshold { stroke: #c62828; stroke-width: 2; stroke-dasharray: 4 2; }
.legend span { display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 1em; vertical-align: middle; }
details.docs { margin: .3em 0; } details.docs summary { cursor: pointer; font-weight: 600; }
td.text { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 760px; font-size: 13px; }
td.id { font-family: ui-monospace, "Noto Sans Mono", monospace; font-size: 12px; overflow-wrap: anywhere; max-width: 220px; }
#search { font-size: 15px; padding: 4px 8px; width: 28em; }
.note { color: #666; font-size: 13px; }
#find { position: sticky; top: 0; background: #fafafa; border-bottom: 1px solid #ddd; padding: .5em 0; z-index: 1; }
""".replace("FONTS", FONTS)

# Any error in the page (the script below failing to parse or run included) lands in data-error,
# which the browser test reads; data-ready says the script ran to its end.
ERROR_HOOK = """window.addEventListener("error", function (e) {
  document.documentElement.setAttribute("data-error", String(e.message || e.type));
});"""

SCRIPT = """(function () {
  "use strict";
  var input = document.getElementById("search");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-id]"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("details.docs"));
  function apply() {
    var needle = input.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var hit = !needle || row.getAttribute("data-id").toLowerCase().indexOf(needle) >= 0;
      row.hidden = !hit;
      if (hit) { shown += 1; }
    });
    groups.forEach(function (group) {
      var n = group.querySelectorAll("tr[data-id]:not([hidden])").length;
      group.querySelector(".shown").textContent = String(n);
      if (needle) { group.open = n > 0; }
    });
    document.getElementById("matches").textContent = !needle ? "" : shown === 1 ? "1 document matches" : shown + " documents match";
  }
  input.addEventListener("input", apply);
  var query = /^#q=(.*)$/.exec(location.hash);
  if (query) { input.value = decodeURIComponent(query[1]); }
  apply();
  document.documentElement.setAttribute("data-ready", "1");
})();"""


def _script_hash(script: str) -> str:
    """The page runs its own two scripts only (Content-Security-Policy by hash): were a document's
    text ever to get out of its escaping, no script or event handler in it would run."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


def _funnel_table(view: dict) -> list[str]:
    manifest, thresholds = view["manifest"], view["thresholds"]
    funnel = manifest["funnel"]
    total = max(funnel["documents_in"], 1)
    rows = [("kept", "kept", funnel["kept"])] + sorted(
        [("removed", r, n) for r, n in funnel["removed"].items()] + [("malformed", r, n) for r, n in funnel["malformed"].items()],
        key=lambda row: (-row[2], row[1]))
    out = ['<table class="funnel"><thead><tr><th>outcome</th><th>reason</th><th class="n">documents</th><th class="n">share</th>'
           "<th>metric</th><th class=\"n\">threshold</th></tr></thead><tbody>"]
    for outcome, reason, n in rows:
        metric = metric_of(reason, view["metrics"]) if reason in thresholds else None
        shown = ", ".join(_number(t) for t in thresholds.get(reason, []))
        out.append(f'<tr class="{outcome}" data-reason="{_e(reason)}"><td>{outcome}</td><td>{_e(reason)}</td><td class="n">{n:,}</td>'
                   f'<td class="n">{n / total:.1%}</td><td>{_e(metric or "")}</td><td class="n">{shown}</td></tr>')
    out.append(f'</tbody><tfoot><tr><td colspan="2">documents in</td><td class="n">{funnel["documents_in"]:,}</td>'
               '<td class="n">100%</td><td></td><td></td></tr></tfoot></table>')
    return out


def _documents(view: dict) -> list[str]:
    funnel = view["manifest"]["funnel"]
    out = []
    groups = [(KEPT, funnel["kept"], view["kept"])] + sorted(
        [(r, n, view["samples"].get(r, [])) for r, n in {**funnel["removed"], **funnel["malformed"]}.items()], key=lambda g: (-g[1], g[0]))
    for reason, count, docs in groups:
        out.append(f'<details class="docs" data-reason="{_e(reason)}"><summary>{_e(reason)}: <span class="shown">{len(docs)}</span> '
                   f"shown of {count:,}</summary>")
        if reason == KEPT and view["kept_note"]:
            out.append(f'<p class="note">Text not shown: {_e(view["kept_note"])}</p>')
        if not docs:
            out.append('<p class="note">No document sampled.</p></details>')
            continue
        head = ('<th class="n">tokens</th><th class="n">perplexity</th>' if reason == KEPT
                else '<th class="n">value</th><th class="n">threshold</th>')
        out.append(f"<table><thead><tr><th>id</th>{head}<th>excerpt</th></tr></thead><tbody>")
        for doc in docs:
            if reason == KEPT:
                cells = f'<td class="n">{_number(doc.get("tokens"))}</td><td class="n">{_number(doc.get("perplexity"))}</td>'
            else:
                value = _number(doc.get("value")) if doc.get("value") is not None else _e(doc.get("detail") or "")
                cells = f'<td class="n">{value}</td><td class="n">{_number(doc.get("threshold"))}</td>'
            out.append(f'<tr data-id="{_e(doc["id"])}"><td class="id">{_e(doc["id"])}</td>{cells}'
                       f'<td class="text">{_e(doc.get("text", ""))}</td></tr>')
        out.append("</tbody></table></details>")
    return out


def _pool_section(view: dict, anchor: str) -> list[str]:
    manifest = view["manifest"]
    name = manifest["name"]
    out = [f'<section class="pool" id="{anchor}" lang="{_e(manifest["language"])}">',
           f"<h2>Pool {_e(name)} <small>({_e(manifest['language'])}; {manifest['totals']['tokens']:,} tokens in "
           f"{manifest['totals']['documents']:,} documents)</small></h2>", "<h3>Funnel</h3>"]
    out += _funnel_table(view)
    out.append(f'<img src="funnel_{_e(name)}.png" alt="funnel of {_e(name)}">')
    out.append("<h3>Distributions</h3>")
    if view["signals"]:
        out.append('<p class="legend note">Documents that reached each step: <span style="background:#2e7d32"></span>kept '
                   '<span style="background:#c62828"></span>removed by this metric\'s rule <span style="background:#9e9e9e"></span>removed '
                   "by another rule. Dashed red: the threshold the run recorded (rules that removed no document have none drawn).</p>")
    else:
        out.append('<p class="note">This run has no signals: only the kept documents\' lengths are shown.</p>')
    out.append('<div class="charts">' + _lengths_svg(view["lengths"]))
    for metric, chart in view["charts"].items():
        out.append(_histogram_svg(metric, chart["edges"], chart["counts"], chart["thresholds"]))
    out.append("</div>")
    out.append(f"<h3>Documents</h3><p class=\"note\">The first {SAMPLE} documents of each reason, in task order; excerpts of "
               f"{EXCERPT} characters.</p>")
    out += _documents(view)
    out.append("</section>")
    return out


def fertility_rows(pools: list[dict]) -> list[tuple]:
    """(pool, language, tokens per word, tokens per character, words, characters) of each pool that records them."""
    return [(p["name"], p["language"], f["tokens_per_word"], f["tokens_per_character"], f["words"], f["characters"])
            for p in pools if "fertility" in p for f in [p["fertility"]["total"]]]


def _fertility_section(pools: list[dict]) -> list[str]:
    out = ['<section id="fertility"><h2>Tokenizer fertility</h2>',
           '<p class="note">Tokens (EOD excluded) per word, words from each language\'s segmenter, and per character, '
           "on the kept documents.</p>", '<img src="fertility.png" alt="tokenizer fertility">',
           '<table><thead><tr><th>pool</th><th>language</th><th class="n">tokens per word</th><th class="n">tokens per character</th>'
           '<th class="n">words</th><th class="n">characters</th></tr></thead><tbody>']
    for name, language, per_word, per_character, words, characters in fertility_rows(pools):
        out.append(f"<tr><td>{_e(name)}</td><td>{_e(language)}</td><td class=\"n\">{format_ratio(per_word)}</td>"
                   f"<td class=\"n\">{format_ratio(per_character)}</td><td class=\"n\">{words:,}</td><td class=\"n\">{characters:,}</td></tr>")
    out += ["</tbody></table>", "</section>"]
    return out


def _stage_section(stage: dict) -> list[str]:
    out = [f"<h3>Stage {_e(stage['name'])}: {stage['totals']['tokens']:,} tokens, {stage['totals']['documents']:,} documents</h3>",
           '<table><thead><tr><th>component</th><th>language</th><th class="n">budget</th><th class="n">tokens</th>'
           '<th class="n">documents</th><th class="n">epochs</th><th class="n">share (planned)</th></tr></thead><tbody>']
    for c in stage["components"]:
        out.append(f"<tr><td>{_e(c['name'])}</td><td>{_e(c['language'])}</td><td class=\"n\">{c['budget_tokens']:,}</td>"
                   f"<td class=\"n\">{c['tokens']:,}</td><td class=\"n\">{c['documents']:,}</td><td class=\"n\">{c['epochs']:.2f}</td>"
                   f"<td class=\"n\">{c['share']:.1%} ({c['planned_share']:.1%})</td></tr>")
    out.append("</tbody></table>")
    return out


def write_html(pools: list[dict], stages: list[dict], output: str) -> str:
    """`<output>/report.html` from the pools' views (`pool_view`) and the stage manifests; the
    PNGs it shows are report.md's, in the same folder."""
    anchors = [f"pool-{i}-{view['manifest']['name']}" for i, view in enumerate(pools)]
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' file:; "
           f"style-src 'unsafe-inline'; script-src {_script_hash(ERROR_HOOK)} {_script_hash(SCRIPT)}\">",
           "<title>Aurora data report</title>", f"<style>{CSS}</style>", f"<script>{ERROR_HOOK}</script>", "</head>", "<body>",
           "<h1>Aurora data report</h1>", "<nav>"]
    out += [f'<a href="#{_e(a)}">{_e(v["manifest"]["name"])}</a>' for a, v in zip(anchors, pools)]
    out += ['<a href="#fertility">fertility</a>' if fertility_rows([view["manifest"] for view in pools]) else "",
            '<a href="#stages">stages</a>' if stages else "", "</nav>",
            '<div id="find"><label>Find documents by id: <input id="search" type="search" placeholder="id contains…" '
            'autocomplete="off"></label> <span id="matches"></span></div>']
    if pools:
        out.append('<p class="note">Thresholds are those the run recorded in its signals (<code>removed_threshold</code>); '
                   "the manifest records the recipe by its sha256 only.</p>")
    if fertility_rows([view["manifest"] for view in pools]):
        out += _fertility_section([view["manifest"] for view in pools])
    for anchor, view in zip(anchors, pools):
        out += _pool_section(view, _e(anchor))
    if stages:
        out += ['<section id="stages"><h2>Stages</h2>', '<img src="stage_tokens.png" alt="tokens per component">']
        for stage in stages:
            out += _stage_section(stage)
        out.append("</section>")
    out += ['<h2>Document lengths</h2><img src="lengths.png" alt="document lengths">', f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    path = os.path.join(output, "report.html")
    write_atomic(LOCAL, path, ("\n".join(line for line in out if line) + "\n").encode())
    return path
