"""Model-based quality selection, as DCLM, GPT-3 and NeMo Curator pick documents on top of rules:
a fastText classifier scores each document (the probability of its positive label), and a
document is kept by one of three modes:

- `min_score`: a fixed cut-off (datatrove's `FastTextClassifierFilter`, DCLM's threshold);
- `keep_top_fraction`: the cut-off that keeps the best `fraction` of a sample of the run's
  documents (those that pass the filters before it, taken before the filter pass, as the
  perplexity buckets are: `pipeline.cutoffs`), written to `quality_cutoff.json` in the run
  folder (DCLM kept its classifier's top 10%);
- `pareto`: GPT-3's stochastic keep, a document kept when a Pareto draw with shape `alpha`
  exceeds `1 - score`, so good documents are almost always kept and poor ones sometimes (GPT-3
  used alpha 9). The draw is a function of the document's id and the recipe's `seed`, so a run
  is deterministic and a refilter replays it.

The model is any fastText supervised `.bin` or `.ftz` with any label scheme (`__label__hq` of
DCLM's `openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin`, NeMo Curator's and datatrove's);
`label` names the positive one. fastText reads one line, so a document's newlines become spaces,
as those pipelines do before they score (`classifier_line`; Japanese, which has no spaces, is
cut into words by the segmenter). `aurora quality train` (`tooling.quality`) trains one. The score is stored in the signals (`quality.score`):
a refilter changes the mode and its cut-off without scoring again.
"""

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import orjson
from datatrove.data import Document

from core.config import integer, number, section
from core.errors import AuroraError
from core.text import words
from filters.base import FilterConfig, RecipeContext, RecipeFilter, Removal, StepContext
from filters.language_id import load_fasttext

SCORE = "quality.score"
MODES = ("min_score", "keep_top_fraction", "pareto")
CUTOFF_FILE = "quality_cutoff.json"  # in the run folder, from the sampling pass (`pipeline.cutoffs`)


def classifier_line(text: str, language: str) -> str:
    """A document as the classifier reads it, one line of space-separated tokens: its whitespace
    tokens, or for Japanese, which has no spaces, its words (`core.text.words`, the segmenter's)."""
    return " ".join(words(text, language) if language == "ja" else text.split())


@dataclass(frozen=True)
class QualityConfig(FilterConfig):
    """`quality: {model, label, mode, min_score | fraction, sample_documents | alpha, seed}` of a text recipe."""

    section = "quality"
    languages = ("text",)
    basis_meaning = "classifier or its positive label"
    model: str
    label: str  # the positive label, without `__label__`
    mode: str
    min_score: float | None = None  # mode min_score; in keep_top_fraction, the cut-off its sample gave
    fraction: float | None = None
    sample_documents: int = 2000
    alpha: float | None = None
    seed: int = 0

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "QualityConfig | None":
        if data.get(cls.section) is None:
            return None
        path = recipe.path
        given = section(data, cls.section, {"model", "label", "mode", "min_score", "fraction", "sample_documents", "alpha", "seed"}, path)
        for key in ("model", "label"):
            if not isinstance(given.get(key), str) or not given[key]:
                raise AuroraError(f"{path}: 'quality.{key}' must be a non-empty string")
        mode = given.get("mode")
        if mode not in MODES:
            raise AuroraError(f"{path}: 'quality.mode' must be one of {', '.join(MODES)}, not {mode!r}")
        for key, needed in (("min_score", "min_score"), ("fraction", "keep_top_fraction"), ("alpha", "pareto")):
            if (key in given) != (mode == needed):
                raise AuroraError(f"{path}: 'quality.{key}' goes with mode {needed}" if key in given
                                  else f"{path}: mode {mode} needs 'quality.{key}'")
        if "sample_documents" in given and mode != "keep_top_fraction":
            raise AuroraError(f"{path}: 'quality.sample_documents' goes with mode keep_top_fraction")
        config = cls(given["model"], given["label"].removeprefix("__label__"), mode,
                     seed=integer(given.get("seed", 0), "quality.seed", path, 0, (1 << 63) - 1))
        if mode == "min_score":
            score = number(given["min_score"], "quality.min_score", path)
            if not 0 <= score <= 1:
                raise AuroraError(f"{path}: 'quality.min_score' must be in [0, 1], got {score!r}")
            return replace(config, min_score=score)
        if mode == "keep_top_fraction":
            fraction = number(given["fraction"], "quality.fraction", path)
            if not 0 < fraction <= 1:
                raise AuroraError(f"{path}: 'quality.fraction' must be above 0 and at most 1, got {fraction!r}")
            sample = integer(given.get("sample_documents", 2000), "quality.sample_documents", path, 10, 1 << 24)
            return replace(config, fraction=fraction, sample_documents=sample)
        alpha = number(given["alpha"], "quality.alpha", path)
        if not 0 < alpha <= 1000:
            raise AuroraError(f"{path}: 'quality.alpha' must be above 0 and at most 1000, got {alpha!r}")
        return replace(config, alpha=alpha)

    def steps(self, context: StepContext) -> list:
        return [QualityFilter(context.folder, context.language, replace(self, model=context.local(self.model)))]

    def columns(self, language: str) -> list[tuple[str, str]]:
        return [(SCORE, "float64")]

    def basis(self, sha256) -> dict:
        return {"quality": {"model": sha256(self.model), "label": self.label}}

    def models(self) -> list[tuple[str, str]]:
        return [("quality classifier", self.model)]

    def check(self, language: str) -> None:
        load_classifier(self.model, self.label)


