"""Heuristic filtering throughput: our steps vs datatrove's Gopher quality + repetition + FineWeb.

On the same English documents (the demo generator's clean and junk documents), in one process,
interleaved for `--rounds` rounds in a rotating order, median docs/s:

- datatrove: GopherQualityFilter -> GopherRepetitionFilter -> FineWebQualityFilter (spaCy words)
- ours: the same three groups (filters/heuristics.py, English thresholds from recipes/en.yaml),
  writing their rejects as they do in a run

Then our docs/s per language with all five groups (Japanese with its morphological segmenter),
and the Japanese segmenters side by side (fugashi + UniDic-lite, which we use, and SudachiPy
when it is installed). Target: ours / datatrove >= 1.0.

    .venv/bin/python bench/heuristics.py [--documents 3000] [--rounds 3]
"""

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402
import yaml  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402
from datatrove.pipeline.filters import FineWebQualityFilter as DtFineWeb  # noqa: E402
from datatrove.pipeline.filters import GopherQualityFilter as DtGopherQuality  # noqa: E402
from datatrove.pipeline.filters import GopherRepetitionFilter as DtGopherRepetition  # noqa: E402

from core.text import normalize, words  # noqa: E402
from filters.heuristics import GROUPS, GroupRules, HeuristicFilter, analyze  # noqa: E402
from pipeline.recipe import TEXT_LANGUAGES  # noqa: E402
from tooling.demo_data import language_parts  # noqa: E402

ROOT = sys.path[0]


def documents(language: str, count: int) -> list[Document]:
    """The generator's well-formed records for the language, repeated with new ids up to `count`."""
    texts = []
    for part in language_parts(language, seed=0):
        for line in part:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record.get("text"), str) and record["text"].strip():
                texts.append(normalize(record["text"]))
    random.Random(0).shuffle(texts)
    return [Document(text=texts[i % len(texts)], id=str(i)) for i in range(count)]


def consume(steps, docs) -> int:
    data = iter([Document(text=d.text, id=d.id) for d in docs])
    for step in steps:
        data = step.run(data, rank=0, world_size=1)
    return sum(1 for _ in data)


def datatrove_steps(out):
    return [DtGopherQuality(language="en"), DtGopherRepetition(language="en"), DtFineWeb(language="en")]


def our_steps(language, groups, out):
    thresholds = yaml.safe_load(open(os.path.join(ROOT, "recipes", f"{language}.yaml")))["heuristics"]
    folder = get_datafolder(out)
    return [HeuristicFilter(folder, language, GroupRules(g, thresholds[g])) for g in groups]


def timed(make_steps, docs) -> tuple[float, int]:
    analyze.cache_clear()
    gc.collect()
    with tempfile.TemporaryDirectory() as out:
        steps = make_steps(out)
        start = time.perf_counter()
        kept = consume(steps, docs)
        return len(docs) / (time.perf_counter() - start), kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    english = documents("en", args.documents)
    print(f"{len(english):,} English documents, {sum(len(d.text) for d in english) / 1e6:.1f} M characters")
    paths = {
        "datatrove Gopher quality + repetition + FineWeb": datatrove_steps,
        "ours: the same three groups": lambda out: our_steps("en", ("gopher_quality", "gopher_repetition", "fineweb"), out),
    }
    consume(datatrove_steps(None), english[:50])  # load spaCy once, outside the timing
    speeds, kept = {name: [] for name in paths}, {}
    names = list(paths)
    for round_ in range(args.rounds):
        for name in names[round_ % 2 :] + names[: round_ % 2]:
            speed, kept[name] = timed(paths[name], english)
            speeds[name].append(speed)
            print(f"round {round_ + 1}  {name:<50} {speed:>9,.0f} docs/s  kept {kept[name]:,}")
    medians = {name: statistics.median(s) for name, s in speeds.items()}
    for name, speed in medians.items():
        print(f"median  {name:<50} {speed:>9,.0f} docs/s")
    print(f"ratio ours / datatrove: {medians[names[1]] / medians[names[0]]:.2f} (target >= 1.0)")

    print("\nours, all five groups, per language:")
    for language in TEXT_LANGUAGES:
        docs = documents(language, args.documents // 3)
        speed, n = timed(lambda out: our_steps(language, GROUPS, out), docs)
        print(f"  {language}  {speed:>9,.0f} docs/s  kept {n:,} of {len(docs):,}")

    japanese = [d.text for d in documents("ja", 500)]
    characters = sum(map(len, japanese))
    start = time.perf_counter()
    for text in japanese:
        words(text, "ja")
    print(f"\nJapanese segmenters on {characters:,} characters:")
    print(f"  fugashi + unidic-lite (ours)  {characters / (time.perf_counter() - start):>12,.0f} chars/s")
    try:
        from sudachipy import Dictionary, SplitMode
    except ImportError:
        print("  SudachiPy                     not installed (pip install sudachipy sudachidict-core to compare)")
        return
    tokenizer = Dictionary().tokenizer(mode=SplitMode.A)
    start = time.perf_counter()
    for text in japanese:
        [m.surface() for m in tokenizer.tokenize(text)]
    print(f"  SudachiPy + sudachidict-core  {characters / (time.perf_counter() - start):>12,.0f} chars/s")


if __name__ == "__main__":
    main()
