"""`aurora curate`: one language's raw sources -> filtered, tokenized Megatron shards + manifest,
by the passes of `pipeline.passes`."""

from pipeline.passes import prepare, run_curation
from pipeline.recipe import Recipe
from run.executors import start_executor


def curate(recipe: Recipe, inputs: list[str] | None = None, output: str | None = None,
           executor: str = "local", workers: int = 1, verbose: bool = False) -> dict:
    start_executor(executor, workers, verbose)  # its workers import while the run is prepared
    recipe, files = prepare(recipe, inputs, output, workers)
    return run_curation(recipe, files, executor, workers, verbose)
