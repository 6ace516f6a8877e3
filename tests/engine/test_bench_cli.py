"""`r1stack bench`: every table it names has its script, and a wrong table name is one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

from r1stack.cli.bench import TABLES, benchmarks_dir


def test_every_table_has_its_script():
    where = benchmarks_dir()
    for name, (script, _) in TABLES.items():
        assert (where / script).is_file(), name


def test_unknown_table_is_one_line_exit_2(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "r1stack.cli.main", "bench", "speed"],
        capture_output=True,
        text=True,
        env=dict(os.environ, R1STACK_DATA_DIR=str(tmp_path)),
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown benchmark table 'speed'" in r.stderr
    assert "throughput" in r.stderr and "Traceback" not in r.stderr
