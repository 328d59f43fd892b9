"""Main text of HTML pages (`readers.html_text`) and their charsets (`readers.warc`), on real text:
../shared/corpus's sentences, and real pages with reference texts from the cache of
`tooling/real_pages.py` (those tests skip when the cache is absent; CI's machine has it)."""

import re
import textwrap

import pytest
from conftest import corpus_sentences
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import detect_encoding
from resiliparse.parse.html import HTMLTree
from test_warc import Warc, _read

from aurora.cli import main
from readers.html_text import EXTRACTORS, main_text, without_repeated_lines
from readers.warc import html_page_text
from tooling.real_pages import cache_dir, load_pages, word_scores

WORD = re.compile(r"\w+")


def _real_pages(language=None):
    pages = load_pages(language=language)
    if not pages:
        pytest.skip(f"no real pages in {cache_dir()}: `python -m tooling.real_pages` fetches them")
    return pages


def _page(name: str):
    pages = [p for p in _real_pages() if p.name == name]
    if not pages:
        pytest.skip(f"{name} is not in {cache_dir()}")
    return pages[0]


def _f1(reference: str, text: str) -> tuple[float, float]:
    """Precision and F1, as bench/extraction.py scores a page."""
    precision, _, f1 = word_scores(reference, text)
    return precision, f1


def _repeated_lines(text: str) -> list[str]:
    keys = [" ".join(WORD.findall(line.lower())) for line in text.split("\n")]
    return sorted({k for k in keys if k and keys.count(k) > 1})


# --- charsets -------------------------------------------------------------------------------------


def _utf8_page(sentences: list[str]) -> bytes:
    """A page in UTF-8 that declares no charset, its first non-ASCII bytes past the first 1,024."""
    style = "".join(f".c{i} {{ margin: {i}px }}\n" for i in range(80))
    paragraphs = "".join(f"<p>{s}</p>\n" for s in sentences)
    return f"<!DOCTYPE html><html><head><title>News</title><style>{style}</style></head><body><article>{paragraphs}</article></body></html>".encode()


def test_utf8_page_with_nothing_declared_is_read_as_utf8(tmp_path):
    """Real English sentences with a few dashes and apostrophes: detection alone took the page for
    windows-1252 ("warming—90" read as "warmingâ€”90"), and the mojibake rule removed it."""
    sentences = corpus_sentences("en")
    marked = [s for s in sentences if "—" in s][:1]
    body = _utf8_page([s for s in sentences if s.isascii()][:12] + marked)
    assert body[:1024].isascii() and detect_encoding(body) != "utf-8"  # what detection alone would have used
    warc = Warc(compress=True)
    warc.response("https://example.com/news", body, content_type="text/html")
    docs, ledger, _ = _read(tmp_path, warc.save(tmp_path / "utf8.warc.gz"))
    assert len(docs) == 1 and "â€" not in docs[0].text
    for sentence in marked:
        assert sentence in docs[0].text


def test_real_utf8_pages_with_nothing_declared():
    """Real UTF-8 pages with their charset declarations taken out, of those that detection alone
    takes for another charset (Windows-1252, -1250, ISO-8859-x: 99 of the cache's pages):
    read as UTF-8 all the same."""
    checked = 0
    for page in _real_pages():
        try:
            html = page.html.decode("utf-8")
        except UnicodeDecodeError:
            continue
        bare = re.sub(r"<meta[^>]*charset[^>]*>", "", html, flags=re.IGNORECASE).encode()
        if html.isascii() or detect_encoding(bare) == "utf-8":
            continue
        assert html_page_text(bare, [], "resiliparse") == html_page_text(bare, ["utf-8"], "resiliparse"), page.name
        checked += 1
    assert checked >= 20


# --- repeated lines, headline ---------------------------------------------------------------------


