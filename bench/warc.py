"""WARC input: reading speed of the WARC libraries and the reader's peak memory on two input sizes.
(Extraction quality and speed are measured on real pages by `bench/extraction.py`.)

1. Pages to read: generated, 5 languages x 7 layouts (an article with header, sidebar and footer;
   a div-soup blog; documentation with a code block; a forum thread; an old table layout; plain
   divs; a news article with readers' comments), each with the weight of a crawled page (about
   40 KB with inline JSON state and a style sheet), text from the project's own sample text.
2. WARC libraries, on one generated `.warc.gz` and its `.warc` (responses with these pages, each
   after its request record, as crawlers write them): fastwarc (`ArchiveIterator`, HTTP parsed)
   and warcio (`ArchiveIterator`), each reading every response's payload; and this project's
   reader, `readers.records.iter_records` (`readers.warc`): on a copy whose responses say
   text/plain (framing and HTTP only), and on the file itself (charsets and extraction too: the
   whole run path). Then what each makes of three damaged files.
3. Peak memory of `readers.records.iter_records` over a `.warc.gz` of `--pages` responses and one
   of 10x as many, each in a child process (its peak RSS, `ru_maxrss`).

    .venv/bin/python bench/warc.py [--pages 1000] [--seed 0]
"""

import argparse
import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from fastwarc.warc import ArchiveIterator as FastArchiveIterator  # noqa: E402
from fastwarc.warc import WarcRecordType  # noqa: E402
from warcio.archiveiterator import ArchiveIterator as WarcioArchiveIterator  # noqa: E402
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

from readers.records import iter_records  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

LANGUAGES = ("en", "fi", "hi", "ja", "vi")
LAYOUTS = ("article", "blog", "docs", "forum", "table", "plain", "news")
CODE = '''def moving_average(values, window):
    """The mean of each run of `window` values."""
    total = sum(values[:window])
    averages = [total / window]
    for old, new in zip(values, values[window:]):
        total += new - old
        averages.append(total / window)
    return averages'''
# What weighs on a real page besides its text (about 40 KB a page, as crawled pages): the app's
# state as inline JSON, and a style sheet.
STATE = "<script>window.__STATE__ = " + json.dumps(
    {"items": [{"id": i, "slug": f"trackingpixelinit-{i}", "price": i * 1.5, "tags": ["a", "b"]} for i in range(400)]}) + "</script>"
STYLE = "".join(f".c{i} {{ margin: {i % 40}px; padding: {i % 7}px }}" for i in range(300))


# --- pages --------------------------------------------------------------------------------------------


def _link_text(sentence: str, lang: str) -> str:
    return sentence[:8] if lang == "ja" else " ".join(sentence.split()[:3])


