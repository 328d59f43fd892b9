"""URL blocklists, as datatrove's URLFilter, dolma's and DCLM's: a document whose URL a list blocks
is removed with the reason `url.<list name>`.

A list is a UTF-8 text file, one entry per line; blank lines and lines starting with `#` are
ignored. Its kind says what an entry is:

- `domains`: a domain blocks itself and every subdomain (`example.com` blocks `a.b.example.com`,
  not `ample.com`). Lines may be plain domains, hosts-file lines (`0.0.0.0 example.com`, several
  names allowed), `*.example.com` or `.example.com` (read as `example.com`), or URLs (their host).
  Entries and URL hosts are compared lower-cased, without userinfo, port or trailing dot, and
  with unicode labels in punycode (UTS 46, as browsers), so `bücher.de` and `xn--bcher-kva.de`
  are one domain.
- `substrings`: blocks every URL that contains the entry, ignoring case.
- `patterns`: a regular expression (the `regex` module), searched in the URL ignoring case; one
  that starts with `#` is written `\\#`, or it reads as a comment.

Every list is read and checked when loaded, before any document: a line that is no entry of its
kind is an AuroraError naming the file and line. The lists are checked in the order given and
the first that blocks a URL names the reason.
"""

import ipaddress
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

import idna
import re2
from datatrove.data import Document

from core.config import NAME, section
from core.errors import AuroraError
from core.storage import list_lines
from filters.base import FilterConfig, RecipeContext, RecipeFilter, Removal, StepContext

KINDS = ("domains", "substrings", "patterns")
# Substrings and patterns see a URL's first 8,192 characters only. That bounds the work a pattern
# does per URL (backtracking grows with the length searched, and a record's `url` field is only
# capped by the 8 MiB record limit), and costs nothing real: web servers refuse longer request
# lines (Apache's limit is 8,190 bytes, nginx's default buffer 8 KiB), so no fetched page has a
# longer URL, and the host, which domain lists match, comes first.
MAX_URL_CHARS = 8192
_SAMPLE_URL = "https://www.example.com/path/page.html?q=1#top"  # where a pattern's empty match would show
MAX_ENTRY_CHARS = 1000  # a longer line is a paste, not a URL part
# How deep the substring trie nests its groups before listing the rest of each entry whole:
# Python's regex parser recurses once per nested group and fails a few hundred levels down.
_TRIE_DEPTH = 32
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")  # lenient: underscores and edge hyphens occur in real hostnames
# Full stops that UTS 46 maps to ".": they separate labels in a URL host.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class Blocklist(NamedTuple):
    name: str  # the removal reason is `url.<name>`
    kind: str  # one of KINDS
    path: str  # a local file, or a remote asset that core.storage.local_asset fetches


@lru_cache(maxsize=1 << 16)  # IDNA costs ~10 µs a label, and a site's pages share their host
def _idna(label: str) -> str:
    return idna.encode(label, uts46=True).decode("ascii")


def _label(label: str, strict: bool) -> str:
    if label.isascii():
        return label.lower()
    try:
        return _idna(label)
    except ValueError:  # IDNA refuses the label (an emoji); its UnicodeError is a ValueError
        if strict:
            raise
        return label.lower()  # matches no entry (every entry is ASCII), while the host's parents still can


def normalize_host(host: str, strict: bool = True) -> str:
    """A host as entries and URLs are compared: percent-decoded (as browsers read hosts), without a
    trailing dot, lower-cased, each unicode label in punycode. A label that IDNA refuses raises
    ValueError when `strict` (a list entry), else stays as it is, lower-cased (a URL)."""
    if "%" in host:
        host = unquote(host)
    if host.isascii():
        return host.rstrip(".").lower()
    return ".".join(_label(label, strict) for label in host.translate(_DOTS).rstrip(".").split("."))


def url_host(url: str) -> str | None:
    """The URL's host, normalized; None when it has none a domain could match (none at all, an
    IPv6 literal, an unclosed `[`). The authority follows `scheme://` (a scheme of letters: http,
    https, ftp) or `//`, or starts a URL without one ("example.com/page"); it ends where the path,
    query or fragment starts, at a `\\` too, as browsers read it. String methods, not a regex:
    they took a third less time."""
    scheme, sep, rest = url.partition("://")
    if not (sep and scheme.isascii() and scheme.isalpha()):
        rest = url[2:] if url.startswith("//") else url
    authority = rest.partition("/")[0]
    for end in "?#\\":
        if end in authority:
            authority = authority.partition(end)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        return None
    return normalize_host(host.partition(":")[0], strict=False) or None


def listed(host: str, domains: frozenset[str]) -> bool:
    """Whether the host or a parent domain of it is in `domains` (`a.b.com`: `a.b.com`, `b.com`, `com`)."""
    while host not in domains:
        dot = host.find(".")
        if dot < 0:
            return False
        host = host[dot + 1 :]
    return True


