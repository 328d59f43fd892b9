"""WARC and WET files (`.warc`, `.warc.gz`, `.wet`, `.wet.gz`) read as records for `readers.records`.

Which records are documents:
- a `response` record holding an HTTP response (WARC Content-Type `application/http`): the main
  text of its HTML, by the recipe's `read.extractor` (`readers.html_text`; `bench/extraction.py`
  measures each on real pages with reference texts);
- a `conversion` record (a WET file's text): its text as it is (UTF-8).
Other records are not documents and are skipped, not counted, like blank lines of JSONL: warcinfo,
request, metadata, revisit, resource and continuation records (WARC-Type in any case), and
responses that are not HTTP (`dns:` lookups). A document's record is {"id": WARC-Record-ID without
its angle brackets, "text", "url": WARC-Target-URI without the angle brackets of WARC/1.0's grammar
(left on, they would let a url slip past URL blocklists), "date": WARC-Date}; the reader keeps url
and date as its fields.

The other document records are rejects with a reason. Content decisions, removed (`read.` reasons,
`rejects/read`): a response whose HTTP status is not 2xx (`read.http_status`: an error page, a
redirect, a crawler block page, not the page its URL names), whose HTTP Content-Type is not HTML
(`read.not_html`), HTML nested deeper than `MAX_HTML_DEPTH` elements (`read.html_too_deep`:
main-text extraction is quadratic in depth), HTML with an element of more than
`MAX_HTML_ATTRIBUTES` attributes (`read.html_too_complex`: parsing is quadratic in them; found by
a linear scan before parsing), HTML without main text (`read.no_main_text`, also a conversion
record of blank text), a payload over `max_document_bytes`, skipped without being held in memory
(`read.max_document_bytes`). Broken data, malformed: a record whose version line is not exactly
WARC/1.0 or WARC/1.1 ending in CRLF or LF (also one written with CR line ends), a WARC header that
does not parse or has no WARC-Type (mandatory), a Content-Length that is not at most 18 ASCII
digits, or a wrong one (the block is not followed by the blank line that ends a record, or the
file ends inside it) (`broken_warc_record`); an HTTP block without a status line (HTTP/version,
a three-digit status) and headers, or with a broken chunked transfer encoding
(`broken_http_response`); a Content-Encoding other than gzip or deflate, or a compressed payload
that does not decompress (`undecodable_payload`); HTML that does not decode in any of its charsets
(`undecodable_text`), tried in order: a byte-order mark, the HTTP Content-Type's charset, the first
1,024 bytes' <meta charset> (as a browser's prescan reads it: UTF-16 there means UTF-8, and
x-user-defined windows-1252), UTF-8, resiliparse's detection; the first that is known and decodes without
error is used; a conversion record that is not UTF-8 (`invalid_utf8`).

After a broken record, reading goes on at the first line after its version line that starts with
`WARC/` (or follows a lone CR): a record whose Content-Length is too long, or whose header runs into
the next record, swallows the records after it, and they are read again from there (`_Stream`).
One damaged record costs one reject, and every record after it is still read. A compressed file
that breaks part way (truncated, corrupt) ends with one `unreadable_file` record
(`readers.records.iter_records`).

Records are framed here rather than with fastwarc or warcio (`bench/warc.py`): both end quietly at a
cut .warc.gz, losing the cut record without a count, both stop at the first damaged header, and a
wrong Content-Length stops fastwarc and passes unseen in warcio (a too long one loses the records
it swallows in both). Framing here is 5 to 7x slower than fastwarc's: some 0.2 ms a .warc.gz
response, where curation spends some 5 ms a document.

A record is named by its place: `path:N`, the Nth record of its file (from 1, skipped ones counted).
"""

import codecs
import re
import tempfile
import zlib

from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5
from resiliparse.parse.html import HTMLTree

from readers.html_text import DEFAULT_EXTRACTOR, main_text

