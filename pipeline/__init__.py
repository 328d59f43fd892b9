"""Aurora data toolkit: curation steps, recipes, executors and the `aurora` CLI."""
