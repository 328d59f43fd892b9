"""report.html: the report to browse, checked in a real headless Chromium (Debian's `chromium`),
driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: no port, no download)."""

import base64
import gzip
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import orjson
import pytest

from aurora.cli import main
from manifests.report_html import EXCERPT, SAMPLE, _e, _text, metric_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSED = ("en", "hi", "ja", "vi", "code")
HOSTILE_ID = 'hostile"><script>window.__pwned = 1</script>'
HOSTILE_TEXT = ("</td></tr></table><script>window.__pwned = 2</script><img src=x onerror=\"window.__pwned = 3\">"
                "'\"&amp; \u0000 bell\u0007 ok")


class Chromium:
    """A headless Chromium and one page in it; commands and their replies are NUL-terminated JSON
    on fds 3 (to the browser) and 4 (from it). Every event is kept, so the test can look for
    exceptions and console errors after the fact."""

    def __init__(self, profile: Path):
        to_browser, from_browser = os.pipe(), os.pipe()
        self.commands, replies = to_browser[1], from_browser[0]
        ends = (to_browser[0], from_browser[1])

        def wire_fds():  # in the child: its ends of the pipes as fds 3 and 4 (dup2 leaves them inheritable)
            high = [os.dup(fd) for fd in ends]  # out of 3 and 4's way first
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check", "--mute-audio",
             "--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in ends:
            os.close(fd)
        self.messages, self.events, self.next_id = {}, [], 0
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, args=(replies,), daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def _read(self, fd: int) -> None:
        buffer = b""
        while chunk := os.read(fd, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self.arrived:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self.messages[message["id"]] = message
                    else:
                        self.events.append(message)
                self.arrived.notify_all()

    def send(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        with self.arrived:
            if not self.arrived.wait_for(lambda: self.next_id in self.messages, timeout):
                raise TimeoutError(f"{method}: no reply from chromium in {timeout} s")
            reply = self.messages.pop(self.next_id)
        assert "error" not in reply, (method, reply["error"])
        return reply["result"]

    def open(self, url: str, timeout: float = 60) -> None:
        """Load `url` afresh (by way of about:blank: a change of the hash alone would not load the page again)."""
        for address in ("about:blank", url):
            with self.arrived:
                seen = len(self.events)
            self.send("Page.navigate", session=True, url=address)
            with self.arrived:
                loaded = self.arrived.wait_for(lambda: any(e["method"] == "Page.loadEventFired" for e in self.events[seen:]), timeout)
            assert loaded, f"{address} did not load in {timeout} s"

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Exceptions thrown in the page, console errors, and the browser's own error entries (a
        script refused by the page's Content-Security-Policy, an image that failed to load)."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("exception", {}).get("description") or params["exceptionDetails"]["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def screenshot(self, path: Path, selector: str) -> None:
        """A PNG of the element `selector` (its whole box, beyond the window if need be)."""
        box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect(); "
                            "return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()")
        clip = {"x": box[0], "y": box[1], "width": box[2], "height": min(box[3], 4000), "scale": 1}
        data = self.send("Page.captureScreenshot", session=True, format="png", clip=clip, captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.commands)


@pytest.fixture
def browser(tmp_path):
    chromium = Chromium(tmp_path / "profile")
    yield chromium
    chromium.close()


def _hostile_copy(run: Path, target: Path) -> dict:
    """A copy of a pool whose first reject has a hostile id and text: what the page must show as text."""
    shutil.copytree(run, target, ignore=lambda folder, names: {"logs", "dedup"} & set(names) if Path(folder) == run else set())
    first = sorted(target.glob("rejects/*/*.jsonl.gz"))[0]
    lines = gzip.decompress(first.read_bytes()).splitlines()
    record = orjson.loads(lines[0])
    record.update(id=HOSTILE_ID, text=HOSTILE_TEXT)
    first.write_bytes(gzip.compress(b"\n".join([orjson.dumps(record), *lines[1:]]) + b"\n", mtime=0))
    return record


def _report(paths: list[str], output: Path) -> Path:
    assert main(["manifest", "report", *paths, "--output", str(output)]) == 0
    return output / "report.html"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it: apt-get install chromium)")
