"""Per-task records: each step of each task writes what it counted to `tasks/<rank>/<step>.json`.

The manifest is built from these records after all tasks finish, so the funnel is a sum over
files (deterministic, whatever ran the tasks), and a rerun task simply overwrites its records.
"""

import orjson

from core.atomic import write_atomic

TASKS_DIR = "tasks"


def write_task_record(folder, rank: int, step: str, record: dict) -> None:
    write_atomic(folder, f"{TASKS_DIR}/{rank:05d}/{step}.json", orjson.dumps(record, option=orjson.OPT_SORT_KEYS))


def read_task_records(folder, rank: int) -> dict[str, dict]:
    records = {}
    for path in sorted(folder.glob(f"{TASKS_DIR}/{rank:05d}/*.json")):
        with folder.open(path, "rb") as f:
            records[path.rsplit("/", 1)[1][: -len(".json")]] = orjson.loads(f.read())
    return records
