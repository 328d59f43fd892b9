"""URL blocklist throughput: our URLFilter (filters/url.py) vs datatrove's URLFilter.

Generated data, the same for both, in one process: `--urls` URLs (random hosts under common and
two-part suffixes, subdomains, paths, queries; some upper-cased, with ports, userinfo, trailing
dots or unicode hosts; about 8% under a listed domain) against 100,000 listed domains (5% of them
subdomains, 1% unicode), 300 substrings and 5 patterns. Each filter's `filter(doc)` is timed on
the same documents, interleaved for `--rounds` rounds in a rotating order, median URLs/s:

- domains: both with the domain list only; then where their decisions differ, by kind of URL
- all lists: ours with domains + substrings + patterns; datatrove with the domains and the
  substrings as its `banned_subwords` (it has no patterns, and matches subwords on the URL with
  its punctuation removed, so only the speeds compare)

then ours with one list at a time, and the memory our loaded lists hold (tracemalloc: what stays
after loading, and the peak while loading). datatrove's filter finds the registered domain with tldextract, here its bundled
public suffix list snapshot (`suffix_list_urls=()`, no cache), so nothing is downloaded.
Needs datatrove's URL filter dependencies: pip install tldextract pyahocorasick fasteners

    .venv/bin/python bench/url_filter.py [--urls 1000000] [--rounds 2]
"""

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import tracemalloc  # noqa: E402  (after the line above: it imports `tokenize`, which bench/tokenize.py would shadow)

import idna  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402

from filters.url import Blocklist, URLFilter, load_blocklists, normalize_host, url_host  # noqa: E402

try:
    from datatrove.pipeline.filters.url_filter import URLFilter as DtURLFilter
    from tldextract import TLDExtract
except ImportError as e:
    sys.exit(f"datatrove's URLFilter needs tldextract, pyahocorasick and fasteners ({e}): pip install tldextract pyahocorasick fasteners")

warnings.filterwarnings("ignore", category=DeprecationWarning)  # tldextract's notice on `registered_domain`, which datatrove reads

SUFFIXES = ["com"] * 30 + ["net", "org", "de", "fi", "jp", "in", "vn", "ru", "info", "io", "xyz", "co.uk", "co.jp", "com.vn", "com.au", "co.in"]
SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
UNICODE_NAMES = ["bücher", "café", "straße", "mañana", "ääkköset", "tiếngviệt", "日本語", "テスト", "हिन्दी"]
SUBDOMAINS = ["www"] * 6 + ["m", "blog", "shop", "en", "fi", "cdn", "static", "forum", "news", "docs"]
PATTERNS = [
    r"^https?://(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?/",  # a raw IPv4 host
    r"/(?:wp-login|xmlrpc)\.php",
    r"[?&](?:sessionid|phpsessid)=",
    r"\.(?:exe|apk|msi)(?:$|\?)",
    r"/tag/[^/]+/page/\d{3,}",
]


class Generator:
    """Hosts, paths and queries from a pool of pronounceable words: drawing whole words keeps
    making a million URLs to seconds, and their pairs give as many distinct hosts as needed."""

    def __init__(self, seed: int):
        self.rng = rng = random.Random(seed)
        self.words = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(30_000)})

    def word(self) -> str:
        return self.rng.choice(self.words)

    def domain(self) -> str:
        rng = self.rng
        return f"{self.word()}{rng.choice(['', '', '-'])}{self.word()}.{rng.choice(SUFFIXES)}"

    def blocklist(self, count: int) -> list[str]:
        rng, entries = self.rng, set()
        while len(entries) < count:
            r = rng.random()
            if r < 0.01:
                entries.add(f"{rng.choice(UNICODE_NAMES)}{len(entries)}.{rng.choice(['de', 'fi', 'jp', 'vn', 'in'])}")
            elif r < 0.06:
                entries.add(f"{rng.choice(SUBDOMAINS[6:])}.{self.domain()}")
            else:
                entries.add(self.domain())
        return sorted(entries)

    def url(self, blocked: list[str], substrings: list[str]) -> str:
        rng = self.rng
        host = rng.choice(blocked) if rng.random() < 0.08 else self.domain()
        if rng.random() < 0.5:
            host = f"{rng.choice(SUBDOMAINS)}.{host}"
        if not host.isascii() and rng.random() < 0.5:
            host = idna.encode(host, uts46=True).decode()  # the same host in punycode
        noise = rng.random()
        if noise < 0.03:
            host = host.upper()
        elif noise < 0.05:
            host += f":{rng.choice([8080, 443, 8443])}"
        elif noise < 0.06:
            host = f"user@{host}"
        elif noise < 0.065:
            host += "."
        path = "/".join(self.word() + rng.choice(["", "", "-" + self.word()]) for _ in range(rng.randint(0, 4)))
        if rng.random() < 0.3:
            path += f"/{rng.randint(1, 99999)}.{rng.choice(['html', 'php', 'htm'])}"
        if rng.random() < 0.01:
            path += "/" + rng.choice(substrings)
        if rng.random() < 0.005:
            path = rng.choice(["wp-login.php", "tag/news/page/1234", "setup.exe", "files/app.apk", "?sessionid=1"])
        query = ""
        if rng.random() < 0.35:
            keys = rng.sample(["id", "q", "page", "utm_source", "utm_medium", "ref", "lang"], rng.randint(1, 3))
            query = "?" + "&".join(f"{k}={self.word()}" for k in keys)
        return f"{rng.choice(['https', 'https', 'http'])}://{host}/{path}{query}"


