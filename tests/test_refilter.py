"""Signals and `aurora refilter`: a changed recipe applied to a run's signals writes what a full
curate run of it writes, byte for byte; what the signals lack is refused; the signals are audited."""

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import curate_demo

from aurora.cli import main
from core.config import integer, section
from core.errors import AuroraError
from filters.base import FilterConfig, RecipeFilter, Removal
from filters.flagged_words import FlaggedWordsConfig
from filters.perplexity import PerplexityConfig
from pipeline.curate import curate
from pipeline.recipe import load_recipe
from pipeline.refilter import refilter

LANGUAGES = ("en", "fi")


@pytest.fixture(scope="module")
def runs(workspace, tmp_path_factory):
    """en and fi demo runs with their signals, from inside the workspace."""
    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as m:
        m.chdir(workspace)
        for lang in LANGUAGES:
            curate_demo(lang, out / lang)
    return out


def signals(run: Path) -> list[dict]:
    return [row for path in sorted(run.glob("signals/0*.parquet")) for row in pq.read_table(path).to_pylist()]


def variant(workspace, lang: str, name: str, change) -> str:
    """The demo recipe of `lang` with `change(recipe data)` applied, as recipes/demo/<name>.yaml."""
    data = yaml.safe_load((workspace / "recipes" / "demo" / f"{lang}.yaml").read_text())
    change(data)
    path = workspace / "recipes" / "demo" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return f"recipes/demo/{name}.yaml"