WARC_FORMATS = (".warc", ".warc.gz", ".wet", ".wet.gz")
TOO_LARGE = "read.max_document_bytes"
BROKEN_RECORD = "broken_warc_record"
MAX_HTML_DEPTH = 256  # real pages nest a few dozen elements deep
# Parsing is quadratic in the attributes of one element (each is checked against those before it):
# 80,000 took 21 s. Elements of 1,000 parse in 2.7 ms each, 8 MB of them in 2.9 s, as 8 MB of the
# smallest ordinary elements (2.6 s); 1.2 GB of HTML and SVG (documentation, icons) has 19 at most.
MAX_HTML_ATTRIBUTES = 1000
_MAX_HEADER = 1 << 16  # bytes of a WARC header, and of an HTTP response's status line and headers
_CHUNK = 1 << 20
_SPOOL_MEMORY = 8 << 20  # bytes of swallowed records kept in memory; more go to a temporary file
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TOO_DEEP = " > ".join(["*"] * MAX_HTML_DEPTH)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_VERSION_LINE = re.compile(rb"WARC/1\.[01]\r?\n")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and few enough to be a size
_STATUS_LINE = re.compile(rb"HTTP/[0-9.]+[ \t]+([0-9]{3})(?:[ \t].*)?")
# A start tag and its attributes as the HTML tokenizer reads them, so that each way of writing them
# counts (a quoted value may hold `>`, a name needs no `=` and no space after a quoted value, `/`
# separates as a space does); counting `=` would miss names without a value. Tags of few attributes are
# passed over whole, without backtracking: the scan is linear (35 ms on 8 MB of real pages, which
# take 0.55 s to parse and extract; under 0.2 s on 8 MB of tags of 1,000), and a `<` in a quoted
# value, as in an inline SVG data URI, starts no tag of its own.
_SPACE = "\t\n\f\r "
_TAG = rf"<[A-Za-z][^{_SPACE}/>]*+"
_ATTRIBUTE = rf"[{_SPACE}/]*+[^{_SPACE}/>][^{_SPACE}/>=]*+(?:[{_SPACE}]*+=[{_SPACE}]*+(?:\"[^\"]*+\"|'[^']*+'|[^{_SPACE}>]*+))?+"
_TOO_MANY_ATTRIBUTES = re.compile(rf"(?:[^<]++|<(?![A-Za-z])|{_TAG}(?:{_ATTRIBUTE}){{0,{MAX_HTML_ATTRIBUTES}}}+(?!{_ATTRIBUTE}))*+"
                                  rf"{_TAG}(?:{_ATTRIBUTE}){{{MAX_HTML_ATTRIBUTES + 1}}}")


def warc_records(f, path: str, limit: int, extractor: str = DEFAULT_EXTRACTOR):
    """Yield (fallback_id, record or None, reason or None, raw) for every document record of the WARC
    or WET stream `f` (uncompressed, with `readline(size)` and `read(size)`); raw is where and why
    for a reject."""
    f = _Stream(f)
    line, number = f.readline(_MAX_HEADER), 0
    while line:
        if line.isspace():  # the blank lines that end a record
            line = f.readline(_MAX_HEADER)
            continue
        number += 1
        fallback_id = f"{path}:{number}"
        if not _VERSION_LINE.fullmatch(line):
            start = line[:16]
            line, skipped = _next_record(f, line, at_line_start=False)
            yield fallback_id, None, BROKEN_RECORD, f"{skipped:,} bytes from {start!r} where a WARC/1.0 or WARC/1.1 record should start"
            continue
        f.watch()
        result, problem = _record(f, limit, extractor)
        line = f.readline(_MAX_HEADER)
        if problem is None and line and not line.isspace():
            problem = "its block is not followed by a blank line (a wrong Content-Length)"
        swallowed = f.unwatch()
        if problem is not None:
            if swallowed is not None:  # read the records it swallowed again, from the first one's start
                f.replay(swallowed)
                line = f.readline(_MAX_HEADER)
            line, _ = _next_record(f, line)
            yield fallback_id, None, BROKEN_RECORD, problem
            continue
        if swallowed is not None:
            swallowed.close()
        if result is not None:
            yield (fallback_id, *result)


