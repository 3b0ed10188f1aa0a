"""``benchmarks/regression_detection.py``'s log: kept as it goes, tabled again with its own settings, never a user's file.

The measurement itself takes half an hour and is not run here; these tests table a log
written by hand, as a killed measurement leaves one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "regression_detection.py"


def detection(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=300)


def write_log(path: Path, compares: int) -> None:
    settings = {"conditions": ["10% slower"], "thresholds": [0.05, 0.02], "repeats": 20, "rounds": 5, "pairs": 7,
                "pairs_per_server": 0, "fresh_processes": False, "threads": 1, "load": "steady", "hogs": 2}
    lines = [{"settings": settings}]
    lines += [{"mode": "ab", "iteration": i + 1, "condition": "10% slower",
               "judged": {"0.05": ["regressed" if i else "uncertain", 1.1], "0.02": ["regressed", 1.1]}, "seconds": i}
              for i in range(compares)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_log_is_tabled_with_the_settings_it_was_measured_with(tmp_path: Path) -> None:
    write_log(tmp_path / "log.jsonl", 20)
    done = detection("--tabulate", str(tmp_path / "log.jsonl"))  # this command line's defaults differ from the log's
    assert done.returncode == 0, done.stderr
    assert "ab: 20 compares per condition; benchbench ab, 7 pairs of rounds" in done.stdout
    assert "(one per compare); threads 1; load steady" in done.stdout and "threshold 2%" in done.stdout
    assert "10% slower           19 of 20" in done.stdout and "10% slower           20 of 20" in done.stdout


def test_fewer_than_20_compares_judge_no_goal(tmp_path: Path) -> None:
    write_log(tmp_path / "log.jsonl", 3)
    done = detection("--tabulate", str(tmp_path / "log.jsonl"))
    assert done.returncode == 0 and "goals: not judged: fewer than 20 compares" in done.stdout


def test_a_file_of_the_users_is_never_the_log_and_a_bad_log_is_exit_2(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    done = detection("--log", str(notes), "--repeats", "1")
    assert done.returncode == 2 and "is not a log of this script" in done.stderr
    assert notes.read_text() == "my notes\n"  # untouched
    for given in (notes, tmp_path / "missing.jsonl"):
        done = detection("--tabulate", str(given))
        assert done.returncode == 2 and "not a --log file of this script" in done.stderr and "Traceback" not in done.stderr
