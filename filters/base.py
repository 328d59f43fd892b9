"""The shared shape of our filters: datatrove's BaseFilter whose removals go to rejects and the task ledger."""

from datatrove.pipeline.filters.base_filter import BaseFilter

from core.ledger import write_task_record
from core.rejects import RejectWriter


class RecordedFilter(BaseFilter):
    """A filter that writes each removed document, with its reason, to `rejects/<step>/`.

    Subclasses set `step` (the folder and ledger name) and implement `filter` or
    `filter_batch`, returning True to keep or (False, reason) to remove.
    """

    step: str = ""

    def __init__(self, output_folder, batch_size: int = 1):
        super().__init__(exclusion_writer=RejectWriter(output_folder, self.step), batch_size=batch_size)
        self.output_folder = output_folder

    def run(self, data, rank: int = 0, world_size: int = 1):
        yield from super().run(data, rank, world_size)
        record = {"removed": dict(self.exclusion_writer.counts), **self.task_summary()}
        write_task_record(self.output_folder, rank, self.step, record)

    def task_summary(self) -> dict:
        """More counts for the task ledger (the manifest sums them); none by default."""
        return {}