def our_filter(lists, out: str):
    step = URLFilter(get_datafolder(out), lists)
    list(step.run(iter(()), rank=0, world_size=1))  # loads the lists, as each task does
    return step


def datatrove_filter(domains: list[str], subwords: list[str]):
    step = DtURLFilter(extra_domains=domains, banned_subwords=subwords or None, use_integrated_lists=False)
    step.tldextractor = TLDExtract(cache_dir=None, suffix_list_urls=())  # the bundled snapshot: nothing fetched
    return step


def timed(step, docs) -> tuple[float, list[bool]]:
    gc.collect()
    keep = step.filter
    start = time.perf_counter()
    decisions = [keep(doc) is True for doc in docs]
    return len(docs) / (time.perf_counter() - start), decisions


def compare(title: str, paths: dict, docs, rounds: int) -> dict[str, list[bool]]:
    print(f"\n{title}")
    speeds, decisions = {name: [] for name in paths}, {}
    names = list(paths)
    for round_ in range(rounds):
        for name in names[round_ % 2 :] + names[: round_ % 2]:
            speed, decisions[name] = timed(paths[name], docs)
            speeds[name].append(speed)
            print(f"  round {round_ + 1}  {name:<12} {speed:>10,.0f} URLs/s  blocked {decisions[name].count(False):,}")
    medians = {name: statistics.median(s) for name, s in speeds.items()}
    for name, speed in medians.items():
        print(f"  median   {name:<12} {speed:>10,.0f} URLs/s")
    print(f"  ratio ours / datatrove: {medians['ours'] / medians['datatrove']:.2f}")
    return decisions


def url_kind(url: str, listed: set[str]) -> str:
    """Why the two filters disagree on the URL: the first that applies of what sets it apart."""
    host = url_host(url)
    entry = next((parent for parent in (host.split(".", i)[-1] for i in range(host.count(".") + 1)) if parent in listed), None)
    authority = url.split("://", 1)[1].split("/", 1)[0]
    if entry is None:
        return "no listed domain in its host"
    if entry != host and entry.split(".")[0] in SUBDOMAINS[6:]:
        return "under a listed subdomain"
    if not authority.isascii() or "xn--" in authority:
        return "unicode or punycode"
    if authority != authority.lower():
        return "upper case"
    if authority.endswith("."):
        return "trailing dot"
    return "userinfo or port" if "@" in authority or ":" in authority else "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    start = time.perf_counter()
    generate = Generator(seed=0)
    domains = generate.blocklist(100_000)
    substrings = sorted({generate.word() + generate.word() for _ in range(300)})
    urls = [generate.url(domains, substrings) for _ in range(args.urls)]
    docs = [Document(text="", id=str(i), metadata={"url": url, "fields": {"url": url}}) for i, url in enumerate(urls)]
    print(f"{len(urls):,} URLs ({sum(map(len, urls)) / len(urls):.0f} characters on average, made in {time.perf_counter() - start:.0f} s); "
          f"{len(domains):,} domains, {len(substrings)} substrings, {len(PATTERNS)} patterns")

    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, entries in (("domains", domains), ("substrings", substrings), ("patterns", PATTERNS)):
            files[name] = os.path.join(tmp, f"{name}.txt")
            with open(files[name], "w", encoding="utf-8") as f:
                f.write("\n".join(entries) + "\n")
        domain_list = [Blocklist("domains", "domains", files["domains"])]
        all_lists = domain_list + [Blocklist("substrings", "substrings", files["substrings"]), Blocklist("patterns", "patterns", files["patterns"])]

        start = time.perf_counter()
        load_blocklists(all_lists)
        seconds = time.perf_counter() - start
        tracemalloc.start()
        matcher = load_blocklists(all_lists)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del matcher
        print(f"our lists: loaded in {seconds:.2f} s; they hold {held / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB while loading)")

        decisions = compare("domains", {"ours": our_filter(domain_list, os.path.join(tmp, "d")), "datatrove": datatrove_filter(domains, [])},
                            docs, args.rounds)
        differ = [i for i, (a, b) in enumerate(zip(decisions["ours"], decisions["datatrove"])) if a != b]
        print(f"  decisions agree on {1 - len(differ) / len(urls):.4%} of URLs; they differ on {len(differ):,}:")
        listed = {normalize_host(d) for d in domains}
        kinds, examples = Counter(), {}
        for i in differ:
            key = (url_kind(urls[i], listed), "ours blocks" if not decisions["ours"][i] else "datatrove blocks")
            kinds[key] += 1
            examples.setdefault(key, urls[i])
        for (kind, who), n in kinds.most_common():
            print(f"    {n:>7,}  {who:<16} {kind:<32} e.g. {examples[kind, who]}")

        compare("all lists", {"ours": our_filter(all_lists, os.path.join(tmp, "a")), "datatrove": datatrove_filter(domains, substrings)},
                docs, args.rounds)

        sample = urls[:200_000]
        print(f"\nours, one list at a time, on {len(sample):,} URLs:")
        for blocklist in all_lists:
            match = load_blocklists([blocklist]).match
            start = time.perf_counter()
            blocked = sum(match(url) is not None for url in sample)
            print(f"  {blocklist.kind:<12} {len(sample) / (time.perf_counter() - start):>10,.0f} URLs/s  blocked {blocked:,}")


if __name__ == "__main__":
    main()
