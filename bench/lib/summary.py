"""One summary of a `make bench` run: the issue's figures, printed and kept as JSON.

Each bench script adds its headline figures with `add()`; they go to the JSON
file named by BENCH_RESULTS (`make bench` sets it, and deletes the file first,
so a file holds one run). A script run on its own, without the variable, only
prints its own tables. At the end `make bench` runs this module, which prints
the summary table and the file's path (and before the scripts, `start`, which
notes the commit, the time and the load average at the start):

    python -m bench.lib.summary start bench-results.json
    python -m bench.lib.summary bench-results.json

Ratios are taken against baselines measured in the same run (plain Celery, a
bare producer and consumer), so a loaded machine moves both sides.
"""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS_ENV = "BENCH_RESULTS"
REPO = Path(__file__).resolve().parent.parent.parent


def _commit() -> str:
    """Return the commit the run measures, with "-dirty" for uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("-dirty" if dirty else "")


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {
        "commit": _commit(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "figures": [],
    }


def add(
    bench: str,
    name: str,
    value: float,
    unit: str,
    *,
    target: str = "",
    met: bool | None = None,
    detail: str = "",
) -> None:
    """Keep one figure of this run (no-op unless BENCH_RESULTS is set).

    `target` is the issue's goal as text (">= 5x"); `met` whether this run
    reached it; `detail` the raw figures a ratio came from.
    """
    path_text = os.environ.get(RESULTS_ENV)
    if not path_text:
        return
    path = Path(path_text)
    results = _load(path)
    results["figures"].append(
        {
            "bench": bench,
            "name": name,
            "value": round(value, 4),
            "unit": unit,
            "target": target,
            "met": met,
            "detail": detail,
        }
    )
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path.write_text(json.dumps(results, indent=2) + "\n")


def attach(name: str, data: Any) -> None:
    """Keep a run's raw series (JSON-serialisable) next to its figures, under
    `name` (no-op unless BENCH_RESULTS is set); the table does not print them."""
    path_text = os.environ.get(RESULTS_ENV)
    if not path_text:
        return
    path = Path(path_text)
    results = _load(path)
    results.setdefault("series", {})[name] = data
    path.write_text(json.dumps(results, indent=2) + "\n")


def table(results: dict[str, Any]) -> str:
    """Render the run's figures as one text table."""
    rows = [("bench", "figure", "value", "target", "met", "from")]
    for figure in results["figures"]:
        met = {True: "yes", False: "NO", None: ""}[figure["met"]]
        value = f"{figure['value']:,.{_places(figure['value'])}f} {figure['unit']}"
        rows.append(
            (
                figure["bench"],
                figure["name"],
                value.strip(),
                figure["target"],
                met,
                figure["detail"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    machine = results["machine"]
    head = (
        f"Summary of this run: commit {results['commit']}, {results['started_at']}, "
        f"{machine['cpus']} CPUs, load average {machine['load_average_at_start'][0]}"
        f" at start, {results.get('load_average_at_end', ['?'])[0]} at end"
    )
    return "\n".join([head, *(line.rstrip() for line in lines)])


def _places(value: float) -> int:
    """Decimals to show: fewer for larger figures."""
    magnitude = abs(value)
    if magnitude >= 100:
        return 0
    return 1 if magnitude >= 10 else 2 if magnitude >= 1 else 4


def main() -> None:
    """`start PATH`: begin a run's file; `PATH`: print its summary table."""
    args = sys.argv[1:]
    if args[:1] == ["start"]:
        path = Path(args[1])
        path.write_text(json.dumps(_load(path), indent=2) + "\n")
        return
    path = Path(args[0] if args else os.environ[RESULTS_ENV])
    if not path.exists():
        raise SystemExit(f"bench summary: no figures, {path} does not exist")
    print(table(json.loads(path.read_text())))
    print(f"\nwritten to {path.resolve()}")


if __name__ == "__main__":
    main()
