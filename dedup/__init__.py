"""Deduplication at the document level, in passes over the files of one `DedupLayout`:

1. `DedupSignatures` (end of the filter pass, `signatures.py`): each kept document, its MinHash
   signature, its text digest and its shingle set (`minhash.py`).
2. `DedupBands` (the bands pass, `bands.py`): per LSH band, candidate pairs of documents with
   equal band keys; and pairs of documents with equal digests (exact duplicates).
3. `DedupVerify` (the verify pass, `verify.py`): each candidate's Jaccard similarity; the pairs at
   or above the threshold are the graph's edges.
4. `DedupComponents` (`components.py`): connected components, pass after pass of many tasks,
   until every component is a star around its first document.
5. `DedupClusters` (`clusters.py`): each cluster's decisions, by document key (`layout.py`:
   `task << 32 | position`).
6. `DedupDocuments` then `DedupFilter` (start of the tokenize pass, `filter.py`): the kept
   documents read back, each joined with its decision by key; duplicates go to the rejects.

`passes.py` makes the passes 2 to 5 in order. Passes 3 to 5 have one task per partition (`layout.partition_of`), as many as the corpus needs
under the memory bound (`partitions_for`).
"""

from dedup.clusters import read_decisions
from dedup.filter import DedupDocuments, DedupFilter
from dedup.layout import DedupLayout
from dedup.minhash import lsh_params
from dedup.passes import dedup_passes
from dedup.signatures import DedupSignatures
from dedup.verify import VERIFY_METHODS

__all__ = ["VERIFY_METHODS", "DedupDocuments", "DedupFilter", "DedupLayout", "DedupSignatures", "dedup_passes", "lsh_params", "read_decisions"]
