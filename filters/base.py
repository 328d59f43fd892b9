"""The shape of every filter of a curation recipe, and what each records of a document for its
signals (`pipeline.signals`).

A filter is one file of `filters/` that holds:

- its **config**, a frozen dataclass (`FilterConfig`): the recipe section it is read from, read
  and checked by `read` (keys, ranges, defaults; one-line errors), and what a run needs of it
  (its steps, its signal columns, its part of the signals basis, its files checked up front);
- its **rule**, a pure `decide(values, config)` that returns a `Removal` or None, on the values
  the step computes for a document, named by their signal columns;
- its **step**, a `RecipeFilter`: `measure` computes the values, `judge` records them in the
  document's signals and calls the rule. `aurora refilter` calls the same `judge` on the values
  a run stored: a rule is written once.

`filters.registry` lists the configs in run order. The recipe loader reads each section through
it into the recipe's `filters`, the configs in that order, which curate (the filter pass, the
asset checks), the signals (columns, basis) and refilter go through.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from datatrove.pipeline.filters.base_filter import BaseFilter

from core.ledger import write_task_record
from core.rejects import RejectWriter

SIGNALS = "signals"  # the metadata key of a document's `DocumentSignals` while it is in the filter pass (a Document takes no attributes)


class Removal(NamedTuple):
    """Why a rule removes a document: the reason (in its rejects and its signals' `removed_by`)
    and, for a rule that compares a metric with a threshold, both."""

    reason: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class RecipeContext:
    """What a filter's section is read with besides itself: the recipe's file (for errors), its
    language and its `assets` section."""

    path: str
    language: str
    assets: dict


@dataclass(frozen=True)
class StepContext:
    """What a filter's steps are made with: the run folder (rejects, ledgers, the perplexity
    cut-offs), the recipe's language, and how a path of the recipe is opened by the steps (made
    absolute, so a worker in another directory or on another node opens the same file)."""

    folder: object
    language: str
    local: Callable[[str], str]


class FilterConfig(ABC):
    """The typed config of one filter, read from the recipe section `section` of recipes whose
    language is among `languages` ("text", "code" or both). A section given to a recipe of
    another kind is refused in one line."""

    section: ClassVar[str]
    more_sections: ClassVar[tuple[str, ...]] = ()  # other recipe keys it reads
    languages: ClassVar[tuple[str, ...]] = ("text", "code")
    assets: ClassVar[tuple[str, ...]] = ()  # the keys of the recipe's `assets` section it reads
    basis_meaning: ClassVar[str] = "settings"  # what its part of the signals basis stands for, in a refilter's refusal
    not_replayed: ClassVar[str | None] = None  # why `aurora refilter` cannot replay it from a run's signals, if it cannot

    @classmethod
    @abstractmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "FilterConfig | None":
        """The config from the recipe's mapping `data`, or None when the recipe does without it."""

    @abstractmethod
    def steps(self, context: StepContext) -> list:
        """The pipeline steps that apply it, in order."""

    def columns(self, language: str) -> list[tuple[str, str]]:
        """The signal columns its steps fill in, (name, arrow type name), in order."""
        return []

    def basis(self, sha256: Callable[[str], str]) -> dict:
        """Its part of the signals basis: what its signals depend on beyond thresholds (files by
        `sha256(path)`), which a refilter must share with the run it replays."""
        return {}

    def models(self) -> list[tuple[str, str]]:
        """(what, path) of each model file it needs, which must exist before any work."""
        return []

    def check(self, language: str) -> None:
        """Read its files whole before any work, so a bad one stops the run in one line (a filter
        without files has nothing to read)."""
        return None

    def refilter_problem(self, basis: dict, run_basis: dict) -> str | None:
        """Why `aurora refilter` cannot replay it on the signals of a run whose basis is
        `run_basis` (`basis`: its own part of the new recipe's), or None. By default each key of
        its part must be the run's."""
        for key, value in basis.items():
            if key not in run_basis:
                return f"{key} was not run"
            if value != run_basis[key]:
                return f"{key} differs from the run's (its {self.basis_meaning})"
        return None


