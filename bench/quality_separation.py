"""How well the demo quality classifiers separate real clean text from each kind of generated
junk, beside the KenLM perplexity models on the same documents.

Per language: the classifier `aurora assets build` trained (`assets/quality/<lang>.ftz`, DCLM's
recipe by `aurora quality train`, on documents of the project's own sample text against the demo
generator's junk kinds), and the KenLM model beside it, are measured on documents neither saw:
real clean text, documents of sentences from ../shared/corpus, against new documents of each junk
kind (another seed than the classifier's data; `wrong_language` is text of the other four
languages). Printed per kind: the ROC AUC of the classifier's score and of KenLM's perplexity
(lower is cleaner). The junk is generated, the clean text is real.

    .venv/bin/python bench/quality_separation.py [--assets assets] [--clean 200] [--junk 40] [--languages en fi hi ja vi]
"""

import argparse
import os
import random
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from filters.perplexity import PerplexityModel  # noqa: E402
from filters.quality import classifier_line, load_classifier, positive_scores  # noqa: E402
from pipeline.recipe import TEXT_LANGUAGES  # noqa: E402
from tooling.demo_data import JUNK_KINDS, clean_document, junk_document  # noqa: E402
from tooling.quality import card_path, roc_auc  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "corpus")
# Copies of clean documents are dedup's to remove; wrong_language is measured on the other languages' text.
KINDS = [kind for kind in JUNK_KINDS if kind not in ("wrong_language", "exact_duplicate", "near_duplicate")]


def junk(rng: random.Random, language: str, kind: str, count: int) -> list[str]:
    if kind == "wrong_language":
        others = [other for other in TEXT_LANGUAGES if other != language]
        return [junk_document(kind, rng, language, [], [others[i % len(others)]], []) for i in range(count)]
    return [junk_document(kind, rng, language, sample_sentences(language), [], []) for _ in range(count)]


def measure(language: str, assets: str, clean_count: int, junk_count: int) -> tuple[dict, dict]:
    model_path = os.path.join(assets, "quality", f"{language}.ftz")
    with open(card_path(model_path), "rb") as f:
        card = orjson.loads(f.read())
    classifier = load_classifier(model_path, "hq")
    kenlm = PerplexityModel(os.path.join(assets, f"{language}.sp.model"), os.path.join(assets, f"{language}.arpa.bin"))

    def scores(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        quality = positive_scores(classifier, [classifier_line(t, language) for t in texts], "hq")
        return np.array(quality), -np.array(kenlm.perplexities(texts))  # higher is cleaner for both

    with open(os.path.join(CORPUS, f"{language}.txt"), encoding="utf-8") as f:
        corpus = [line.strip() for line in f if line.strip()]
    test_rng = random.Random(1)
    clean_quality, clean_kenlm = scores([clean_document(test_rng, corpus, language) for _ in range(clean_count)])
    table = {}
    for kind in KINDS + ["wrong_language"]:
        junk_quality, junk_kenlm = scores(junk(test_rng, language, kind, junk_count))
        table[kind] = (roc_auc(clean_quality, junk_quality), roc_auc(clean_kenlm, junk_kenlm))
    return table, card["held_out"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="assets")
    parser.add_argument("--clean", type=int, default=200)
    parser.add_argument("--junk", type=int, default=40)
    parser.add_argument("--languages", nargs="+", choices=TEXT_LANGUAGES, default=list(TEXT_LANGUAGES))
    args = parser.parse_args()
    for language in args.languages:
        for path in (os.path.join(CORPUS, f"{language}.txt"), os.path.join(args.assets, f"{language}.arpa.bin"),
                     os.path.join(args.assets, "quality", f"{language}.ftz")):
            if not os.path.exists(path):
                sys.exit(f"{path} not found: needs ../shared/corpus and `make assets`")
    rows, held = {}, {}
    for language in args.languages:
        rows[language], held[language] = measure(language, args.assets, args.clean, args.junk)
        print(f"{language}: its card's held-out AUC (sample text against generated junk) {held[language]['auc']:.4f}", flush=True)
    print(f"\nROC AUC, real clean text ({args.clean} documents of ../shared/corpus sentences) against {args.junk} documents "
          "of each junk kind: quality classifier / KenLM perplexity\n")
    print("| kind | " + " | ".join(args.languages) + " |")
    print("| --- |" + " ---: |" * len(args.languages))
    for kind in KINDS + ["wrong_language"]:
        print(f"| {kind} | " + " | ".join(f"{rows[lang][kind][0]:.3f} / {rows[lang][kind][1]:.3f}" for lang in args.languages) + " |")
    for which, name in ((0, "quality classifier"), (1, "KenLM")):
        means = [np.mean([rows[lang][kind][which] for kind in rows[lang]]) for lang in args.languages]
        print(f"| mean, {name} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()
