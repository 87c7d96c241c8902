"""tools/docs_tables.py: results tables written from the reports' summaries, and reports that regenerate from the
committed records of their runs."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "tools" / "docs_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _difference(env_id, variant, metric, value, p_value, seeds=(10, 10), excludes_zero=False):
    return {
        "env_id": env_id,
        "variant": variant,
        "metric": metric,
        "difference": value,
        "p_value": p_value,
        "seeds": f"{seeds[0]} vs {seeds[1]}",
        "seed_counts": list(seeds),
        "exploratory": min(seeds) < 5,
        "excludes_zero": excludes_zero,
    }


def _summary():
    row = {"final": [0.5, 0.4, 0.6], "auc": [0.3, 0.2, 0.4], "steps_to_threshold": [4000.0, 3000.0, 5000.0]}
    return {
        "name": "toy",
        "metric": "eval/success_ever",
        "threshold": 0.5,
        "finished_runs": 23,
        "unfinished_runs": ["E/C/s3_x"],
        "results": [
            {"env_id": "reengage/E", "variant": "A", "seeds": list(range(10)), "reached_threshold": 10, **row},
            {"env_id": "reengage/E", "variant": "B", "seeds": list(range(10)), "reached_threshold": 9, **row},
            {"env_id": "reengage/E", "variant": "C", "seeds": [0, 1, 2], "reached_threshold": 3, **row},
        ],
        "differences": [
            _difference("reengage/E", "B", "auc", [-0.1, -0.15, -0.05], 0.0004, excludes_zero=True),
            _difference("reengage/E", "B", "final", [0.02, -0.01, 0.05], 0.31),
            _difference("reengage/E", "C", "auc", [0.2, 0.1, 0.3], 0.1, seeds=(3, 10)),
            _difference("reengage/E", "C", "final", [0.0, -0.1, 0.1], 1.0, seeds=(3, 10)),
        ],
    }


def test_the_table_states_seeds_intervals_p_values_and_only_the_claims_the_report_makes():
    table = _tool().results_table(_summary())
    lines = table.splitlines()
    assert lines[0].startswith("| environment | variant | seeds | final [95% CI] | AUC [95% CI] | steps to 0.5")
    baseline, lower, exploratory = lines[2:5]
    assert baseline.startswith(
        "| E | A | 10 | 0.500 [0.400, 0.600] | 0.300 [0.200, 0.400] | 4,000 [3,000, 5,000] (10/10)"
    )
    assert "| baseline |" in baseline
    assert "-0.100 [-0.150, -0.050], p < 0.001 (10 vs 10)" in lower
    assert "+0.020 [-0.010, +0.050], p = 0.310 (10 vs 10)" in lower
    assert lower.endswith("| AUC lower |") and "(9/10)" in lower
    # an exploratory comparison never reads as a claim, whatever its interval
    assert exploratory.endswith("| exploratory (3 vs 10) |")
    assert "23 finished runs of `results/toy`" in table and "1 unfinished runs are left out" in table


def test_no_claim_where_no_interval_excludes_zero():
    summary = _summary()
    summary["differences"][0]["excludes_zero"] = False
    assert _tool().results_table(summary).splitlines()[3].endswith("| no difference claimed |")


def test_a_report_of_one_variant_has_no_difference_columns():
    summary = _summary()
    summary["results"], summary["differences"] = summary["results"][:1], []
    header, _, row = _tool().results_table(summary).splitlines()[:3]
    assert header.endswith("| steps to 0.5 [95% CI] (seeds reaching it) |") and "baseline" not in row


def test_a_block_is_filled_and_check_reports_a_stale_page(tmp_path):
    tool = _tool()
    summary_path = tmp_path / "summary.json"
    summary_path.write_text(json.dumps(_summary()))
    page = tmp_path / "page.md"
    page.write_text(f"# T\n\n<!-- results-table: {summary_path} -->\nold numbers\n<!-- /results-table -->\n\nafter\n")
    assert tool.main([str(page), "--check"]) == 1
    assert "old numbers" in page.read_text()  # --check changes nothing
    assert tool.main([str(page)]) == 0
    text = page.read_text()
    assert (
        "old numbers" not in text and "| E | B | 10 |" in text and text.endswith("<!-- /results-table -->\n\nafter\n")
    )
    assert tool.main([str(page), "--check"]) == 0


def test_a_summary_without_p_values_is_refused_by_name(tmp_path):
    summary = _summary()
    for entry in summary["differences"]:
        del entry["p_value"]
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    page = tmp_path / "page.md"
    page.write_text(f"<!-- results-table: {tmp_path / 'summary.json'} -->\n<!-- /results-table -->\n")
    with pytest.raises(SystemExit, match="without p-values"):
        _tool().main([str(page)])


def _table_summaries():
    """The summaries the docs' table blocks name."""
    tool = _tool()
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        found += [match["path"] for match in tool.BLOCK.finditer(page.read_text())]
    return sorted(set(found))


def test_the_committed_docs_tables_match_their_summaries():
    assert _table_summaries(), "no page has a results table"
    result = subprocess.run(
        [sys.executable, "tools/docs_tables.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def _committed_records(name: str, into: Path) -> Path:
    """A copy of what git holds of ``results/NAME`` (what a fresh clone has), whatever else lies in the folder."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", f"results/{name}"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    files = [path for path in listed.split("\0") if path]
    assert files, f"results/{name} has no committed records"
    for path in files:
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / path).read_bytes())
    return into / "results" / name


@pytest.mark.parametrize("summary_path", _table_summaries())
def test_each_tabled_report_regenerates_from_the_committed_records(summary_path, tmp_path):
    committed = json.loads((ROOT / summary_path).read_text())
    results = _committed_records(committed["name"], tmp_path / "clone")
    command = [sys.executable, "-m", "reengage.experiment", "report", str(results), "--out", str(tmp_path / "report")]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    regenerated = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert regenerated == committed