def test_report_html_in_a_browser(in_workspace, demo_runs, browser, tmp_path):
    hostile = _hostile_copy(in_workspace / "out" / "demo" / "en", tmp_path / "hostile" / "en")
    paths = [str(tmp_path / "hostile" / "en")] + [f"out/demo/{lang}" for lang in BROWSED if lang != "en"]
    page = _report(paths, tmp_path / "report")
    raw = page.read_bytes()
    assert b"<script>window.__pwned" not in raw and b"onerror=\"window" not in raw
    assert b'<meta charset="utf-8">' in raw and b"Noto Sans Devanagari" in raw and b"Noto Sans CJK JP" in raw

    browser.open(page.as_uri())
    assert browser.errors() == []
    assert browser.evaluate("document.documentElement.getAttribute('data-ready')") == "1"
    assert browser.evaluate("document.documentElement.getAttribute('data-error')") is None
    assert browser.evaluate("typeof window.__pwned") == "undefined"

    for lang in BROWSED:
        manifest = json.loads((Path(paths[BROWSED.index(lang)]) / "manifest.json").read_text())
        funnel = manifest["funnel"]
        counts = {"kept": funnel["kept"], **funnel["removed"], **funnel["malformed"]}
        section = f"section.pool[lang='{lang}']"
        rows = browser.evaluate(f"Array.from(document.querySelectorAll(\"{section} table.funnel tbody tr\"))"
                                ".map(r => [r.dataset.reason, r.cells[2].textContent])")
        assert sorted(rows) == sorted([reason, f"{n:,}"] for reason, n in counts.items()), lang
        shown = browser.evaluate(f"Object.fromEntries(Array.from(document.querySelectorAll(\"{section} details.docs\"))"
                                 ".map(d => [d.dataset.reason, d.querySelectorAll('tr[data-id]').length]))")
        assert shown == {reason: min(n, SAMPLE) for reason, n in counts.items()}, lang
        kept_texts = browser.evaluate(f"Array.from(document.querySelectorAll(\"{section} details[data-reason='kept'] td.text\"))"
                                      ".map(td => td.textContent)")
        assert len(kept_texts) == min(funnel["kept"], SAMPLE) and all(kept_texts), lang
        if lang != "code":
            assert browser.evaluate(f"document.querySelectorAll(\"{section} svg.chart line.threshold\").length") > 0, lang

    # A heuristic rule's documents: the value against the recorded threshold, beyond it.
    en = "section.pool[lang='en']"
    rule = browser.evaluate(f"Array.from(document.querySelectorAll(\"{en} table.funnel tbody tr\"))"
                            ".filter(r => r.cells[4].textContent && r.dataset.reason.includes('.'))"
                            ".map(r => [r.dataset.reason, r.cells[5].textContent])[0]")
    assert rule is not None
    values = browser.evaluate(f"Array.from(document.querySelectorAll(\"{en} details[data-reason='{rule[0]}'] tr[data-id]\"))"
                              ".map(r => [r.cells[1].textContent, r.cells[2].textContent])")
    assert values and all(threshold == rule[1] and value for value, threshold in values)

    # The hostile reject is text on the page, under its reason, intact (its NUL and bell shown as U+FFFD).
    rows = browser.evaluate(f"Array.from(document.querySelectorAll(\"{en} tr[data-id]\"))"
                            ".map(r => [r.closest('details').dataset.reason, r.dataset.id, r.cells[0].textContent, r.cells[3].textContent])")
    assert [hostile["reason"], HOSTILE_ID, HOSTILE_ID, HOSTILE_TEXT.replace("\u0000", "\ufffd").replace("\u0007", "\ufffd")] in rows
    assert browser.evaluate("document.querySelectorAll('tr[data-id] img, tr[data-id] script').length") == 0

    # Search by id: typing narrows the rows to the matching ones, across pools; clearing shows all.
    total = browser.evaluate("document.querySelectorAll('tr[data-id]').length")
    some_id = browser.evaluate(f"document.querySelector(\"{en} details[data-reason='kept'] tr[data-id]\").dataset.id")
    search = ("(q => { const s = document.getElementById('search'); s.value = q; s.dispatchEvent(new Event('input')); "
              "return Array.from(document.querySelectorAll('tr[data-id]')).filter(r => !r.hidden).map(r => r.dataset.id); })")
    assert browser.evaluate(f"{search}({json.dumps(some_id)})") == [some_id]
    assert browser.evaluate(f"{search}({json.dumps(HOSTILE_ID[:12].upper())})") == [HOSTILE_ID]
    assert browser.evaluate(f"{search}('no such document id')") == []
    assert browser.evaluate("document.getElementById('matches').textContent") == "0 documents match"
    assert len(browser.evaluate(f"{search}('')")) == total

    # A search in the address (#q=...) is applied when the page opens.
    browser.open(page.as_uri() + "#q=" + some_id.replace("%", "%25").replace(" ", "%20"))
    assert browser.evaluate("Array.from(document.querySelectorAll('tr[data-id]')).filter(r => !r.hidden).length") == 1
    assert browser.errors() == []

    # Japanese, Hindi and Vietnamese documents: screenshots to look at (tests/test_report.py's note).
    shots = Path(os.environ.get("AURORA_REPORT_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    browser.open(page.as_uri())
    browser.evaluate("document.querySelectorAll(\"details[data-reason='kept']\").forEach(d => d.open = true)")
    for lang in ("en", "ja", "hi", "vi"):
        browser.screenshot(shots / f"kept_{lang}.png", f"section.pool[lang='{lang}'] details[data-reason='kept']")
        assert (shots / f"kept_{lang}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    browser.screenshot(shots / "funnel_ja.png", "section.pool[lang='ja']")
    assert browser.errors() == []


def test_report_html_is_deterministic(in_workspace, demo_runs, tmp_path):
    paths = [f"out/demo/{lang}" for lang in ("ja", "code")]
    first, second = _report(paths, tmp_path / "a"), _report(paths, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_document_text_is_escaped_and_cleaned():
    assert _e('<script>alert("x")</script>') == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert _e("it's & \u00e9\u0928\u093f\u65e5") == "it&#x27;s &amp; \u00e9\u0928\u093f\u65e5"
    assert _text("lone \ud800 surrogate \udfff, pair \U0001F600") == "lone \ufffd surrogate \ufffd, pair \U0001F600"
    assert _text("nul\u0000 esc\u001b del\u007f tab\t crlf\r\nline") == "nul\ufffd esc\ufffd del\ufffd tab\t crlf\nline"
    assert EXCERPT > 100


def test_rules_map_to_their_metric_columns():
    columns = ["language_score", "gopher_quality.doc_words", "web_ratios.lexical_diversity", "perplexity"]
    assert metric_of("gopher_quality.min_doc_words", columns) == "gopher_quality.doc_words"
    assert metric_of("web_ratios.min_lexical_diversity", columns) == "web_ratios.lexical_diversity"
    assert metric_of("low_language_score", columns) == "language_score"
    assert metric_of("perplexity.max_perplexity", columns) == "perplexity"
    assert metric_of("wrong_language", columns) is None and metric_of("exact_duplicate", columns) is None
    quality = columns + ["quality.score", "gopher_quality.stop_words"]
    assert metric_of("quality.min_score", quality) == metric_of("quality.keep_top_fraction", quality) == "quality.score"
    assert metric_of("gopher_quality.some_rule", quality) is None and metric_of("url.adult", quality) is None