def run_files(run: Path) -> dict[str, bytes]:
    """Every file of a run but its logs (which hold times) and its lock."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.relative_to(run).parts[0] != "logs" and p.name != ".lock"}


def tighten(lang: str, runs: Path):
    """min_lexical_diversity at the 30th percentile of the kept documents: a third of them go, and
    the duplicates of the first copies that go are kept instead (dedup's clusters change). The
    quality classifier's cut-off is pinned to the run's (README, "Signals and refilter"): its top
    fraction of what the tighter rules leave could be a lower cut-off, letting documents that the
    run removed before dedup reach it."""
    kept = [r["web_ratios.lexical_diversity"] for r in signals(runs / lang) if r["removed_by"] is None]
    threshold = float(np.percentile(kept, 30))
    cutoff = orjson.loads((runs / lang / "manifest.json").read_bytes())["cutoffs"]["quality"]["cutoff"]

    def change(data):
        data["heuristics"]["web_ratios"]["min_lexical_diversity"] = threshold
        data["quality"] = {"model": data["quality"]["model"], "label": "hq", "mode": "min_score", "min_score": cutoff}
    return change


def loosen(data):
    """max_dup_line_frac disabled: what it removed, max_dup_line_char_frac removes (same group,
    its metrics are stored), so the rejects' reasons change and nothing needs a metric never computed."""
    data["heuristics"]["gopher_repetition"]["max_dup_line_frac"] = None


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("how", ["tightened", "loosened"])
def test_refilter_equals_a_full_run(in_workspace, runs, tmp_path, lang, how):
    recipe = variant(in_workspace, lang, f"{lang}-{how}", tighten(lang, runs) if how == "tightened" else loosen)
    refiltered = refilter(load_recipe(recipe), str(runs / lang), output=str(tmp_path / "refilter"), workers=2)
    full = curate(load_recipe(recipe), output=str(tmp_path / "full"), workers=2)
    assert refiltered == full
    expected = run_files(tmp_path / "full")
    assert run_files(tmp_path / "refilter") == expected
    before = orjson.loads((runs / lang / "manifest.json").read_bytes())["funnel"]
    assert full["funnel"] != before  # the change changed something
    names = [str(p.relative_to(tmp_path / "full")) for p in sorted((tmp_path / "full" / "dedup" / "names").glob("*.bin"))]
    same_dedup_input = all((runs / lang / n).read_bytes() == expected[n] for n in names)
    if how == "tightened":  # documents leave before dedup: its input and clusters change
        assert full["funnel"]["kept"] < before["kept"]
        assert "web_ratios.min_lexical_diversity" in full["funnel"]["removed"]
        assert not same_dedup_input
    else:  # the same documents reach dedup, removed by another rule of the group
        assert "gopher_repetition.max_dup_line_frac" not in full["funnel"]["removed"]
        assert full["funnel"]["kept"] == before["kept"]
        assert same_dedup_input


def test_refilter_without_dedup_equals_a_full_run(in_workspace, runs, tmp_path):
    """Dropping dedup: one pass, the replayed filters straight into the shards (with the kept
    documents' tokens from the run's shards, and the duplicates it removed tokenized)."""
    def change(data):
        tighten("en", runs)(data)
        del data["dedup"]
    recipe = variant(in_workspace, "en", "en-no-dedup", change)
    refiltered = refilter(load_recipe(recipe), str(runs / "en"), output=str(tmp_path / "refilter"), workers=2)
    full = curate(load_recipe(recipe), output=str(tmp_path / "full"), workers=2)
    assert refiltered == full and "exact_duplicate" not in full["funnel"]["removed"]
    assert run_files(tmp_path / "refilter") == run_files(tmp_path / "full")


def test_refilter_equals_a_full_run_in_row_groups(in_workspace, runs, tmp_path, monkeypatch):
    """Tasks with more documents than a row group: the filter signals are split the same way
    whether the filters ran (documents finishing in any order) or were replayed."""
    import pipeline.signals

    monkeypatch.setattr(pipeline.signals, "ROWS_PER_GROUP", 37)  # workers=1: the tasks run in this process
    monkeypatch.setattr(pipeline.signals, "ROWS_PER_BATCH", 10)  # rows wait in batches that do not divide a group
    recipe = variant(in_workspace, "en", "en-groups", tighten("en", runs))
    refiltered = refilter(load_recipe(recipe), str(runs / "en"), output=str(tmp_path / "refilter"), workers=1)
    full = curate(load_recipe(recipe), output=str(tmp_path / "full"), workers=1)
    assert refiltered == full
    assert pq.ParquetFile(tmp_path / "full" / "signals" / "filter" / "00000.parquet").metadata.num_row_groups > 2
    assert run_files(tmp_path / "refilter") == run_files(tmp_path / "full")


def test_refilter_of_ids_held_twice_equals_a_full_run(in_workspace, tmp_path):
    """A task holding ids twice, with other texts and other fates (kept by one, removed by another
    rule, removed by the same rule in a row; exact copies): each document gets its own text, from
    the run's streamed rejects and dedup documents, never another's."""
    from conftest import demo_records

    records = demo_records(in_workspace, "en")[:240]
    for i in range(1, len(records), 3):  # every third document takes the id of the one before it
        records[i] = {**records[i], "id": records[i - 1]["id"]}
    records += [dict(records[0]), dict(records[7])]  # exact copies, ids included
    inputs = tmp_path / "twice.jsonl.gz"
    inputs.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records), mtime=0))
    (tmp_path / "runs" / "en").parent.mkdir()
    run = tmp_path / "runs" / "en"
    curate(load_recipe("recipes/demo/en.yaml"), inputs=[str(inputs)], output=str(run), workers=1)

    def change(data):
        tighten("en", run.parent)(data)
        loosen(data)
    recipe = variant(in_workspace, "en", "en-twice", change)
    refiltered = refilter(load_recipe(recipe), str(run), output=str(tmp_path / "refilter"), workers=1)
    full = curate(load_recipe(recipe), inputs=[str(inputs)], output=str(tmp_path / "full"), workers=1)
    assert refiltered == full
    assert run_files(tmp_path / "refilter") == run_files(tmp_path / "full")
    fates: dict[str, list] = {}
    for row in signals(tmp_path / "full"):
        fates.setdefault(row["id"], []).append(row["removed_by"])
    twice = [f for f in fates.values() if len(f) > 1]
    assert any(None in f and set(f) != {None} for f in twice)  # one kept, the other removed
    assert any(len(set(f)) == 1 and f[0] is not None for f in twice)  # both removed by the same rule
    assert any(len(set(f) - {None}) == 2 for f in twice)  # removed by two rules


