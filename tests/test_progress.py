"""The console of a run: on a terminal, one progress bar per pass (tasks, documents/s, ETA) and
the funnel at the end, no datatrove stat dumps; off a terminal (a pipe, a log file), no bars."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest


def _run_on_a_terminal(command: list[str], cwd) -> str:
    """`command`'s console output as a terminal of 40 x 120 shows it (both streams)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(command, cwd=cwd, stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=600) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_each_pass_has_a_progress_bar_on_a_terminal_and_none_in_a_pipe(workspace, tmp_path, executor):
    command = [sys.executable, "-m", "aurora.cli", "curate", "recipes/demo/vi.yaml", "--workers", "2", "--executor", executor]
    console = _run_on_a_terminal(command + ["--output", str(tmp_path / "tty")], workspace)
    lines = [line.strip() for line in re.split(r"[\r\n]+", console) if line.strip()]
    finished = {line.split(":")[0]: line for line in lines if re.match(r"^[\w-]+: 100%\|", line)}
    assert {"filter", "bands", "clusters", "tokenize"} <= set(finished), lines[:20]
    assert re.search(r"4/4 \[[\d:]+<[\d:]+, .*, [\d,]+ docs/s\]", finished["filter"]), finished["filter"]
    assert "funnel:" in console and "kept" in console
    assert "Stats" not in console and "datatrove" not in console.lower()  # stat dumps stay in the logs
    piped = subprocess.run(command + ["--output", str(tmp_path / "pipe")], cwd=workspace, capture_output=True, text=True,
                           timeout=600)
    assert piped.returncode == 0, piped.stderr[-3000:]
    assert "%|" not in piped.stdout + piped.stderr and piped.stderr.strip() == ""
