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

The model is one of two formats:

- a fastText supervised `.bin` or `.ftz` with any label scheme (`__label__hq` of DCLM's
  `openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin`, NeMo Curator's and datatrove's);
  `label` names the positive one. fastText reads one line, so a document's newlines become
  spaces, as those pipelines do before they score (`classifier_line`; Japanese, which has no
  spaces, is cut into words by the segmenter). `aurora quality train` (`tooling.quality`) trains one.
- a transformers sequence-classification folder (config.json, model.safetensors and the
  tokenizer's files: FineWeb-Edu's `HuggingFaceFW/fineweb-edu-classifier`), read as it is
  (`SequenceClassifier`): a regression head's output is the score (FineWeb-Edu's 0 to 5), a
  head of classes gives the probability of the class `label` names.

The score is stored in the signals (`quality.score`): a refilter changes the mode and its cut-off
without scoring again.
"""

import hashlib
import itertools
import os
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
FORWARD_DOCUMENTS = 16  # the documents of one forward pass of a transformers model on a GPU (one on a CPU)
SHORTEST_FORWARD = 64  # tokens: the shortest length a forward pass pads its documents to


def classifier_line(text: str, language: str) -> str:
    """A document as the classifier reads it, one line of space-separated tokens: its whitespace
    tokens, or for Japanese, which has no spaces, its words (`core.text.words`, the segmenter's)."""
    return " ".join(words(text, language) if language == "ja" else text.split())


@dataclass(frozen=True)
class QualityConfig(FilterConfig):
    """`quality: {model, label, mode, min_score | fraction, sample_documents | alpha, seed}` of a text recipe.
    `label` goes with a model of labels (fastText, a head of classes), not with a regression model;
    `min_score`'s range is the model's scores' (`check`)."""

    section = "quality"
    languages = ("text",)
    basis_meaning = "classifier or its positive label"
    model: str
    label: str | None  # the positive label, without `__label__`; None for a regression model
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
            if (key == "model" or key in given) and (not isinstance(given.get(key), str) or not given[key]):
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
        label = given["label"].removeprefix("__label__") if "label" in given else None
        config = cls(given["model"], label, mode,
                     seed=integer(given.get("seed", 0), "quality.seed", path, 0, (1 << 63) - 1))
        if mode == "min_score":  # its range is the model's (`check`)
            return replace(config, min_score=number(given["min_score"], "quality.min_score", path))
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
        return {"quality": {"model": model_sha256(self.model, sha256), "label": self.label}}

    def models(self) -> list[tuple[str, str]]:
        return [("quality classifier", self.model)]

    def check(self, language: str) -> None:
        """The model read whole, its label checked, and the settings its scores allow: a
        probability's cut-off in [0, 1]; a regression model's any number, and no Pareto keep
        (GPT-3's draw compares 1 - score with a probability)."""
        classifier = open_classifier(self.model, self.label, language)
        if classifier.probability and self.min_score is not None and not 0 <= self.min_score <= 1:
            raise AuroraError(f"'quality.min_score' must be in [0, 1] for {self.model}, whose scores are probabilities, "
                              f"got {self.min_score!r}")
        if not classifier.probability and self.mode == "pareto":
            raise AuroraError(f"quality mode pareto needs a probability: {self.model} is a regression model, "
                              "its score is its output (use min_score or keep_top_fraction)")


def model_sha256(path: str, sha256) -> str:
    """What pins a model in the signals basis: a file's sha256 (`sha256(path)`); a folder's, the
    sha256 of its files' names and sha256s in name order, every file but hidden ones (a
    download's `.cache`), so nothing from_pretrained reads is left out."""
    if not os.path.isdir(path):
        return sha256(path)
    names = sorted(name for name in os.listdir(path) if not name.startswith(".") and os.path.isfile(os.path.join(path, name)))
    listing = "".join(f"{name}\0{sha256(os.path.join(path, name))}\n" for name in names)
    return hashlib.sha256(listing.encode("utf-8", "surrogatepass")).hexdigest()


def _missing_label(path: str, label: str | None, labels: list[str]) -> AuroraError:
    """A model of labels without the recipe's (or with none given): the error names its labels."""
    what = "needs 'quality.label', its positive label" if label is None else f"has no label '{label}'"
    return AuroraError(f"quality classifier {path} {what}: its labels are {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}")


def load_classifier(path: str, label: str | None):
    """The fastText model, refused when `label` is not one of its labels."""
    model = load_fasttext(path)
    labels = [name.removeprefix("__label__") for name in model.get_labels()]
    if label not in labels:
        raise _missing_label(path, label, labels)
    return model


def positive_scores(model, lines: list[str], label: str) -> list[float]:
    """Each line's probability of the positive `label` (0 when the model does not rank it), in [0, 1]."""
    names_per_line, probabilities = model.predict(lines, k=-1)
    positive = f"__label__{label}"
    return [min(max(next((float(p) for name, p in zip(names, probs) if name == positive), 0.0), 0.0), 1.0)
            for names, probs in zip(names_per_line, probabilities)]


class FastTextClassifier:
    """A fastText model: each document's probability of the positive label, on its one line."""

    probability = True

    def __init__(self, path: str, label: str | None, language: str):
        self.model, self.label, self.language = load_classifier(path, label), label, language

    def scores(self, texts: list[str]) -> list[float]:
        return positive_scores(self.model, [classifier_line(text, self.language) for text in texts], self.label)


class SequenceClassifier:
    """A transformers sequence-classification folder, read with `from_pretrained` from its files
    only: safetensors weights (a pickle is never loaded), no code of its own (`trust_remote_code`
    stays off). A regression head (one output) gives its output as the score, FineWeb-Edu's 0-5
    (its `int_score` is that rounded; the float is kept); a head of classes gives the softmax
    probability of the class `label` names in its `id2label`.

    A document is read as it is, newlines and all (FineWeb-Edu's classifier reads raw text), cut
    to the model's maximum length in tokens as FineWeb-Edu's annotation does. float32 on the GPU
    as on the CPU: bf16 would round a score near FineWeb-Edu's cut-off of 3 to steps of 1/64 before
    any error its arithmetic adds, moving documents across a cut-off from one device to the other.
    On the CPU, one thread: a task is one process, as everywhere in the pipeline (`--workers` sets
    the parallelism), so tasks do not contend for cores.

    A document's score must not depend on the documents scored with it: a refilter replays stored
    scores, and a curate of the same recipe meets each document in other company (its
    keep_top_fraction sample, scored before the filter pass; fewer documents when a filter before
    tightens). torch promises no such thing for a batch (on this project's CPU a 2-class head gives
    a row another last bit when the other rows change; SDPA switches kernels when no document of a
    batch is padded), so a forward pass has one shape for a document wherever it is:
    `FORWARD_DOCUMENTS` documents on a GPU, one on a CPU (where a document's matrices already fill
    the core), of its length rounded up to a power of two (from `SHORTEST_FORWARD` to the maximum),
    a short group filled out with copies of its first document, with eager attention, which applies
    the padding mask the same way whatever the batch."""

    def __init__(self, path: str, label: str | None):
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise AuroraError(f"quality classifier {path} is a transformers folder, which needs torch and transformers: "
                              "pip install -e '.[train]'") from None
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise AuroraError(f"quality classifier {path} is a folder without config.json, not a transformers model")
        if not any(os.path.isfile(os.path.join(path, name)) for name in ("model.safetensors", "model.safetensors.index.json")):
            pickled = " (its pytorch_model.bin is a pickle, which is never loaded: save the model with safetensors)" \
                if os.path.isfile(os.path.join(path, "pytorch_model.bin")) else ""
            raise AuroraError(f"quality classifier {path} has no model.safetensors{pickled}")
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch.float32, attn_implementation="eager",
                output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        except Exception as e:  # noqa: BLE001 - transformers raises many kinds for a folder it cannot read: one line
            raise AuroraError(f"cannot load quality classifier {path}: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
        if loading["missing_keys"]:  # a bare encoder gets a random head: its scores would mean nothing
            raise AuroraError(f"quality classifier {path} is not a sequence-classification model: its weights lack "
                              f"{', '.join(sorted(loading['missing_keys'])[:5])}")
        config = model.config
        kind = config.problem_type or ("regression" if config.num_labels == 1 else "single_label_classification")
        if kind not in ("regression", "single_label_classification") or (kind == "regression") != (config.num_labels == 1):
            raise AuroraError(f"quality classifier {path} is a {kind} model of {config.num_labels} outputs: the filter reads "
                              "a regression model of one output or a classifier of classes")
        self.probability = kind != "regression"
        if not self.probability and label is not None:
            raise AuroraError(f"quality classifier {path} is a regression model, its one output the score: leave out 'quality.label'")
        if self.probability:
            labels = [config.id2label[i] for i in range(config.num_labels)]
            if label not in labels:
                raise _missing_label(path, label, labels)
            self.index = labels.index(label)
        lengths = [n for n in (tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)) if n and n < 1 << 20]
        if not lengths or tokenizer.pad_token_id is None:
            raise AuroraError(f"quality classifier {path}: its tokenizer has no "
                              f"{'padding token' if lengths else 'maximum length (model_max_length in tokenizer_config.json)'}")
        self.max_length = min(lengths)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.forward_documents = FORWARD_DOCUMENTS if self.device.type == "cuda" else 1
        if self.device.type == "cpu":
            torch.set_num_threads(1)
        self.model, self.tokenizer = model.to(self.device).eval(), tokenizer

    def scores(self, texts: list[str]) -> list[float]:
        import torch

        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        padded = [min(self.max_length, max(SHORTEST_FORWARD, 1 << (len(i) - 1).bit_length())) for i in ids]
        scores = [0.0] * len(ids)
        for length, same in itertools.groupby(sorted(range(len(ids)), key=padded.__getitem__), key=padded.__getitem__):
            same = list(same)
            for start in range(0, len(same), self.forward_documents):
                rows = same[start:start + self.forward_documents]
                inputs = torch.full((self.forward_documents, length), self.tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros((self.forward_documents, length), dtype=torch.long)
                for row, k in enumerate(rows + rows[:1] * (self.forward_documents - len(rows))):
                    inputs[row, :len(ids[k])], mask[row, :len(ids[k])] = torch.tensor(ids[k]), 1
                with torch.inference_mode():
                    logits = self.model(input_ids=inputs.to(self.device), attention_mask=mask.to(self.device)).logits.float()
                values = torch.softmax(logits, dim=-1)[:, self.index] if self.probability else logits[:, 0]
                for k, value in zip(rows, values.tolist()):
                    scores[k] = value
        return scores


def open_classifier(path: str, label: str | None, language: str):
    """The recipe's model: a folder is a transformers model, a file a fastText one."""
    return SequenceClassifier(path, label) if os.path.isdir(path) else FastTextClassifier(path, label, language)


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
        self._classifier = None
        if config.mode == "keep_top_fraction":
            self.sample_size, self.cutoffs_file = config.sample_documents, CUTOFF_FILE

    def __getstate__(self):  # the loaded model stays in its process
        return {**self.__dict__, "_classifier": None}

    def measure(self, batch: list[Document]) -> list[dict]:
        if self._classifier is None:
            self._classifier = open_classifier(self.config.model, self.config.label, self.language)
        scores = self._classifier.scores([doc.text for doc in batch])
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