SIGNALS_ROWS = pa.schema([("id", pa.string()), ("score", pa.float64()), ("words", pa.int64()), ("removed_by", pa.string())])


def signals_rows(count: int, id_length: int = 1) -> list[dict]:
    rng = np.random.default_rng(count)
    return [{"id": f"d{i:0{id_length}d}", **({"score": float(rng.random())} if rng.random() < 0.8 else {}),
             "words": int(rng.integers(1000)), "removed_by": [None, "gopher_quality.min_doc_words"][i % 2]} for i in range(count)]


def assert_row_groups_write_the_rows_in_groups(folder: Path, rows: list[dict], group: int) -> None:
    """The rows through `RowGroups` (the first half appended as rows, as a filter pass does; the
    rest added as Arrow tables of 7, as a task's signals file does) are the bytes of the rows
    written group by group at once, and never wait a group's worth (a task's signals memory); a
    file without rows has one empty group, or none."""
    import pipeline.signals
    from pipeline.signals import RowGroups

    count, schema = len(rows), SIGNALS_ROWS
    with pq.ParquetWriter(folder / "grouped.parquet", schema, compression="zstd") as writer:
        groups = RowGroups(writer, schema)
        for row in rows[: count // 2]:
            groups.append(row)
            assert groups.held < group and len(groups.rows) < pipeline.signals.ROWS_PER_BATCH
        for start in range(count // 2, count, 7):
            groups.add(pa.Table.from_pylist(rows[start : start + 7], schema=schema))
            assert groups.held < group and not groups.rows
        groups.close()
    with pq.ParquetWriter(folder / "at_once.parquet", schema, compression="zstd") as writer:
        for start in range(0, max(count, 1), group):
            writer.write_table(pa.Table.from_pylist(rows[start : start + group], schema=schema))
    assert (folder / "grouped.parquet").read_bytes() == (folder / "at_once.parquet").read_bytes()
    assert pq.ParquetFile(folder / "grouped.parquet").metadata.num_row_groups == max(1, -(-count // group))
    with pq.ParquetWriter(folder / "without.parquet", schema) as writer:
        groups = RowGroups(writer, schema)
        for row in rows:
            groups.append(row)
        groups.close(empty_group=False)
    assert pq.ParquetFile(folder / "without.parquet").metadata.num_row_groups == -(-count // group)


@pytest.mark.parametrize("group, batch", [(37, 10), (37, 37), (37, 100), (64, 16)])
@pytest.mark.parametrize("count", [0, 1, 36, 37, 38, 200])
def test_row_groups_are_the_bytes_of_the_rows_in_groups(tmp_path, monkeypatch, group, batch, count):
    """Rows kept as Arrow batches while their group fills: whatever the batch size, the rows
    missing a column, the count."""
    import pipeline.signals

    monkeypatch.setattr(pipeline.signals, "ROWS_PER_GROUP", group)
    monkeypatch.setattr(pipeline.signals, "ROWS_PER_BATCH", batch)
    assert_row_groups_write_the_rows_in_groups(tmp_path, signals_rows(count), group)


def test_row_groups_of_many_pages_are_the_bytes_of_the_rows_in_groups(tmp_path, monkeypatch):
    """Groups of the real size whose columns fill several pages (ids of 200 characters): the writer
    cuts pages where a table's chunks end, so batches of 1,000 rows, which do not line up with
    its steps of 1,024, must still be written as the rows in one chunk."""
    import pipeline.signals

    monkeypatch.setattr(pipeline.signals, "ROWS_PER_BATCH", 1000)
    assert_row_groups_write_the_rows_in_groups(tmp_path, signals_rows(pipeline.signals.ROWS_PER_GROUP + 4_000, 199),
                                               pipeline.signals.ROWS_PER_GROUP)


@pytest.mark.parametrize("damaged", ["shards", "dedup"])
def test_a_damaged_run_is_not_copied(in_workspace, runs, tmp_path, capsys, damaged):
    """What a refilter copies from the run is checked first, against the manifest's sha256, and
    refused before any work: its shards, dedup's documents."""
    run = tmp_path / "en"
    shutil.copytree(runs / "en", run)
    if damaged == "shards":
        path = sorted(run.glob("shards/*.bin"))[0]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:  # a readable file whose one text is not what the run read
        path = run / "dedup" / "docs" / "00000.parquet"
        rows = pq.read_table(path).to_pylist()
        rows[len(rows) // 2]["text"] += " changed"
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)
    recipe = variant(in_workspace, "en", "en-damaged", tighten("en", runs))
    line = _refused(capsys, "refilter", recipe, "--from", str(run), "--output", str(tmp_path / "new"))
    if damaged == "shards":
        assert "differs from its manifest's sha256" in line
    else:
        assert "dedup files cannot be trusted: dedup/docs/00000.parquet: sha256 differs from the manifest" in line
    assert not (tmp_path / "new").exists()


def test_a_shard_changed_after_the_checks_fails_its_task(in_workspace, runs, tmp_path, monkeypatch):
    """The tokenize pass hashes each of the run's shards as it reads them, to its end: one that
    changed after the checks made before any work (here: not checked at all) fails its task, and
    the new run writes no manifest."""
    import pipeline.tokenize

    run = tmp_path / "en"
    shutil.copytree(runs / "en", run)
    path = sorted(run.glob("shards/*.bin"))[-1]  # a task's last shard, its last document's EOD
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    monkeypatch.setattr(pipeline.tokenize.StoredTokens, "check", lambda self: None)  # workers=1: the tasks run in this process
    recipe = variant(in_workspace, "en", "en-changed", tighten("en", runs))
    with pytest.raises(AuroraError, match=r"tokenize: 1 of \d+ tasks did not complete .*\.bin differs from its manifest's sha256"):
        refilter(load_recipe(recipe), str(run), output=str(tmp_path / "new"), workers=1)
    assert not (tmp_path / "new" / "manifest.json").exists()


def test_signals_hold_every_metric_up_to_the_removal(runs):
    rows = signals(runs / "en")
    manifest = orjson.loads((runs / "en" / "manifest.json").read_bytes())
    assert len(rows) == sum(f["documents"] for f in manifest["signals"]["files"])
    kept = [r for r in rows if r["removed_by"] is None]
    assert len(kept) == manifest["funnel"]["kept"]
    assert sum(r["tokens"] for r in kept) == manifest["totals"]["tokens"]
    assert all(v is not None for r in kept for k, v in r.items() if not k.startswith("removed_"))
    repetition = [r for r in rows if r["removed_by"] == "gopher_repetition.max_dup_line_frac"]
    assert repetition and all(r["removed_value"] > r["removed_threshold"] == 0.3 for r in repetition)
    assert all(r["gopher_quality.doc_words"] is not None and r["fineweb.line_punct_ratio"] is None for r in repetition)
    duplicates = [r for r in rows if r["removed_by"] in ("exact_duplicate", "near_duplicate")]
    assert duplicates and all(r["dedup"] == r["removed_by"] and r["cluster_size"] >= 2 and r["tokens"] is None for r in duplicates)


def _refused(capsys, *args) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aurora: error: ")
    return err[0]


def test_a_refilter_needing_metrics_the_run_lacks_is_refused(in_workspace, runs, tmp_path, capsys):
    def admit_low_scores(data):  # documents removed at language ID would reach the heuristics
        data["langid"]["min_score"] = 0.0
    recipe = variant(in_workspace, "en", "en-all-scores", admit_low_scores)
    line = _refused(capsys, "refilter", recipe, "--from", str(runs / "en"), "--output", str(tmp_path / "a"))
    assert "would reach gopher_quality" in line and "low_language_score" in line

    def other_model(data):
        data["assets"]["kenlm_model"] = "assets/fi.arpa.bin"
    recipe = variant(in_workspace, "en", "en-other-model", other_model)
    assert "perplexity models" in _refused(capsys, "refilter", recipe, "--from", str(runs / "en"), "--output", str(tmp_path / "b"))

    def other_minhash(data):
        data["dedup"]["num_perm"] = 64
    recipe = variant(in_workspace, "en", "en-other-minhash", other_minhash)
    assert "dedup.num_perm" in _refused(capsys, "refilter", recipe, "--from", str(runs / "en"), "--output", str(tmp_path / "c"))

    # Lists the run did not apply: its URL removals and flagged-word ratios would be replayed as the new lists' (they were not compared).
    def url_lists(data):
        data["url_filter"] = {"lists": [{"name": "example", "domains": "recipes/lists/url_blocklist.example.txt"}]}

    def flagged_words(data):
        data["flagged_words"] = {"list": "recipes/lists/flagged_words/en.txt", "max_ratio": 0.01}
    for change, message in ((url_lists, "url_filter was not run"), (flagged_words, "flagged_words was not run")):
        recipe = variant(in_workspace, "en", f"en-{change.__name__}", change)
        assert message in _refused(capsys, "refilter", recipe, "--from", str(runs / "en"), "--output", str(tmp_path / "d"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_damaged_signals_fail_the_audit_and_are_not_replayed(in_workspace, runs, tmp_path, capsys):
    run = tmp_path / "en"
    shutil.copytree(runs / "en", run)
    path = run / "signals" / "00001.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert main(["manifest", "audit", str(run)]) == 1
    assert "signals/00001.parquet: sha256 differs from the manifest" in capsys.readouterr().out
    line = _refused(capsys, "refilter", "recipes/demo/en.yaml", "--from", str(run), "--output", str(tmp_path / "new"))
    assert "signals cannot be trusted" in line


def test_calibrate_reads_a_runs_signals(runs, capsys):
    assert main(["calibrate", "--signals", str(runs / "fi")]) == 0
    out = capsys.readouterr().out
    kept = sum(r["removed_by"] is None for r in signals(runs / "fi"))
    assert f"{kept} fi documents kept by" in out
    suggested = yaml.safe_load(out)["heuristics"]
    assert suggested["web_ratios"]["min_lexical_diversity"] <= 0.5 and "gopher_repetition" in suggested


def test_malformed_records_are_not_documents(runs):
    """Signals cover parsed documents; malformed records are in rejects/ only."""
    ids = {r["id"] for r in signals(runs / "fi")}
    malformed = [orjson.loads(line)["id"] for p in (runs / "fi").glob("rejects/malformed/*.jsonl.gz") for line in gzip.open(p)]
    assert malformed and not ids & set(malformed)


def _edit_manifest(run: Path, change) -> None:
    manifest = orjson.loads((run / "manifest.json").read_bytes())
    change(manifest)
    (run / "manifest.json").write_bytes(orjson.dumps(manifest))


def _edit_first_reject(run: Path) -> None:
    """The text of a document fineweb removed, changed in a valid gzip file of the same rejects:
    their counts, and so the funnel, are unchanged."""
    path = run / "rejects/fineweb/00000.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    record = orjson.loads(lines[0])
    record["text"] = "Edited in the run. " + record["text"]
    path.write_bytes(gzip.compress(b"".join([orjson.dumps(record) + b"\n", *lines[1:]]), mtime=0))


def keep_what_fineweb_removed(data):
    """A looser recipe: fineweb and the groups after it dropped, with perplexity and dedup (whose
    metrics RUN never computed for fineweb's removals), so those documents reach the shards, with
    the text RUN holds for them: their rejects'."""
    for group in ("fineweb", "web_ratios", "script"):
        del data["heuristics"][group]
    del data["perplexity"], data["dedup"]


def _add_reject_file(run: Path) -> None:
    """A rejects file of task 0 that RUN never wrote (its documents' texts would be read as RUN's)."""
    (run / "rejects/url").mkdir()
    shutil.copy(run / "rejects/language/00000.jsonl.gz", run / "rejects/url/00000.jsonl.gz")


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, expected, audited", [
    (_edit_first_reject, "rejects cannot be trusted: rejects/fineweb/00000.jsonl.gz: sha256 differs from the manifest", True),
    (_add_reject_file, "rejects cannot be trusted: rejects/url/00000.jsonl.gz: a rejects file the manifest does not list", True),
    (lambda run: _flip_byte(run / "dedup/signatures/00001.bin"),
     "dedup files cannot be trusted: dedup/signatures/00001.bin: sha256 differs from the manifest", True),
    (lambda run: _edit_manifest(run, lambda m: m.pop("rejects")), "records no sha256 of its rejects and dedup files", False),
    (lambda run: (run / "run.json").write_bytes(b"null"), "run.json is not a run's record (not a JSON object)", False),
    (lambda run: (run / "run.json").write_bytes(b"[]"), "run.json is not a run's record (not a JSON object)", False),
    (lambda run: (run / "run.json").write_bytes(orjson.dumps(
        {**orjson.loads((run / "run.json").read_bytes()), "inputs": [{"source": "web", "path": "/elsewhere.jsonl.gz"}]})),
     "run.json records another recipe or other inputs than the manifest", False),
    (lambda run: _edit_manifest(run, lambda m: m["signals"].update(basis={})), "invalid manifest: signals.basis has no 'language'", False),
    (lambda run: _edit_manifest(run, lambda m: m["inputs"].__setitem__(0, {"path": 1})), "invalid manifest: inputs[0] has no 'source'", False),
], ids=["reject_text", "unlisted_reject", "signatures", "no_rejects_sha256", "run_file_null", "run_file_list",
        "run_file_other_inputs", "empty_basis", "input_path_not_text"])
def test_what_refilter_reads_back_is_checked_against_the_manifest(in_workspace, runs, tmp_path, capsys, damage, expected, audited):
    """Everything a refilter reads back from RUN, checked against RUN's manifest before any work:
    one line, nothing written. An edited reject's text went into the looser recipe's shards (36
    documents where every fineweb reject was edited) while `manifest audit` passed both runs:
    rejects were counted, never checksummed. The audit now fails such a RUN too."""
    run = tmp_path / "en"
    shutil.copytree(runs / "en", run)
    damage(run)
    recipe = variant(in_workspace, "en", "en-looser", keep_what_fineweb_removed)
    line = _refused(capsys, "refilter", recipe, "--from", str(run), "--output", str(tmp_path / "new"))
    assert expected in line and not (tmp_path / "new").exists()
    if audited:
        assert main(["manifest", "audit", str(run)]) == 1
        assert expected.split("cannot be trusted: ")[1] in capsys.readouterr().out


# A filter written as the registry asks, in one place: its typed config, its pure rule, its step.
@dataclass(frozen=True)
class LongestLineConfig(FilterConfig):
    section = "longest_line"
    languages = ("text",)
    max_chars: int

    @classmethod
    def read(cls, data, recipe):
        if data.get(cls.section) is None:
            return None
        given = section(data, cls.section, {"max_chars"}, recipe.path)
        return cls(integer(given.get("max_chars"), "longest_line.max_chars", recipe.path, 1, 1 << 30))

    def steps(self, context):
        return [LongestLineFilter(context.folder, self)]

    def columns(self, language):
        return [("longest_line.chars", "int64")]


def longest_line_decide(values, config):
    chars = values["longest_line.chars"]
    return Removal("longest_line.max_chars", chars, config.max_chars) if chars > config.max_chars else None


class LongestLineFilter(RecipeFilter):
    name = "📏 Longest line"
    step = "longest_line"

    def __init__(self, output_folder, config):
        super().__init__(output_folder, ("longest_line.chars",))
        self.config = config

    def measure(self, batch):
        return [{"longest_line.chars": max(map(len, doc.text.split("\n")))} for doc in batch]

    def decide(self, values):
        return longest_line_decide(values, self.config)


@pytest.mark.parametrize("after", [FlaggedWordsConfig, PerplexityConfig])
def test_a_new_filter_is_one_file_and_one_registry_line(in_workspace, tmp_path, monkeypatch, capsys, after):
    """`LongestLineConfig` above, and one line added to the registry (after flagged words, or after
    perplexity): the recipe section is read and range-checked, curate runs the step and records
    its signal, and a refilter of a tightened threshold replays it, byte for byte what a full run
    writes. Nothing else in the code names it."""
    import filters.registry
    import pipeline.recipe

    at = filters.registry.FILTERS.index(after) + 1
    monkeypatch.setattr(pipeline.recipe, "FILTERS", filters.registry.FILTERS[:at] + (LongestLineConfig,) + filters.registry.FILTERS[at:])
    bad = variant(in_workspace, "en", "en-longest-bad", lambda data: data.update(longest_line={"max_chars": 0}))
    assert "'longest_line.max_chars' must be a positive integer" in _refused(capsys, "curate", bad, "--output", str(tmp_path / "bad"))
    loose = variant(in_workspace, "en", "en-longest", lambda data: data.update(longest_line={"max_chars": 1 << 20}))
    run = curate(load_recipe(loose), output=str(tmp_path / "run"), workers=1)  # workers=1: the tasks run in this process
    rows = signals(tmp_path / "run")
    kept = [row["longest_line.chars"] for row in rows if row["removed_by"] is None]
    assert kept and None not in kept  # its signal, recorded for every document that reached it
    limit = int(np.percentile(kept, 70))
    tight = variant(in_workspace, "en", "en-longest-tight", lambda data: data.update(longest_line={"max_chars": limit}))
    refiltered = refilter(load_recipe(tight), str(tmp_path / "run"), output=str(tmp_path / "refilter"), workers=1)
    full = curate(load_recipe(tight), output=str(tmp_path / "full"), workers=1)
    assert refiltered == full and full["funnel"]["removed"]["longest_line.max_chars"] > 0
    assert full["funnel"]["kept"] < run["funnel"]["kept"]
    assert run_files(tmp_path / "refilter") == run_files(tmp_path / "full")


def test_the_signals_basis_keeps_its_order_and_the_cli_names_the_output(in_workspace, runs, tmp_path, capsys):
    """The filters' parts of the signals basis in the order manifests have always written them
    (the registry runs the URL lists first, but a recipe's manifest keeps its bytes), and
    `--output` is the folder the command names when it is done."""
    from pipeline.passes import signals_basis

    def lists(data):
        data["url_filter"] = {"lists": [{"name": "example", "domains": "recipes/lists/url_blocklist.example.txt"}]}
        data["flagged_words"] = {"list": "recipes/lists/flagged_words/en.txt", "max_ratio": 0.01}
    recipe = load_recipe(variant(in_workspace, "en", "en-lists", lists))
    assert list(signals_basis(recipe, [])) == ["language", "read", "tokenizer", "lid_model", "heuristics", "perplexity",
                                               "url_filter", "flagged_words", "quality", "dedup"]
    assert main(["refilter", variant(in_workspace, "en", "en-cli", tighten("en", runs)), "--from", str(runs / "en"),
                 "--output", str(tmp_path / "new"), "--workers", "2"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"shards and manifest: {tmp_path / 'new'}/manifest.json"
