"""`aurora calibrate`: every heuristic metric's distribution on clean text, and suggested thresholds.

Input files are plain text with one sentence per line (assembled, seeded, into documents of 5 to
20 sentences in paragraphs of 1 to 4), documents in any curation format (JSONL, parquet, and WARC,
whose HTML pages are extracted as curation extracts them, by `--extractor`, the recipe's
`read.extractor`), or saved HTML pages (`.html`, `.htm`, extracted the same way), each a document.

The percentile rule: start from the published threshold (`filters/thresholds.py`) and loosen it
only where it would remove more than 0.5% of clean documents: then a `min_` threshold becomes
0.9 x the 0.5th percentile of clean documents, a `max_` threshold 1.1 x the 99.5th percentile. So each rule alone
removes well under 0.5% of clean text, and rules the clean text never comes near stay as
published. Counts that are policy rather than language (`doc_words`, `stop_words`) and settings
(`short_line_length`) are not calibrated. Loosened values are marked in the output. A rule with no
published value (`min_lexical_diversity`) starts from this project's value in `PUBLISHED` and goes
through the same rule; its output line says "published" like the others.

From a run's signals (`--signals RUN`), the metrics come from what the run stored instead of being
computed: the documents the run kept are the clean reference (each carries every metric of the
run's groups), so a run with strict thresholds calibrates from what they let through.
"""

import os
import random

import numpy as np

from core.errors import AuroraError
from core.text import normalize
from filters.heuristics import GROUPS, METRICS, analyze, metric_names
from filters.thresholds import PUBLISHED
from readers.html_text import DEFAULT_EXTRACTOR
from readers.records import FORMATS, MAX_DOCUMENT_BYTES, lines, readable_documents
from readers.warc import html_page_text

NOT_CALIBRATED = {"doc_words", "stop_words"}
HTML_FILES = (".html", ".htm")
MAX_SENTENCE_BYTES = 1 << 16  # a line of a sentence file; a longer one is no sentence


def documents_from_sentences(sentences: list[str], language: str, count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    joiner = "" if language == "ja" else " "
    docs = []
    for _ in range(count):
        picked = rng.sample(sentences, min(len(sentences), rng.randint(5, 20)))
        paragraphs, i = [], 0
        while i < len(picked):
            k = rng.randint(1, 4)
            paragraphs.append(joiner.join(picked[i : i + k]))
            i += k
        docs.append(normalize("\n".join(paragraphs)))
    return docs


def read_clean_texts(paths: list[str], language: str, documents: int, seed: int = 0, extractor: str = DEFAULT_EXTRACTOR) -> list[str]:
    """Documents from input files (any curation format, read as curation reads them: bad records are
    skipped) and from sentence files; a sentence file that is not UTF-8, or no text at all, is an error."""
    sentences, docs = [], []
    for path in paths:
        if not os.path.isfile(path):  # a device or a pipe never ends
            raise AuroraError(f"{path}: not a regular file")
        if path.endswith(FORMATS):
            docs += [doc.text for doc in readable_documents(path, extractor=extractor)]
            continue
        if path.lower().endswith(HTML_FILES):
            docs += [text for text in [_html_file_text(path, extractor)] if text]
            continue
        with open(path, "rb") as f:
            for _, line, _ in lines(f, MAX_SENTENCE_BYTES):  # longer lines are skipped unread
                try:
                    text = line.decode("utf-8").strip() if line is not None else ""
                except UnicodeDecodeError as e:
                    raise AuroraError(f"{path}: not UTF-8 text ({e.reason})") from None
                if text:
                    sentences.append(text)
    if sentences:
        docs += documents_from_sentences(sentences, language, documents, seed)
    if not docs:
        raise AuroraError(f"no text to calibrate on in {', '.join(paths)}")
    return docs


def _html_file_text(path: str, extractor: str) -> str | None:
    """The main text of a saved HTML page, as the WARC reader extracts it; None when it has none."""
    with open(path, "rb") as f:
        body = f.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        return None
    reason, text = html_page_text(body, [], extractor)
    return normalize(text) if reason is None and text.strip() else None


def metric_table(texts: list[str], language: str) -> dict[str, dict[str, np.ndarray]]:
    analyses = (analyze(t, language) for t in texts)  # each text segmented once, for every group
    rows = [{group: METRICS[group](a, {}) for group in GROUPS} for a in analyses]
    return {group: {metric: np.array([r[group][metric] for r in rows], dtype=float) for metric in rows[0][group]}
            for group in GROUPS}


def suggest(rule: str, values: np.ndarray, published: float) -> float:
    if rule.startswith("min_"):
        low = np.percentile(values, 0.5)
        return published if published <= low else float(np.floor(0.9 * low * 1000) / 1000)
    high = np.percentile(values, 99.5)
    return published if published >= high else float(np.ceil(1.1 * high * 1000) / 1000)


def signals_metric_table(run: str) -> tuple[str, int, dict[str, dict[str, np.ndarray]]]:
    """(language, documents, table) of the documents a curate run kept, from its signals."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from manifests.manifest import load_manifest

    manifest, folder = load_manifest(run)
    if "signals" not in manifest:
        raise AuroraError(f"{run} has no signals (curated before they were recorded)")
    language = manifest["language"]
    if language not in PUBLISHED:
        raise AuroraError(f"{run} is a {language} run; calibration is for the heuristics of text languages")
    tables = []
    for entry in manifest["signals"]["files"]:
        with folder.open(entry["path"], "rb") as f:
            table = pq.read_table(f)
        tables.append(table.filter(pc.is_null(table.column("removed_by"))))
    groups = [g for g in GROUPS if tables and f"{g}.{metric_names(g, language)[0]}" in tables[0].column_names]
    metrics = {group: {m: np.concatenate([t.column(f"{group}.{m}").to_numpy() for t in tables]) for m in metric_names(group, language)}
               for group in groups}
    return language, sum(t.num_rows for t in tables), metrics


def calibrate(paths: list[str], language: str, documents: int = 2000, seed: int = 0, extractor: str = DEFAULT_EXTRACTOR) -> str:
    texts = read_clean_texts(paths, language, documents, seed, extractor)
    return suggestions(metric_table(texts, language), language, f"{len(texts)} clean {language} documents")


def calibrate_signals(run: str) -> str:
    language, count, table = signals_metric_table(run)
    if not count:
        raise AuroraError(f"{run} kept no documents to calibrate on")
    return suggestions(table, language, f"{count} {language} documents kept by {run}")


def suggestions(table: dict[str, dict[str, np.ndarray]], language: str, what: str) -> str:
    """The recipe's heuristics section: per rule, the suggested threshold and the metric's percentiles."""
    lines = [
        f"# aurora calibrate: {what}; published thresholds, loosened where",
        "# clean text needs it (see tooling/calibrate.py). Per metric: p0.5 / p50 / p99.5 of clean text.",
        "heuristics:",
    ]
    for group, metrics in table.items():
        lines.append(f"  {group}:")
        for rule, published in PUBLISHED[language][group].items():
            metric = rule[4:]
            if rule.startswith(("min_", "max_")) and metric in metrics and metric not in NOT_CALIBRATED:
                values = metrics[metric]
                value = suggest(rule, values, published)
                p = np.percentile(values, [0.5, 50, 99.5])
                note = f"calibrated (published {published})" if value != published else "published"
                lines.append(f"    {rule}: {value:g}  # {note}; clean {p[0]:.3g} / {p[1]:.3g} / {p[2]:.3g}")
            else:
                lines.append(f"    {rule}: {published:g}  # published; not calibrated")
    return "\n".join(lines)
