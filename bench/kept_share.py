"""Do a recipe's thresholds hold on real pages? The real pages of a language (`tooling/real_pages.py`)
curated twice with that language's demo recipe (`recipes/demo/<lang>.yaml`, its sources and output
replaced, without its perplexity section: the demo recipes only tag documents with its buckets):
once as a WARC of their HTML (HTTP responses as a crawler stores them, no charset declared: the run
path extracts the text), once as JSONL of their reference texts. Printed per language: pages, kept
from the reference text, kept from the HTML, and of the pages kept from their reference text, the
share also kept from their HTML (the target: >= 95%); then, for the pages lost from HTML, the rule
that removed each. Then, for the heuristics alone (no run): the same shares with the reader's
extraction before `readers.html_text` (resiliparse's plain main content) and the default one,
each under the published thresholds (`filters/thresholds.py`) and the recipe's.

    .venv/bin/python bench/kept_share.py [--languages en ja] [--kinds article] [--assets assets]

Needs the cache of real pages and `aurora assets build`'s assets (run from the project's root).
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile
from collections import Counter

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402
from resiliparse.extract.html2text import extract_plain_text  # noqa: E402
from resiliparse.parse.html import HTMLTree  # noqa: E402
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

from aurora.cli import main as aurora  # noqa: E402
from core.text import normalize  # noqa: E402
from filters.heuristics import GROUPS, GroupRules, analyze, decide, measure  # noqa: E402
from filters.thresholds import PUBLISHED  # noqa: E402
from readers.warc import decode_html, html_page_text  # noqa: E402
from tooling.real_pages import cache_dir, load_pages  # noqa: E402


def write_warc(pages, path: str) -> None:
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for page in pages:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            record = writer.create_warc_record(f"https://{page.source}.example/{page.name}", "response", payload=io.BytesIO(page.html),
                                               http_headers=http, warc_headers_dict={"WARC-Record-ID": f"<urn:page:{page.name}>"})
            writer.write_record(record)


def curate(recipe_path: str, source: str, output: str, assets: str, work: str) -> dict[str, str | None]:
    """{document id: the rule that removed it, or None when kept} of one run."""
    with open(recipe_path) as f:
        recipe = yaml.safe_load(f)
    recipe["sources"] = [{"name": "pages", "paths": [source]}]
    recipe["output"] = output
    recipe["assets"] = {key: os.path.join(assets, os.path.basename(value)) for key, value in recipe["assets"].items()}
    recipe.pop("decontamination", None)
    # The demo recipes keep all three perplexity buckets (they only tag documents), and buckets need
    # a sample of hundreds of documents: a language with a handful of real pages runs without them.
    recipe.pop("perplexity", None)
    path = os.path.join(work, os.path.basename(output) + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(recipe, f)
    with contextlib.redirect_stdout(io.StringIO()):
        status = aurora(["curate", path, "--workers", "1"])
    if status != 0:
        sys.exit(f"curate failed on {path}")
    verdicts = {}
    for name in sorted(os.listdir(os.path.join(output, "signals"))):
        if name.endswith(".parquet"):
            for row in pq.read_table(os.path.join(output, "signals", name), columns=["id", "removed_by"]).to_pylist():
                verdicts[row["id"]] = row["removed_by"]
    return verdicts


def removed_by(text: str, language: str, thresholds: dict) -> str | None:
    """The first heuristic rule `text` breaks, as `<group>.<rule>`."""
    analysis = analyze(normalize(text), language)
    for group in GROUPS:
        rules = GroupRules(group, thresholds[group])
        removal = decide(measure(analysis, rules), rules)
        if removal:
            return removal.reason
    return None


def plain_text(html: bytes) -> str | None:
    """The reader's extraction before `readers.html_text`: resiliparse's main content as it is."""
    decoded = decode_html(html, [])
    return extract_plain_text(HTMLTree.parse(decoded), main_content=True) if decoded is not None else None


def heuristics_only(pages, language: str) -> None:
    """Kept shares under the heuristics alone, per extraction and thresholds."""
    with open(os.path.join("recipes", "demo", f"{language}.yaml")) as f:
        recipe = yaml.safe_load(f)["heuristics"]
    default = [text if reason is None else None for reason, text in (html_page_text(p.html, [], "resiliparse+trafilatura") for p in pages)]
    texts = {"plain resiliparse (before)": [plain_text(p.html) for p in pages], "resiliparse+trafilatura": default}
    for thresholds_name, thresholds in (("published", PUBLISHED[language]), ("the recipe's", recipe)):
        kept_reference = [removed_by(p.reference, language, thresholds) is None for p in pages]
        for name, extracted in texts.items():
            kept_html = [t is not None and bool(t.strip()) and removed_by(t, language, thresholds) is None for t in extracted]
            both = sum(r and h for r, h in zip(kept_reference, kept_html))
            share = both / max(1, sum(kept_reference))
            print(f"| {language} | {name} | {thresholds_name} | {sum(kept_reference)} | {sum(kept_html)} | {share:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--languages", nargs="+", default=["en", "fi", "hi", "ja", "vi"])
    parser.add_argument("--kinds", nargs="+", default=["article"], help="page kinds (WCXB's); readability's are articles")
    parser.add_argument("--assets", default="assets")
    args = parser.parse_args()
    print(f"real pages from {cache_dir()}, kinds {', '.join(args.kinds)}\n")
    print("| language | pages | kept from reference | kept from HTML | of those kept from reference, kept from HTML |")
    print("| --- | ---: | ---: | ---: | ---: |")
    losses = {}
    for language in args.languages:
        pages = [p for p in load_pages(language=language) if p.kind in args.kinds]
        if not pages:
            print(f"| {language} | 0 | | | |")
            continue
        with tempfile.TemporaryDirectory() as work:
            warc, jsonl = os.path.join(work, "pages.warc.gz"), os.path.join(work, "references.jsonl")
            write_warc(pages, warc)
            with open(jsonl, "wb") as f:
                f.writelines(orjson.dumps({"id": f"urn:page:{p.name}", "text": p.reference}) + b"\n" for p in pages)
            recipe = os.path.join("recipes", "demo", f"{language}.yaml")
            from_html = curate(recipe, warc, os.path.join(work, "html"), args.assets, work)
            from_reference = curate(recipe, jsonl, os.path.join(work, "reference"), args.assets, work)
        kept_reference = {i for i, removed in from_reference.items() if removed is None}
        kept_html = {i for i, removed in from_html.items() if removed is None}
        both = kept_reference & kept_html
        share = len(both) / len(kept_reference) if kept_reference else float("nan")
        print(f"| {language} | {len(pages)} | {len(kept_reference)} | {len(kept_html)} | {share:.1%} |")
        losses[language] = Counter(from_html.get(i) or "read (no document)" for i in kept_reference - kept_html)
    for language, lost in losses.items():
        if lost:
            print(f"\n{language}: kept from reference, removed from HTML by: " + ", ".join(f"{rule} {n}" for rule, n in lost.most_common()))
    print("\nHeuristics alone\n")
    print("| language | extraction | thresholds | kept from reference | kept from HTML | of those kept from reference, kept from HTML |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for language in args.languages:
        pages = [p for p in load_pages(language=language) if p.kind in args.kinds]
        if pages:
            heuristics_only(pages, language)


if __name__ == "__main__":
    main()
