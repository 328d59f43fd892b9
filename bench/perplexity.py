"""Perplexity scoring throughput: our batched scorer vs datatrove's `KenlmModel.get_perplexity`.

Same documents (the demo generator's, all kinds), same SentencePiece and KenLM model (from
`aurora assets build`), in one process, interleaved for `--rounds` rounds; pieces scored per
second, each path counting the pieces it scored (datatrove normalizes a whole document at once
and strips accents, so its pieces differ a little). Target: ours / datatrove >= 1.0.

    .venv/bin/python bench/perplexity.py [--language en] [--documents 3000] [--rounds 3]
"""

import argparse
import gc
import os
import statistics
import sys
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import kenlm  # noqa: E402
import sentencepiece  # noqa: E402
from datatrove.utils.perplexity import KenlmModel, SentencePiece  # noqa: E402

from bench.heuristics import documents  # noqa: E402
from filters.perplexity import PerplexityModel  # noqa: E402

BATCH = 256


def datatrove_model(sp_path: str, lm_path: str) -> KenlmModel:
    """datatrove's scorer with its models set from local files (its own loader downloads them)."""
    model = KenlmModel(model_dataset="local", language="xx")
    model._model = kenlm.Model(lm_path)
    model._tokenizer = SentencePiece("local", "xx")
    model._tokenizer._model = sentencepiece.SentencePieceProcessor(model_file=sp_path)
    return model


def datatrove_pieces(model: KenlmModel, texts: list[str]) -> int:
    """The tokens datatrove's path scores: its pieces plus one end per line, as it counts them."""
    return sum(len(line.split()) + 1 for t in texts for line in model.tokenizer.tokenize(model.normalize(t)).split("\n"))


def score_datatrove(model: KenlmModel, texts: list[str]) -> None:
    for text in texts:
        model.get_perplexity(text)


def score_ours(model: PerplexityModel, texts: list[str]) -> int:
    tokens = 0
    for i in range(0, len(texts), BATCH):
        tokens += sum(n for _, n in model.score_documents(texts[i : i + BATCH]))
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--language", default="en")
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--assets", default="assets")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sp_path = os.path.join(args.assets, f"{args.language}.sp.model")
    lm_path = os.path.join(args.assets, f"{args.language}.arpa.bin")
    if not os.path.exists(lm_path):
        sys.exit(f"{lm_path} not found: run `make assets` first")

    texts = [d.text for d in documents(args.language, args.documents)]
    print(f"{len(texts):,} {args.language} documents, {sum(map(len, texts)) / 1e6:.1f} M characters, model {lm_path}")
    ours, theirs = PerplexityModel(sp_path, lm_path), datatrove_model(sp_path, lm_path)
    pieces = {"datatrove KenlmModel.get_perplexity": datatrove_pieces(theirs, texts), "ours: batched": score_ours(ours, texts)}
    paths = {"datatrove KenlmModel.get_perplexity": lambda: score_datatrove(theirs, texts), "ours: batched": lambda: score_ours(ours, texts)}
    speeds = {name: [] for name in paths}
    names = list(paths)
    for round_ in range(args.rounds):
        for name in names[round_ % 2 :] + names[: round_ % 2]:
            gc.collect()
            start = time.perf_counter()
            paths[name]()
            seconds = time.perf_counter() - start
            speeds[name].append(pieces[name] / seconds)
            print(f"round {round_ + 1}  {name:<38} {pieces[name]:>10,} pieces  {seconds:6.2f} s  {pieces[name] / seconds:>12,.0f} pieces/s")
    medians = {name: statistics.median(s) for name, s in speeds.items()}
    for name, speed in medians.items():
        print(f"median  {name:<38} {speed:>12,.0f} pieces/s")
    print(f"ratio ours / datatrove: {medians[names[1]] / medians[names[0]]:.2f} (target >= 1.0)")


if __name__ == "__main__":
    main()
