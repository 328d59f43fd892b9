"""Perplexity with KenLM, the CCNet way: normalize each line, cut it into SentencePiece pieces,
score it with a KenLM n-gram model; a document's perplexity is 10 ** -(sum of the lines' log10
scores / number of scored tokens), a token being each piece plus each line's end, as CCNet's
`DocLM` counts them.

Normalization is CCNet's (lower case, digits to 0, Unicode punctuation replaced, non-printing
characters removed) EXCEPT that accents are kept by default: CCNet's `strip_accents` drops
every combining mark, which erases Vietnamese tone marks and Devanagari viramas, nuktas and
several matras. `strip_accents: true` reproduces CCNet exactly (NFD without marks, as CCNet
leaves it), for use with CCNet's own models.

Scoring is batched: the lines of a batch of documents are normalized and cut into pieces in one
SentencePiece call, then scored line by line in KenLM's C++ code.
"""

import json
import re
import unicodedata
from collections import Counter

import numpy as np
from datatrove.data import Document

from core.storage import local_asset
from filters.base import RecordedFilter, record

# CCNet's text_normalizer.UNICODE_PUNCT, as published (including its "１" -> '"').
UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"', "」": '"',
    "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!", "（": "(", "）": ")",
    "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">",
    "【": "[", "】": "]", "％": "%", "►": "-",
}
_PUNCT = str.maketrans(UNICODE_PUNCT)
_NON_PRINTING = re.compile(f"[{''.join(map(chr, list(range(0, 32)) + list(range(127, 160))))}]")
_DIGIT = re.compile(r"\d")
BUCKETS = ("head", "middle", "tail")
CUTOFF_PERCENTILES = (30, 60)  # CCNet's head / middle / tail split


def ccnet_normalize(line: str, strip_accents: bool = False) -> str:
    line = line.strip()
    if not line:
        return line
    line = line.lower()
    if strip_accents:
        line = "".join(c for c in unicodedata.normalize("NFD", line) if unicodedata.category(c) != "Mn")
    line = _DIGIT.sub("0", line)
    line = line.translate(_PUNCT)
    return _NON_PRINTING.sub("", line)


def perplexity(log10_score: float, tokens: int) -> float:
    return 10.0 ** (-log10_score / tokens)


class PerplexityModel:
    """A SentencePiece model and a KenLM model (CCNet/edugp layout: `<lang>.sp.model`, `<lang>.arpa.bin`)."""

    def __init__(self, sp_path: str, lm_path: str, strip_accents: bool = False):
        self.sp_path, self.lm_path, self.strip_accents = sp_path, lm_path, strip_accents
        self._sp = self._lm = None

    def __getstate__(self):  # the loaded models stay in their process
        return {**self.__dict__, "_sp": None, "_lm": None}

    def pieces(self, lines: list[str]) -> list[str]:
        """Each line normalized and cut into space-separated pieces, as the KenLM model was trained."""
        if self._sp is None:
            import sentencepiece

            self._sp = sentencepiece.SentencePieceProcessor(model_file=local_asset(self.sp_path))
        normalized = [ccnet_normalize(line, self.strip_accents) for line in lines]
        return [" ".join(p) for p in self._sp.encode(normalized, out_type=str)]

    def score_documents(self, texts: list[str]) -> list[tuple[float, int]]:
        """(sum of log10 probabilities, tokens scored) per document; lines are its newline-separated parts."""
        lines_per_doc = [t.split("\n") for t in texts]
        pieces = iter(self.pieces([line for lines in lines_per_doc for line in lines]))
        if self._lm is None:
            import kenlm

            self._lm = kenlm.Model(local_asset(self.lm_path))
        score = self._lm.score
        results = []
        for lines in lines_per_doc:
            total, tokens = 0.0, 0
            for _ in lines:
                line = next(pieces)
                total += score(line, bos=True, eos=True)
                tokens += len(line.split()) + 1
            results.append((total, tokens))
        return results

    def perplexities(self, texts: list[str]) -> list[float]:
        return [perplexity(s, n) for s, n in self.score_documents(texts)]


def bucket_cutoffs(perplexities: list[float]) -> list[float]:
    """CCNet's bucket boundaries: the 30th and 60th percentiles of a sample's perplexities."""
    return [float(v) for v in np.percentile(np.asarray(perplexities, dtype=float), CUTOFF_PERCENTILES)]


def bucket(value: float, cutoffs: list[float]) -> str:
    return BUCKETS[int(np.searchsorted(cutoffs, value, side="right"))]


class PerplexityFilter(RecordedFilter):
    """Keeps documents under `max_perplexity`, or in the `keep` buckets given the cut-offs file."""

    name = "📉 KenLM perplexity"
    step = "perplexity"

    def __init__(self, output_folder, model: PerplexityModel, max_perplexity: float | None = None,
                 cutoffs_path: str | None = None, keep: list[str] | None = None, batch_size: int = 256):
        super().__init__(output_folder, batch_size=batch_size)
        self.model, self.max_perplexity = model, max_perplexity
        self.cutoffs_path, self.keep = cutoffs_path, set(keep or [])
        self._cutoffs = None
        self._buckets = Counter()

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._buckets = Counter()
        yield from super().run(data, rank, world_size)

    def task_summary(self) -> dict:
        return {"perplexity_buckets": dict(self._buckets)} if self.cutoffs_path else {}

    def filter_batch(self, batch: list[Document]):
        if self.cutoffs_path and self._cutoffs is None:
            with self.output_folder.open(self.cutoffs_path, "r") as f:
                self._cutoffs = json.load(f)["cutoffs"]
        values = self.model.perplexities([d.text for d in batch])
        results = []
        for doc, value in zip(batch, values):
            record(doc, {"perplexity": value})
            doc.metadata["perplexity"] = round(value, 1)
            if self._cutoffs is not None:
                doc.metadata["perplexity_bucket"] = which = bucket(value, self._cutoffs)
                record(doc, {"perplexity_bucket": which})
                self._buckets[which] += 1
                results.append(True if which in self.keep else (False, f"perplexity.bucket_{which}"))
            elif value <= self.max_perplexity:
                results.append(True)
            else:
                record(doc, {"removed_value": value, "removed_threshold": float(self.max_perplexity)})
                results.append((False, "perplexity.max_perplexity"))
        return results

    def filter(self, doc: Document):
        return self.filter_batch([doc])[0]
