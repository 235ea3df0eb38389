"""The stop handler of command-line runs (flows/cli_interrupt.py), in a child process of its own."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import os, signal, sys
from flows.cli_interrupt import also_on_stop, stop_on_ctrl_c
undo_mark = sys.argv[1]
with also_on_stop(lambda: open(undo_mark, "w").write("undone")):
    with stop_on_ctrl_c("inspection", {"site": "demo"}):
        os.kill(os.getpid(), signal.%s)
        signal.pause()  # never reached: the handler ends the process
print("carried on")
"""


def _stop_child(sig: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    mark = tmp_path / "undone"
    run = subprocess.run([sys.executable, "-c", CHILD % sig, str(mark)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    return run, mark


def test_ctrl_c_is_one_line_exit_130_and_undoes_what_was_registered(tmp_path):
    run, mark = _stop_child("SIGINT", tmp_path)
    assert run.returncode == 130
    assert run.stderr.splitlines() == [
        "interrupted (Ctrl-C): the inspection of demo was stopped before its evidence was written; "
        "nothing was recorded, log positions unchanged"]
    assert "carried on" not in run.stdout
    assert mark.read_text() == "undone"  # e.g. `ebops demo` stops its sandbox


def test_sigterm_ends_a_run_the_same_way(tmp_path):
    run, mark = _stop_child("SIGTERM", tmp_path)
    assert run.returncode == 143 and run.stderr.startswith("interrupted (SIGTERM)") and mark.exists()