def _page(layout: str, lang: str, rng: random.Random, main_pool: list[str], boiler_pool: list[str], menu: list[str]) -> str:
    """The HTML of one page; `menu`: its site's menu."""
    title = main_pool.pop()
    paragraphs = [" ".join(main_pool.pop() for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(1, 7))]
    links = [_link_text(boiler_pool.pop(), lang) for _ in range(8)]
    cookie, footer, related = boiler_pool.pop(), boiler_pool.pop(), [boiler_pool.pop() for _ in range(4)]
    nav = "".join(f'<li><a href="/p{i}">{text}</a></li>' for i, text in enumerate(links + menu))
    aside = "".join(f'<li><a href="/r{i}">{text}</a></li>' for i, text in enumerate(related))
    head = ("<head><meta charset='utf-8'><title>" + title + "</title>"
            "<style>.cookiebannerstyle { position: fixed; bottom: 0 }" + STYLE + "</style>"
            "<script>function trackingPixelInit(id) { return 'adslotrefresh' + id; }</script>" + STATE + "</head>")
    cookie_banner = f'<div class="cookie-consent" id="cookie-banner"><p>{cookie}</p><button>OK</button></div>'
    comment = "<!-- hiddencommentnote: build 42 -->"
    body_paragraphs = "".join(f"<p>{p}</p>" for p in paragraphs)
    if layout == "article":
        body = (f"<header><nav class='menu'><ul>{nav}</ul></nav></header>{cookie_banner}<main><article><h1>{title}</h1>"
                f"{body_paragraphs}</article></main><aside class='sidebar'><h3>Related</h3><ul>{aside}</ul></aside>"
                f"{comment}<footer><p>{footer}</p></footer>")
    elif layout == "blog":
        body = (f"<div id='wrapper'><div class='top-menu'><ul>{nav}</ul></div><div class='content'><div class='post'>"
                f"<h2 class='post-title'>{title}</h2><div class='post-body'>{body_paragraphs}</div></div>{comment}</div>"
                f"<div class='widget related-posts'><ul>{aside}</ul></div><div class='footer'>{footer}</div>{cookie_banner}</div>")
    elif layout == "docs":
        body = (f"<nav class='navbar'><ul>{nav}</ul></nav><div class='document'><div class='body' role='main'>"
                f"<h1>{title}</h1>{body_paragraphs}<pre><code>{CODE}</code></pre></div></div>"
                f"<div class='sphinxsidebar'><ul>{aside}</ul></div>{comment}<div class='footer'>{footer}</div>{cookie_banner}")
    elif layout == "forum":
        posts = "".join(f"<div class='message'><div class='message-body'>{p}</div></div>" for p in paragraphs)
        body = (f"<div class='navigation'><ul>{nav}</ul></div><div class='thread'><h1 class='thread-title'>{title}</h1>{posts}</div>"
                f"{comment}<div class='similar-threads'><ul>{aside}</ul></div><div id='footer'>{footer}</div>{cookie_banner}")
    elif layout == "plain":  # nothing in the markup says what is what
        links_line = " | ".join(f"<a href='/p{i}'>{text}</a>" for i, text in enumerate(links))
        teasers = "".join(f"<div><a href='/r{i}'>{text}</a></div>" for i, text in enumerate(related))
        body = (f"<div><div>{links_line}</div><div><h1>{title}</h1>{''.join(f'<div>{p}</div>' for p in paragraphs)}</div>"
                f"<div>{teasers}</div>{comment}<div>{cookie}</div><div>{footer}</div></div>")
    elif layout == "news":  # boilerplate inside the article: a "read also" link, share buttons, readers' comments
        also = f"<p class='read-also'>&raquo; <a href='/r0'>{related[0]}</a></p>"
        comments = "".join(f"<div class='comment'><p>{text}</p></div>" for text in related[1:])
        body = (f"<header><ul>{nav}</ul></header><article><h1>{title}</h1>{''.join(f'<p>{p}</p>' for p in paragraphs[:1])}{also}"
                f"{''.join(f'<p>{p}</p>' for p in paragraphs[1:])}<div class='share'><a>Facebook</a> <a>X</a> <a>E-mail</a></div>"
                f"<section class='comments'><h3>{cookie}</h3>{comments}</section></article>{comment}<footer>{footer}</footer>")
    else:
        body = (f"<table width='100%'><tr><td class='nav' width='20%'><ul>{nav}</ul></td><td class='main'>"
                f"<h1>{title}</h1>{body_paragraphs}</td><td class='links'><ul>{aside}</ul></td></tr>"
                f"<tr><td colspan='3' class='footer'>{footer}</td></tr></table>{comment}{cookie_banner}")
    html = f"<!DOCTYPE html><html lang='{lang}'>{head}<body>{body}<script>adslotRefresh(3);</script></body></html>"
    return html


def make_pages(seed: int) -> list[str]:
    """The HTML of a page of every language and layout."""
    rng = random.Random(seed)
    pages = []
    for lang in LANGUAGES:
        sentences = sample_sentences(lang)
        rng.shuffle(sentences)
        half = len(sentences) // 2
        main_pool, boiler_pool = sentences[:half], sentences[half:]
        menu = [_link_text(boiler_pool.pop(), lang) for _ in range(40)]
        pages += [_page(layout, lang, rng, main_pool, boiler_pool, menu) for layout in LAYOUTS]
    return pages


