import subprocess
import sys

import pytest

from pipeline.errors import AuroraError
from pipeline.recipe import load_recipe

GOOD = """
name: fi
language: fi
sources: [{name: web, paths: [data/*.jsonl.gz]}]
output: out/fi
assets: {lid_model: assets/lid.bin, tokenizer: assets/tokenizer.json}
langid: {min_score: 0.6}
heuristics: {gopher_quality: {min_doc_words: 40}, script: {min_script_fraction: 0.9}}
tokenize: {max_shard_tokens: 1000}
"""


def _write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return str(path)


def test_good_recipe(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD))
    assert recipe.language == "fi" and recipe.min_language_score == 0.6
    assert recipe.heuristics == {"gopher_quality": {"min_doc_words": 40}, "script": {"min_script_fraction": 0.9}}
    assert recipe.max_shard_tokens == 1000


@pytest.mark.parametrize(
    "change, message",
    [
        (("language: fi", "language: xx"), "language 'xx' is not one of"),
        (("langid: {min_score: 0.6}", "langid: {min_score: high}"), "'langid.min_score' must be a number"),
        (("min_doc_words: 40", "min_words: 40"), "unknown rule 'heuristics.gopher_quality.min_words' for fi"),
        (("script:", "scripts:"), "unknown heuristic group 'heuristics.scripts'"),
        (("min_script_fraction: 0.9", "min_script_fraction: lots"), "'heuristics.script.min_script_fraction' must be a number"),
        (("output: out/fi", "outptu: out/fi"), "unknown key 'outptu'"),
        (("max_shard_tokens: 1000", "max_shard_tokens: -5"), "must be a positive integer"),
        (("lid_model: assets/lid.bin, ", ""), "missing key 'assets.lid_model'"),
        (("sources: [{name: web, paths: [data/*.jsonl.gz]}]", "sources: []"), "'sources' must be a non-empty list"),
    ],
)
def test_bad_recipes_fail_with_one_clear_line(tmp_path, change, message):
    with pytest.raises(AuroraError, match=message):
        load_recipe(_write(tmp_path, GOOD.replace(*change)))


def test_cli_prints_one_line_and_exits_2(tmp_path):
    path = _write(tmp_path, GOOD.replace("language: fi", "language: xx"))
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "curate", path], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("aurora: error:")
    assert "Traceback" not in result.stderr


def test_missing_asset_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, GOOD)
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "curate", path], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "aurora: error: tokenizer assets/tokenizer.json not found (run `make assets` or fix assets in " + path + ")"
