"""CCNet's perplexity buckets: cut-offs from a sampling pass over the same data, before the run.

The sample is the first `sample_documents` documents that pass language ID and the heuristics,
taken from the input files in turn (one from each file, round-robin), so it spreads over the
whole input and is the same on every run. The cut-offs (30th and 60th percentiles) are written
to `perplexity_cutoffs.json` in the run folder; a resumed run reuses that file.
"""

import itertools

import orjson

from core.atomic import write_atomic
from core.errors import AuroraError
from filters.perplexity import CUTOFF_PERCENTILES, CUTOFFS_FILE, bucket_cutoffs
from readers.records import readable_documents


def _passes(doc, filters) -> bool:
    return all(f.filter(doc) is True for f in filters)


def sample_documents(inputs: list[tuple[str, str]], filters, count: int, max_document_bytes: int, extractor: str) -> list[str]:
    streams = [readable_documents(path, max_document_bytes, extractor) for _, path in inputs]
    sample = []
    for doc in itertools.chain.from_iterable(itertools.zip_longest(*streams)):
        if doc is not None and _passes(doc, filters):
            sample.append(doc.text)
            if len(sample) == count:
                break
    return sample


def ensure_cutoffs(folder, sample_perplexities) -> None:
    """Write the cut-offs file unless the run folder already has it.
    `sample_perplexities()` gives the sample's perplexities (`sample_documents` scored, or in a
    refilter the stored values of the same sample)."""
    if folder.exists(CUTOFFS_FILE):
        return
    perplexities = sample_perplexities()
    if len(perplexities) < 10:
        raise AuroraError(f"only {len(perplexities)} documents pass the filters before perplexity: too few for buckets")
    record = {
        "cutoffs": bucket_cutoffs(perplexities),
        "percentiles": list(CUTOFF_PERCENTILES),
        "sample_documents": len(perplexities),
    }
    write_atomic(folder, CUTOFFS_FILE, orjson.dumps(record, option=orjson.OPT_INDENT_2))
