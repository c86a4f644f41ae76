"""Singer tools the ecosystem tests run, each in its own virtualenv under .tools/.

Their dependencies conflict with singer-python 6 (and with each other), so none can share the
tap's venv. `python tests/tools.py` installs them all; the tests install any that are missing.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = ROOT / ".tools"
# name -> (pip requirements, separated by spaces; executable)
TOOLS = {
    "target-jsonl": ("target-jsonl==0.1.4", "target-jsonl"),
    "singer-tools": ("singer-tools==0.4.1", "singer-check-tap"),
    "target-postgres": ("meltanolabs-target-postgres==0.8.1", "target-postgres"),
    "meltano": ("meltano==4.4.1", "meltano"),
    "pipelinewise-target-postgres": ("pipelinewise-target-postgres==2.1.2", "target-postgres"),
    # The mapper Meltano runs in the personal-data recipe (its Hub name is meltano-map-transformer).
    "meltano-map-transform": ("meltano-map-transform==0.12.3", "meltano-map-transform"),
    # The DuckDB loader of `make demo` and the landing tests. duckdb 1.3 and newer make target-duckdb 0.8.0 lose
    # the first row of every batch; both DuckDB tools use the same duckdb, so either can open the other's file.
    "target-duckdb": ("target-duckdb==0.8.0 duckdb==1.2.2", "target-duckdb"),
    "meltanolabs-target-csv": ("meltanolabs-target-csv==0.5.0", "target-csv"),
    # Builds the sdist and wheel, and checks them as PyPI would (tests/test_release.py).
    "build-twine": ("build==1.6.1 twine==7.0.0", "twine"),
    # dbt for the models in dbt_wootric/ (dbt-core 1.12 does not install offline).
    "dbt-duckdb": ("dbt-core==1.11.16 dbt-duckdb==1.11.1 duckdb==1.2.2", "dbt"),
    "dbt-postgres": ("dbt-core==1.11.16 dbt-postgres==1.11.0", "dbt"),
}
_locks = {name: threading.Lock() for name in TOOLS}


def ensure(name: str) -> Path:
    """The tool's executable, installing the tool first if needed."""
    requirement, executable = TOOLS[name]
    venv = TOOLS_DIR / name
    marker = venv / ".installed"
    with _locks[name]:
        if not marker.exists() or marker.read_text().strip() != requirement:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                            *requirement.split()], check=True)
            marker.write_text(requirement + "\n")
    return venv / "bin" / executable


def main(names: list[str]) -> int:
    """Install the named tools (all of them when none is named) in parallel and print their executables."""
    names = names or list(TOOLS)
    threads = [threading.Thread(target=ensure, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in names:
        print(ensure(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