def load_classifier(path: str, label: str):
    """The fastText model, refused when `label` is not one of its labels."""
    model = load_fasttext(path)
    labels = [name.removeprefix("__label__") for name in model.get_labels()]
    if label not in labels:
        raise AuroraError(f"quality classifier {path} has no label '{label}': its labels are "
                          f"{', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}")
    return model


def positive_scores(model, lines: list[str], label: str) -> list[float]:
    """Each line's probability of the positive `label` (0 when the model does not rank it), in [0, 1]."""
    names_per_line, probabilities = model.predict(lines, k=-1)
    positive = f"__label__{label}"
    return [min(max(next((float(p) for name, p in zip(names, probs) if name == positive), 0.0), 0.0), 1.0)
            for names, probs in zip(names_per_line, probabilities)]


def pareto_draw(document_id: str, seed: int, alpha: float) -> float:
    """numpy's `pareto(alpha)` (Lomax) by the inverse of its distribution, at a uniform number
    taken from the document's id and the seed: the same draw for the same document in every run."""
    digest = hashlib.blake2b(f"{seed}\0{document_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / 2.0**64  # in (0, 1)
    return (1.0 - uniform) ** (-1.0 / alpha) - 1.0


def decide(values: dict, config: QualityConfig) -> Removal | None:
    score = values[SCORE]
    if config.mode in ("min_score", "keep_top_fraction"):
        return Removal(f"quality.{config.mode}", score, config.min_score) if score < config.min_score else None
    needed = 1.0 - pareto_draw(values["id"], config.seed, config.alpha)  # kept when draw > 1 - score
    return Removal("quality.pareto", score, needed) if score <= needed else None


class QualityFilter(RecipeFilter):
    """Scores each document with the classifier and keeps it by the recipe's mode."""

    name = "⭐ Quality classifier"
    step = "quality"

    def __init__(self, output_folder, language: str, config: QualityConfig, batch_size: int = 256):
        super().__init__(output_folder, (SCORE,), batch_size=batch_size)
        self.language, self.config = language, config
        self._model = None
        if config.mode == "keep_top_fraction":
            self.sample_size, self.cutoffs_file = config.sample_documents, CUTOFF_FILE

    def __getstate__(self):  # the loaded model stays in its process
        return {**self.__dict__, "_model": None}

    def measure(self, batch: list[Document]) -> list[dict]:
        if self._model is None:
            self._model = load_classifier(self.config.model, self.config.label)
        scores = positive_scores(self._model, [classifier_line(doc.text, self.language) for doc in batch], self.config.label)
        return [{SCORE: score, "id": doc.id} for doc, score in zip(batch, scores)]

    def stored(self, row: dict) -> dict:
        return {SCORE: row.get(SCORE), "id": row.get("id")}

    def annotate(self, metadata: dict, values: dict) -> None:
        metadata["quality_score"] = round(values[SCORE], 4)

    def task_summary(self) -> dict:
        """In keep_top_fraction mode, the cut-off the run took, for the manifest (`cutoffs`)."""
        if self.config.mode != "keep_top_fraction":
            return {}
        with self.output_folder.open(CUTOFF_FILE, "rb") as f:
            return {"cutoffs": {self.step: orjson.loads(f.read())}}

    def cutoffs_record(self, values: list[dict]) -> dict:
        """The score at the (1 - fraction) quantile of the sample: documents at or above it are kept."""
        scores = [v[SCORE] for v in values]
        if len(scores) < 10:
            raise AuroraError(f"only {len(scores)} documents pass the filters before quality: too few for a cut-off")
        cutoff = float(np.quantile(np.asarray(scores, dtype=float), 1 - self.config.fraction))
        self.config = replace(self.config, min_score=cutoff)
        return {"cutoff": cutoff, "fraction": self.config.fraction, "sample_documents": len(scores)}

    def decide(self, values: dict) -> Removal | None:
        if self.config.mode == "keep_top_fraction" and self.config.min_score is None:  # the sampling pass's cut-off
            with self.output_folder.open(CUTOFF_FILE, "rb") as f:
                self.config = replace(self.config, min_score=orjson.loads(f.read())["cutoff"])
        return decide(values, self.config)
