"""Run folders: a fitted model with its parameters, figures and predictions.

:mod:`embedlab.runs.folder` reads and writes them (both kinds),
:mod:`embedlab.runs.scoring` computes their figures, :mod:`embedlab.runs.model_files`
keeps classifier models safe to open, :mod:`embedlab.runs.provenance` records
where a run came from. Opening a run with its model is :func:`embedlab.api.load_run`.

>>> import embedlab.runs as runs
>>> runs.list_runs("no/such/folder").empty
True
"""

from embedlab.runs.folder import (DEFAULT_RUNS_DIR, PRETRAINED_TASKS, Run, key_set, list_runs, pretrained_run,
                                  read_run, resolve_run, run_kind, write_run)

__all__ = ["DEFAULT_RUNS_DIR", "PRETRAINED_TASKS", "Run", "key_set", "list_runs", "pretrained_run", "read_run",
           "resolve_run", "run_kind", "write_run"]
