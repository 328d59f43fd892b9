from aurora.cli import run

run()
