"""Stage mixing: exact budgets, determinism, refusals, lineage audit, instruction rendering, report."""

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from aurora.cli import main
from core.shards import decode_index
from manifests.audit import audit
from manifests.manifest import load_manifest
from pipeline.instructions import render
from pipeline.mix import load_stage_recipe, mix
from pipeline.mix.write import interleave


def _files(folder: Path) -> dict[str, bytes]:
    paths = sorted(folder.glob("shards/*")) + sorted(folder.glob("lineage/*")) + [folder / "manifest.json"]
    return {str(p.relative_to(folder)): p.read_bytes() for p in paths}


def _mix(stage: str, output: Path, workers: int = 2, text: str | None = None) -> dict:
    """The demo stage recipe (or a variant's `text`), run from the workspace into `output`."""
    path = Path(f"recipes/demo/{stage}.yaml")
    if text is not None:
        path = output.parent / f"{output.name}.yaml"
        path.write_text(text)
    return mix(load_stage_recipe(str(path)), output=str(output), workers=workers)[1]


@pytest.fixture(scope="module")
def stages(workspace, demo_runs, tmp_path_factory):
    import os

    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        out = tmp_path_factory.mktemp("stages")
        return {stage: (_mix(stage, out / stage), out / stage) for stage in ("cap", "cat")}
    finally:
        os.chdir(cwd)


def _longest_document(manifest_path: Path) -> int:
    manifest, folder = load_manifest(str(manifest_path))
    return max(int(decode_index(folder.open(s["prefix"] + ".idx", "rb").read()).lengths.max()) for s in manifest["shards"])


def test_budgets_are_met_within_one_document(workspace, stages):
    sampled = set()
    for stage, (manifest, folder) in stages.items():
        for c in manifest["components"]:
            pool = folder / c["pool"]["path"] if c["pool"]["in_stage"] else workspace / c["pool"]["path"]
            assert 0 <= c["tokens"] - c["budget_tokens"] < _longest_document(pool), (stage, c["name"])
            sampled.add("up" if c["epochs"] > 1 else "down")
        planned = sum(c["budget_tokens"] for c in manifest["components"])
        assert planned == manifest["planned_tokens"]  # the demo recipes' shares add up to 1
        for c in manifest["components"]:
            assert c["planned_share"] == round(c["budget_tokens"] / planned, 6)
            assert abs(c["share"] - c["planned_share"]) < 0.02
    assert sampled == {"up", "down"}
    cat = {c["name"]: c for c in stages["cat"][0]["components"]}
    assert cat["instructions"]["full_epochs"] >= 1 and cat["safety"]["full_epochs"] >= 1


def test_validation_documents_are_held_out_of_the_stage(workspace, stages):
    from pipeline.mix.selection import document_keys

    manifest, folder = stages["cap"]
    assert [v["documents"] for v in manifest["validation"]] == [8] * len(manifest["components"])
    for c, component in enumerate(manifest["components"]):
        pool_shards = component["pool"]["shards"]
        keys = {}
        for shard in manifest["shards"]:
            lineage = pq.read_table(folder / shard["lineage"]["path"]).to_pylist()
            for row in (r for r in lineage if r["component"] == c):
                prefix = pool_shards[row["pool_shard"]]
                if prefix not in keys:
                    pool_index = decode_index((workspace / component["pool"]["path"] / f"{prefix}.idx").read_bytes())
                    keys[prefix] = document_keys(manifest["seed"], component["name"], prefix, len(pool_index.lengths))
                assert keys[prefix][row["document"]] < component["holdout"]


def test_components_are_interleaved(stages):
    manifest, folder = stages["cap"]
    first = pq.read_table(folder / manifest["shards"][0]["lineage"]["path"]).column("component").to_pylist()[:60]
    assert len(set(first)) == len(manifest["components"])


def test_same_recipe_and_seed_give_identical_stages_with_one_and_two_workers(in_workspace, stages, tmp_path):
    again = _mix("cap", tmp_path / "cap", workers=1)
    assert again == stages["cap"][0]
    assert _files(tmp_path / "cap") == _files(stages["cap"][1])


