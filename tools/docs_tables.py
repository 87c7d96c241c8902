#!/usr/bin/env python
"""Fill the results tables of the docs from the reports' ``summary.json`` files, so that no number in a table
is typed by hand.

    python tools/docs_tables.py                      # rewrite every table block of README.md and the docs
    python tools/docs_tables.py docs/reproduction.md # one page
    python tools/docs_tables.py --check              # exit 1, naming the pages, if a table is out of date

A page asks for a table with a pair of comment lines; the tool replaces what lies between them:

    <!-- results-table: docs/reproduction_data/fig8_2_reduced/summary.json -->
    <!-- /results-table -->

The path is relative to the repository root. A summary is what ``python -m reengage.experiment report`` writes
next to its ``report.md``; the table has one row per environment and variant with the seed count, the final
value, the AUC and (where the report has a threshold) the steps to it, each with the report's 95% interval of
the variant, and for every variant other than the baseline the difference of means from it with its 95% Welch
interval, the permutation p-value and what may be concluded (a claim needs 5 seeds or more on each side, an
interval that excludes 0 and p <= 0.05; the report's own rule, read from the summary).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- results-table: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /results-table -->)", re.DOTALL)


def _interval(values: list[float], digits: int = 3) -> str:
    mean, low, high = values
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _signed_interval(values: list[float], digits: int = 3) -> str:
    mean, low, high = values
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _steps(row: dict[str, Any], seeds: int) -> str:
    mean, low, high = row["steps_to_threshold"]
    return f"{mean:,.0f} [{low:,.0f}, {high:,.0f}] ({row['reached_threshold']}/{seeds})"


def _conclusion(differences: list[dict[str, Any]]) -> str:
    """What the report allows one to say of a variant against the baseline, over its metrics."""
    if any(entry["exploratory"] for entry in differences):
        return f"exploratory ({differences[0]['seeds']})"
    claims = [
        f"{entry['metric'].upper() if entry['metric'] == 'auc' else entry['metric']} "
        f"{'higher' if entry['difference'][0] > 0 else 'lower'}"
        for entry in differences
        if entry["excludes_zero"]
    ]
    return ", ".join(claims) if claims else "no difference claimed"


def _difference_cells(against: dict[str, dict[str, Any]] | None) -> list[str]:
    """The AUC and final differences of a variant from the baseline, and the conclusion (the baseline: a label)."""
    if against is None:
        return ["baseline", "", ""]
    cells = [
        f"{_signed_interval(against[metric]['difference'])}, {_p(against[metric]['p_value'])} ({against[metric]['seeds']})"
        for metric in ("auc", "final")
    ]
    return [*cells, _conclusion([against["auc"], against["final"]])]


def results_table(summary: dict[str, Any]) -> str:
    """The markdown table of one report's summary (see the module docstring)."""
    threshold = summary.get("threshold")
    differences: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for entry in summary["differences"]:
        differences.setdefault((entry["env_id"], entry["variant"]), {})[entry["metric"]] = entry
    header = ["environment", "variant", "seeds", "final [95% CI]", "AUC [95% CI]"]
    if threshold is not None:
        header.append(f"steps to {threshold:g} [95% CI] (seeds reaching it)")
    compared = bool(summary["differences"])  # a report of one variant has no baseline to compare with
    if compared:
        header += ["AUC - baseline [95% Welch CI]", "final - baseline [95% Welch CI]", "conclusion"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary["results"]:
        seeds = len(row["seeds"])
        cells = [row["env_id"].removeprefix("reengage/"), row["variant"], str(seeds)]
        cells += [_interval(row["final"]), _interval(row["auc"])]
        if threshold is not None:
            cells.append(_steps(row, seeds))
        if compared:
            cells += _difference_cells(differences.get((row["env_id"], row["variant"])))
        lines.append("| " + " | ".join(cells) + " |")
    unfinished = summary.get("unfinished_runs") or []
    note = f"*{summary['finished_runs']} finished runs of `results/{summary['name']}`, metric `{summary['metric']}`"
    if unfinished:
        note += f"; {len(unfinished)} unfinished runs are left out"
    return "\n".join([*lines, "", note + ".*", ""])


def fill(page_text: str, root: Path = ROOT) -> str:
    """``page_text`` with every results-table block rewritten from its summary."""

    def replace(match: re.Match[str]) -> str:
        summary_path = root / match["path"]
        try:
            summary = json.loads(summary_path.read_text())
        except FileNotFoundError:
            raise SystemExit(
                f"{match['path']}: no such summary (write it with python -m reengage.experiment report)"
            ) from None
        if any("p_value" not in entry for entry in summary.get("differences", [])):
            raise SystemExit(
                f"{match['path']}: written by an earlier report without p-values; "
                "write it again with python -m reengage.experiment report"
            )
        return match.group(1) + results_table(summary) + match.group(4)

    return BLOCK.sub(replace, page_text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "pages", nargs="*", type=Path, help="markdown pages (default: README.md and every page under docs/)"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    pages = args.pages or [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    stale = []
    for page in pages:
        if not page.is_file():
            parser.exit(2, f"{parser.prog}: error: {page}: no such page\n")
        text = page.read_text()
        updated = fill(text)
        if updated == text:
            continue
        if args.check:
            stale.append(str(page))
        else:
            page.write_text(updated)
            print(f"updated {page}")
    if stale:
        print("out of date (run python tools/docs_tables.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
