"""Tokenizer fertility: tokens per word and per character of the kept documents in pool manifests
(checked by the audit, shown by `manifest show` and the report), and stage budgets in words."""

import os
import shutil
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import regex
import yaml
from datatrove.data import Document
from datatrove.io import get_datafolder
from PIL import Image

from aurora.cli import main
from core.ledger import read_task_records
from core.text import words
from core.tokenizer import load_tokenizer
from manifests.audit import audit
from manifests.manifest import load_manifest
from pipeline.curate import curate
from pipeline.mix import load_stage_recipe, mix
from pipeline.recipe import load_recipe
from pipeline.tokenize import MegatronShardWriter

SAMPLE_TEXT = Path(__file__).resolve().parents[1] / "tooling" / "sample_text"


def known_tokenizer(path: Path, unit: str) -> str:
    """A tokenizer of known fertility: one token per character (`unit` "characters", spaces and
    newlines included) or one per whitespace-separated piece ("pieces")."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = (pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated") if unit == "characters"
                               else pre_tokenizers.WhitespaceSplit())
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.save(str(path))
    return str(path)


def _paragraphs(language: str) -> list[str]:
    lines = [line for line in (SAMPLE_TEXT / f"{language}.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    return ["\n".join(lines[i : i + 5]) for i in range(0, min(len(lines), 200), 5)]


def _write(tmp_path: Path, tokenizer: str, documents: list[tuple[str, str, str]]) -> dict:
    """Run the shard writer on (source, language, text) documents; its task's fertility counts."""
    folder = get_datafolder(str(tmp_path / "run"))
    docs = [Document(text=text, id=str(i), metadata={"source": source, "language": language})
            for i, (source, language, text) in enumerate(documents)]
    MegatronShardWriter(folder, "t", tokenizer, "<|endoftext|>", 1 << 20, batch_size=7).run(iter(docs))
    return read_task_records(folder, 0)["tokenize"]["fertility"]


def test_a_process_keeps_its_tokenizer_until_the_file_changes(tmp_path):
    """The tasks of a process share the tokenizer it loaded (one loaded per task left memory behind
    each time, `core.tokenizer`); a file written again is loaded again."""
    from core.tokenizer import _loaded_tokenizer

    path = known_tokenizer(tmp_path / "tokenizer.json", "characters")
    first, loads = load_tokenizer(path), _loaded_tokenizer.cache_info().misses
    for rank in range(2):  # two tasks of the shard writer: neither loads the file again
        folder = get_datafolder(str(tmp_path / "run"))
        MegatronShardWriter(folder, "t", path, "<|endoftext|>", 1 << 20).run(iter([Document(text="ab cd", id="0", metadata={})]), rank)
        assert load_tokenizer(path) is first and _loaded_tokenizer.cache_info().misses == loads
    os.replace(known_tokenizer(tmp_path / "other.json", "pieces"), path)
    second = load_tokenizer(path)
    assert second is not first and len(second.encode("ab cd").ids) == 2 and len(first.encode("ab cd").ids) == 5


def test_a_tokenizer_of_one_token_per_character_or_per_word_has_that_fertility(tmp_path):
    characters = known_tokenizer(tmp_path / "characters.json", "characters")
    pieces = known_tokenizer(tmp_path / "pieces.json", "pieces")
    # English with only letters and spaces: a whitespace piece is a word of the segmenter.
    en = [" ".join(regex.sub(r"[^\p{L}\s]", " ", p).split()) for p in _paragraphs("en")]
    ja = _paragraphs("ja")
    documents = [("web", "en", text) for text in en] + [("books", "ja", text) for text in ja]
    counts = _write(tmp_path / "c", characters, documents)
    for source, texts in (("web", en), ("books", ja)):
        assert counts[source] == {"documents": len(texts), "tokens": sum(map(len, texts)), "characters": sum(map(len, texts)),
                                  "words": sum(len(words(t, "en" if source == "web" else "ja")) for t in texts)}
    counts = _write(tmp_path / "p", pieces, documents)
    assert counts["web"]["tokens"] == counts["web"]["words"] == sum(len(t.split()) for t in en)
    # Japanese has no spaces: its words come from the segmenter, many per whitespace piece.
    assert counts["books"]["tokens"] == sum(len(t.split()) for t in ja) < counts["books"]["words"] / 5


