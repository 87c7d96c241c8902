"""``python -m reengage --version`` prints the installed package's version (pyproject.toml, through its metadata)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import reengage
from reengage.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_package_metadata_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"reengage {version('reengage')}"
    assert reengage.__version__ == version("reengage")


def test_version_from_the_command_line_matches_pyproject() -> None:
    declared = next(
        line.split("=", 1)[1].strip().strip('"')
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("version =")
    )
    out = subprocess.run(
        [sys.executable, "-m", "reengage", "--version"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == f"reengage {declared}"


def test_an_unknown_option_exits_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--versoin"])
    assert exit_info.value.code == 2
    assert "--versoin" in capsys.readouterr().err
