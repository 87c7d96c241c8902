"""tools/cli_error_table.py: the cases of docs/cli_errors.md, and the page generated from them."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("cli_error_table", ROOT / "tools" / "cli_error_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _rows(text):
    """``(name, exit code, message)`` of each row of the generated table."""
    rows = []
    for line in text.splitlines():
        cells = re.split(r"(?<!\\)\|", line)
        if len(cells) == 6 and cells[3].strip().isdigit():
            rows.append((cells[1].strip(), int(cells[3]), cells[4].strip()))
    return rows


def test_every_case_expects_an_error_exit_and_the_committed_page_lists_them_all():
    tool = _tool()
    cases = tool.cases()
    names = [case.name for case in cases]
    assert len(names) == len(set(names)) and len(cases) >= 40
    # 2: the user's to fix; 1: the machine's (a full disk); 130: the one Ctrl-C case
    assert {case.code for case in cases} == {1, 2, 130}
    assert [case.name for case in cases if case.code == 130] == [
        "Ctrl-C whose checkpoint cannot be written (disk full)"
    ]
    page = (ROOT / "docs" / "cli_errors.md").read_text()
    assert tool.REGENERATE in page
    rows = _rows(page)
    assert len(rows) == len(cases), "docs/cli_errors.md is out of date: python tools/cli_error_table.py"
    for case, (name, code, message) in zip(cases, rows):
        assert name.startswith(case.name.replace("|", "\\|")) and code == case.code, (case.name, name, code)
        assert "Traceback" not in message and message.count(": error: ") + message.count("SIGINT at step") == 1


@pytest.mark.slow
def test_the_script_runs_every_case_and_each_ends_with_its_exit_code_and_one_line(tmp_path):
    out = tmp_path / "cli_errors.md"
    result = subprocess.run(
        [sys.executable, "tools/cli_error_table.py", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    rows = _rows(out.read_text())
    assert len(rows) == len(_tool().cases())
    assert all(code in (1, 2, 130) and "Traceback" not in message for _, code, message in rows)
