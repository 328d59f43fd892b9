"""The CAT-grade content filters in whole runs: URL blocklists, flagged words and decontamination in
`aurora curate` (a web recipe and the code recipe with HumanEval) and decontamination of a stage's
instruction sources in `aurora mix`; the manifests list the evaluation sets; bad lists and
evaluation files stop a run with one line before any work; a refilter of a run with URL lists and
flagged words writes what a full run writes."""

import gzip
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import ROOT, demo_records

from filters.decontamination import DecontaminationConfig
from manifests.audit import audit
from manifests.manifest import load_manifest
from pipeline.curate import curate
from pipeline.mix import load_stage_recipe, mix
from pipeline.recipe import load_recipe
from pipeline.refilter import refilter

HUMANEVAL = "assets/eval/humaneval.jsonl.gz"
EVAL_ITEMS = [  # a small reading-comprehension set of our own, 13-gram decontamination
    {"id": "q-1", "question": "Which river flows through the old market town where the annual lantern festival is held every autumn?",
     "answer": "The Silverbrook river, which the townspeople cross on seven wooden bridges during the festival."},
    {"id": "q-2", "question": "Why did the village council decide to rebuild the stone library after the great storm of that winter?",
     "answer": "Because the archive of parish records kept in its cellar was the only copy of the region's history."},
    {"id": "q-3", "question": "What did the young astronomer discover while cataloguing faint comets from the mountain observatory?",
     "answer": "A slowly moving object beyond the orbit of the outer planets that nobody had recorded before."},
]


def _write_jsonl_gz(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in records))


def _rejects(run: Path, step: str) -> list[dict]:
    return [orjson.loads(line) for path in sorted((run / "rejects" / step).glob("*.jsonl.gz")) for line in gzip.open(path)]


def _kept_ids(run: Path) -> list[str]:
    return [r["id"] for path in sorted(run.glob("signals/0*.parquet")) for r in pq.read_table(path).to_pylist() if r["removed_by"] is None]


def _recipe(workspace: Path, base: str, name: str, change) -> str:
    data = yaml.safe_load((workspace / "recipes" / "demo" / f"{base}.yaml").read_text())
    change(data)
    path = workspace / "recipes" / "demo" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return f"recipes/demo/{name}.yaml"


@pytest.fixture(scope="module")
def lists(workspace) -> dict[str, str]:
    """Blocklists, the shipped example flagged-words list and the evaluation set, in the workspace."""
    folder = workspace / "lists"
    folder.mkdir(exist_ok=True)
    (folder / "domains.txt").write_text("# blocked sites\ntracker-bad.com\n0.0.0.0 spam.example.net\n")
    (folder / "patterns.txt").write_text("casino[-_]bonus\n")
    (folder / "trivia.jsonl").write_text("".join(orjson.dumps(item).decode() + "\n" for item in EVAL_ITEMS))
    return {"domains": "lists/domains.txt", "patterns": "lists/patterns.txt", "trivia": "lists/trivia.jsonl",
            "flagged": str(ROOT / "recipes" / "lists" / "flagged_words" / "en.txt")}


def _web_filters(lists: dict[str, str], max_ratio: float = 0.004):
    def change(data):
        data["url_filter"] = {"lists": [{"name": "blocked-sites", "domains": lists["domains"]},
                                        {"name": "spam-patterns", "patterns": lists["patterns"]}]}
        data["flagged_words"] = {"list": lists["flagged"], "max_ratio": max_ratio}
        data["decontamination"] = {"sets": [{"name": "trivia", "path": lists["trivia"], "fields": ["question", "answer"], "id": "id"}]}
        del data["quality"]  # its top fraction of these few documents would remove one more
    return change


@pytest.fixture(scope="module")
def web_input(workspace, demo_runs) -> Path:
    """Documents the demo en run keeps, with URLs, and five planted ones: a blocked site's subdomain,
    a URL matching a pattern, flagged words, an evaluation item's answer, and no URL at all."""
    kept = set(_kept_ids(workspace / "out" / "demo" / "en"))
    records = [r for r in demo_records(workspace, "en") if r.get("id") in kept][:30]
    flagged = [w.strip() for w in Path(ROOT / "recipes" / "lists" / "flagged_words" / "en.txt").read_text().splitlines()
               if w.strip() and not w.startswith("#") and " " not in w.strip()][:2]
    planted = {
        records[0]["id"]: "https://ads.tracker-bad.com/landing?x=1",
        records[1]["id"]: "http://news.example.org/casino-bonus/today",
    }
    out = []
    for i, record in enumerate(records):
        record = dict(record, url=planted.get(record["id"], f"https://site{i}.example.org/page/{i}"))
        if i == 2:
            record["text"] += f" Some readers called it {flagged[0]} and {flagged[1]}."
        if i == 3:
            record["text"] += " " + EVAL_ITEMS[1]["answer"]
        if i == 4:
            del record["url"]
        out.append(record)
    path = workspace / "data" / "content" / "web.jsonl.gz"
    _write_jsonl_gz(path, out)
    return path


