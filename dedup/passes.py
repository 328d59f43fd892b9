"""The dedup passes between the filter pass and the tokenize pass, in order."""

import itertools

from dedup.bands import DedupBands
from dedup.clusters import DedupClusters, write_clusters_file
from dedup.components import LARGE_STAR, SMALL_STAR, DedupComponents, changed_nodes, partitions_for
from dedup.layout import DedupLayout
from dedup.verify import DedupVerify


def dedup_passes(folder, layout: DedupLayout, tasks: int, settings: dict):
    """(name, steps, tasks) of each pass after the filter pass's `tasks` tasks; returns the number
    of partitions, which the tokenize pass's `DedupFilter` needs. A generator: each pass is made
    once the ones before it have run, since the partitions follow the corpus's size and whether
    another components round is needed follows what the last one changed."""
    d = settings
    documents = sum(folder.size(layout.signatures(t)) // (4 * d["num_perm"]) for t in range(tasks))
    partitions = partitions_for(documents, d["memory_mb"])
    yield "bands", [DedupBands(folder, layout, tasks, d["num_perm"], d["bands"], d["rows"], d["memory_mb"], partitions)], d["bands"] + 1
    yield "verify", [DedupVerify(folder, layout, d["bands"], partitions, d["threshold"], d["verify"], d["num_perm"],
                                 d["memory_mb"])], partitions
    previous = yield from component_passes(folder, layout, "verify", partitions)
    yield "clusters", [DedupClusters(folder, layout, previous, partitions)], partitions
    write_clusters_file(folder, layout, partitions)
    return partitions


def component_passes(folder, layout: DedupLayout, previous: str, partitions: int):
    """Connected-components passes over the edges pass `previous` wrote, round after round (a
    large-star pass, then a small-star pass) until a round changes no node: then every component
    is a star. Returns the last pass's name."""
    for round_number in itertools.count(1):
        changed = 0
        for operation in (LARGE_STAR, SMALL_STAR):
            step = f"components-{round_number:02d}-{operation}"
            yield step, [DedupComponents(folder, layout, step, previous, operation, partitions)], partitions
            changed += changed_nodes(folder, layout, step, partitions)
            previous = step
        if changed == 0:
            return previous


def run_in_process(passes):
    """Every task of each pass, one after another, in this process (tests, benchmarks); the
    generator's value."""
    try:
        while True:
            _, steps, tasks = next(passes)
            for rank in range(tasks):
                for step in steps:
                    list(step.run(None, rank=rank))
    except StopIteration as end:
        return end.value