# --- WARC libraries ------------------------------------------------------------------------------------


def write_warc(path: str, pages, count: int, content_type: str = "text/html; charset=utf-8") -> None:
    """`count` responses (the pages in turn), each after its request, as one gzip member per record
    for a .warc.gz."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=path.endswith(".gz"))
        for i in range(count):
            url = f"https://example.com/{i}"
            writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"),
                                                          warc_content_type="application/http; msgtype=request"))
            http = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
            body = io.BytesIO(pages[i % len(pages)].encode())
            writer.write_record(writer.create_warc_record(url, "response", payload=body, http_headers=http))


def fastwarc_read(f) -> int:
    return sum(len(record.reader.read()) for record in FastArchiveIterator(f, record_types=WarcRecordType.response))


def warcio_read(f) -> int:
    return sum(len(record.content_stream().read()) for record in WarcioArchiveIterator(f) if record.rec_type == "response")


def ours_read(path: str) -> int:
    return sum(1 for _ in iter_records(path))


def bench_libraries(folder: str, pages, count: int) -> dict:
    """pages/s and MB/s (of the file as stored) of each library, and of ours, over .warc.gz and .warc."""
    results = {}
    for ext in (".warc.gz", ".warc"):
        path, plain = os.path.join(folder, "bench" + ext), os.path.join(folder, "plain" + ext)
        write_warc(path, pages, count)
        write_warc(plain, pages, count, "text/plain")  # the same records, not HTML: ours frames and parses HTTP only
        size = os.path.getsize(path)
        runs = {"fastwarc": lambda: fastwarc_read(open(path, "rb")), "warcio": lambda: warcio_read(open(path, "rb")),
                "ours, framing": lambda: ours_read(plain), "ours, whole": lambda: ours_read(path)}
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
            results[(name, ext)] = {"pages_s": count / seconds, "mb_s": size / seconds / 1e6}
    return results


def probe_libraries(folder: str, pages) -> dict:
    """What each reader makes of damaged files: {(case, reader): text}. Cases: a .warc.gz cut in the
    middle of a record; a .warc whose 3rd response's header is damaged; one whose 3rd response's
    Content-Length is 100 bytes short; one whose 3rd response's Content-Length has a 9 in front (it
    swallows the records after it). Each file holds 10 responses."""
    good = os.path.join(folder, "probe.warc")
    write_warc(good, pages, 10)
    write_warc(good + ".gz", pages, 10)
    data, gz = open(good, "rb").read(), open(good + ".gz", "rb").read()
    third = [m.start() for m in re.finditer(rb"WARC/1.0\r\nWARC-Type: response", data)][2]
    length = re.compile(rb"Content-Length: (\d+)")
    third_length = length.search(data, third)
    cases = {
        "cut .warc.gz": (".warc.gz", gz[: len(gz) // 2]),
        "damaged header": (".warc", data[:third] + b"WARX" + data[third + 4:]),
        "short length": (".warc", data[:third_length.start(1)] + str(int(third_length.group(1)) - 100).encode() + data[third_length.end(1):]),
        "long length": (".warc", data[:third_length.start(1)] + b"9" + data[third_length.start(1):]),
    }
    outcomes = {}
    for case, (ext, content) in cases.items():
        path = os.path.join(folder, case.replace(" ", "-") + ext)
        with open(path, "wb") as f:
            f.write(content)
        for name, read in (("fastwarc", _fastwarc_responses), ("warcio", _warcio_responses), ("ours", _our_responses)):
            outcomes[(case, name)] = read(path)
    return outcomes


def _outcome(responses: int, error: Exception | None) -> str:
    return f"{responses} responses" + (f", then {type(error).__name__}" if error else ", no error")


def _fastwarc_responses(path: str) -> str:
    responses = 0
    try:
        for record in FastArchiveIterator(open(path, "rb"), record_types=WarcRecordType.response):
            record.reader.read()
            responses += 1
    except Exception as e:  # noqa: BLE001 - what a library raises is the finding
        return _outcome(responses, e)
    return _outcome(responses, None)


def _warcio_responses(path: str) -> str:
    responses = 0
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its warning of a record not followed by a blank line
            for record in WarcioArchiveIterator(open(path, "rb")):
                if record.rec_type == "response":
                    record.content_stream().read()
                    responses += 1
    except Exception as e:  # noqa: BLE001 - what a library raises is the finding
        return _outcome(responses, e)
    return _outcome(responses, None)


def _our_responses(path: str) -> str:
    reasons = Counter(reason or "document" for _, _, reason, _ in iter_records(path))
    return ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))


# --- peak memory -----------------------------------------------------------------------------------------

MEMORY_SCRIPT = """
import resource, sys
from readers.records import iter_records
documents = sum(1 for _, record, _, _ in iter_records(sys.argv[1]) if record is not None)
print(documents, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory(folder: str, pages, counts: list[int]) -> dict[int, tuple[int, int, float]]:
    """{responses: (file bytes, documents, peak RSS in MiB)} of `iter_records` over a .warc.gz, each in a child process."""
    peaks = {}
    for count in counts:
        path = os.path.join(folder, f"memory-{count}.warc.gz")
        write_warc(path, pages, count)
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, path], capture_output=True, text=True, check=True, cwd=sys.path[0])
        documents, rss = map(int, out.stdout.split())
        peaks[count] = (os.path.getsize(path), documents, rss / 1024)
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000, help="responses in the WARC files (the memory run's large file: 10x)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pages = make_pages(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        libraries = bench_libraries(folder, pages, args.pages)
        probes = probe_libraries(folder, pages)
        memory = peak_memory(folder, pages, [args.pages, 10 * args.pages])

    print(f"WARC readers: {args.pages:,} responses, each after its request, every response's payload read")
    print("| reader | .warc.gz pages/s | .warc.gz MB/s | .warc pages/s | .warc MB/s |")
    print("|---|---|---|---|---|")
    for name in ("fastwarc", "warcio", "ours, framing", "ours, whole"):
        gz, plain = libraries[(name, ".warc.gz")], libraries[(name, ".warc")]
        print(f"| {name} | {gz['pages_s']:,.0f} | {gz['mb_s']:.1f} | {plain['pages_s']:,.0f} | {plain['mb_s']:.1f} |")
    print("(ours, framing: the same records declared text/plain, so framing and HTTP only; ours, whole: with charset and extraction)")
    for ext in (".warc.gz", ".warc"):
        ratio = libraries[("fastwarc", ext)]["pages_s"] / libraries[("warcio", ext)]["pages_s"]
        ours = libraries[("fastwarc", ext)]["pages_s"] / libraries[("ours, framing", ext)]["pages_s"]
        share = libraries[("ours, whole", ext)]["pages_s"] / libraries[("ours, framing", ext)]["pages_s"]
        print(f"{ext}: fastwarc / warcio {ratio:.1f}x; fastwarc / ours' framing {ours:.1f}x; framing is {share:.0%} of ours' whole time")

    print("\nDamaged files (10 responses each)")
    print("| case | fastwarc | warcio | ours |")
    print("|---|---|---|---|")
    for case in ("cut .warc.gz", "damaged header", "short length", "long length"):
        print(f"| {case} | {probes[(case, 'fastwarc')]} | {probes[(case, 'warcio')]} | {probes[(case, 'ours')]} |")

    print("\nPeak memory of the reader (iter_records over a .warc.gz, in a child process)")
    print("| responses | file MB | documents | peak RSS MiB |")
    print("|---|---|---|---|")
    for count, (size, documents, rss) in memory.items():
        print(f"| {count:,} | {size / 1e6:.1f} | {documents:,} | {rss:.0f} |")
    small, large = memory[args.pages][2], memory[10 * args.pages][2]
    print(f"10x the input: {large / small:.2f}x the peak memory")


if __name__ == "__main__":
    main()
