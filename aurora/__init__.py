"""The `aurora` command line, on top of every other package."""
