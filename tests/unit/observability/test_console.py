"""The terminal display's pure parts: an iteration's line (fitted or whole), the held-out
results, and the counting and excerpting of the third-party log files."""

import subprocess
import sys

from rlsys.observability.console import count_lines, error_excerpt, log_dir
from rlsys.observability.progress import ProgressDisplay, clock, fit, format_results, iteration_fields

METRICS = {"reward/mean": 0.2271, "rollout/accuracy": 0.23, "train/kl": 0.10884, "train/loss": -0.01234,
           "time/generation": 37.61, "time/logprobs": 19.44, "time/train": 61.43, "time/sync": 2.04,
           "time/iteration": 120.52, "eval/accuracy": 0.345}
WHOLE = ("iteration 3/12  reward 0.227  acc 0.23  held-out acc 0.345  kl 0.1088  loss -0.0123  "
         "| gen 37.6s ref 19.4s train 61.4s sync 2.0s  | 120.5 s/it  ETA 18:05")


def test_a_piped_line_has_every_field_in_full():
    assert fit("iteration 3/12", iteration_fields(METRICS, 1085.0), None) == WHOLE


def test_a_narrow_terminal_drops_the_least_important_fields_first():
    line = fit("iteration 3/12", iteration_fields(METRICS, 1085.0), 80)
    assert len(line) <= 80
    # the phase times go first, then the rollout accuracy, s/it and the ETA; reward, held-out
    # accuracy, KL and loss stay
    assert line == "iteration 3/12  reward 0.227  held-out acc 0.345  kl 0.1088  loss -0.0123"
    assert fit("iteration 3/12", iteration_fields(METRICS, 1085.0), 100) == (
        "iteration 3/12  reward 0.227  held-out acc 0.345  kl 0.1088  loss -0.0123  | 120.5 s/it  ETA 18:05")
    assert fit("iteration 3/12", iteration_fields(METRICS, None), 14) == "iteration 3/12"


def test_clock_and_results():
    assert clock(59.6) == "1:00" and clock(3725) == "1:02:05"
    assert format_results({"accuracy": 0.345, "n": 200.0, "format_rate": 0.0}) == "accuracy 0.345  n 200  format_rate 0"


def test_the_eta_is_the_mean_iteration_time_times_the_iterations_left(capsys):
    display = ProgressDisplay(10, enabled=True)  # captured stderr is no terminal: plain lines
    with display:
        display.advance({"time/iteration": 10.0})
        display.advance({"time/iteration": 20.0})
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["iteration 1/10  | 10.0 s/it  ETA 1:30", "iteration 2/10  | 20.0 s/it  ETA 2:00"]


def test_warnings_and_errors_are_counted_and_the_last_traceback_excerpted(tmp_path):
    (tmp_path / "rollout-0-1.log").write_text(
        "INFO 12-05 [x.py:1] fine\n(EngineCore pid=3) WARNING 12-05 [cpu.py:224] Triton is not installed.\n"
        "[W1205 04:56:13 utils.cpp:68] Warning: NUMA binding\nTraceback (most recent call last):\n"
        '  File "a.py", line 1, in <module>\nRuntimeError: engine core died\n')
    (tmp_path / "learner-2.log").write_text("DeepSpeed op built successfully\n")
    (tmp_path / "notes.txt").write_text("WARNING not a log\n")
    assert count_lines(tmp_path) == {"files": 2, "warnings": 2, "errors": 2}
    assert error_excerpt(tmp_path) == [f"--- {tmp_path / 'rollout-0-1.log'} ---", "Traceback (most recent call last):",
                                       '  File "a.py", line 1, in <module>', "RuntimeError: engine core died"]
    assert count_lines(tmp_path / "missing") == {"files": 0, "warnings": 0, "errors": 0}


def test_verbose_has_no_log_folder_and_quiet_an_absolute_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert log_dir("runs/a", "verbose") is None
    assert log_dir("runs/a", "quiet") == str(tmp_path / "runs" / "a" / "logs")


def test_output_sent_to_a_file_includes_child_processes(tmp_path):
    log = tmp_path / "logs" / "x.log"
    code = ("import os, sys; from rlsys.observability.console import send_output_to; "
            f"send_output_to(__import__('pathlib').Path({str(log)!r})); print('from python'); "
            "os.system('echo from a child 1>&2')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""
    assert log.read_text().splitlines() == ["from python", "from a child"]


def test_curves_leave_out_series_that_are_zero_throughout():
    from rlsys.observability.plots import chosen_panels

    runs = {"a": [{"iteration": 1, "reward/mean": 0.0, "train/kl": 0.0, "time/generation": 2.0, "time/teacher": 0.0},
                  {"iteration": 2, "reward/mean": 0.5, "train/kl": 0.0, "time/generation": 2.5, "time/teacher": 0.0}],
            "b": [{"iteration": 1, "reward/mean": 0.1, "train/kl": 0.0, "time/teacher": 1.0}]}
    held = {"a": [{"iteration": 0, "eval/accuracy": 0.3, "eval/strict_accuracy": 0.0, "eval/format_rate": 0.0},
                  {"iteration": 2, "eval/accuracy": 0.4, "eval/strict_accuracy": 0.0, "eval/format_rate": 0.0}],
            "b": [{"iteration": 0, "eval/accuracy": 0.3, "eval/strict_accuracy": 0.0, "eval/format_rate": 0.25}]}
    panels, phases = chosen_panels(runs, held)
    # KL is zero in every run: no panel; strict accuracy is zero in every run: no line; format
    # rate is not zero in run b: kept; the teacher phase is zero in the first run: not stacked
    assert [(title, keys) for title, keys, _ in panels] == [
        ("reward", ["reward/mean"]), ("held-out", ["eval/accuracy", "eval/format_rate"])]
    assert phases == ["time/generation"]
