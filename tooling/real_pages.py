"""Real web pages with a reference main text, for developing and testing extraction and thresholds.

Nothing here is committed to the project: the pages belong to their publishers, so this script
fetches them from public repositories at pinned commits into a cache outside the project
(`$AURORA_REAL_PAGES`, else `~/.cache/aurora/real_pages`). Tests and benches that need them skip
cleanly when the cache is absent.

Sources (what each is, its licence, how its reference is read):
- mozilla/readability `test/test-pages/<name>/` (Apache-2.0 for the repository; the pages are
  copies of the publishers' pages, kept there as test fixtures): `source.html`, the page as
  crawled, and `expected.html`, the article as Firefox's Reader View extracts it, reviewed by the
  project's maintainers. The reference text is `expected.html` as plain text. Pages under 10 KB are
  the repository's hand-made unit tests (`001`'s siblings such as `basic-tags-cleaning`), not
  crawled pages, and are left out.
- Murrough-Foley/web-content-extraction-benchmark (WCXB, CC-BY-4.0), its development split:
  `dev/html/NNNN.html.gz`, the page as crawled, and `dev/ground-truth/NNNN.json`, whose
  `ground_truth.main_content` is the reference text (drafted with a language model, then reviewed
  by people, as its README says), and `_internal.page_type.primary` the page's kind (article,
  forum, product, collection, listing, documentation, service). Its held-out split is left to it.

Each page's language is what its source says (readability's `expected-metadata.json` `lang`),
else its `<html lang>`, cut to the primary subtag (`en-US` -> `en`), else, for text in kana or Han
characters only, `ja` or `zh`; else `und`.

    python -m tooling.real_pages [--cache DIR] [--from-git DIR]

`--from-git` reads a source from a local clone or bare mirror of its repository (at the pinned
commit) instead of downloading the repository's archive.
"""

import argparse
import dataclasses
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from collections import Counter

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

from readers.html_text import WORD

CACHE_ENV = "AURORA_REAL_PAGES"
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "aurora", "real_pages")
MIN_PAGE_BYTES = 10_000  # smaller test pages of readability are hand-made unit tests


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    repo: str
    commit: str
    licence: str
    folder: str  # the folder of page folders inside the repository


SOURCES = (
    Source("readability", "mozilla/readability", "ab4027a8b37669745016869a37a504727992b2ba", "Apache-2.0 (repository); pages: their publishers'",
           "test/test-pages"),
    Source("wcxb", "Murrough-Foley/web-content-extraction-benchmark", "c039d5ee9f5a3a984a0e167e63aacd04e76e78a9", "CC-BY-4.0", "dev"),
)


@dataclasses.dataclass(frozen=True)
class RealPage:
    source: str
    name: str
    language: str
    kind: str  # article, forum, product, ... (WCXB's page types); readability's pages are articles
    html: bytes
    reference: str


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or DEFAULT_CACHE


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, one line per block, without alt texts: how a reference's
    HTML is read."""
    return extract_plain_text(HTMLTree.parse(html), main_content=False, alt_texts=False, links=False, list_bullets=False)


def word_scores(reference: str, extracted: str) -> tuple[float, float, float]:
    """Precision, recall and F1 of the extracted words against the reference's, as WCXB's
    `evaluate.py` and the extraction benchmarks score a page: multisets of `\\w+` in lower case,
    a Han or kana character a word of its own (those scripts write no spaces)."""
    truth, found = Counter(WORD.findall(reference.lower())), Counter(WORD.findall(extracted.lower()))
    hits = sum((truth & found).values())
    precision = hits / sum(found.values()) if found else 0.0
    recall = hits / sum(truth.values()) if truth else 0.0
    return precision, recall, 2 * precision * recall / (precision + recall) if hits else 0.0


def load_pages(cache: str | None = None, language: str | None = None) -> list[RealPage]:
    """The cached pages (of one language when given), in a fixed order; [] when there is no cache."""
    index = os.path.join(cache or cache_dir(), "pages.jsonl")
    if not os.path.isfile(index):
        return []
    pages = []
    with open(index, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            if language and entry["language"] != language:
                continue
            folder = os.path.join(os.path.dirname(index), entry["source"], entry["name"])
            with open(os.path.join(folder, "source.html"), "rb") as h, open(os.path.join(folder, "reference.txt"), encoding="utf-8") as r:
                pages.append(RealPage(entry["source"], entry["name"], entry["language"], entry["kind"], h.read(), r.read()))
    return pages


def _repository_files(source: Source, from_git: str | None) -> dict[str, bytes]:
    """{path inside source.folder: bytes} of the source's repository at its commit."""
    if from_git:
        archive = subprocess.run(["git", f"--git-dir={from_git}", "archive", "--format=tar", source.commit, source.folder],
                                 check=True, capture_output=True).stdout
        mode, prefix = "r:", ""
    else:
        url = f"https://codeload.github.com/{source.repo}/tar.gz/{source.commit}"
        with urllib.request.urlopen(url, timeout=120) as response:
            archive = response.read()
        mode, prefix = "r:gz", f"{source.repo.split('/')[1]}-{source.commit}/"
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode=mode) as tar:
        for member in tar:
            path = member.name.removeprefix(prefix)
            if member.isfile() and path.startswith(source.folder + "/"):
                files[path[len(source.folder) + 1:]] = tar.extractfile(member).read()
    return files