def _domain_entries(text: str) -> list[str]:
    """The domains on one line of a domains file; ValueError says why the line is none."""
    tokens = text.split("#", 1)[0].split()  # no domain or URL host holds a `#`: the rest is a comment
    if len(tokens) > 1:
        try:
            ipaddress.ip_address(tokens[0])
        except ValueError:
            raise ValueError(f"expected one domain, or a hosts-file line (an IP address, then names), not {text!r}") from None
        tokens = tokens[1:]
    return [_domain(token) for token in tokens]


def _domain(token: str) -> str:
    if "://" in token:
        host = url_host(token)
        if host is None:
            raise ValueError(f"URL {token!r} has no host")
    else:
        host = token.removeprefix("*.").removeprefix(".")
        try:
            host = normalize_host(host)
        except ValueError as e:
            raise ValueError(f"not a domain: {token!r} ({e})") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"not a domain: {token!r}")
    if labels[-1].isdigit():  # no top-level domain is numeric: it must be a whole IPv4 address
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"not a domain: {token!r}") from None
    return host


def _pattern(text: str):
    """A pattern compiled by RE2, whose matching is linear in the URL whatever the pattern: with a
    backtracking engine one line such as `(a|aa)+$` took seconds on a 34-character URL and
    `(x+x+)+y` minutes on 8 KB, and `a{1000000000}` exhausted memory while compiling. RE2 has no
    backreferences or look-around; such a pattern is refused here, not at the first URL."""
    options = re2.Options()
    options.case_sensitive, options.log_errors, options.max_mem = False, False, 8 << 20
    try:
        pattern = re2.compile(text, options)
    except re2.error as e:
        message = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ValueError(f"pattern {text!r} is not an RE2 regular expression ({message}; "
                         "no backreferences or look-around, so that a URL's check is linear)") from None
    empty = pattern.search("") or pattern.search(_SAMPLE_URL)
    if empty is not None and empty.start() == empty.end():  # a stray `|`, a `*` too many, a lone `\b`: it would block (nearly) every URL
        raise ValueError(f"pattern {text!r} matches without consuming a character; it must match at least one")
    return pattern


def _substring_regex(entries: set[str]) -> re.Pattern:
    """One regex that finds any entry: the entries' trie as nested alternations, so each position
    of a URL costs one walk down the trie, not a try of every entry (300 entries on 200,000
    generated URLs: 168,000 URLs/s, where their plain alternation did 25,000 and a loop over them
    16,000). Only whether some entry occurs matters, so an entry that starts with another is
    dropped: the shorter one occurs too."""
    words = []
    for word in sorted(entries):
        if not words or not word.startswith(words[-1]):
            words.append(word)
    return re.compile(_trie(words, 0))


def _trie(words: list[str], depth: int) -> str:
    """Sorted words, none a prefix of another, as a regex matching any of them."""
    if len(words) == 1:
        return re.escape(words[0])
    if depth == _TRIE_DEPTH:
        return "(?:" + "|".join(map(re.escape, words)) + ")"
    branches = [re.escape(first) + _trie([w[1:] for w in group], depth + 1) for first, group in itertools.groupby(words, key=lambda w: w[0])]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _read_list(blocklist: Blocklist):
    """The loaded entries of one list: a set of domains, a substring regex, or a list of patterns."""
    path = blocklist.path
    entries = {}  # entry -> its compiled pattern or None, in file order: patterns are tried as written
    for number, text in list_lines(path, "URL blocklist"):
        if len(text) > MAX_ENTRY_CHARS:
            raise AuroraError(f"{path}:{number}: entry of {len(text)} characters, more than the {MAX_ENTRY_CHARS} a {blocklist.kind} entry may have")
        try:
            if blocklist.kind == "domains":
                entries.update(dict.fromkeys(_domain_entries(text)))
            elif blocklist.kind == "substrings":
                entries[text.lower()] = None
            else:
                entries[text] = _pattern(text)
        except ValueError as e:
            raise AuroraError(f"{path}:{number}: {e}") from None
    if not entries:
        raise AuroraError(f"URL blocklist {path} has no entries")
    if blocklist.kind == "domains":
        return frozenset(entries)
    if blocklist.kind == "substrings":
        return _substring_regex(set(entries))
    return list(entries.values())


class URLMatcher:
    """Loaded blocklists; `match` says which, if any, blocks a URL."""

    def __init__(self, lists: list[tuple[str, str, object]]):
        self._lists = lists  # (name, kind, loaded entries) in the order given

    def match(self, url: str) -> str | None:
        """The name of the first list that blocks `url`, or None. Never raises: a URL whose host
        cannot be read is matched by substrings and patterns only."""
        url = url.strip()[:MAX_URL_CHARS]
        host = lowered = None
        for name, kind, entries in self._lists:
            if kind == "domains":
                if host is None:
                    host = url_host(url) or ""
                if host and listed(host, entries):
                    return name
            elif kind == "substrings":
                if lowered is None:
                    lowered = url.lower()
                if entries.search(lowered):
                    return name
            elif any(pattern.search(url) for pattern in entries):
                return name
        return None


