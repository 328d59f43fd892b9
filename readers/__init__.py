"""Raw inputs read as records: work units of input files, JSONL (plain, gzip, zstd) and parquet
records (`readers.records`), WARC and WET records (`readers.warc`), the main text of HTML pages
(`readers.html_text`). Every record becomes a document or a counted reject with its reason."""