_HTML_LANG = re.compile(rb"<html[^>]*?\slang\s*=\s*[\"']?([A-Za-z]{2,3})", re.IGNORECASE)
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _language(declared: str | None, html: bytes, reference: str) -> str:
    if not declared:
        found = _HTML_LANG.search(html)
        declared = found.group(1).decode() if found else ""
    if declared:
        return declared.split("-")[0].lower()
    return "ja" if _KANA.search(reference) else "zh" if _HAN.search(reference) else "und"


def _readability_pages(files: dict[str, bytes]):
    names = sorted({path.split("/")[0] for path in files if path.endswith("/source.html")})
    for name in names:
        html, expected = files[f"{name}/source.html"], files.get(f"{name}/expected.html")
        if expected is None or len(html) < MIN_PAGE_BYTES:
            continue
        metadata = json.loads(files.get(f"{name}/expected-metadata.json", b"{}"))
        reference = html_to_text(expected.decode("utf-8"))
        yield name, _language(metadata.get("lang"), html, reference), "article", html, reference


def _wcxb_pages(files: dict[str, bytes]):
    for path in sorted(files):
        if not path.startswith("ground-truth/") or not path.endswith(".json"):
            continue
        name = path.removeprefix("ground-truth/").removesuffix(".json")
        truth = json.loads(files[path])
        reference = truth["ground_truth"].get("main_content")
        if not reference:  # 21 of 1,497 have none (null or empty)
            continue
        html = gzip.decompress(files[f"html/{name}.html.gz"])
        kind = truth.get("_internal", {}).get("page_type", {}).get("primary", "unknown")
        yield name, _language(None, html, reference), kind, html, reference


def fetch(cache: str, from_git: dict[str, str] | None = None) -> int:
    """Write every source's pages and `pages.jsonl` into `cache` (replaced whole); the number of pages."""
    if os.path.exists(cache) and os.listdir(cache) and not os.path.isfile(os.path.join(cache, "pages.jsonl")):
        raise OSError(f"{cache} is not empty and holds no pages.jsonl: not a cache of real pages, left alone")
    staging = cache.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    entries = []
    for source in SOURCES:
        files = _repository_files(source, (from_git or {}).get(source.name))
        pages = _readability_pages(files) if source.name == "readability" else _wcxb_pages(files)
        for name, language, kind, html, reference in pages:
            folder = os.path.join(staging, source.name, name)
            os.makedirs(folder)
            with open(os.path.join(folder, "source.html"), "wb") as f:
                f.write(html)
            with open(os.path.join(folder, "reference.txt"), "w", encoding="utf-8") as f:
                f.write(reference)
            entries.append({"source": source.name, "name": name, "language": language, "kind": kind, "repo": source.repo,
                            "commit": source.commit, "licence": source.licence})
    with open(os.path.join(staging, "pages.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(staging, cache)
    return len(entries)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=cache_dir())
    parser.add_argument("--from-git", action="append", default=[], metavar="SOURCE=GIT_DIR",
                        help="read SOURCE (" + ", ".join(s.name for s in SOURCES) + ") from a local git repository")
    args = parser.parse_args(argv)
    names = {source.name for source in SOURCES}
    from_git = dict(item.split("=", 1) for item in args.from_git if "=" in item)
    if len(from_git) != len(args.from_git) or not set(from_git) <= names:
        parser.error(f"--from-git takes SOURCE=GIT_DIR, SOURCE one of {', '.join(sorted(names))}")
    try:
        count = fetch(args.cache, from_git)
    except (OSError, subprocess.CalledProcessError, tarfile.TarError, KeyError) as e:  # no network, no such commit, a damaged archive
        sys.exit(f"real pages: error: {type(e).__name__}: {e}")
    print(f"{count} pages in {args.cache}")


if __name__ == "__main__":
    main()