def test_repeated_captions_advertisements_and_headline_are_kept_once():
    sentences = corpus_sentences("en")
    headline, caption, paragraphs = sentences[0], sentences[1], sentences[2:12]
    ad = "<div class='ad-slot'><p>Advertisement</p></div>"
    body = "".join(f"<p>{p}</p>{ad if i % 2 else ''}" for i, p in enumerate(paragraphs))
    html = (f"<html><body><article><h1>{headline}</h1><p>{headline}</p><figure><img src='a.jpg' alt='a photo'>"
            f"<figcaption>{caption}</figcaption></figure><ul><li>{caption}</li></ul>{body}</article></body></html>")
    text = main_text(html, "resiliparse")
    assert _repeated_lines(text) == []
    for paragraph in paragraphs:
        assert paragraph in text
    assert text.count(headline) == 1 and text.count("a photo") == 0


def test_real_page_captions_and_headline_are_not_repeated():
    """The Guardian's article (readability's guardian-1) prints each photo's caption twice; plain
    main-content extraction kept both, and the repetition rules count them."""
    page = _page("guardian-1")
    html = page.html.decode("utf-8")
    plain = extract_plain_text(HTMLTree.parse(html), main_content=True)
    assert _repeated_lines(plain)  # what the reader extracted before
    text = main_text(html)
    assert _repeated_lines(text) == []
    title = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    assert title and WORD.findall(re.sub("<[^>]+>", "", title.group(1)))[0] in plain.split("\n")[0]
    precision, f1 = _f1(page.reference, text)
    assert precision >= 0.95 and f1 >= 0.95


def test_without_repeated_lines_keeps_lines_without_words_and_order():
    assert without_repeated_lines("a b\n\n---\nA, b!\nc\n\n---") == ("a b\n\n---\nc\n\n---", 3)


# --- extractors on real pages ---------------------------------------------------------------------


def test_trafilatura_takes_over_where_resiliparse_finds_no_article():
    """medicalnewstoday's article: resiliparse's main-content heuristics return nothing."""
    page = _page("medicalnewstoday")
    html = page.html.decode("utf-8")
    assert main_text(html, "resiliparse") == ""
    assert _f1(page.reference, main_text(html))[1] >= 0.9


def test_default_extractor_on_real_english_articles():
    """Mean word F1 and precision against the reference texts, at the levels bench/extraction.py
    measured (readability's pages: F1 0.964, precision 0.957; all English articles: 0.937, 0.921),
    and above trafilatura's fast mode on all of them (0.922)."""
    pages = [p for p in _real_pages("en") if p.kind == "article"]
    scores = {(p.source, p.name): _f1(p.reference, main_text(p.html.decode("utf-8", errors="replace"))) for p in pages}
    for source, (min_f1, min_precision) in {"readability": (0.955, 0.95), None: (0.93, 0.915)}.items():
        chosen = [s for (src, _), s in scores.items() if source in (None, src)]
        precision, f1 = (sum(s[i] for s in chosen) / len(chosen) for i in (0, 1))
        assert len(chosen) >= 50 and f1 >= min_f1 and precision >= min_precision, (source, f1, precision)