class _Stream:
    """A WARC stream that can go back to a record start inside a broken record. While a record is
    read (`watch` to `unwatch`), what is read from the first line that starts with `WARC/` after its
    version line on is kept in a spool (memory, then a temporary file: a wrong length can swallow the
    rest of the file); `replay` puts a spool back in front of what is left to read. Where the stream
    ends is remembered, so that a record claiming a block past it is cut short at once instead of
    reading the file to its end again."""

    _START = b"\nWARC/"

    def __init__(self, f):
        self._sources = [f]  # spools to replay, then the file
        self.position, self.end = 0, None  # offsets in the file's bytes; end: where it ends, once seen
        self._watching, self._spool, self._tail = False, None, b""

    def readline(self, size: int) -> bytes:
        return self._take(size, line=True)

    def read(self, size: int) -> bytes:
        return self._take(size, line=False)

    def _take(self, size: int, line: bool) -> bytes:
        parts, wanted = [], size
        while wanted > 0:
            data = self._sources[0].readline(wanted) if line else self._sources[0].read(wanted)
            if data:
                parts.append(data)
                wanted -= len(data)
                if line and data.endswith(b"\n"):
                    break
            elif len(self._sources) > 1:  # a replayed spool is read through: on to what follows it
                self._sources.pop(0).close()
            else:
                self.end = self.position + size - wanted
                break
        data = b"".join(parts)
        self.position += len(data)
        if self._watching:
            self._keep(data)
        return data

    def _keep(self, data: bytes):
        if self._spool is not None:
            self._spool.write(data)
            return
        seen = self._tail + data  # the tail: a start that the read before cut in two
        at = seen.find(self._START)
        if at < 0:
            self._tail = seen[1 - len(self._START):]
            return
        self._spool = tempfile.SpooledTemporaryFile(_SPOOL_MEMORY)
        self._spool.write(seen[at + 1:])

    def watch(self):
        """Start keeping what follows a record start, from here (a line start) on."""
        self._watching, self._spool, self._tail = True, None, b"\n"

    def unwatch(self):
        """Stop keeping; the spool kept, or None when no record start was read."""
        spool, self._watching, self._spool = self._spool, False, None
        return spool

    def replay(self, spool):
        """Read `spool` again before what is left: it ends where reading is now."""
        size = spool.seek(0, 2)
        spool.seek(0)
        self._sources.insert(0, spool)
        self.position -= size


def _next_record(f, line: bytes, at_line_start: bool = True) -> tuple[bytes, int]:
    """Read on from `line` to the next line that starts a WARC record: (that line or b"" at the end,
    bytes skipped). Any `WARC/` line is taken as a start, so that a record with a malformed version
    line is a reject of its own. A line longer than a read is read in parts; only a line's first part
    can start a record, or a part after a lone CR: a record written with CR line ends is one line up
    to the next record's version line."""
    skipped = 0
    while line and not (at_line_start and line.startswith(b"WARC/")):
        at = line.find(b"\rWARC/")
        if at >= 0:
            return line[at + 1:], skipped + at + 1
        skipped += len(line)
        at_line_start = line.endswith(b"\n")
        line = f.readline(_MAX_HEADER)
    return line, skipped


def _headers(f) -> dict[str, str] | None:
    """A WARC header's named fields (lower-cased names), read to its blank line; None when it does not parse."""
    lines, size = [], 0
    while True:
        line = f.readline(_MAX_HEADER)
        size += len(line)
        if not line.endswith(b"\n") or size > _MAX_HEADER:  # the file ends inside it, or it never ends
            return None
        if line.isspace():
            break
        lines.append(line)
    fields, name = {}, None
    for line in b"".join(lines).decode("utf-8", errors="replace").split("\n")[:-1]:
        if line[:1] in (" ", "\t") and name is not None:  # a folded line continues the field before
            fields[name] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            return None
        name = name.strip().lower()
        fields[name] = value.strip()
    return fields


def _read(f, size: int) -> bytes | None:
    """`size` bytes, or None when the stream ends first."""
    data = f.read(size)
    return data if len(data) == size else None


def _skip(f, size: int) -> bool:
    """Read past `size` bytes a chunk at a time; False when the stream ends first."""
    while size > 0:
        chunk = f.read(min(size, _CHUNK))
        if not chunk:
            return False
        size -= len(chunk)
    return True