def load_blocklists(lists: list[Blocklist]) -> URLMatcher:
    """Reads and checks every list; any problem is an AuroraError (file:line for a bad entry)."""
    if not lists:
        raise AuroraError("the URL filter has no blocklists")
    loaded, names = [], set()
    for blocklist in lists:
        if not isinstance(blocklist.name, str) or not _NAME.fullmatch(blocklist.name):
            raise AuroraError(f"URL blocklist name {blocklist.name!r}: use letters, digits, '_' and '-' (it names the removal reason)")
        if blocklist.name in names:
            raise AuroraError(f"URL blocklist name {blocklist.name!r} is given twice: removal reasons would not say which list")
        if blocklist.kind not in KINDS:
            raise AuroraError(f"URL blocklist {blocklist.name!r}: kind {blocklist.kind!r} is not one of {', '.join(KINDS)}")
        names.add(blocklist.name)
        loaded.append((blocklist.name, blocklist.kind, _read_list(blocklist)))
    return URLMatcher(loaded)


def document_url(doc: Document) -> str | None:
    """The record's `url` field when it is a non-blank string."""
    fields = doc.metadata.get("fields")
    url = fields.get("url") if isinstance(fields, dict) else None
    return url if isinstance(url, str) and url.strip() else None


@dataclass(frozen=True)
class URLFilterConfig(FilterConfig):
    """`url_filter: {lists: [{name, domains | substrings | patterns: file}]}`: the blocklists, in
    order; the first that blocks a URL names the reason."""

    section = "url_filter"
    basis_meaning = "lists"
    lists: tuple[Blocklist, ...]

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "URLFilterConfig | None":
        if data.get(cls.section) is None:
            return None
        path = recipe.path
        lists = section(data, cls.section, {"lists"}, path).get("lists")
        if not isinstance(lists, list) or not lists:
            raise AuroraError(f"{path}: 'url_filter.lists' must be a non-empty list")
        blocklists = []
        for i, item in enumerate(lists):
            where = f"{path}: url_filter.lists[{i}]"
            kind = [k for k in KINDS if isinstance(item, dict) and k in item]
            if not isinstance(item, dict) or len(kind) != 1 or set(item) != {"name", kind[0]}:
                raise AuroraError(f"{where} must be a mapping of 'name' and one of {', '.join(KINDS)} (a file)")
            name, file = item["name"], item[kind[0]]
            if not isinstance(name, str) or not NAME.fullmatch(name) or any(b.name == name for b in blocklists):
                raise AuroraError(f"{where}: 'name' must be a unique name of letters, digits, '.', '_' and '-' (it names the reason)")
            if not isinstance(file, str) or not file:
                raise AuroraError(f"{where}: '{kind[0]}' must be the path of a list file")
            blocklists.append(Blocklist(name, kind[0], file))
        return cls(tuple(blocklists))

    def steps(self, context: StepContext) -> list:
        return [URLFilter(context.folder, [b._replace(path=context.local(b.path)) for b in self.lists])]

    def basis(self, sha256) -> dict:
        return {"url_filter": [{"name": b.name, "kind": b.kind, "sha256": sha256(b.path)} for b in self.lists]}

    def check(self, language: str) -> None:
        load_blocklists(self.lists)


def decide(values: dict) -> Removal | None:
    """Removed when a list blocks the document's URL (`values["blocked_by"]`: the first list that does)."""
    return None if values["blocked_by"] is None else Removal(f"{URLFilter.step}.{values['blocked_by']}")


class URLFilter(RecipeFilter):
    """Removes a document whose URL a blocklist blocks, with the reason `url.<list name>`; a
    document without a URL is kept and counted (`no_url` in the task ledger). It records no
    signal: the reason names the list."""

    name = "🔗 URL blocklists"
    step = "url"

    def __init__(self, output_folder, lists: list[Blocklist]):
        super().__init__(output_folder)
        self.lists = list(lists)
        self._matcher = None
        self._no_url = 0

    def __getstate__(self):  # steps travel to workers as their list paths; each process loads the lists once
        return {**self.__dict__, "_matcher": None}

    def reset(self) -> None:
        self._no_url = 0

    def task_summary(self) -> dict:
        return {"no_url": self._no_url}

    def measure(self, batch: list[Document]) -> list[dict]:
        values = []
        for doc in batch:
            url = document_url(doc)
            if url is None:
                self._no_url += 1
                self.stat_update("no_url")
                values.append({"blocked_by": None})
                continue
            if self._matcher is None:  # loaded on the first URL
                self._matcher = load_blocklists(self.lists)
            values.append({"blocked_by": self._matcher.match(url)})
        return values

    def stored(self, row: dict) -> dict:
        """A run's verdict, from the reason it removed the document for (its lists are this recipe's:
        the signals basis holds their sha256)."""
        reason = row.get("removed_by") or ""
        return {"blocked_by": reason.removeprefix(f"{self.step}.") if reason.startswith(f"{self.step}.") else None}

    def replay(self, row: dict, doc: Document) -> dict:
        """In a refilter, the URL is matched again: it is the record's, not a metric (and the task
        counts the documents without one)."""
        return self.measure([doc])[0]

    def decide(self, values: dict) -> Removal | None:
        return decide(values)
