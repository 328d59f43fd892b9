"""Deduplication at the document level, in four steps over the files of one `DedupLayout`:

1. `DedupSignatures` (end of the filter pass, `signatures.py`): each kept document, its MinHash
   signature and its text digest (`minhash.py`).
2. `DedupBands` (the bands pass, `bands.py`): per LSH band, and for the digests, edges between
   documents with equal keys.
3. `DedupClusters` (the clusters pass, `clusters.py`): edges joined into clusters; each
   document's decision, by its key (`layout.py`: `task << 32 | position`).
4. `DedupDocuments` then `DedupFilter` (start of the tokenize pass, `filter.py`): the kept
   documents read back, each joined with its decision by key; duplicates go to the rejects.
"""

from filters.dedup.bands import DedupBands
from filters.dedup.clusters import DedupClusters
from filters.dedup.filter import DedupDocuments, DedupFilter
from filters.dedup.layout import DedupLayout
from filters.dedup.minhash import lsh_params
from filters.dedup.signatures import DedupSignatures

__all__ = ["DedupBands", "DedupClusters", "DedupDocuments", "DedupFilter", "DedupLayout", "DedupSignatures", "lsh_params"]