def _record(f, limit: int, extractor: str):
    """Read the header and block of one record, its line `WARC/1.x` read. Returns (result, problem):
    result is (record, reason, raw) for a document record, None for another; problem, when the
    record is broken, says how (result is then None)."""
    headers = _headers(f)
    if headers is None:
        return None, "its WARC header does not parse"
    length = headers.get("content-length", "")
    if not _CONTENT_LENGTH.fullmatch(length):
        return None, f"Content-Length {length[:32]!r} is not a number of at most 18 digits"
    length, kind = int(length), headers.get("warc-type", "").lower()
    cut_short = f"the file ends inside its block of {length:,} bytes"
    if f.end is not None and f.position + length > f.end:  # known without reading to the end again
        return None, cut_short
    if not kind:  # mandatory; without it the record cannot be told a document or not, so it is not skipped unseen
        return None, "no WARC-Type" if _skip(f, length) else cut_short
    http = kind == "response" and headers.get("content-type", "").lower().startswith("application/http")
    if not http and kind != "conversion":
        return None, None if _skip(f, length) else cut_short
    cap = limit + (_MAX_HEADER if http else 0)  # what a payload of `limit` bytes may take with its HTTP header
    block = _read(f, min(length, cap))
    if block is None or not _skip(f, length - len(block)):
        return None, cut_short
    record_id = headers.get("warc-record-id", "").strip("<>") or None
    url = _target_uri(headers.get("warc-target-uri"))
    if http:
        reason, content = _http_text(block, length > cap, limit, extractor)
    elif length > limit:
        reason, content = TOO_LARGE, f"a text of {length:,} bytes"
    else:
        try:
            reason, content = None, block.decode("utf-8")
        except UnicodeDecodeError as e:
            reason, content = "invalid_utf8", f"not UTF-8: {e}"
    if reason is None and content.strip():
        return ({"id": record_id, "text": content, "url": url, "date": headers.get("warc-date")}, None, None), None
    where = f"{record_id or ''} {url or ''}".strip()
    return (None, reason or "read.no_main_text", f"{where}: {content if reason else 'no main text'}"), None


def _target_uri(value: str | None) -> str | None:
    """WARC-Target-URI without the angle brackets that WARC/1.0's grammar puts around it (left on, the
    url would slip past URL blocklists)."""
    if value and value.startswith("<") and value.endswith(">"):
        return value[1:-1].strip()
    return value


def _http_text(block: bytes, too_large: bool, limit: int, extractor: str) -> tuple[str | None, str]:
    """(None, main text) of an HTTP response's HTML, or (reason, why). `too_large`: the block went on
    past what was read."""
    ends = [(at, len(blank)) for blank in (b"\r\n\r\n", b"\n\n") if (at := block.find(blank, 0, _MAX_HEADER)) >= 0]
    end, separator = min(ends, default=(0, 0))  # the first blank line ends the headers
    lines = block[:end].split(b"\n")
    status = _STATUS_LINE.fullmatch(lines[0].rstrip(b"\r")) if ends else None
    if status is None:
        return "broken_http_response", "no HTTP status line and headers"
    if not status.group(1).startswith(b"2"):  # an error page or a redirect: not the page the URL names
        return "read.http_status", f"HTTP status {status.group(1).decode()}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    media_type, *parameters = headers.get("content-type", "").split(";")
    media_type = media_type.strip().lower()
    if media_type not in _HTML_TYPES:
        return "read.not_html", f"Content-Type {media_type or 'missing'}"
    body = block[end + separator:]
    if too_large or len(body) > limit:
        return TOO_LARGE, f"a payload over {limit:,} bytes"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunked(body)
        if body is None:
            return "broken_http_response", "a broken chunked transfer encoding"
    body, problem = _decompressed(body, headers.get("content-encoding", "").strip().lower(), limit)
    if problem is not None:
        return problem
    labels = [value.split("=", 1)[1].strip(" \"'") for value in parameters if value.strip().lower().startswith("charset=")]
    return html_page_text(body, labels, extractor)