def test_a_web_run_removes_blocked_urls_flagged_words_and_contaminated_documents(in_workspace, lists, web_input, tmp_path):
    records = [orjson.loads(line) for line in gzip.open(web_input)]
    recipe = _recipe(in_workspace, "en", "en-content", _web_filters(lists))
    manifest = curate(load_recipe(recipe), inputs=[str(web_input)], output=str(tmp_path / "run"), workers=2)
    run = tmp_path / "run"
    removed = manifest["funnel"]["removed"]
    assert removed["url.blocked-sites"] == 1 and removed["url.spam-patterns"] == 1
    assert removed["flagged_words.max_ratio"] == 1 and removed["decontamination.trivia"] == 1
    assert {(r["id"], r["reason"]) for r in _rejects(run, "url")} == {
        (records[0]["id"], "url.blocked-sites"), (records[1]["id"], "url.spam-patterns")}
    [flagged] = _rejects(run, "flagged_words")
    assert flagged["id"] == records[2]["id"] and flagged["reason"] == "flagged_words.max_ratio"
    [contaminated] = _rejects(run, "decontamination")
    assert contaminated["id"] == records[3]["id"] and contaminated["reason"] == "decontamination.trivia"
    assert contaminated["metadata"]["decontamination.item"] == "q-2"
    assert records[4]["id"] in _kept_ids(run), "a document without a URL is kept"
    assert manifest["funnel"]["kept"] == len(records) - 4
    digest = hashlib.sha256((in_workspace / lists["trivia"]).read_bytes()).hexdigest()
    assert [{k: v for k, v in s.items() if k != "path"} for s in manifest["decontamination"]] == [
        {"name": "trivia", "sha256": digest, "items": 3, "too_short": 0}]
    rows = {r["id"]: r for path in sorted(run.glob("signals/0*.parquet")) for r in pq.read_table(path).to_pylist()}
    assert rows[records[2]["id"]]["flagged_words.ratio"] > 0.004 and rows[records[5]["id"]]["flagged_words.ratio"] == 0
    assert rows[records[3]["id"]]["decontamination.item"] == "q-2"
    assert audit(*load_manifest(str(run))) == []


def _humaneval(workspace) -> list[dict]:
    return [orjson.loads(line) for line in gzip.open(workspace / HUMANEVAL)]


def test_the_code_pool_loses_planted_humaneval_solutions_and_keeps_the_standard_library(in_workspace, demo_runs, tmp_path):
    problems = _humaneval(in_workspace)[:3]
    planted = [{"id": f"planted-{i}", "text": f"import math\n\n\n{p['prompt']}{p['canonical_solution']}\n\nprint('done')\n",
                "path": f"solutions/task_{i}.py"} for i, p in enumerate(problems)]
    path = in_workspace / "data" / "content" / "planted.jsonl.gz"
    _write_jsonl_gz(path, planted)
    inputs = sorted(str(p) for p in (in_workspace / "data" / "demo" / "code").glob("*.jsonl.gz")) + [str(path)]
    recipe = load_recipe("recipes/demo/code.yaml")
    assert [s.name for s in recipe.filter(DecontaminationConfig).sets] == ["humaneval"], "the demo code recipe decontaminates against HumanEval"
    manifest = curate(recipe, inputs=inputs, output=str(tmp_path / "code"), workers=2)
    rejects = _rejects(tmp_path / "code", "decontamination")
    assert sorted((r["id"], r["metadata"]["decontamination.item"]) for r in rejects) == [
        (f"planted-{i}", p["task_id"]) for i, p in enumerate(problems)]
    demo = demo_runs["code"]  # the same recipe on the standard library alone: nothing else is removed
    assert manifest["funnel"]["kept"] == demo["funnel"]["kept"]
    assert manifest["funnel"]["removed"] == {**demo["funnel"]["removed"], "decontamination.humaneval": 3}
    assert manifest["decontamination"][0]["items"] == 164