@pytest.fixture(scope="module")
def characters_pool(workspace, tmp_path_factory):
    """The en demo recipe curated with the one-token-per-character tokenizer."""
    import os

    tmp = tmp_path_factory.mktemp("fertility")
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        data = yaml.safe_load(open("recipes/demo/en.yaml"))
        data["assets"]["tokenizer"] = known_tokenizer(tmp / "characters.json", "characters")
        path = tmp / "en.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return curate(load_recipe(str(path)), output=str(tmp / "en"), workers=2), tmp / "en"
    finally:
        os.chdir(cwd)


def test_a_pool_manifest_records_fertility_and_the_audit_checks_it(characters_pool, tmp_path, capsys):
    manifest, folder = characters_pool
    fertility = manifest["fertility"]
    assert list(fertility["sources"]) == ["web"] and fertility["sources"]["web"] == fertility["total"]
    total = fertility["total"]
    assert total["documents"] == manifest["totals"]["documents"] == manifest["funnel"]["kept"]
    assert total["tokens"] == total["characters"] == manifest["totals"]["tokens"] - total["documents"]
    assert total["tokens_per_character"] == 1.0 and total["tokens_per_word"] == round(total["characters"] / total["words"], 4)
    assert 4 < total["tokens_per_word"] < 8  # an English word and the space after it are 5 to 7 characters
    # The words dedup's documents file carried to the tokenize pass are those the heuristics counted.
    kept = [row for path in sorted(folder.glob("signals/0*.parquet")) for row in pq.read_table(path).to_pylist() if row["removed_by"] is None]
    assert len(kept) == total["documents"] and sum(row["gopher_quality.doc_words"] for row in kept) == total["words"]
    assert main(["manifest", "show", str(folder)]) == 0
    assert "fertility on the kept documents (en)" in capsys.readouterr().out
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert audit(*load_manifest(str(copy))) == []
    for change, problem in ((("total", "words"), "fertility: the sources' words add up to"),
                            (("sources", "web", "tokens"), "fertility.total.tokens is"),
                            (("total", "tokens_per_word"), "fertility total: tokens_per_word is")):
        edited = orjson.loads((folder / "manifest.json").read_bytes())
        *path, key = change
        entry = edited["fertility"]
        for step in path:
            entry = entry[step]
        entry[key] = entry[key] + 1
        if change[0] == "sources":  # the sources and the total agree; the shards do not
            edited["fertility"]["total"]["tokens"] += 1
        (copy / "manifest.json").write_bytes(orjson.dumps(edited))
        problems = audit(*load_manifest(str(copy)))
        assert any(p.startswith(problem) for p in problems), (change, problems)


def _stage(tmp_path: Path, components: list[dict], tokens: int = 120_000) -> str:
    path = tmp_path / "stage.yaml"
    path.write_text(yaml.safe_dump({"name": "words", "seed": 1, "tokens": tokens, "output": str(tmp_path / "stage"),
                                    "tokenizer": "assets/tokenizer.json", "components": components}, sort_keys=False))
    return str(path)


