import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from core.errors import AuroraError
from filters.code import CodeConfig
from filters.decontamination import DecontaminationConfig
from filters.flagged_words import FlaggedWordsConfig
from filters.heuristics import HeuristicsConfig
from filters.language_id import LanguageIDConfig
from filters.url import URLFilterConfig
from pipeline.recipe import load_recipe

GOOD = """
name: fi
language: fi
sources: [{name: web, paths: [data/*.jsonl.gz]}]
output: out/fi
assets: {lid_model: assets/lid.176.ftz, tokenizer: assets/tokenizer.json}
langid: {min_score: 0.6}
heuristics: {gopher_quality: {min_doc_words: 40}, script: {min_script_fraction: 0.9}}
tokenize: {max_shard_tokens: 1000}
"""


HEURISTICS = "heuristics: {gopher_quality: {min_doc_words: 40}, script: {min_script_fraction: 0.9}}"  # one group each


def _write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return str(path)


def test_good_recipe(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD))
    assert recipe.language == "fi" and recipe.filter(LanguageIDConfig).min_score == 0.6
    assert recipe.filter(HeuristicsConfig).groups == {"gopher_quality": {"min_doc_words": 40}, "script": {"min_script_fraction": 0.9}}
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
        (("lid_model: assets/lid.176.ftz, ", ""), "missing key 'assets.lid_model'"),
        (("sources: [{name: web, paths: [data/*.jsonl.gz]}]", "sources: []"), "'sources' must be a non-empty list"),
    ],
)
def test_bad_recipes_fail_with_one_clear_line(tmp_path, change, message):
    with pytest.raises(AuroraError, match=message):
        load_recipe(_write(tmp_path, GOOD.replace(*change)))


