"""Cut-offs taken from a sampling pass over the same data, before the filter pass: CCNet's
perplexity buckets, the quality classifier's top fraction (a step whose `sample_size` is set).

The sample is the first `sample_size` documents that pass the filters before the step, taken
from the input files in turn (one from each file, round-robin), so it spreads over the whole
input and is the same on every run. The step turns the sample's values into its cut-offs
(`cutoffs_record`), written to its `cutoffs_file` in the run folder; a resumed run reuses that
file, and a refilter takes the same sample from the stored values (`pipeline.refilter.Fates`).
"""

import itertools

import orjson
from datatrove.data import Document
from datatrove.utils.batching import batched

from core.atomic import write_atomic
from readers.records import readable_documents


class Sampler:
    """The sampling passes of one filter pass, in step order, over the same round-robin stream of
    documents. They share their work: each filter judges a document at most once, since the
    document's fate is kept (the filter that removed it, or how many filters it passed with the
    metadata they left); the second sample of a recipe (the quality classifier's, after
    perplexity's) judged its documents again under every filter before perplexity. And documents
    are judged a chunk at a time, a batched filter (language ID, perplexity) on the chunk at once
    and a run of one-at-a-time filters (the heuristics, which share a document's analysis) on each
    document in turn, as in the filter pass."""

    CHUNK = 64

    def __init__(self, inputs: list[tuple[str, str]], filters: list, max_document_bytes: int, extractor: str):
        self.inputs, self.filters, self.max_document_bytes, self.extractor = inputs, filters, max_document_bytes, extractor
        self.removed: set[int] = set()  # stream positions of the documents a filter removed
        self.passed: dict[int, tuple[int, Document]] = {}  # position: (leading filters it passed, the document they left)

    def _stream(self):
        streams = [readable_documents(path, self.max_document_bytes, self.extractor) for _, path in self.inputs]
        return (doc for doc in itertools.chain.from_iterable(itertools.zip_longest(*streams)) if doc is not None)

    def sample(self, upto: int, count: int) -> list[Document]:
        """The first `count` documents of the stream that pass the first `upto` filters."""
        sample = []
        for chunk in batched(enumerate(self._stream()), self.CHUNK):
            alive = [[position, *self.passed.get(position, (0, doc))] for position, doc in chunk if position not in self.removed]
            self._judge(alive, upto)
            for position, done, doc in alive:
                if done < 0:
                    self.removed.add(position)
                    self.passed.pop(position, None)
                    continue
                self.passed[position] = (done, doc)
                if done >= upto and len(sample) < count:
                    sample.append(doc)
            if len(sample) == count:
                break
        return sample

    def _judge(self, alive: list[list], upto: int) -> None:
        """Take each [position, filters passed, document] of the chunk through the first `upto`
        filters: passed becomes `upto`, or -1 where one removes it."""
        start = 0
        while start < upto:
            end = start + 1
            if self.filters[start].batch_size > 1:
                judged = [entry for entry in alive if entry[1] == start]
                verdicts = self.filters[start].filter_batch([doc for _, _, doc in judged]) if judged else []
                for entry, verdict in zip(judged, verdicts):
                    entry[1] = end if verdict is True else -1
            else:
                while end < upto and self.filters[end].batch_size <= 1:
                    end += 1
                for entry in alive:
                    while start <= entry[1] < end:
                        entry[1] = entry[1] + 1 if self.filters[entry[1]].filter(entry[2]) is True else -1
            start = end


def ensure_cutoffs(folder, step, sample_values) -> None:
    """Write the step's cut-offs file unless the run folder already has it. `sample_values()` gives
    the sample's values (`sample_documents` measured by the step, or in a refilter the stored
    values of the same sample)."""
    if folder.exists(step.cutoffs_file):
        return
    write_atomic(folder, step.cutoffs_file, orjson.dumps(step.cutoffs_record(sample_values()), option=orjson.OPT_INDENT_2))
