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

from core.atomic import write_atomic
from readers.records import readable_documents


def _passes(doc, filters) -> bool:
    return all(f.filter(doc) is True for f in filters)


def sample_documents(inputs: list[tuple[str, str]], filters, count: int, max_document_bytes: int, extractor: str) -> list[Document]:
    streams = [readable_documents(path, max_document_bytes, extractor) for _, path in inputs]
    sample = []
    for doc in itertools.chain.from_iterable(itertools.zip_longest(*streams)):
        if doc is not None and _passes(doc, filters):
            sample.append(doc)
            if len(sample) == count:
                break
    return sample


def ensure_cutoffs(folder, step, sample_values) -> None:
    """Write the step's cut-offs file unless the run folder already has it. `sample_values()` gives
    the sample's values (`sample_documents` measured by the step, or in a refilter the stored
    values of the same sample)."""
    if folder.exists(step.cutoffs_file):
        return
    write_atomic(folder, step.cutoffs_file, orjson.dumps(step.cutoffs_record(sample_values()), option=orjson.OPT_INDENT_2))
