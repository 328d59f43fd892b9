"""Development tooling outside the run path: building the offline assets (fastText, KenLM,
SentencePiece, tokenizer, tiny model), the demo input and its web junk, calibration, sample text."""