def test_a_budget_in_words_becomes_tokens_at_the_pools_fertility(in_workspace, demo_runs, tmp_path, capsys):
    pools = {lang: load_manifest(f"out/demo/{lang}")[0] for lang in ("en", "ja")}
    recipe = _stage(tmp_path, [{"name": "en", "language": "en", "pool": "out/demo/en", "words": 20_000, "max_epochs": 2},
                               {"name": "ja", "language": "ja", "pool": "out/demo/ja", "words": 20_000, "max_epochs": 2},
                               {"name": "code", "language": "code", "pool": "out/demo/code", "tokens": 0.2, "max_epochs": 1}])
    assert main(["mix", recipe, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    expected = {lang: round(20_000 * p["totals"]["tokens"] / p["fertility"]["total"]["words"]) for lang, p in pools.items()}
    for lang in ("en", "ja"):  # the budget in tokens, and back in words
        row = next(line for line in plan.splitlines() if line.startswith(f"{lang} "))
        assert f"{expected[lang]:,}" in row.split() and "20,000" in row.split(), row
    # A Japanese word is fewer tokens than an English one here: the demo tokenizer was trained on the same sample text.
    assert expected["ja"] != expected["en"]
    manifest = mix(load_stage_recipe(recipe), workers=2)[1]
    for component in manifest["components"][:2]:
        lang = component["name"]
        assert component["budget_words"] == 20_000 and component["budget_tokens"] == expected[lang]
        assert component["tokens_per_word"] == round(pools[lang]["totals"]["tokens"] / pools[lang]["fertility"]["total"]["words"], 6)
    assert "budget_words" not in manifest["components"][2]
    assert audit(*load_manifest(str(tmp_path / "stage"))) == []
    # The audit recomputes a budget in words from the pool's manifest.
    shutil.copytree(tmp_path / "stage", tmp_path / "copy")
    manifest["components"][0]["tokens_per_word"] += 0.01
    (tmp_path / "copy" / "manifest.json").write_bytes(orjson.dumps(manifest))
    problems = audit(*load_manifest(str(tmp_path / "copy")))
    ratio = pools["en"]["totals"]["tokens"] / pools["en"]["fertility"]["total"]["words"]
    assert problems == [f"component en: 20,000 words at its pool's {ratio:.6f} tokens per word are "
                        f"{expected['en']:,} tokens, manifest says {expected['en']:,} at {manifest['components'][0]['tokens_per_word']}"]


@pytest.mark.parametrize("component, message", [
    ({"tokens": 1000, "words": 1000}, "component 'en' needs exactly one of 'tokens' or 'words'"),
    ({"words": 0}, "'words' must be a positive integer"),
    ({"words": 10_000_000}, "more than the stage total of 120,000"),
    ({"words": 1000, "pool": "POOL"}, "component 'en': its budget is in words, and its pool records no words"),
])
def test_a_bad_budget_in_words_is_refused_in_one_line(in_workspace, demo_runs, tmp_path, capsys, component, message):
    old = tmp_path / "old"  # a pool whose manifest records no fertility, as one curated before it was measured
    shutil.copytree("out/demo/en", old, ignore=shutil.ignore_patterns("logs"))
    manifest = orjson.loads((old / "manifest.json").read_bytes())
    del manifest["fertility"]
    (old / "manifest.json").write_bytes(orjson.dumps(manifest))
    item = {"name": "en", "language": "en", "pool": "out/demo/en", "max_epochs": 2} | component
    item["pool"] = str(old) if item["pool"] == "POOL" else item["pool"]
    assert main(["mix", _stage(tmp_path, [item]), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error


def test_the_report_draws_fertility_per_language(in_workspace, demo_runs, characters_pool, tmp_path):
    paths = [f"out/demo/{lang}" for lang in ("en", "hi", "ja", "code")] + [str(characters_pool[1])]
    assert main(["manifest", "report", *paths, "--output", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    table = report[report.index("## Tokenizer fertility"):].split("\n\n")[3].splitlines()
    assert len(table) == 2 + len(paths)
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in table[2:]]
    assert sorted(row[1] for row in cells) == ["code", "en", "en", "hi", "ja"]
    assert [row[3] for row in cells].count("1.000") == 1  # the pool of the one-token-per-character tokenizer
    with Image.open(tmp_path / "report" / "fertility.png") as image:
        assert image.format == "PNG" and image.size[0] > 400
    page = (tmp_path / "report" / "report.html").read_text()
    assert '<section id="fertility">' in page and 'src="fertility.png"' in page
