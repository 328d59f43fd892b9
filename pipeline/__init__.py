"""The run path: readers, curation and its passes, dedup, tokenization, mixing, executors."""