def test_mix_decontaminates_instruction_sources(in_workspace, demo_runs, tmp_path):
    problem = _humaneval(in_workspace)[0]
    demo = (in_workspace / "data" / "demo" / "instructions" / "instructions.jsonl").read_bytes()  # its bad records too
    leaked = {"id": "leaked", "prompt": "Complete this function.", "response": problem["prompt"] + problem["canonical_solution"]}
    (in_workspace / "data" / "content" / "instructions").mkdir(parents=True, exist_ok=True)
    (in_workspace / "data" / "content" / "instructions" / "instructions.jsonl").write_bytes(demo + orjson.dumps(leaked) + b"\n")
    data = yaml.safe_load((in_workspace / "recipes" / "demo" / "cat.yaml").read_text())
    for component in data["components"]:
        if component["name"] == "instructions":
            component["instructions"] = "data/content/instructions/*.jsonl"
    data["output"] = str(tmp_path / "cat")
    assert data["decontamination"]["sets"][0]["name"] == "humaneval", "the demo CAT recipe decontaminates its instruction sources"
    path = in_workspace / "recipes" / "demo" / "cat-leaked.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    _, manifest = mix(load_stage_recipe(str(path)), workers=2)
    pool, _ = load_manifest(str(tmp_path / "cat" / "sources" / "instructions"))
    assert pool["funnel"]["removed"].get("decontamination.humaneval") == 1
    [reject] = _rejects(tmp_path / "cat" / "sources" / "instructions", "decontamination")
    assert reject["id"] == "leaked" and reject["metadata"]["decontamination.item"] == problem["task_id"]
    safety, _ = load_manifest(str(tmp_path / "cat" / "sources" / "safety"))
    assert "decontamination.humaneval" not in safety["funnel"]["removed"]
    assert [s["name"] for s in manifest["decontamination"]] == ["humaneval"] and manifest["decontamination"][0]["items"] == 164
    assert audit(manifest, load_manifest(str(tmp_path / "cat"))[1]) == []


@pytest.mark.parametrize("what, content, message", [
    ("domains", "tracker-bad.com\nnot a domain at all!\n", r"domains\.txt:2: "),
    ("flagged", "# words\n!!!\n", r"flagged\.txt:2: "),
    ("trivia", '{"id": "q-1", "question": "a", "answer": "b"}\n{"id": "q-2", "question": 5, "answer": "c"}\n', r"trivia\.jsonl:2: "),
])
def test_a_bad_list_or_evaluation_file_is_one_line_before_any_work(in_workspace, lists, tmp_path, what, content, message):
    bad = dict(lists)
    bad[what] = str(tmp_path / Path(lists[what]).name.replace("en.txt", "flagged.txt"))
    Path(bad[what]).write_text(content)
    recipe = _recipe(in_workspace, "en", f"en-bad-{what}", _web_filters(bad))
    result = subprocess.run([sys.executable, "-m", "aurora.cli", "curate", recipe, "--output", str(tmp_path / "run")],
                            capture_output=True, text=True, cwd=in_workspace)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aurora: error: ") and re.search(message, lines[0])
    assert not (tmp_path / "run").exists(), "nothing was started"


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.relative_to(run).parts[0] != "logs" and p.name != ".lock"}


def test_a_refilter_with_url_lists_and_flagged_words_equals_a_full_run(in_workspace, lists, web_input, tmp_path):
    no_decontamination = _web_filters(lists)

    def change(data, max_ratio):
        no_decontamination(data)
        del data["decontamination"]
        data["flagged_words"]["max_ratio"] = max_ratio
    first = _recipe(in_workspace, "en", "en-urls", lambda d: change(d, 0.5))
    run = curate(load_recipe(first), inputs=[str(web_input)], output=str(tmp_path / "run"), workers=2)
    assert "flagged_words.max_ratio" not in run["funnel"]["removed"]
    tighter = _recipe(in_workspace, "en", "en-urls-tighter", lambda d: change(d, 0.004))
    refiltered = refilter(load_recipe(tighter), str(tmp_path / "run"), output=str(tmp_path / "refilter"), workers=2)
    full = curate(load_recipe(tighter), inputs=[str(web_input)], output=str(tmp_path / "full"), workers=2)
    assert refiltered == full and full["funnel"]["removed"]["flagged_words.max_ratio"] == 1
    assert full["funnel"]["removed"]["url.blocked-sites"] == 1
    assert _files(tmp_path / "refilter") == _files(tmp_path / "full")
