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
SentencePiece call (ids; a second call for the lines with an unknown piece, `pieces_and_tokens`),
then scored line by line in KenLM's C++ code.
"""

import bisect
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
from datatrove.data import Document

from core import _text_stats
from core.config import number, section
from core.errors import AuroraError
from core.storage import local_asset
from filters.base import FilterConfig, RecipeContext, RecipeFilter, Removal, StepContext

# CCNet's text_normalizer.UNICODE_PUNCT, as published (including its "１" -> '"').
UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"', "」": '"',
    "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!", "（": "(", "）": ")",
    "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">",
    "【": "[", "】": "]", "％": "%", "►": "-",
}
BUCKETS = ("head", "middle", "tail")
CUTOFF_PERCENTILES = (30, 60)  # CCNet's head / middle / tail split
CUTOFFS_FILE = "perplexity_cutoffs.json"  # in the run folder, from the sampling pass (`pipeline.cutoffs`)


def normalize_lines(lines: list[str], strip_accents: bool = False) -> list[str]:
    """CCNet's normalization of each line (stripped, lower case, without accents with
    `strip_accents`, digits to 0, Unicode punctuation replaced, non-printing characters removed),
    done on all the lines at once, since a few calls per line cost more than SentencePiece's cut:
    no step makes or removes a newline, nor looks across one (lower case's final sigma stops there).
    Digits, punctuation and non-printing characters in one pass of `core/_text_stats.c`'s
    `ccnet_characters` (CCNet's are three regular expressions' passes)."""
    text = "\n".join(line.strip() for line in lines).lower()
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return _text_stats.ccnet_characters(text, UNICODE_PUNCT).split("\n") if lines else []


def perplexity(log10_score: float, tokens: int) -> float:
    return 10.0 ** (-log10_score / tokens)


class PerplexityModel:
    """A SentencePiece model and a KenLM model (CCNet/edugp layout: `<lang>.sp.model`, `<lang>.arpa.bin`)."""

    def __init__(self, sp_path: str, lm_path: str, strip_accents: bool = False):
        self.sp_path, self.lm_path, self.strip_accents = sp_path, lm_path, strip_accents
        self._sp = self._lm = self._vocabulary = None
        self._one_token_each = False

    def __getstate__(self):  # the loaded models stay in their process
        return {**self.__dict__, "_sp": None, "_lm": None, "_vocabulary": None}

    def _load_sentencepiece(self):
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=local_asset(self.sp_path))
        self._vocabulary = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        # SentencePiece writes white space as "▁", so a model's pieces hold none and each is one of
        # KenLM's tokens; a model that keeps white space in some piece has its lines' tokens counted.
        self._one_token_each = all(len(piece.split()) == 1 for piece in self._vocabulary)
        self._sp = processor  # last: a model is loaded once all of it is

    def pieces(self, lines: list[str]) -> list[str]:
        """Each line normalized and cut into space-separated pieces, as the KenLM model was trained."""
        return [line for line, _ in self.pieces_and_tokens(lines)]

    def pieces_and_tokens(self, lines: list[str]) -> list[tuple[str, int]]:
        """Each line's pieces (`pieces`) and how many tokens KenLM reads in them (CCNet's
        `len(line.split())`). SentencePiece is asked for ids, whose pieces are the vocabulary's
        str objects, where asking for pieces makes a new str of each (a third of its time on
        bench/curate.py's fi lines). A line with an unknown piece is cut again for its pieces: the
        model scores the unknown text itself there, not `<unk>`."""
        if self._sp is None:
            self._load_sentencepiece()
        normalized = normalize_lines(lines, self.strip_accents)
        vocabulary, unknown, lines_ids = self._vocabulary, self._sp.unk_id(), self._sp.encode(normalized)
        with_unknown = [i for i, ids in enumerate(lines_ids) if unknown in ids]
        cut_again = dict(zip(with_unknown, self._sp.encode([normalized[i] for i in with_unknown], out_type=str)))
        results = []
        for i, ids in enumerate(lines_ids):
            if i in cut_again:
                line = " ".join(cut_again[i])
                results.append((line, len(line.split())))
            else:
                line = " ".join(map(vocabulary.__getitem__, ids))
                results.append((line, len(ids) if self._one_token_each else len(line.split())))
        return results

    def score_documents(self, texts: list[str]) -> list[tuple[float, int]]:
        """(sum of log10 probabilities, tokens scored) per document; lines are its newline-separated
        parts, and each line's end is a token too (CCNet's `DocLM`)."""
        lines_per_doc = [t.split("\n") for t in texts]
        pieces = iter(self.pieces_and_tokens([line for lines in lines_per_doc for line in lines]))
        if self._lm is None:
            import kenlm

            self._lm = kenlm.Model(local_asset(self.lm_path))
        score = self._lm.score
        results = []
        for lines in lines_per_doc:
            total, tokens = 0.0, 0
            for _ in lines:
                line, line_tokens = next(pieces)
                total += score(line, bos=True, eos=True)
                tokens += line_tokens + 1
            results.append((total, tokens))
        return results

    def perplexities(self, texts: list[str]) -> list[float]:
        return [perplexity(s, n) for s, n in self.score_documents(texts)]


def bucket_cutoffs(perplexities: list[float]) -> list[float]:
    """CCNet's bucket boundaries: the 30th and 60th percentiles of a sample's perplexities."""
    return [float(v) for v in np.percentile(np.asarray(perplexities, dtype=float), CUTOFF_PERCENTILES)]


def bucket(value: float, cutoffs: list[float]) -> str:
    return BUCKETS[bisect.bisect_right(cutoffs, value)]


@dataclass(frozen=True)
class PerplexityConfig(FilterConfig):
    """`perplexity:` of a text recipe, with `assets.sp_model` and `assets.kenlm_model`: `mode: max`
    keeps documents at most `max_perplexity`; `mode: buckets` keeps those in the `keep` buckets,
    cut at percentiles of a sample of `sample_documents` documents taken before the run."""

    section = "perplexity"
    languages = ("text",)
    assets = ("sp_model", "kenlm_model")
    basis_meaning = "perplexity models or strip_accents"
    mode: str
    sp_model: str
    kenlm_model: str
    strip_accents: bool = False
    max_perplexity: float | None = None
    keep: tuple[str, ...] = ()
    sample_documents: int = 2000

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "PerplexityConfig | None":
        if data.get(cls.section) is None:
            return None
        path = recipe.path
        given = section(data, cls.section, {"mode", "max_perplexity", "keep", "strip_accents", "sample_documents"}, path)
        for key in ("sp_model", "kenlm_model"):
            if not isinstance(recipe.assets.get(key), str):
                raise AuroraError(f"{path}: the perplexity step needs 'assets.{key}'")
        strip_accents, mode = given.get("strip_accents", False), given.get("mode")
        if not isinstance(strip_accents, bool):
            raise AuroraError(f"{path}: 'perplexity.strip_accents' must be true or false")
        config = cls(mode, recipe.assets["sp_model"], recipe.assets["kenlm_model"], strip_accents)
        if mode == "max":
            max_perplexity = number(given.get("max_perplexity"), "perplexity.max_perplexity", path)
            if max_perplexity <= 0:
                raise AuroraError(f"{path}: 'perplexity.max_perplexity' must be above 0")
            return replace(config, max_perplexity=max_perplexity)
        if mode == "buckets":
            keep = given.get("keep")
            if not isinstance(keep, list) or not keep or not all(isinstance(b, str) and b in BUCKETS for b in keep):
                raise AuroraError(f"{path}: 'perplexity.keep' must list buckets among {', '.join(BUCKETS)}")
            sample = given.get("sample_documents", 2000)
            if isinstance(sample, bool) or not isinstance(sample, int) or sample < 10:
                raise AuroraError(f"{path}: 'perplexity.sample_documents' must be an integer of at least 10")
            return replace(config, keep=tuple(keep), sample_documents=sample)
        raise AuroraError(f"{path}: 'perplexity.mode' must be 'max' or 'buckets'")

    def model(self, local=str) -> PerplexityModel:
        return PerplexityModel(local(self.sp_model), local(self.kenlm_model), self.strip_accents)

    def steps(self, context: StepContext) -> list:
        return [PerplexityFilter(context.folder, self.model(context.local), self)]

    def columns(self, language: str) -> list[tuple[str, str]]:
        return [("perplexity", "float64"), ("perplexity_bucket", "string")]

    def basis(self, sha256) -> dict:
        return {"perplexity": {"sp_model": sha256(self.sp_model), "kenlm_model": sha256(self.kenlm_model),
                               "strip_accents": self.strip_accents}}

    def models(self) -> list[tuple[str, str]]:
        return [("SentencePiece model", self.sp_model), ("KenLM model", self.kenlm_model)]


def with_bucket(values: dict, cutoffs: list[float] | None) -> dict:
    """The values with the perplexity's bucket under the cut-offs (none without cut-offs: mode max)."""
    return values if cutoffs is None else {**values, "perplexity_bucket": bucket(values["perplexity"], cutoffs)}