def test_cli_prints_one_line_and_exits_2(tmp_path):
    path = _write(tmp_path, GOOD.replace("language: fi", "language: xx"))
    result = subprocess.run([sys.executable, "-m", "aurora.cli", "curate", path], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("aurora: error:")
    assert "Traceback" not in result.stderr


def test_missing_asset_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, GOOD)
    result = subprocess.run([sys.executable, "-m", "aurora.cli", "curate", path], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "aurora: error: tokenizer assets/tokenizer.json not found (run `make assets` or fix assets in " + path + ")"


@pytest.mark.parametrize("value", ["-0.5", "1.5", ".nan", ".inf", "-.inf"])
def test_fraction_rule_out_of_range_is_one_line_naming_the_key(tmp_path, value):
    with pytest.raises(AuroraError) as error:
        load_recipe(_write(tmp_path, GOOD.replace("min_script_fraction: 0.9", f"min_script_fraction: {value}")))
    message = str(error.value)
    assert "\n" not in message and "'heuristics.script.min_script_fraction'" in message, message
    assert message.endswith(f"got {float(value.replace('.nan', 'nan').replace('.inf', 'inf'))!r}"), message


@pytest.mark.parametrize(
    "rule, value",
    [("script: {min_script_fraction", 0), ("script: {min_script_fraction", 1), ("fineweb: {max_new_line_ratio", 1.5),
     ("gopher_repetition: {max_top_2gram_frac", 1.2), ("gopher_quality: {min_doc_words", 0), ("web_ratios: {min_lexical_diversity", 0.5)],
)
def test_thresholds_in_range_are_accepted(tmp_path, rule, value):
    """Bounds are inclusive; ratios that can pass 1 by their definition (newlines per word,
    overlapping top n-grams) accept values above 1."""
    group, key = rule.split(": {")
    recipe = load_recipe(_write(tmp_path, GOOD.replace(HEURISTICS, f"heuristics: {{{rule}: {value}}}}}")))
    assert recipe.filter(HeuristicsConfig).groups[group][key] == value


@pytest.mark.parametrize(
    "rule, message",
    [("fineweb: {max_new_line_ratio: -0.5}", "'heuristics.fineweb.max_new_line_ratio' must be a number >= 0, got -0.5"),
     ("gopher_quality: {min_doc_words: 40.5}", "'heuristics.gopher_quality.min_doc_words' must be an integer >= 0, got 40.5"),
     ("gopher_quality: {min_stop_words: -1}", "'heuristics.gopher_quality.min_stop_words' must be an integer >= 0, got -1"),
     ("fineweb: {short_line_length: 2.5}", "'heuristics.fineweb.short_line_length' must be an integer >= 0, got 2.5"),
     ("gopher_quality: {min_avg_word_length: -3}", "'heuristics.gopher_quality.min_avg_word_length' must be a number >= 0, got -3")],
)
def test_ratios_counts_and_lengths_out_of_range_are_refused(tmp_path, rule, message):
    with pytest.raises(AuroraError, match=re.escape(message)):
        load_recipe(_write(tmp_path, GOOD.replace(HEURISTICS, f"heuristics: {{{rule}}}")))


CODE = """
name: code
language: code
sources: [{name: stdlib, paths: [data/*.jsonl.gz]}]
output: out/code
assets: {tokenizer: assets/tokenizer.json}
code: {languages: [python]}
heuristics: {RULE}
"""


@pytest.mark.parametrize(
    "rule, message",
    [("{min_alphanumeric_fraction: 1.5}", "'heuristics.min_alphanumeric_fraction' must be a number in [0, 1], got 1.5"),
     ("{min_alphanumeric_fraction: .nan}", "'heuristics.min_alphanumeric_fraction' must be a finite number, got nan"),
     ("{max_file_bytes: -1}", "'heuristics.max_file_bytes' must be a number >= 0, got -1")],
)
def test_code_rules_are_range_checked(tmp_path, rule, message):
    with pytest.raises(AuroraError, match=re.escape(message)):
        load_recipe(_write(tmp_path, CODE.replace("{RULE}", rule)))
    assert load_recipe(_write(tmp_path, CODE.replace("{RULE}", "{min_alphanumeric_fraction: 1, max_file_bytes: 0}"))).filter(CodeConfig).rules


@pytest.mark.parametrize("value", ["[]", "0", "false", '""'])
def test_heuristics_of_another_type_are_refused_not_taken_for_none(tmp_path, value):
    with pytest.raises(AuroraError, match="'heuristics' must be a mapping of groups"):
        load_recipe(_write(tmp_path, GOOD.replace(HEURISTICS, f"heuristics: {value}")))


@pytest.mark.parametrize("edit, message", [
    ("langid: {min_score: 0.5}", "'langid' is for text recipes; the code recipe has none"),
    ("perplexity: {mode: max, max_perplexity: 1000}", "'perplexity' is for text recipes; the code recipe has none"),
])
def test_a_code_recipe_refuses_the_sections_it_would_ignore(tmp_path, edit, message):
    with pytest.raises(AuroraError, match=re.escape(message)):
        load_recipe(_write(tmp_path, CODE.replace("{RULE}", "{}") + edit + "\n"))
    lid = CODE.replace("{RULE}", "{}").replace("assets: {tokenizer: assets/tokenizer.json}",
                                                "assets: {tokenizer: assets/tokenizer.json, lid_model: assets/lid.176.ftz}")
    with pytest.raises(AuroraError, match=re.escape("'assets.lid_model' is for text recipes; the code recipe has none")):
        load_recipe(_write(tmp_path, lid))


def test_code_rule_ranges_follow_the_filters_rules_at_load_time(tmp_path, monkeypatch):
    from filters.code import DEFAULT_RULES

    monkeypatch.setitem(DEFAULT_RULES, "min_comment_fraction", 0.1)
    with pytest.raises(AuroraError, match=re.escape("'heuristics.min_comment_fraction' must be a number in [0, 1], got 2")):
        load_recipe(_write(tmp_path, CODE.replace("{RULE}", "{min_comment_fraction: 2}")))


def test_every_shipped_recipe_loads():
    recipes = [p for p in sorted(ROOT.glob("recipes/**/*.yaml")) if "language" in yaml.safe_load(p.read_text())]
    assert len(recipes) == 12  # en fi hi ja vi code, full and demo
    for path in recipes:
        recipe = load_recipe(str(path))
        assert recipe.filter(CodeConfig if recipe.language == "code" else HeuristicsConfig)


CONTENT = """
url_filter: {lists: [{name: adult, domains: lists/adult.txt}, {name: spam, patterns: lists/spam.txt}]}
flagged_words: {list: lists/fi.txt, max_ratio: 0.01}
decontamination: {sets: [{name: qa, path: eval/qa.jsonl, fields: [question, answer], id: id}]}
"""


def test_content_filter_sections_are_read_in_order(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD + CONTENT))
    assert [(b.name, b.kind, b.path) for b in recipe.filter(URLFilterConfig).lists] == [("adult", "domains", "lists/adult.txt"),
                                                                                        ("spam", "patterns", "lists/spam.txt")]
    assert recipe.filter(FlaggedWordsConfig) == FlaggedWordsConfig("lists/fi.txt", 0.01)
    [qa] = recipe.filter(DecontaminationConfig).sets
    assert (qa.name, qa.fields, qa.id_field, qa.kind, qa.ngram) == ("qa", ["question", "answer"], "id", "text", None)


@pytest.mark.parametrize("change, message", [
    (("{name: adult, domains: lists/adult.txt}", "{name: adult, hosts: lists/adult.txt}"), r"url_filter.lists\[0\] must be a mapping"),
    (("{name: spam, patterns", "{name: adult, patterns"), r"url_filter.lists\[1\]: 'name' must be a unique name"),
    (("{name: adult, domains: lists/adult.txt}", "{name: adult, domains: lists/a.txt, patterns: lists/b.txt}"), "one of domains"),
    (("url_filter: {lists: [", "url_filter: {blocklists: ["), "unknown key 'url_filter.blocklists'"),
    (("max_ratio: 0.01", "max_ratio: 2"), r"'flagged_words.max_ratio' must be in \[0, 1\]"),
    (("list: lists/fi.txt, ", ""), "'flagged_words.list' must be the path of a word list"),
    (("fields: [question, answer]", "fields: []"), "'fields' must list the fields"),
    (("id: id}", "id: id, kind: prose}"), "'kind' must be one of text, code"),
    (("id: id}", "id: id, ngram: 0}"), "'decontamination.sets\\[0\\].ngram' must be a positive integer"),
    (("{sets: [{name: qa", "{sets: [{name: 'a/b'"), "'name' must be a unique name"),
])
def test_bad_content_filter_sections_fail_with_one_clear_line(tmp_path, change, message):
    with pytest.raises(AuroraError, match=message):
        load_recipe(_write(tmp_path, (GOOD + CONTENT).replace(*change)))