def test_recipe_extractor_setting(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    for value, ok in [*((name, True) for name in EXTRACTORS), ("boilerpipe", False)]:
        recipe.write_text(textwrap.dedent(f"""\
            name: r
            language: en
            sources: [{{name: web, paths: [{tmp_path}/none.warc.gz]}}]
            output: {tmp_path}/out
            assets: {{lid_model: lid.176.ftz, tokenizer: tokenizer.json}}
            langid: {{min_score: 0.5}}
            read: {{extractor: {value}}}
            """))
        from pipeline.recipe import load_recipe

        if ok:
            assert load_recipe(str(recipe)).extractor == value
        else:
            assert main(["curate", str(recipe)]) == 2
            assert "'read.extractor' must be one of resiliparse+trafilatura, resiliparse, trafilatura, not 'boilerpipe'" in capsys.readouterr().err


def test_shipped_thresholds_keep_real_pages_from_their_html():
    """Of the real English articles whose reference text the shipped heuristics keep, >= 95% are
    kept from their HTML as the reader extracts it (bench/kept_share.py runs the whole recipe)."""
    from test_heuristics import removal, shipped_thresholds

    from core.text import normalize

    thresholds = shipped_thresholds("en")
    pages = [p for p in _real_pages("en") if p.kind == "article"]
    kept_reference = kept_both = 0
    for page in pages:
        if removal(normalize(page.reference), "en", thresholds) is not None:
            continue
        kept_reference += 1
        reason, text = html_page_text(page.html, [], "resiliparse+trafilatura")
        kept_both += reason is None and removal(normalize(text), "en", thresholds) is None
    assert kept_reference >= 700 and kept_both / kept_reference >= 0.95, (kept_both, kept_reference)


def test_trafilatura_never_runs_on_a_page_over_its_bounds(monkeypatch):
    """trafilatura's time grows with size times nesting (about 35 s for 1 MiB of links 250 deep);
    a page over either bound keeps resiliparse's text, whatever the extractor; a small, shallow
    page of the same kind goes to trafilatura."""
    from readers import html_text

    calls = []
    monkeypatch.setattr(html_text, "trafilatura_text", lambda html: (calls.append(len(html)), ("", 0))[1])
    text = "<p>A few words of text, far fewer than an article has.</p>"
    large = f"<html><body>{'<div><a href=/x></a></div>' * 25_000}{text}</body></html>"  # 600 KB, little text
    deep = f"<html><body>{'<div>' * 70}{text}{'</div>' * 70}</body></html>"
    for html in (large, deep):
        for extractor in EXTRACTORS:
            assert main_text(html, extractor).strip() == "A few words of text, far fewer than an article has." and calls == [], extractor
    main_text(f"<html><body>{'<div>' * 60}{text}{'</div>' * 60}</body></html>")
    assert len(calls) == 1


def test_repetition_spam_keeps_its_repeats_for_the_repetition_rules(tmp_path):
    """A page that is one block of paragraphs ten times: its repeats are not incidental, so they
    stay, and the recipe's repetition rules remove the page (read from a WARC, as curation does)."""
    from test_heuristics import removal, shipped_thresholds

    from core.text import normalize

    sentences = corpus_sentences("en")
    block = "".join(f"<p>{s}</p>" for s in sentences[:5])
    spam = f"<html><body><article>{block * 10}</article></body></html>"
    text = main_text(spam, "resiliparse")
    assert all(text.count(s) == 10 for s in sentences[:5])
    assert removal(normalize(text), "en", shipped_thresholds("en")).startswith("gopher_repetition.")
    twice = f"<html><body><article>{block * 2}</article></body></html>"  # a page printed twice: half repeats
    assert all(main_text(twice, "resiliparse").count(s) == 1 for s in sentences[:5])


def test_real_pages_cache_from_git(tmp_path, monkeypatch):
    """The cache is built from a repository at a commit (here one made in the test, laid out as
    readability's and WCXB's are): readability's hand-made pages under 10 KB and WCXB's pages
    without a reference are left out, languages come from the metadata, <html lang> or the script."""
    import gzip
    import json
    import subprocess

    from tooling import real_pages

    repo = tmp_path / "repo"
    article = "<p>" + "Real words of an article. " * 500 + "</p>"
    files = {
        "test/test-pages/news/source.html": f"<html lang='en-GB'><body>{article}</body></html>",
        "test/test-pages/news/expected.html": "<div><p>Real words.</p><p>Second <b>para</b>.</p></div>",
        "test/test-pages/news/expected-metadata.json": "{}",
        "test/test-pages/small/source.html": "<p>x</p>",
        "test/test-pages/small/expected.html": "<p>x</p>",
        "test/test-pages/kana/source.html": f"<html><body>{'<p>これは記事です。</p>' * 1000}</body></html>",
        "test/test-pages/kana/expected.html": "<p>これは記事です。</p>",
        "test/test-pages/kana/expected-metadata.json": '{"lang": null}',
    }
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text, encoding="utf-8")
    (repo / "dev/html").mkdir(parents=True)
    (repo / "dev/ground-truth").mkdir(parents=True)
    for name, truth in (("0001", {"main_content": "Main text."}), ("0002", {"main_content": None})):
        (repo / f"dev/html/{name}.html.gz").write_bytes(gzip.compress(b"<html lang='fr'><p>Texte.</p></html>"))
        (repo / f"dev/ground-truth/{name}.json").write_text(json.dumps({"ground_truth": truth, "_internal": {"page_type": {"primary": "forum"}}}))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "pages"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr(real_pages, "SOURCES", tuple(
        real_pages.Source(s.name, s.repo, commit, s.licence, s.folder) for s in real_pages.SOURCES))
    cache = tmp_path / "cache"
    assert real_pages.fetch(str(cache), {"readability": str(repo / ".git"), "wcxb": str(repo / ".git")}) == 3
    pages = {(p.source, p.name): p for p in real_pages.load_pages(str(cache))}
    assert set(pages) == {("readability", "news"), ("readability", "kana"), ("wcxb", "0001")}
    assert pages["readability", "news"].language == "en" and pages["readability", "news"].reference == "Real words.\n\nSecond para."
    assert pages["readability", "kana"].language == "ja" and pages["wcxb", "0001"].language == "fr"
    assert pages["wcxb", "0001"].kind == "forum" and pages["wcxb", "0001"].reference == "Main text."
    assert real_pages.load_pages(str(tmp_path / "none")) == []


