"""Language identification with a fastText model (ours from `aurora assets build`, or lid.176 / GlotLID)."""

from dataclasses import dataclass, replace

from datatrove.data import Document

from core.config import number, section
from core.errors import AuroraError
from core.storage import local_asset
from filters.base import FilterConfig, RecipeContext, RecipeFilter, Removal, StepContext

# The recipe languages and their labels in the two fastText label schemes: ISO 639-1
# (`__label__en`: lid.176) and ISO 639-3 with the ISO 15924 script
# (`__label__eng_Latn`: GlotLID, as NLLB's and OpenLID's models). The script is part of the
# language: the hi recipe (its heuristics, perplexity model, budgets) is Devanagari Hindi, so
# GlotLID's hin_Latn (romanized Hindi), like every other label, stands for no recipe language.
LABELS = {"en": ("en", "eng_Latn"), "fi": ("fi", "fin_Latn"), "hi": ("hi", "hin_Deva"),
          "ja": ("ja", "jpn_Jpan"), "vi": ("vi", "vie_Latn")}
LABEL_LANGUAGE = {label: language for language, labels in LABELS.items() for label in labels}


def recipe_language(label: str) -> str | None:
    """The recipe language a model's label (`__label__` optional) stands for; None for any other."""
    return LABEL_LANGUAGE.get(label.removeprefix("__label__"))


def load_fasttext(path: str):
    import fasttext

    try:
        # fastText prints a warning to stderr for every load; the model is the same.
        fasttext.FastText.eprint = lambda *args, **kwargs: None
        return fasttext.load_model(local_asset(path))
    except ValueError as e:
        raise AuroraError(f"cannot load fastText model {path}: {e}") from None


def load_language_model(path: str, language: str):
    """The model, refused when none of its labels is `language` in a known scheme: it could
    never keep a document (an unknown label scheme, or a model without that language)."""
    model = load_fasttext(path)
    labels = model.get_labels()
    if not any(recipe_language(label) == language for label in labels):
        lid176, glotlid = LABELS[language]
        raise AuroraError(
            f"language-ID model {path} has no label for '{language}': expected __label__{lid176} (lid.176) "
            f"or __label__{glotlid} (GlotLID), it has {', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''}"
        )
    return model


def predict_languages(model, texts: list[str]) -> list[tuple[str, float]]:
    """Top label (as the model names it) and its probability for each text (newlines folded: fastText reads one line)."""
    labels, scores = model.predict([" ".join(t.split()) for t in texts], k=1)
    return [(label[0].removeprefix("__label__"), float(min(score[0], 1.0))) for label, score in zip(labels, scores)]


@dataclass(frozen=True)
class LanguageIDConfig(FilterConfig):
    """`langid: {min_score}` and `assets.lid_model` of a text recipe: a document is kept when the
    model's top label is the recipe's language with at least `min_score` probability."""

    section = "langid"
    languages = ("text",)
    assets = ("lid_model",)
    basis_meaning = "language-ID model"
    language: str
    model: str
    min_score: float

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "LanguageIDConfig":
        path = recipe.path
        if not isinstance(recipe.assets.get("lid_model"), str):
            raise AuroraError(f"{path}: missing key 'assets.lid_model'")
        score = number(section(data, cls.section, {"min_score"}, path).get("min_score"), "langid.min_score", path)
        if not 0 <= score <= 1:
            raise AuroraError(f"{path}: 'langid.min_score' must be between 0 and 1")
        return cls(recipe.language, recipe.assets["lid_model"], score)

    def models(self) -> list[tuple[str, str]]:
        return [("language-ID model", self.model)]

    def steps(self, context: StepContext) -> list:
        return [LanguageFilter(context.folder, replace(self, model=context.local(self.model)))]

    def columns(self, language: str) -> list[tuple[str, str]]:
        return [("language", "string"), ("language_score", "float64")]

    def basis(self, sha256) -> dict:
        return {"lid_model": sha256(self.model)}

    def check(self, language: str) -> None:  # a model without the recipe's label would remove every document
        load_language_model(self.model, language)


def decide(values: dict, config: LanguageIDConfig) -> Removal | None:
    if recipe_language(values["language"]) != config.language:
        return Removal("wrong_language")
    if values["language_score"] < config.min_score:
        return Removal("low_language_score", values["language_score"], config.min_score)
    return None


class LanguageFilter(RecipeFilter):
    """Keeps documents whose top language is the recipe's, with at least `min_score` probability."""

    name = "🌍 Language ID"
    step = "language"

    def __init__(self, output_folder, config: LanguageIDConfig, batch_size: int = 256):
        super().__init__(output_folder, ("language", "language_score"), batch_size=batch_size)
        self.config = config
        self._model = None

    def __getstate__(self):  # the loaded model stays in its process
        return {**self.__dict__, "_model": None}

    def predictions(self, batch: list[Document]) -> list[tuple[str, float]]:
        """(label, score) of each document."""
        if self._model is None:
            self._model = load_language_model(self.config.model, self.config.language)
        return predict_languages(self._model, [d.text for d in batch])

    def measure(self, batch: list[Document]) -> list[dict]:
        return [{"language": label, "language_score": score} for label, score in self.predictions(batch)]

    def annotate(self, metadata: dict, values: dict) -> None:
        metadata["language_score"] = round(values["language_score"], 4)
        if recipe_language(values["language"]) != self.config.language:
            metadata["predicted_language"] = values["language"]  # as the model said it, e.g. hin_Latn

    def decide(self, values: dict) -> Removal | None:
        return decide(values, self.config)