def decide(values: dict, config: PerplexityConfig) -> Removal | None:
    if config.mode == "buckets":
        which = values["perplexity_bucket"]
        return None if which in config.keep else Removal(f"perplexity.bucket_{which}")
    value = values["perplexity"]
    return Removal("perplexity.max_perplexity", value, config.max_perplexity) if value > config.max_perplexity else None


class PerplexityFilter(RecipeFilter):
    """Keeps documents under `max_perplexity`, or in the `keep` buckets under the cut-offs of the
    run's sampling pass (`CUTOFFS_FILE` in the run folder, written before the filter pass)."""

    name = "📉 KenLM perplexity"
    step = "perplexity"

    def __init__(self, output_folder, model: PerplexityModel, config: PerplexityConfig, batch_size: int = 256):
        super().__init__(output_folder, ("perplexity", "perplexity_bucket"), batch_size=batch_size)
        self.model, self.config = model, config
        self._cutoffs = None
        self._buckets = Counter()
        if config.mode == "buckets":
            self.sample_size, self.cutoffs_file = config.sample_documents, CUTOFFS_FILE

    def reset(self) -> None:
        self._buckets = Counter()

    def task_summary(self) -> dict:
        return {"perplexity_buckets": dict(self._buckets)} if self.config.mode == "buckets" else {}

    def cutoffs(self) -> list[float] | None:
        if self.config.mode == "buckets" and self._cutoffs is None:
            with self.output_folder.open(CUTOFFS_FILE, "r") as f:
                self._cutoffs = json.load(f)["cutoffs"]
        return self._cutoffs

    def cutoffs_record(self, values: list[dict]) -> dict:
        perplexities = [v["perplexity"] for v in values]
        if len(perplexities) < 10:
            raise AuroraError(f"only {len(perplexities)} documents pass the filters before perplexity: too few for buckets")
        record = {"cutoffs": bucket_cutoffs(perplexities), "percentiles": list(CUTOFF_PERCENTILES), "sample_documents": len(perplexities)}
        self._cutoffs = record["cutoffs"]
        return record

    def measure(self, batch: list[Document]) -> list[dict]:
        return [{"perplexity": value} for value in self.model.perplexities([d.text for d in batch])]

    def stored(self, row: dict) -> dict:
        return {"perplexity": row.get("perplexity")}  # its bucket is taken again, under this run's cut-offs

    def judge(self, metadata: dict, values: dict):
        values = with_bucket(values, self.cutoffs())
        if "perplexity_bucket" in values:
            self._buckets[values["perplexity_bucket"]] += 1
        return super().judge(metadata, values)

    def annotate(self, metadata: dict, values: dict) -> None:
        metadata["perplexity"] = round(values["perplexity"], 1)
        if "perplexity_bucket" in values:
            metadata["perplexity_bucket"] = values["perplexity_bucket"]

    def decide(self, values: dict) -> Removal | None:
        if self.config.mode == "buckets" and "perplexity_bucket" not in values:
            values = with_bucket(values, self.cutoffs())
        return decide(values, self.config)
