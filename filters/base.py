"""The shared shape of our filters: datatrove's BaseFilter whose removals go to rejects and the task
ledger, and what each filter records of a document for its signals (`pipeline.signals`)."""

from dataclasses import dataclass

from datatrove.pipeline.filters.base_filter import BaseFilter

from core.ledger import write_task_record
from core.rejects import RejectWriter

SIGNALS = "signals"  # the metadata key of a document's `DocumentSignals` while it is in the filter pass (a Document takes no attributes)


@dataclass
class DocumentSignals:
    """`doc.metadata["signals"]` while a document is in the filter pass: the row being recorded and,
    in a refilter, the dedup key the document had in the replayed run. Taken off before the
    document's metadata is written anywhere (rejects, dedup's documents)."""

    row: dict
    stored_key: int | None = None
    done: bool = False


class MissingSignal(ValueError):
    """A refilter needs a value that the replayed run never computed for this document."""


def record(doc, values: dict) -> None:
    """Note what a step computed for the document (no-op outside a signals pass: the perplexity
    cut-offs' sampling runs the filters on plain documents)."""
    signals = doc.metadata.get(SIGNALS)
    if signals is not None:
        signals.row.update(values)


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
    """A filter that writes each removed document, with its reason, to `rejects/<step>/`.

    Subclasses set `step` (the folder and ledger name) and implement `filter` or
    `filter_batch`, returning True to keep or (False, reason) to remove.
    """

    step: str = ""

    def __init__(self, output_folder, batch_size: int = 1):
        super().__init__(exclusion_writer=_RemovalRecorder(output_folder, self.step), batch_size=batch_size)
        self.output_folder = output_folder

    def run(self, data, rank: int = 0, world_size: int = 1):
        yield from super().run(data, rank, world_size)
        ledger = {"removed": dict(self.exclusion_writer.counts), **self.task_summary()}
        write_task_record(self.output_folder, rank, self.step, ledger)

    def task_summary(self) -> dict:
        """More counts for the task ledger (the manifest sums them); none by default."""
        return {}