def test_another_seed_selects_other_documents(in_workspace, stages, tmp_path):
    text = Path("recipes/demo/cat.yaml").read_text().replace("seed: 1234", "seed: 99")
    other = _mix("cat", tmp_path / "cat", text=text)
    assert [c["cut"] for c in other["components"]] != [c["cut"] for c in stages["cat"][0]["components"]]


def test_the_audit_passes_on_both_stages_and_their_instruction_pools(in_workspace, stages):
    for manifest, folder in stages.values():
        assert audit(manifest, load_manifest(str(folder))[1]) == []
    for source in stages["cat"][1].glob("sources/*"):
        assert audit(*load_manifest(str(source))) == []


@pytest.mark.parametrize("recipe_edit, message", [
    (("tokens: 0.06, max_epochs: 8}", "tokens: 0.06, max_epochs: 2}"), "more than max_epochs 2"),
    (("pool: out/demo/fi,", "pool: out/demo/sv,"), "component 'fi': no pool manifest at out/demo/sv"),
    (("tokens: 0.31,", "tokens: 0.5,"), "more than the stage total of 300,000"),
])
def test_impossible_plans_are_refused_in_one_line(in_workspace, demo_runs, tmp_path, capsys, recipe_edit, message):
    text = Path("recipes/demo/cat.yaml").read_text()
    assert recipe_edit[0] in text
    path = tmp_path / "cat.yaml"
    path.write_text(text.replace(recipe_edit[0], recipe_edit[1], 1).replace("out/demo/cat", str(tmp_path / "cat")))
    assert main(["mix", str(path), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not (tmp_path / "cat").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(in_workspace, demo_runs, tmp_path, capsys):
    path = tmp_path / "cap.yaml"
    path.write_text(Path("recipes/demo/cap.yaml").read_text().replace("out/demo/cap", str(tmp_path / "cap")))
    assert main(["mix", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "epochs (1 whole + a sample)" in out and "of the pool" in out
    assert not (tmp_path / "cap").exists()


def _copy(stages, tmp_path) -> tuple[Path, dict]:
    manifest, folder = stages["cap"]
    copy = tmp_path / "cap"
    shutil.copytree(folder, copy)
    return copy, manifest


def test_audit_catches_a_tampered_lineage_entry(in_workspace, stages, tmp_path):
    copy, manifest = _copy(stages, tmp_path)
    lineage = copy / manifest["shards"][0]["lineage"]["path"]
    table = pq.read_table(lineage)
    documents = table.column("document").to_pylist()
    documents[5] += 1  # points at the pool's next document
    pq.write_table(table.set_column(2, "document", pa.array(documents, pa.int64())), lineage)
    problems = audit(*load_manifest(str(copy)))
    assert any("lineage" in p and "sha256 differs" in p for p in problems), problems
    # Even with the manifest's checksum updated to match, the lineage no longer fits the shard.
    from core.tokenizer import file_sha256

    edited = json.loads((copy / "manifest.json").read_text())
    edited["shards"][0]["lineage"]["sha256"] = file_sha256(open(lineage, "rb"))
    (copy / "manifest.json").write_text(json.dumps(edited))
    problems = audit(*load_manifest(str(copy)))
    assert any("differ in length" in p or "differs from pool document" in p for p in problems), problems


def test_audit_catches_a_swapped_stage_shard(in_workspace, stages, tmp_path):
    copy, manifest = _copy(stages, tmp_path)
    a, b = (copy / s["prefix"] for s in manifest["shards"][:2])
    for ext in (".bin", ".idx"):
        data = a.with_suffix(ext).read_bytes()
        a.with_suffix(ext).write_bytes(b.with_suffix(ext).read_bytes())
        b.with_suffix(ext).write_bytes(data)
    problems = audit(*load_manifest(str(copy)))
    assert any("sha256 differs" in p for p in problems), problems


def test_report_writes_markdown_and_valid_pngs(in_workspace, stages, demo_runs, tmp_path, capsys):
    paths = [str(folder) for _, folder in stages.values()] + [f"out/demo/{lang}" for lang in demo_runs]
    assert main(["manifest", "report", *paths, "--output", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    images = sorted((tmp_path / "report").glob("*.png"))
    assert {p.name for p in images} >= {"stage_tokens.png", "lengths.png", "funnel_en.png", "funnel_code.png"}
    for image in images:
        assert f"]({image.name})" in report
        with Image.open(image) as png:
            png.verify()
        with Image.open(image) as png:
            assert png.format == "PNG" and png.size[0] > 300 and png.size[1] > 100
    assert "| instructions | multi |" in report and "### Funnel: en" in report


def test_instruction_records_are_rendered_with_the_template():
    single = render({"prompt": "Hi?", "response": "Hello."})
    assert single == ("### User:\nHi?\n\n### Assistant:\nHello.", None)
    conversation = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                                 {"role": "assistant", "content": "4"}]}
    assert render(conversation)[0] == "### System:\nBe brief.\n\n### User:\n2+2?\n\n### Assistant:\n4"
    for record, reason in [
        ([1, 2], "not_an_object"),
        ({"text": "plain"}, "neither_prompt_nor_messages"),
        ({"prompt": "Hi", "response": 3}, "prompt_or_response_not_text"),
        ({"prompt": "Hi", "response": " "}, "empty_turn"),
        ({"messages": "Hi"}, "messages_not_a_list"),
        ({"messages": [{"role": "user"}]}, "message_without_text"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "unknown_role"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}, "system_not_first"),
        ({"messages": [{"role": "assistant", "content": "a"}]}, "turns_not_alternating"),
    ]:
        assert render(record) == (None, reason), record


def test_interleave_follows_the_targets():
    streams = [[(0, i, [1] * 10) for i in range(10)], [(0, i, [1] * 10) for i in range(30)]]
    order = [c for c, _ in interleave(streams, [100, 300])]
    assert len(order) == 40 and order[:8].count(1) == 6  # three from the larger for each from the smaller


def test_reference_scale_stage_recipes_are_valid():
    from pipeline.mix import budgets

    for stage, total in (("cap", 377_000_000_000), ("cat", 58_000_000_000)):
        recipe = load_stage_recipe(str(Path(__file__).resolve().parents[1] / "recipes" / f"{stage}.yaml"))
        assert recipe.tokens == total and sum(budgets(recipe, [None] * len(recipe.components))) == total


def test_instruction_sources_become_a_pool_with_rejects_counted(in_workspace, tmp_path):
    from pipeline.mix.pools import build_instruction_pool

    recipe = load_stage_recipe("recipes/demo/cat.yaml")
    recipe = dataclasses.replace(recipe, max_shard_tokens=500)  # several shards
    component = next(c for c in recipe.components if c.name == "instructions")
    build_instruction_pool(component, recipe, str(tmp_path / "pool"))
    manifest, folder = load_manifest(str(tmp_path / "pool"))
    assert len(manifest["shards"]) > 3 and all(s["tokens"] <= 500 for s in manifest["shards"][:-1])
    assert manifest["funnel"]["malformed"] == {"broken_json": 1}
    assert manifest["funnel"]["removed"] == {"empty_turn": 1, "turns_not_alternating": 1, "unknown_role": 1}
    assert manifest["funnel"]["kept"] == 25 and audit(manifest, folder) == []
    # Unparsable records go to rejects/malformed/ (as read, under "raw"), unrenderable ones to
    # rejects/instructions/ (as read, as the removed document's text).
    rejects = [json.loads(line) for path in sorted((tmp_path / "pool" / "rejects").glob("*/*.gz")) for line in gzip.open(path)]
    line_4 = sum(len(line) for line in Path("data/demo/instructions/instructions.jsonl").open("rb").readlines()[:3])
    assert sorted(r["id"].rsplit("/", 1)[-1] for r in rejects) == ["bad-empty", "bad-role", "bad-turns", f"instructions.jsonl:@{line_4}"]
    assert all(r.get("raw") or r.get("text") for r in rejects)  # nothing lost: each rejected record is kept as read
