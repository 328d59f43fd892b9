"""WARC and WET input (`readers.warc` through `readers.records`): files written with warcio's
WARCWriter, read by the run's reader, every record a document or a reject with its reason."""

import gzip
import io
import random
import textwrap
import time
import unicodedata
import zlib

import orjson
from conftest import ROOT
from datatrove.io import get_datafolder
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from aurora.cli import main
from core.ledger import read_task_records
from core.rejects import count_rejects
from core.text import normalize
from manifests.manifest import load_manifest
from readers.records import RawDocumentReader, iter_records

SENTENCES = {lang: [s for s in (ROOT / f"tooling/sample_text/{lang}.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
             for lang in ("en", "hi", "ja", "vi")}
HTML = "text/html; charset=utf-8"
VIETNAMESE_TONES = "\u0300\u0301\u0303\u0309\u0323"


def _page(sentences: list[str], extra_head: str = "") -> str:
    """An article among boilerplate: a menu, a cookie banner, related links, a footer, a script, a style."""
    paragraphs = "".join(f"<p>{s}</p>" for s in sentences)
    return (f"<!DOCTYPE html><html><head>{extra_head}<title>t</title><style>.bannerStyleRule {{ color: red }}</style>"
            "<script>function trackingPixelInit() { return 'adSlotRefresh'; }</script></head><body>"
            "<header><nav><ul><li><a href='/'>Home</a></li><li><a href='/shop'>Shop</a></li></ul></nav></header>"
            "<div id='cookie-banner' class='cookie-consent'>We use cookies to improve your experience. <button>Accept</button></div>"
            f"<main><article><h1>{sentences[0]}</h1>{paragraphs}</article></main>"
            "<aside class='sidebar'><ul><li><a href='/a'>Ten tips for better sleep</a></li></ul></aside>"
            "<!-- commentMarker -->"
            "<footer><p>Copyright 2024 Example Media. All rights reserved.</p></footer></body></html>")


def _text(lang: str, start: int, count: int = 6) -> list[str]:
    return SENTENCES[lang][start:start + count]


class Warc:
    """Records written with warcio into one .warc or .warc.gz (or .wet: conversion records)."""

    def __init__(self, compress: bool):
        self.buffer, self.compress = io.BytesIO(), compress
        self.writer = WARCWriter(self.buffer, gzip=compress)
        self.writer.write_record(self.writer.create_warcinfo_record("test.warc", {"software": "tests"}))

    def response(self, url: str, body: bytes | str, content_type: str | None = HTML, headers=(), status: str = "200 OK"):
        """A response after its request, as crawlers write them (the request is not a document); its WARC-Record-ID."""
        body = body.encode() if isinstance(body, str) else body
        self.writer.write_record(self.writer.create_warc_record(
            url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"), warc_content_type="application/http; msgtype=request"))
        http = StatusAndHeaders(status, ([("Content-Type", content_type)] if content_type else []) + list(headers), protocol="HTTP/1.1")
        record = self.writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
        self.writer.write_record(record)
        return record.rec_headers.get_header("WARC-Record-ID")[1:-1]

    def conversion(self, url: str, text: bytes | str):
        text = text.encode() if isinstance(text, str) else text
        record = self.writer.create_warc_record(url, "conversion", payload=io.BytesIO(text), warc_content_type="text/plain")
        self.writer.write_record(record)
        return record.rec_headers.get_header("WARC-Record-ID")[1:-1]

    def metadata(self, url: str):
        self.writer.write_record(self.writer.create_warc_record(url, "metadata", payload=io.BytesIO(b"a: b\r\n"),
                                                                warc_content_type="application/warc-fields"))

    def revisit(self, url: str):
        self.writer.write_record(self.writer.create_revisit_record(url, "sha1:AAAA", url, "2024-01-01T00:00:00Z"))

    def raw(self, data: bytes):
        """Bytes as they are (a damaged record): a gzip member of their own in a compressed file."""
        self.buffer.write(gzip.compress(data) if self.compress else data)

    def save(self, path):
        path.write_bytes(self.buffer.getvalue())
        return path


def _record(url: str, body: bytes, length: int | None = None, first_line: bytes = b"WARC/1.0", status_line: bytes = b"HTTP/1.1 200 OK") -> bytes:
    """One response record by hand, with a Content-Length of `length` (its block's true length by default)."""
    block = status_line + b"\r\nContent-Type: text/html\r\n\r\n" + body
    return (first_line + b"\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:hand-made>\r\nWARC-Target-URI: " + url.encode()
            + b"\r\nContent-Type: application/http; msgtype=response\r\nContent-Length: "
            + str(len(block) if length is None else length).encode() + b"\r\n\r\n" + block + b"\r\n\r\n")


def _read(tmp_path, path, max_document_bytes: int = 8 << 20):
    out = get_datafolder(str(tmp_path / f"out-{path.name}"))
    docs = list(RawDocumentReader([("web", str(path))], out, "en", max_document_bytes).run(rank=0, world_size=1))
    ledger = read_task_records(out, 0)["read"]
    assert ledger["read"] == len(docs) + sum(ledger["malformed"].values()) + sum(ledger["removed"].values())
    assert count_rejects(out) == ledger["malformed"] | ledger["removed"]
    return docs, ledger, out


def test_documents_of_warc_warc_gz_and_wet_with_url_date_and_record_id(tmp_path):
    for compress in (False, True):
        warc = Warc(compress)
        ids = [warc.response("https://example.com/a", _page(_text("en", 0))), warc.response("https://example.com/b", _page(_text("en", 10)))]
        warc.metadata("https://example.com/b")
        warc.revisit("https://example.com/b")
        path = warc.save(tmp_path / f"crawl.warc{'.gz' if compress else ''}")
        docs, ledger, _ = _read(tmp_path, path)
        assert ledger == {"read": 2, "malformed": {}, "removed": {}}  # warcinfo, request, metadata, revisit: not documents
        assert [d.id for d in docs] == ids
        assert docs[0].metadata["fields"]["url"] == "https://example.com/a" and set(docs[0].metadata["fields"]) == {"url", "date"}
        assert docs[0].metadata["fields"]["date"].startswith("20") and docs[0].metadata["file"] == path.name
        for sentence in _text("en", 10):
            assert normalize(sentence) in docs[1].text

        wet = Warc(compress)
        text = "\n".join(_text("vi", 0))
        wet_id = wet.conversion("https://example.vn/", text)
        path = wet.save(tmp_path / f"crawl.wet{'.gz' if compress else ''}")
        docs, ledger, _ = _read(tmp_path, path)
        assert ledger == {"read": 1, "malformed": {}, "removed": {}}
        assert docs[0].id == wet_id and docs[0].text == normalize(text)
        assert docs[0].metadata["fields"]["url"] == "https://example.vn/"


def test_warc_gz_and_wet_on_s3(s3, tmp_path):
    warc, wet = Warc(compress=True), Warc(compress=False)
    ids = [warc.response("https://example.com/a", _page(_text("en", 0))), wet.conversion("https://example.com/b", "Plain text.")]
    s3.put(str(warc.save(tmp_path / "crawl.warc.gz")), "raw/crawl.warc.gz")
    s3.put(str(wet.save(tmp_path / "crawl.wet")), "raw/crawl.wet")
    records = [r for path in ("s3://raw/crawl.warc.gz", "s3://raw/crawl.wet") for r in iter_records(path)]
    assert [(r[1]["id"], r[2]) for r in records] == [(ids[0], None), (ids[1], None)]


def test_each_reject_reason_is_counted_where_it_belongs(tmp_path):
    warc = Warc(compress=True)
    warc.response("https://example.com/ok", _page(_text("en", 0)))
    warc.response("https://example.com/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png")
    warc.response("https://example.com/data.json", b'{"a": 1}', "application/json")
    warc.response("https://example.com/untyped", b"<p>no content type</p>", None)
    warc.response("https://example.com/empty", "<html><head><script>var a = 1;</script></head><body></body></html>")
    warc.response("https://example.com/large", "<p>" + "word " * 3000 + "</p>")
    warc.response("https://example.com/deep", "<div>" * 300 + "deep" + "</div>" * 300)
    warc.response("https://example.com/bad-gzip", b"\x1f\x8b\x08\x00 not gzip at all", headers=[("Content-Encoding", "gzip")])
    warc.response("https://example.com/brotli", b"\x1b\x00", headers=[("Content-Encoding", "br")])
    warc.response("https://example.com/bad-utf8", b"<p>caf\xe9 \x81\x8d\x8f\x90\x9d</p>" * 50, "text/html; charset=utf-8")
    warc.response("https://example.com/bad-chunks", b"10\r\nshort\r\n", headers=[("Transfer-Encoding", "chunked")])
    warc.raw(_record("https://example.com/no-http", b"").replace(b"HTTP/1.1 200", b"XTTP/1.1 200"))
    warc.conversion("https://example.com/wet-latin1", b"caf\xe9")
    warc.conversion("https://example.com/wet-blank", b"  \n ")
    # Not the page the URL names, however much text they hold: an error page, a redirect, a crawler block page.
    warc.response("https://example.com/missing", _page(_text("en", 50)), status="404 Not Found")
    warc.response("https://example.com/moved", b"", None, headers=[("Location", "https://example.com/ok")], status="301 Moved Permanently")
    warc.response("https://example.com/blocked", _page(_text("en", 60)), status="999 Request denied")
    warc.raw(_record("https://example.com/no-status", b"<p>x</p>", status_line=b"HTTP/1.1"))
    docs, ledger, out = _read(tmp_path, warc.save(tmp_path / "reasons.warc.gz"), max_document_bytes=10_000)
    assert [d.metadata["fields"]["url"] for d in docs] == ["https://example.com/ok"]
    assert ledger["removed"] == {"read.not_html": 3, "read.no_main_text": 2, "read.max_document_bytes": 1, "read.html_too_deep": 1,
                                 "read.http_status": 3}
    assert ledger["malformed"] == {"undecodable_payload": 2, "undecodable_text": 1, "broken_http_response": 3, "invalid_utf8": 1}
    rejects = [orjson.loads(line) for line in gzip.open(tmp_path / "out-reasons.warc.gz/rejects/read/00000.jsonl.gz")]
    assert rejects[0]["id"].endswith("reasons.warc.gz:5")  # the record's place: the 5th record of the file
    assert "https://example.com/logo.png: Content-Type image/png" in rejects[0]["raw"]


def test_broken_records_are_counted_and_reading_goes_on(tmp_path):
    for compress in (False, True):
        warc = Warc(compress)
        warc.response("https://example.com/1", _page(_text("en", 0)))
        warc.raw(_record("https://example.com/bad-version", b"<p>x</p>", first_line=b"WARX/1.0"))
        warc.response("https://example.com/2", _page(_text("en", 10)))
        body = _page(_text("en", 20)).encode()
        warc.raw(_record("https://example.com/short", body, length=len(body) // 2))
        warc.response("https://example.com/3", _page(_text("en", 30)))
        warc.raw(_record("https://example.com/nan", body).replace(b"Content-Length: ", b"Content-Length: x"))
        # Too long: the block runs into the next record (a request), which goes with it.
        warc.raw(_record("https://example.com/long", body, length=len(body) + 200))
        warc.response("https://example.com/4", _page(_text("en", 40)))
        docs, ledger, _ = _read(tmp_path, warc.save(tmp_path / f"broken.warc{'.gz' if compress else ''}"))
        assert [d.metadata["fields"]["url"] for d in docs] == [f"https://example.com/{i}" for i in (1, 2, 3, 4)]
        assert ledger["malformed"] == {"broken_warc_record": 4} and ledger["read"] == 8


def test_a_too_long_content_length_loses_no_record_after_it(tmp_path):
    """A wrong digit in a Content-Length (92240 for 2240, or 18 digits) swallowed every record after
    it, uncounted: the records it swallowed are read again from the first one's start."""
    body = _page(_text("en", 0)).encode()
    length = b"Content-Length: %d" % len(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body)
    for compress in (False, True):
        for wrong in (b"9" + length[16:], b"9" * 18):
            warc = Warc(compress)
            for i in range(100):
                if i in (62, 80, 81):  # 80 and 81: claims past the file's end, once it is known
                    warc.raw(_record(f"https://example.com/{i}", body).replace(length, b"Content-Length: " + wrong))
                else:
                    warc.response(f"https://example.com/{i}", _page(_text("en", (i % 20) * 5)))
            # A header cut short runs into the next record's header.
            warc.raw(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 5\r\n")
            warc.response("https://example.com/last", _page(_text("en", 50)))
            docs, ledger, _ = _read(tmp_path, warc.save(tmp_path / f"long-{len(wrong)}.warc{'.gz' if compress else ''}"))
            assert [d.metadata["fields"]["url"] for d in docs] == [f"https://example.com/{i}" for i in range(100) if i not in (62, 80, 81)] + [
                "https://example.com/last"]
            assert ledger["malformed"] == {"broken_warc_record": 4} and ledger["read"] == 102


def test_a_record_whose_block_holds_warc_lines_is_read_whole(tmp_path):
    """A page that quotes WARC records (a WARC tutorial, an archived WARC) is one document: record starts
    inside a block matter only when the record is broken."""
    quoted = _record("https://example.com/quoted", b"<p>quoted</p>").decode()
    body = _page(_text("en", 0)[:3] + [f"<pre>\n{quoted}\n{quoted}</pre>"] + _text("en", 3)[:3]).replace("<p><pre>", "<pre>")
    for compress in (False, True):
        warc = Warc(compress)
        warc.response("https://example.com/tutorial", body)
        warc.response("https://example.com/next", _page(_text("en", 10)))
        docs, ledger, _ = _read(tmp_path, warc.save(tmp_path / f"quoting.warc{'.gz' if compress else ''}"))
        assert [d.metadata["fields"]["url"] for d in docs] == ["https://example.com/tutorial", "https://example.com/next"]
        assert ledger["malformed"] == {} and "quoted" in docs[0].text


def test_malformed_framing_is_one_reject_each_and_reading_goes_on(tmp_path):
    body = _page(_text("en", 20)).encode()
    length = b"Content-Length: %d" % len(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body)
    arabic_indic = length.decode().translate(str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"))
    broken = [
        _record("https://example.com/huge-length", body).replace(length, b"Content-Length: " + b"9" * 5000),  # int() refuses it
        _record("https://example.com/19-digits", body).replace(length, b"Content-Length: 1" + b"0" * 18),
        _record("https://example.com/arabic-indic", body).replace(length, arabic_indic.encode()),  # its true length in other digits
        _record("https://example.com/cr-only", body).replace(b"\r\n", b"\r"),
        _record("https://example.com/no-type", body).replace(b"WARC-Type: response\r\n", b""),
    ]
    for compress in (False, True):
        warc = Warc(compress)
        for i, record in enumerate(broken):
            warc.response(f"https://example.com/{i}", _page(_text("en", i * 10)))
            warc.raw(record)
        # Versions other than 1.0 and 1.1, and a line end other than CRLF or LF: one reject each, even side by side.
        for first_line in (b"WARC/1.2", b"WARC/1.0\r", b"WARC/1.0x", b"WARC/2.0"):
            warc.raw(_record("https://example.com/bad-version", body, first_line=first_line))
        warc.raw(_record("https://example.com/typed", body).replace(b"WARC-Type: response", b"WARC-Type: Response"))
        warc.raw(_record("<http://sub.example.com/page>", body))  # WARC/1.0's grammar: the URI in angle brackets
        warc.response("https://example.com/last", _page(_text("en", 60)))
        docs, ledger, _ = _read(tmp_path, warc.save(tmp_path / f"framing.warc{'.gz' if compress else ''}"))
        assert [d.metadata["fields"]["url"] for d in docs] == [f"https://example.com/{i}" for i in range(len(broken))] + [
            "https://example.com/typed", "http://sub.example.com/page", "https://example.com/last"]
        assert ledger["malformed"] == {"broken_warc_record": len(broken) + 4}


def test_truncated_warc_gz_ends_with_unreadable_file_and_keeps_what_came_before(tmp_path):
    warc = Warc(compress=True)
    for i in range(40):
        warc.response(f"https://example.com/{i}", _page(_text("en", i * 5)))
    data = warc.buffer.getvalue()
    (tmp_path / "cut.warc.gz").write_bytes(data[: len(data) // 2])
    docs, ledger, _ = _read(tmp_path, tmp_path / "cut.warc.gz")
    assert 10 < len(docs) < 30 and [d.metadata["fields"]["url"] for d in docs] == [f"https://example.com/{i}" for i in range(len(docs))]
    assert ledger["malformed"] == {"unreadable_file": 1} and ledger["read"] == len(docs) + 1
    # A plain file cut inside a record: that record is broken.
    plain = Warc(compress=False)
    for i in range(3):
        plain.response(f"https://example.com/{i}", _page(_text("en", i * 5)))
    data = plain.buffer.getvalue()
    (tmp_path / "cut.warc").write_bytes(data[:-100])
    docs, ledger, _ = _read(tmp_path, tmp_path / "cut.warc")
    assert len(docs) == 2 and ledger["malformed"] == {"broken_warc_record": 1}


def _cp1258(text: str) -> bytes:
    """Vietnamese in windows-1258: letters with their tone marks as combining characters after them."""
    letters = []
    for char in text:
        parts = unicodedata.normalize("NFD", char)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in VIETNAMESE_TONES))
        letters.append(base + "".join(c for c in parts if c in VIETNAMESE_TONES))
    return "".join(letters).encode("cp1258")


def test_charsets_from_http_meta_and_detection(tmp_path):
    vi, ja, hi, en = _text("vi", 0), _text("ja", 0), _text("hi", 0), _text("en", 0)
    en_1252 = [*_text("en", 10), "The \u201cquoted\u201d caf\u00e9 menu costs 5 \u20ac \u2014 a bargain."]
    warc = Warc(compress=False)
    warc.response("https://example.vn/", _cp1258(_page(vi)), "text/html; charset=windows-1258")
    warc.response("https://example.jp/meta", _page(ja, "<meta charset='shift_jis'>").encode("shift_jis"), "text/html")
    warc.response("https://example.jp/none", _page(ja).encode("shift_jis"), "text/html")
    warc.response("https://example.in/", _page(hi).encode("utf-8"), "text/html; charset=UTF-8")
    # Declared UTF-8 but windows-1258 bytes: the declaration fails, the meta tag is next.
    warc.response("https://example.vn/meta", _cp1258(_page(vi, "<meta http-equiv='Content-Type' content='text/html; charset=windows-1258'>")))
    # A meta tag that says UTF-16 is read as UTF-8 (it would make English CJK), x-user-defined as windows-1252; in HTTP, UTF-16 is UTF-16.
    for label in ("utf-16", "UTF-16BE", "unicode"):
        warc.response(f"https://example.com/meta-{label}", _page(en, f"<meta charset='{label}'>"), "text/html")
    warc.response("https://example.com/x-user-defined", _page(en_1252, "<meta charset='x-user-defined'>").encode("cp1252"), "text/html")
    warc.response("https://example.com/http-utf-16", _page(en).encode("utf-16-le"), "text/html; charset=utf-16le")
    docs, ledger, _ = _read(tmp_path, warc.save(tmp_path / "charsets.warc"))
    assert ledger == {"read": 10, "malformed": {}, "removed": {}}
    for doc, sentences in zip(docs, (vi, ja, ja, hi, vi, en, en, en, en_1252, en), strict=True):
        for sentence in sentences:
            assert normalize(sentence) in doc.text, (doc.metadata["fields"]["url"], sentence)


def test_main_text_kept_boilerplate_and_script_dropped(tmp_path):
    sentences = _text("en", 100, 8)
    warc = Warc(compress=False)
    warc.response("https://example.com/", _page(sentences))
    (doc,), _, _ = _read(tmp_path, warc.save(tmp_path / "page.warc"))
    assert all(normalize(s) in doc.text for s in sentences)
    for junk in ("trackingPixelInit", "adSlotRefresh", "bannerStyleRule", "commentMarker", "We use cookies", "Copyright 2024", "Ten tips"):
        assert junk not in doc.text


def test_hostile_payloads_are_bounded_and_deterministic(tmp_path):
    html = _page(_text("en", 200)).encode()
    chunks = [html[i:i + 500] for i in range(0, len(html), 500)]
    raw_deflate = zlib.compressobj(wbits=-15)
    warc = Warc(compress=True)
    warc.response("https://x/nested", "<html><body>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000 + "</body></html>")
    warc.response("https://x/attribute", '<html><body><p title="' + "x" * 5_000_000 + '">Short text in a huge tag.</p></body></html>')
    warc.response("https://x/binary", random.Random(0).randbytes(2_000_000), "text/html")
    warc.response("https://x/gzip", gzip.compress(html), headers=[("Content-Encoding", "gzip")])
    warc.response("https://x/deflate", zlib.compress(html), headers=[("Content-Encoding", "deflate")])
    warc.response("https://x/raw-deflate", raw_deflate.compress(html) + raw_deflate.flush(), headers=[("Content-Encoding", "deflate")])
    warc.response("https://x/bomb", gzip.compress(b"<p>" + b" " * (100 << 20)), headers=[("Content-Encoding", "gzip")])
    warc.response("https://x/chunked", b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n",
                  headers=[("Transfer-Encoding", "chunked")])
    path = warc.save(tmp_path / "hostile.warc.gz")
    start = time.perf_counter()
    docs, ledger, _ = _read(tmp_path, path)
    assert time.perf_counter() - start < 30
    assert [d.metadata["fields"]["url"] for d in docs] == ["https://x/attribute", "https://x/gzip", "https://x/deflate",
                                                           "https://x/raw-deflate", "https://x/chunked"]
    assert docs[0].text == "Short text in a huge tag." and all(normalize(_text("en", 200)[0]) in d.text for d in docs[1:])
    assert ledger["removed"] == {"read.html_too_deep": 1, "read.max_document_bytes": 1}
    assert ledger["malformed"] == {"undecodable_text": 1}  # the binary garbage
    assert list(iter_records(str(path))) == list(iter_records(str(path)))


def test_an_element_of_too_many_attributes_is_removed_before_parsing(tmp_path):
    sentences = _text("en", 400)
    attributes = " ".join(f"a{i}" for i in range(1000))
    svg = "<svg xmlns='http://www.w3.org/2000/svg'>" + "<path d='M0 0L9 9' fill='red' stroke='blue' stroke-width='2'/>" * 5000 + "</svg>"
    warc = Warc(compress=True)
    # Parsing is quadratic in them: 80,000 took 21 s, these 500,000 (5.3 MB) would not end.
    warc.response("https://x/500000", "<html><body><p " + " ".join(f'a{i}="v"' for i in range(500_000)) + ">x</p></body></html>")
    warc.response("https://x/names", f"<p {attributes} a1000>Short text in a crowded tag.</p>")  # no `=` to count
    warc.response("https://x/quoted", "<p " + "".join(f'a{i}=">"' for i in range(1001)) + ">Short text in a crowded tag.</p>")
    warc.response("https://x/1000", _page(sentences).replace("<p>", f"<p {attributes}>", 1))
    # An inline SVG, and one in a data URI, whose `<` and `=` within a quoted value are no attributes of the link.
    warc.response("https://x/svg", _page(sentences, f"<link rel='icon' href=\"data:image/svg+xml,{svg}\">").replace("<main>", svg + "<main>"))
    path = warc.save(tmp_path / "attributes.warc.gz")
    start = time.perf_counter()
    docs, ledger, _ = _read(tmp_path, path)
    assert time.perf_counter() - start < 30
    assert [d.metadata["fields"]["url"] for d in docs] == ["https://x/1000", "https://x/svg"]
    assert all(normalize(s) in d.text for d in docs for s in sentences)
    assert ledger["removed"] == {"read.html_too_complex": 3} and ledger["malformed"] == {}


def test_curate_a_warc_gz_accounts_for_every_record(in_workspace, tmp_path, capsys):
    warc = Warc(compress=True)
    for i in range(12):
        warc.response(f"https://example.com/{i}", _page(_text("en", 300 + i * 10, 10)))
    warc.response("https://example.com/logo.png", b"\x89PNG", "image/png")
    warc.response("https://example.com/empty", "<html><body><nav><a href='/'>Home</a></nav></body></html>")
    warc.response("https://example.com/ja", _page(_text("ja", 0, 10)))  # the language filter's
    warc.raw(_record("https://example.com/broken", b"<p>x</p>", first_line=b"WARX/1.0"))
    warc.response("https://example.com/short", "<p>Too short.</p>")
    path = warc.save(tmp_path / "crawl.warc.gz")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: warc
        language: en
        sources: [{{name: web, paths: [{path}]}}]
        output: {tmp_path}/out
        assets: {{lid_model: {in_workspace}/assets/lid.176.ftz, tokenizer: {in_workspace}/assets/tokenizer.json}}
        langid: {{min_score: 0.5}}
        heuristics: {{gopher_quality: {{min_doc_words: 20}}}}
        """))
    capsys.readouterr()
    assert main(["curate", str(recipe), "--workers", "1"]) == 0, capsys.readouterr().err
    funnel = load_manifest(str(tmp_path / "out"))[0]["funnel"]
    assert funnel["documents_in"] == 17  # every response, broken record included; the requests and warcinfo are not documents
    assert funnel["kept"] == 12 and funnel["malformed"] == {"broken_warc_record": 1}
    assert funnel["removed"]["read.not_html"] == 1 and funnel["removed"]["read.no_main_text"] == 1
    assert funnel["documents_in"] == funnel["kept"] + sum(funnel["malformed"].values()) + sum(funnel["removed"].values())