@dataclass
class DocumentSignals:
    """`doc.metadata["signals"]` while a document is in the filter pass: the row being recorded and,
    in a refilter, the document's row in the replayed run's task and the dedup key it had there.
    Taken off before the document's metadata is written anywhere (rejects, dedup's documents)."""

    row: dict
    stored_row: int | None = None
    stored_key: int | None = None
    done: bool = False


def removed(doc, reason: str) -> None:
    """The document leaves the pass, removed for `reason`: its row is complete, and off its metadata."""
    signals = doc.metadata.pop(SIGNALS, None)
    if signals is not None:
        signals.row["removed_by"] = reason
        signals.done = True


class _RemovalRecorder(RejectWriter):
    """Rejects, and the removal in the document's signals: its reason is the one in rejects/."""

    def write(self, doc, rank: int = 0) -> None:
        removed(doc, doc.metadata.get("filter_reason", self.step))
        super().write(doc, rank)


class RecordedFilter(BaseFilter):
    """A filter step that writes each removed document, with its reason, to `rejects/<step>/` and
    its counts to the task ledger. Subclasses set `step` (the folder and ledger name) and
    implement `filter` or `filter_batch`, returning True to keep or (False, reason) to remove."""

    step: str = ""

    def __init__(self, output_folder, batch_size: int = 1):
        super().__init__(exclusion_writer=_RemovalRecorder(output_folder, self.step), batch_size=batch_size)
        self.output_folder = output_folder

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.reset()
        yield from super().run(data, rank, world_size)
        ledger = {"removed": dict(self.exclusion_writer.counts), **self.task_summary()}
        write_task_record(self.output_folder, rank, self.step, ledger)

    def reset(self) -> None:
        """A task starts: its counts (`task_summary`) start from zero."""

    def task_summary(self) -> dict:
        """More counts for the task ledger (the manifest sums them); none by default."""
        return {}


class RecipeFilter(RecordedFilter):
    """The step of a recipe's filter: `measure` gives each document's values (named by their
    signal columns, `columns` those it records), `judge` records them and applies `decide`, the
    filter's rule; `annotate` adds what the step leaves in the document's metadata. A refilter
    calls `judge` on the values a run stored (`replay`)."""

    # A step whose cut-off is taken from a sample of the run's documents before the filter pass
    # (`pipeline.cutoffs`): how many, and where the cut-off is written. Such a step also has
    # `cutoffs_record(values) -> dict`: the cut-offs the sample's values give, as written (it keeps them).
    sample_size: int | None = None
    cutoffs_file: str = ""

    def __init__(self, output_folder, columns: tuple[str, ...] = (), batch_size: int = 1):
        super().__init__(output_folder, batch_size=batch_size)
        self.columns = columns

    @abstractmethod
    def measure(self, batch: list) -> list[dict]:
        """Each document's values, named by their signal columns."""

    @abstractmethod
    def decide(self, values: dict) -> Removal | None:
        """The filter's rule on one document's values."""

    def annotate(self, metadata: dict, values: dict) -> None:
        """What the step leaves in the document's metadata; nothing by default."""

    def stored(self, row: dict) -> dict:
        """The values `decide` needs, from a run's signals row: its columns (None where the run never
        computed them)."""
        return {column: row.get(column) for column in self.columns}

    def replay(self, row: dict, doc) -> dict:
        """The values of a document in a refilter: the stored ones (`doc` is its record, parsed
        for its id and fields)."""
        return self.stored(row)

    def judge(self, metadata: dict, values: dict):
        """Record the values in the document's signals (when it has them), annotate its metadata and
        apply the rule: True to keep, (False, reason) to remove."""
        signals = metadata.get(SIGNALS)
        if signals is not None:
            row = signals.row
            for column in self.columns:
                if column in values:
                    row[column] = values[column]
        self.annotate(metadata, values)
        removal = self.decide(values)
        if removal is None:
            return True
        if signals is not None and removal.value is not None:
            signals.row.update(removed_value=float(removal.value), removed_threshold=float(removal.threshold))
        return False, removal.reason

    def filter_batch(self, batch: list):
        return [self.judge(doc.metadata, values) for doc, values in zip(batch, self.measure(batch))]

    def filter(self, doc):
        return self.filter_batch([doc])[0]
