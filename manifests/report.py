"""`aurora manifest report`: report.md and PNG charts from pool and stage manifests, and report.html
(`manifests.report_html`), the same report to browse, with each pool's signals and documents.

Charts: tokens per component (language or source) in each stage; the curation funnel of each
pool (documents kept and removed per rule); the tokenizer's fertility (tokens per word and per
character) of each pool's kept documents, by language; document length distributions, in tokens, of each
pool and stage (from the shards' indexes). Everything in report.md is read from the manifests and
indexes, so it describes exactly what the audit checks.
"""

import os

import numpy as np

from core.atomic import LOCAL, write_atomic
from core.errors import AuroraError
from manifests.audit import read_index
from manifests.manifest import format_ratio, load_manifest
from manifests.report_html import fertility_rows, pool_view, write_html


def _lengths(path: str, manifest: dict, folder) -> np.ndarray:
    parts = []
    for shard in manifest["shards"]:
        index = read_index(folder, shard["prefix"])
        if isinstance(index, str):
            raise AuroraError(f"{path}: {index} (aurora manifest audit {path} lists every problem)")
        parts.append(index.lengths)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 9, "svg.hashsalt": "aurora"})
    return plt


def _stage_chart(stages: list[dict], path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.9 * len(stages)))
    names = sorted({c["name"] for s in stages for c in s["components"]}, key=lambda n: (n in ("instructions", "safety"), n))
    colors = dict(zip(names, plt.get_cmap("tab10").colors * 2))
    for row, stage in enumerate(stages):
        left = 0
        tokens = {c["name"]: c["tokens"] for c in stage["components"]}
        for name in names:
            if tokens.get(name):
                ax.barh(row, tokens[name], left=left, color=colors[name], label=name if row == 0 or name not in
                        {c["name"] for s in stages[:row] for c in s["components"]} else None)
                left += tokens[name]
    ax.set_yticks(range(len(stages)), [s["name"] for s in stages])
    ax.set_xlabel("tokens")
    ax.set_title("Tokens per component in each stage")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(stages) < 3 else -0.15), ncol=5, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _funnel_chart(pool: dict, path: str) -> None:
    plt = _pyplot()
    funnel = pool["funnel"]
    rows = [("kept", funnel["kept"])] + sorted(
        [(f"removed: {r}", n) for r, n in funnel["removed"].items()] + [(f"malformed: {r}", n) for r, n in funnel["malformed"].items()],
        key=lambda item: -item[1],
    )
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.28 * len(rows)))
    ax.barh(range(len(rows)), [n for _, n in rows], color=["tab:green"] + ["tab:red"] * (len(rows) - 1))
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("documents")
    ax.set_title(f"Curation funnel: {pool['name']} ({funnel['documents_in']:,} in)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fertility_chart(pools: list[dict], path: str) -> None:
    """Tokens per word and per character of each pool's kept documents, side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 1.4 + 0.35 * len(pools)), sharey=True)
    labels = [f"{p['name']} ({p['language']})" for p in pools]
    for ax, (key, title) in zip(axes, (("tokens_per_word", "tokens per word"), ("tokens_per_character", "tokens per character"))):
        values = [p["fertility"]["total"][key] or 0 for p in pools]
        ax.barh(range(len(pools)), values, color="tab:blue")
        for row, value in enumerate(values):
            ax.text(value, row, f" {value:.2f}", va="center", fontsize=8)
        ax.set_title(title)
        ax.margins(x=0.2)
    axes[0].set_yticks(range(len(pools)), labels)
    axes[0].invert_yaxis()
    fig.suptitle("Tokenizer fertility on the kept documents")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _lengths_chart(lengths: dict[str, np.ndarray], path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    longest = max((int(v.max()) for v in lengths.values() if len(v)), default=2)
    bins = np.logspace(0, np.log10(max(longest, 2)), 40)
    for name, values in lengths.items():
        if len(values):
            ax.hist(values, bins=bins, histtype="step", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("document length (tokens, EOD included)")
    ax.set_ylabel("documents")
    ax.set_title("Document lengths")
    ax.legend(ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(paths: list[str], output: str) -> str:
    """Writes `<output>/report.md`, its charts and `<output>/report.html`; returns report.md's path."""
    os.makedirs(output, exist_ok=True)
    pools, stages, lengths, folders = [], [], {}, []
    for path in paths:
        manifest, folder = load_manifest(path)
        (stages if manifest["kind"] == "stage" else pools).append(manifest)
        lengths[f"{manifest['kind']} {manifest['name']}"] = _lengths(path, manifest, folder)
        if manifest["kind"] != "stage":
            folders.append(folder)

    lines = ["# Aurora data report", ""]
    if stages:
        _stage_chart(stages, os.path.join(output, "stage_tokens.png"))
        lines += ["## Stages", "", "![tokens per component](stage_tokens.png)", ""]
        for stage in stages:
            lines += [f"### {stage['name']}: {stage['totals']['tokens']:,} tokens, {stage['totals']['documents']:,} documents", "",
                      "| component | language | budget | tokens | documents | epochs | share (planned) |",
                      "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
            for c in stage["components"]:
                lines.append(f"| {c['name']} | {c['language']} | {c['budget_tokens']:,} | {c['tokens']:,} | {c['documents']:,} "
                             f"| {c['epochs']:.2f} | {c['share']:.1%} ({c['planned_share']:.1%}) |")
            lines.append("")
    if pools:
        lines += ["## Pools", "", "| pool | language | documents in | kept | removed | malformed | tokens |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for pool in pools:
            f = pool["funnel"]
            lines.append(f"| {pool['name']} | {pool['language']} | {f['documents_in']:,} | {f['kept']:,} | "
                         f"{sum(f['removed'].values()):,} | {sum(f['malformed'].values()):,} | {pool['totals']['tokens']:,} |")
        lines.append("")
        measured = [pool for pool in pools if "fertility" in pool]
        if measured:
            _fertility_chart(measured, os.path.join(output, "fertility.png"))
            lines += ["## Tokenizer fertility", "",
                      "Tokens (EOD excluded) per word, words from each language's segmenter, and per character, on the "
                      "kept documents.", "", "![fertility](fertility.png)", "",
                      "| pool | language | tokens per word | tokens per character | words | characters |",
                      "| --- | --- | ---: | ---: | ---: | ---: |"]
            for name, language, per_word, per_character, words, characters in fertility_rows(measured):
                lines.append(f"| {name} | {language} | {format_ratio(per_word)} | {format_ratio(per_character)} | {words:,} | {characters:,} |")
            lines.append("")
        for pool in pools:
            name = f"funnel_{pool['name']}.png"
            _funnel_chart(pool, os.path.join(output, name))
            lines += [f"### Funnel: {pool['name']}", "", f"![funnel of {pool['name']}]({name})", ""]
    _lengths_chart(lengths, os.path.join(output, "lengths.png"))
    lines += ["## Document lengths", "", "![document lengths](lengths.png)", "",
              "| manifest | documents | median | 90th percentile | longest |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, values in lengths.items():
        if len(values):
            lines.append(f"| {name} | {len(values):,} | {int(np.median(values)):,} | {int(np.percentile(values, 90)):,} | {int(values.max()):,} |")
    report = os.path.join(output, "report.md")
    write_atomic(LOCAL, report, ("\n".join(lines) + "\n").encode())
    views = [pool_view(pool, folder, lengths[f"{pool['kind']} {pool['name']}"]) for pool, folder in zip(pools, folders)]
    write_html(views, stages, output)
    return report
