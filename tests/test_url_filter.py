"""URL blocklists: domains with subdomains, IDNA and URL noise, hosts files, substrings, patterns,
list order, refused list files, hostile URLs, and the filter as a datatrove step."""

import gzip
import json
import pickle
import random

import pytest
from conftest import ROOT
from datatrove.data import Document
from datatrove.io import get_datafolder

from core.errors import AuroraError
from filters.url import MAX_URL_CHARS, Blocklist, URLFilter, load_blocklists


def write(tmp_path, name: str, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def matcher(tmp_path, *lists):
    """lists: (name, kind, file text) -> the loaded matcher."""
    return load_blocklists([Blocklist(name, kind, write(tmp_path, f"{name}.txt", text)) for name, kind, text in lists])


def test_a_domain_blocks_itself_and_its_subdomains_only(tmp_path):
    m = matcher(tmp_path, ("bad", "domains", "example.com\nsub.example.org\n"))
    assert m.match("https://example.com/") == "bad"
    assert m.match("https://a.b.example.com/page?q=1") == "bad"
    assert m.match("https://ample.com/") is None
    assert m.match("https://notexample.com/") is None
    assert m.match("https://example.com.evil.net/") is None
    assert m.match("https://evil.net/example.com") is None  # in the path, not the host
    assert m.match("https://x.sub.example.org/") == "bad"
    assert m.match("https://example.org/") is None  # a listed subdomain blocks no parent


def test_hosts_compare_without_case_port_userinfo_or_trailing_dot(tmp_path):
    m = matcher(tmp_path, ("bad", "domains", "Example.COM.\n"))
    for url in ("HTTP://WWW.EXAMPLE.COM/", "http://example.com:8080/x", "http://user:secret@example.com/", "http://example.com./",
                "http://u@www.example.com.:443/?q", "//example.com/x", "example.com/no-scheme", "http://ex%61mple.com/"):
        assert m.match(url) == "bad", url
    assert m.match("http://example.com@evil.net/") is None  # userinfo is no host
    assert m.match("http://evil.net\\@example.com/") is None  # `\` ends the authority, as in browsers


def test_unicode_domains_and_punycode_match_each_other(tmp_path):
    m = matcher(tmp_path, ("unicode", "domains", "bücher.de\n"), ("puny", "domains", "xn--strae-oqa.de\n"))
    assert m.match("http://xn--bcher-kva.de/") == "unicode"
    assert m.match("http://www.BÜCHER.de/") == "unicode"
    assert m.match("http://ｂüｃｈｅｒ。de/") == "unicode"  # full-width letters and full stop, as browsers map them
    assert m.match("http://straße.de/") == "puny"  # IDNA 2008: ß is kept, not turned into "ss"
    assert m.match("http://strasse.de/") is None
    assert m.match("http://💩.bücher.de/") == "unicode"  # a label IDNA refuses leaves its parents matchable


def test_hosts_file_lines_wildcards_and_urls_are_domains(tmp_path):
    text = """# a hosts file
127.0.0.1 localhost
0.0.0.0 ads.example.com   # inline comment
0.0.0.0 a.example.net b.example.net
::1 ip6.example.org
*.wild.example
.dot.example
https://user@from-url.example:8443/path?q#frag
"""
    m = matcher(tmp_path, ("hosts", "domains", text))
    for host in ("localhost", "ads.example.com", "a.example.net", "b.example.net", "ip6.example.org", "x.wild.example", "dot.example",
                 "from-url.example"):
        assert m.match(f"https://{host}/") == "hosts", host
    assert m.match("https://example.com/") is None
    assert m.match("https://0.0.0.0/") is None  # the address of a hosts line is not an entry


def test_substrings_ignore_case_anywhere_in_the_url(tmp_path):
    m = matcher(tmp_path, ("words", "substrings", "casino\nFree-Bet\n/wp-admin\ncas\n"))
    assert m.match("https://example.com/Online-CASINOS") == "words"
    assert m.match("https://free-bet.example/") == "words"
    assert m.match("https://example.com/x/wp-admin/") == "words"
    assert m.match("https://example.com/casual") == "words"  # "casino" is dropped for "cas", which blocks both
    assert m.match("https://example.com/wp-login") is None
    assert m.match("https://example.com/ca-sino") is None


def test_substrings_many_entries_match_as_a_loop_would(tmp_path):
    rng = random.Random(0)
    words = {"".join(rng.choice("abcde") for _ in range(rng.randint(1, 6))) for _ in range(400)}
    words |= {"a" * 40 + "b" * i for i in range(60)}  # deeper than the trie nests
    m = matcher(tmp_path, ("many", "substrings", "\n".join(sorted(words))))
    for _ in range(2000):
        url = "".join(rng.choice("abcdefghij/.") for _ in range(rng.randint(0, 12)))
        assert (m.match(url) == "many") == any(w in url for w in words), url
    assert m.match("x" + "a" * 40 + "b" * 59) == "many"


def test_patterns_are_searched_ignoring_case(tmp_path):
    m = matcher(tmp_path, ("re", "patterns", r"^https?://\d+\.\d+\.\d+\.\d+" + "\n" + r"\.(?:exe|msi)$" + "\n" + r"\p{Han}{4}" + "\n"))
    assert m.match("http://10.0.0.1/x") == "re"
    assert m.match("https://example.com/setup.EXE") == "re"
    assert m.match("https://example.com/漢字漢字") == "re"
    assert m.match("https://example.com/setup.exe.html") is None


def test_the_first_list_in_order_wins(tmp_path):
    lists = [("adult", "domains", "example.com\n"), ("spam", "substrings", "example\n"), ("junk", "patterns", "ex.mple\n")]
    assert matcher(tmp_path, *lists).match("https://example.com/") == "adult"
    assert matcher(tmp_path, *reversed(lists)).match("https://example.com/") == "junk"
    assert matcher(tmp_path, *lists).match("https://other.net/example") == "spam"


def test_unparseable_urls_never_raise(tmp_path):
    m = matcher(tmp_path, ("dom", "domains", "example.com\n"), ("words", "substrings", "casino\n"), ("re", "patterns", "slots\\d\n"))
    assert m.match("http://[::1") is None
    assert m.match("http://[::1/casino") == "words"  # no host to read, the substring still applies
    assert m.match("http://[::1]:8080/slots7") == "re"
    assert m.match("") is None
    assert m.match("   http://example.com/  ") == "dom"
    rng = random.Random(1)
    alphabet = "ab.:/@[]%?#\\ \x00é💩。ｅ" + "".join(map(chr, range(0x300, 0x310)))
    for _ in range(5000):
        m.match("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))))


def test_long_urls_are_searched_in_their_first_part(tmp_path):
    m = matcher(tmp_path, ("dom", "domains", "example.com\n"), ("words", "substrings", "casino\n"))
    padding = "x" * MAX_URL_CHARS
    assert m.match("https://example.com/" + padding) == "dom"
    assert m.match("https://other.net/" + padding + "casino") is None
    assert m.match("https://other.net/casino" + padding) == "words"


@pytest.mark.parametrize(("kind", "content", "message"), [
    ("domains", "example.com\nnot a domain\n", ":2: expected one domain"),
    ("domains", "ok.example\nexa mple.com\n", ":2: expected one domain"),
    ("domains", "example.com\nexa!mple.com\n", ":2: not a domain"),
    ("domains", "example.com\nexample.com/path\n", ":2: not a domain"),
    ("domains", "a..b.com\n", ":1: not a domain"),
    ("domains", "x" * 64 + ".com\n", ":1: not a domain"),
    ("domains", "💩.com\n", ":1: not a domain"),
    ("domains", "1.2.3\n", ":1: not a domain"),
    ("domains", "http://[::1\n", ":1: URL 'http://[::1' has no host"),
    ("domains", b"ok.example\n\xff\xfe.com\n", ":2: not UTF-8"),
    ("substrings", "# comment\n" + "x" * 1001 + "\n", ":2: entry of 1001 characters"),
    ("patterns", "fine\n(unclosed\n", ":2: pattern '(unclosed' is not an RE2 regular expression"),
    ("patterns", "casino|\n", ":1: pattern 'casino|' matches without consuming a character"),
    ("patterns", "\\b\n", ":1: pattern '\\\\b' matches without consuming a character"),
    ("patterns", "(?<=/)ads\n", ":1: pattern '(?<=/)ads' is not an RE2 regular expression"),
    ("patterns", "(a)\\1\n", ":1: pattern '(a)\\\\1' is not an RE2 regular expression"),
    ("patterns", "a{1001}\n", ":1: pattern 'a{1001}' is not an RE2 regular expression"),
])
def test_a_bad_line_is_refused_with_its_file_and_line(tmp_path, kind, content, message):
    path = write(tmp_path, "list.txt", content)
    with pytest.raises(AuroraError) as e:
        load_blocklists([Blocklist("l", kind, path)])
    assert str(e.value).startswith(path + message), str(e.value)


def test_empty_missing_and_misnamed_lists_are_refused(tmp_path):
    empty = write(tmp_path, "empty.txt", "# only comments\n\n   \n")
    with pytest.raises(AuroraError, match="has no entries"):
        load_blocklists([Blocklist("e", "domains", empty)])
    with pytest.raises(AuroraError, match="URL blocklist .*missing.txt not found"):
        load_blocklists([Blocklist("m", "domains", str(tmp_path / "missing.txt"))])
    good = write(tmp_path, "good.txt", "example.com\n")
    with pytest.raises(AuroraError, match="kind 'hosts' is not one of"):
        load_blocklists([Blocklist("g", "hosts", good)])
    with pytest.raises(AuroraError, match="given twice"):
        load_blocklists([Blocklist("g", "domains", good), Blocklist("g", "substrings", good)])
    with pytest.raises(AuroraError, match="name 'a.b'"):
        load_blocklists([Blocklist("a.b", "domains", good)])
    with pytest.raises(AuroraError, match="no blocklists"):
        load_blocklists([])


def test_a_byte_order_mark_and_crlf_lines_are_read(tmp_path):
    m = matcher(tmp_path, ("bom", "domains", b"\xef\xbb\xbfexample.com\r\nexample.net\r\n"))
    assert m.match("http://example.com/") == m.match("http://example.net/") == "bom"


def test_the_filter_step_writes_rejects_and_counts_documents_without_a_url(tmp_path):
    lists = [Blocklist("adult", "domains", write(tmp_path, "adult.txt", "example.com\n")),
             Blocklist("spam", "substrings", write(tmp_path, "spam.txt", "casino\n"))]
    urls = {"kept": "https://fine.example.org/a", "dom": "https://www.example.com/x", "word": "https://fine.example.org/casino",
            "none": None, "number": 7, "blank": "  "}
    docs = [Document(text=f"text {key}", id=key, metadata={"fields": {} if url is None else {"url": url}}) for key, url in urls.items()]
    docs.append(Document(text="no fields", id="bare"))
    out = tmp_path / "out"
    step = URLFilter(get_datafolder(str(out)), lists)
    kept = [d.id for d in step.run(iter(docs), rank=0, world_size=1)]
    assert kept == ["kept", "none", "number", "blank", "bare"]
    with gzip.open(out / "rejects" / "url" / "00000.jsonl.gz") as f:
        rejects = {r["id"]: r["reason"] for r in map(json.loads, f)}
    assert rejects == {"dom": "url.adult", "word": "url.spam"}
    ledger = json.loads((out / "tasks" / "00000" / "url.json").read_text())
    assert ledger == {"removed": {"url.adult": 1, "url.spam": 1}, "no_url": 4}


def test_the_step_pickles_without_its_loaded_lists(tmp_path):
    lists = [Blocklist("adult", "domains", write(tmp_path, "adult.txt", "example.com\n"))]
    step = URLFilter(get_datafolder(str(tmp_path / "out")), lists)
    list(step.run(iter([Document(text="t", id="1", metadata={"fields": {"url": "http://example.com"}})])))
    assert step._matcher is not None
    copy = pickle.loads(pickle.dumps(step))
    assert copy._matcher is None and copy.lists == lists
    assert [d.id for d in copy.run(iter([Document(text="t", id="2", metadata={"fields": {"url": "http://a.example.com"}})]))] == []


def test_the_shipped_example_list_loads_and_blocks_what_it_says(tmp_path):
    m = load_blocklists([Blocklist("example", "domains", str(ROOT / "recipes" / "lists" / "url_blocklist.example.txt"))])
    for url in ("http://www.spam.example/", "https://x.ads.example.com/", "http://cdn.tracker.example.net/", "http://casino.test/",
                "https://a.phishing.test/", "http://malware.example.org/elsewhere", "http://xn--bcher-kva.example/"):
        assert m.match(url) == "example", url
    assert m.match("http://notspam.example/") is None


def test_a_pattern_that_backtracks_catastrophically_elsewhere_is_linear_here(tmp_path):
    """With a backtracking engine these took seconds (34 characters) to minutes (8 KB) per URL."""
    m = matcher(tmp_path, ("slow", "patterns", "(a|aa)+$\n(x+x+)+y\n"))
    assert m.match("http://" + "a" * 5000 + "!") is None and m.match("http://" + "x" * 8000) is None
    assert m.match("http://" + "a" * 5000) == "slow" and m.match("http://" + "x" * 8000 + "y") == "slow"


def test_a_list_that_is_not_a_regular_file_is_refused(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        with pytest.raises(AuroraError, match="is not a regular file"):
            load_blocklists([Blocklist("pipe", "domains", path)])
