"""The primitives every layer shares: errors, text and words, atomic writes, task ledgers, rejects,
the Megatron shard format and typed configuration. Imports nothing else of the project."""
