"""The default suite's time budget (issue 20): a test not marked `slow` that takes longer than the
limit fails the session and is named; a `slow` one is never judged; NETMARL_TEST_BUDGET=warn names
without failing. Checked on an inner pytest session with our conftest.py and a 1 s limit."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INNER = '''
import time
import pytest

def test_quick():
    pass

def test_too_long():
    time.sleep(1.5)

@pytest.mark.slow
def test_long_but_slow_marked():
    time.sleep(1.5)
'''


def _inner_session(tmp_path: Path, budget: str) -> subprocess.CompletedProcess:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: long\n")
    root = str(Path(__file__).resolve().parents[1])  # our conftest imports tests/compiler.py
    env = {**os.environ, "NETMARL_TEST_LIMIT_S": "1", "NETMARL_TEST_BUDGET": budget,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_test_over_the_limit_fails_the_session_and_is_named(tmp_path):
    result = _inner_session(tmp_path, "fail")
    assert result.returncode == 1, result.stdout
    assert "3 passed" in result.stdout
    slow_lines = [line for line in result.stdout.splitlines() if "TOO SLOW" in line]
    assert len(slow_lines) == 1 and "test_too_long" in slow_lines[0], result.stdout


@pytest.mark.parametrize("budget", ["warn"])
def test_warn_mode_names_without_failing(tmp_path, budget):
    result = _inner_session(tmp_path, budget)
    assert result.returncode == 0, result.stdout
    assert "TOO SLOW" in result.stdout and "test_too_long" in result.stdout
