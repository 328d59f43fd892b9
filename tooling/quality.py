"""`aurora quality train`: a document quality classifier trained the way DCLM trained its own:
fastText on word bigrams, the two classes balanced (the larger one sampled down to the smaller),
a held-out part of each class kept out of training to measure it. It prints precision, recall
(of the positive class, at a score of 0.5) and ROC AUC on the held-out part, and writes a model
card beside the model (`MODEL.card.json`): the data files with their sha256 and documents, the
documents trained on and held out, the parameters, and the scores.

The labels are DCLM's, `__label__hq` (positive) and `__label__cc`, so a recipe's `quality`
section names `label: hq`. A document becomes one line as `filters.quality` scores it
(`classifier_line`: Japanese segmented into words). fastText trains on one thread, so the same
data and seed give the same model bytes.

A model written as `.bin` is fastText's full model: with word bigrams hashed into its 2M buckets
of 100 dimensions, about 800 MB, as DCLM's. Written as `.ftz` it is quantized as fastText's own
`.ftz` models are (lid.176.ftz): retrained on the same data keeping the 20,000 words and bigrams
of largest norm, then product-quantized, about 1.3 MB. On the en demo classifier's held-out
documents (`aurora assets build`'s data: our own sample text against generated junk) it scores an AUC of 0.971 where the full model scores
0.944 (fewer, stronger features); a classifier trained on much more data may lose more.
"""

import glob
import os
import random
import tempfile

import numpy as np
import orjson
from datatrove.io import get_datafolder
from scipy.stats import rankdata

from core.atomic import write_atomic
from core.errors import AuroraError
from core.tokenizer import file_sha256
from filters.quality import classifier_line, positive_scores
from readers.records import readable_documents

POSITIVE, NEGATIVE = "hq", "cc"
PARAMETERS = {"wordNgrams": 2, "dim": 100, "lr": 0.1, "epoch": 10, "minCount": 1, "thread": 1}
QUANTIZE = {"cutoff": 20_000, "retrain": True, "qnorm": True, "thread": 1}  # a `.ftz` output's (fastText's quantize)


def _files(patterns: list[str], what: str) -> list[str]:
    files = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern] if os.path.isfile(pattern) else []
        if not matched:
            raise AuroraError(f"--{what} {pattern}: no such file")
        files += matched
    return files


def _documents(files: list[str], language: str) -> tuple[list[str], list[dict]]:
    """Each file's documents as classifier lines (empty ones left out), and each file described."""
    lines, described = [], []
    for path in files:
        with open(path, "rb") as f:
            sha = file_sha256(f)
        before = len(lines)
        lines += [line for line in (classifier_line(doc.text, language) for doc in readable_documents(path)) if line]
        described.append({"path": path, "sha256": sha, "documents": len(lines) - before})
    return lines, described


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The probability that a positive document scores above a negative one, ties counting half
    (the Mann-Whitney U statistic over the two sizes: the area under the ROC curve)."""
    ranks = rankdata(np.concatenate([positive, negative]))  # tied scores share their mean rank
    u = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


def train_classifier(language: str, positive: list[str], negative: list[str], output: str, held_out: float = 0.1,
                     seed: int = 0) -> dict:
    """Train, measure and save the classifier and its card; returns the card."""
    import fasttext

    if not 0 < held_out < 1:
        raise AuroraError("--held-out must be between 0 and 1")
    if not output.endswith((".bin", ".ftz")):
        raise AuroraError(f"--output {output}: a fastText model is a .bin (full) or a .ftz (quantized)")
    sets = {}
    for label, patterns, what in ((POSITIVE, positive, "positive"), (NEGATIVE, negative, "negative")):
        lines, described = _documents(_files(patterns, what), language)
        sets[label] = (lines, described)
    size = min(len(sets[POSITIVE][0]), len(sets[NEGATIVE][0]))
    held = round(size * held_out)
    if held < 1 or size - held < 1:
        raise AuroraError(f"{size} documents in the smaller class: too few to train on and hold some out")
    rng = random.Random(seed)
    train, test = [], {}
    for label, (lines, _) in sets.items():
        chosen = rng.sample(lines, size)  # balanced: the larger class sampled down
        test[label] = chosen[:held]
        train += [f"__label__{label} {line}" for line in chosen[held:]]
    rng.shuffle(train)
    with tempfile.TemporaryDirectory() as scratch:
        data = os.path.join(scratch, "train.txt")
        with open(data, "w", encoding="utf-8") as f:
            f.write("\n".join(train) + "\n")
        model = fasttext.train_supervised(input=data, seed=seed, verbose=0, **PARAMETERS)
        if output.endswith(".ftz"):
            model.quantize(input=data, verbose=0, **QUANTIZE)
    scores = {}
    for label, lines in test.items():
        scores[label] = np.array(positive_scores(model, lines, POSITIVE))
    predicted_positive = np.concatenate([scores[POSITIVE], scores[NEGATIVE]]) >= 0.5
    true_positive = int((scores[POSITIVE] >= 0.5).sum())
    measured = {
        "precision": true_positive / max(int(predicted_positive.sum()), 1),
        "recall": true_positive / held,
        "auc": roc_auc(scores[POSITIVE], scores[NEGATIVE]),
    }
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    model.save_model(output)
    with open(output, "rb") as f:
        model_sha = file_sha256(f)
    card = {
        "model": {"path": output, "sha256": model_sha, "labels": {"positive": POSITIVE, "negative": NEGATIVE}},
        "language": language,
        "data": {"positive": sets[POSITIVE][1], "negative": sets[NEGATIVE][1]},
        "documents": {"per_class": size, "trained_per_class": size - held, "held_out_per_class": held},
        "parameters": {**PARAMETERS, "seed": seed, "held_out": held_out, **({"quantize": QUANTIZE} if output.endswith(".ftz") else {})},
        "held_out": {key: round(value, 4) for key, value in measured.items()},
    }
    card_file = card_path(output)
    write_atomic(get_datafolder(os.path.dirname(os.path.abspath(card_file))), os.path.basename(card_file),
                 orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
    return card


def card_path(model: str) -> str:
    return os.path.splitext(model)[0] + ".card.json"
