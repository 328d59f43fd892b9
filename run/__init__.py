"""Run infrastructure shared by curate, refilter and mix: inputs and their identity
(`run.inputs`), the output folder's record of its run (`run.output`), the lock that keeps one run
per folder (`run.lock`), and the executors that run a pass's tasks locally or on Ray with progress
(`run.executors`)."""