def html_page_text(body: bytes, labels: list[str], extractor: str) -> tuple[str | None, str]:
    """(None, main text) of an HTML page's bytes, or (reason, why); `labels`: the charsets its HTTP
    header declares."""
    encodings = [map_encoding_to_html5(label, fallback_utf8=False) for label in labels]
    meta = _META_CHARSET.search(body, 0, 1024)
    if meta:
        labels.append(meta.group(1).decode("ascii"))
        encodings.append(_meta_encoding(labels[-1]))
    html = decode_html(body, [name for name in encodings if name is not None])
    if html is None:
        return "undecodable_text", f"not text in its byte-order mark, charsets {labels} or the detected one"
    if _TOO_MANY_ATTRIBUTES.match(html):
        return "read.html_too_complex", f"an element with more than {MAX_HTML_ATTRIBUTES:,} attributes"
    tree = HTMLTree.parse(html)
    if tree.document is not None and tree.document.query_selector(_TOO_DEEP) is not None:
        return "read.html_too_deep", f"elements nested more than {MAX_HTML_DEPTH} deep"
    return None, main_text(html, extractor, tree)


def _dechunked(body: bytes) -> bytes | None:
    """The payload of a chunked transfer encoding, or None when the chunks are broken. A body whose
    first line is no chunk size is taken as it is: some WARC writers store the payload decoded and
    keep the header (warcio reads them so too)."""
    parts, at = [], 0
    while True:
        end = body.find(b"\n", at)
        hex_size = _CHUNK_SIZE.fullmatch(body[at:end].split(b";")[0].strip()) if end >= 0 else None
        if hex_size is None:
            return body if at == 0 else None
        size = int(hex_size.group(), 16)
        if size == 0:
            return b"".join(parts)
        chunk = body[end + 1:end + 1 + size]
        if len(chunk) < size:
            return None
        parts.append(chunk)
        at = end + 1 + size
        at += 2 if body.startswith(b"\r\n", at) else 1 if body.startswith(b"\n", at) else 0


def _decompressed(body: bytes, encoding: str, limit: int) -> tuple[bytes, tuple[str, str] | None]:
    """The payload without its Content-Encoding, at most `limit` bytes of it (a small compressed
    payload can expand to any size), or a problem: (reason, why)."""
    if encoding in ("", "identity"):
        return body, None
    if encoding in ("gzip", "x-gzip") and not body.startswith(b"\x1f\x8b"):  # stored decoded, as in `_dechunked`
        return body, None
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":  # zlib-wrapped as the standard says, or raw as some servers send it
        wbits = zlib.MAX_WBITS if len(body) > 1 and body[0] & 0x0F == 8 and int.from_bytes(body[:2], "big") % 31 == 0 else -zlib.MAX_WBITS
    else:
        return body, ("undecodable_payload", f"Content-Encoding {encoding}")
    decompressor = zlib.decompressobj(wbits)
    try:
        payload = decompressor.decompress(body, limit + 1)
    except zlib.error as e:
        return body, ("undecodable_payload", f"Content-Encoding {encoding}: {e}")
    if len(payload) > limit:
        return body, (TOO_LARGE, f"a payload over {limit:,} bytes once decompressed")
    if not decompressor.eof:
        return body, ("undecodable_payload", f"Content-Encoding {encoding}: the compressed payload is cut short")
    return payload, None


def _meta_encoding(label: str) -> str | None:
    """The encoding a <meta> charset names, as a browser's prescan takes it: a meta tag read as ASCII
    cannot be in UTF-16 (which a byte-order mark announces), so UTF-16 means UTF-8, and x-user-defined
    means windows-1252."""
    if label.lower() == "x-user-defined":
        return "cp1252"
    name = map_encoding_to_html5(label, fallback_utf8=False)
    return "utf-8" if name in ("utf-16-le", "utf-16-be") else name


def decode_html(body: bytes, encodings: list[str]) -> str | None:
    """The HTML as text in the first charset of `_charsets` that is known and decodes it without error;
    None when none does."""
    for name in _charsets(body, encodings):
        try:
            return body.decode(name)
        except (LookupError, UnicodeDecodeError):  # a name Python does not know; bytes not in that charset
            continue
    return None


def _charsets(body: bytes, encodings: list[str]):
    """The charset of the byte-order mark, the declared `encodings`, UTF-8, then the detected one:
    lazily, as detection reads up to 128 KiB. UTF-8 comes before detection because bytes that
    decode as strict UTF-8 are UTF-8 in practice, and detection takes a UTF-8 page whose only
    non-ASCII bytes are a few punctuation marks for a Windows code page ("â€”" for "—")."""
    yield from (name for bom, name in _BOMS if body.startswith(bom))
    yield from encodings
    yield "utf-8"
    yield detect_encoding(body) or "utf-8"