def test_read_extractor_reaches_the_run_and_refilter_refuses_another(in_workspace, tmp_path, capsys):
    """trafilatura keeps an article's <h1>, the resiliparse extractor drops it: a page whose
    headline is 80 hashtags is removed by the symbol rule when curated with one and kept with the
    other; the run's signals basis names its extractor, and a refilter under another extractor is
    refused (its texts would not be the run's)."""
    from manifests.manifest import load_manifest

    sentences = corpus_sentences("en")
    body = "".join(f"<p>{s}</p>" for s in sentences[:30])
    warc = Warc(compress=True)
    warc.response("https://example.com/tags", f"<html><body><article><h1>{' '.join(['#tag'] * 80)}</h1>{body}</article></body></html>")
    path = warc.save(tmp_path / "crawl.warc.gz")
    funnels = {}
    for extractor in ("resiliparse", "trafilatura"):
        recipe = tmp_path / f"{extractor}.yaml"
        recipe.write_text(textwrap.dedent(f"""\
            name: warc
            language: en
            sources: [{{name: web, paths: [{path}]}}]
            output: {tmp_path}/{extractor}
            assets: {{lid_model: {in_workspace}/assets/lid.176.ftz, tokenizer: {in_workspace}/assets/tokenizer.json}}
            langid: {{min_score: 0.5}}
            heuristics: {{gopher_quality: {{min_doc_words: 20, max_symbol_word_ratio: 0.1}}}}
            read: {{extractor: {extractor}}}
            """))
        assert main(["curate", str(recipe), "--workers", "1"]) == 0, capsys.readouterr().err
        manifest, _ = load_manifest(str(tmp_path / extractor))
        assert manifest["signals"]["basis"]["read"]["extractor"] == extractor
        funnels[extractor] = (manifest["funnel"]["kept"], manifest["funnel"]["removed"])
    assert funnels["resiliparse"] == (1, {})
    assert funnels["trafilatura"] == (0, {"gopher_quality.max_symbol_word_ratio": 1})
    capsys.readouterr()
    assert main(["refilter", str(tmp_path / "trafilatura.yaml"), "--from", str(tmp_path / "resiliparse"), "--output", str(tmp_path / "new")]) == 2
    assert "the read settings differs from the run's" in capsys.readouterr().err
