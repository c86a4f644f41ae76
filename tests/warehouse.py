"""The warehouse side of the models (dbt_wootric/): land Singer messages in DuckDB with a real Singer target,
run dbt on DuckDB or PostgreSQL, and query a DuckDB file. The tools live in their own virtualenvs under
.tools/ (tests/tools.py): target-duckdb and dbt-duckdb share one duckdb version, so either opens the other's
file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import tools

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "dbt_wootric"
LANDED_SCHEMA = "wootric"  # where the targets land the tap's tables (the project's var wootric_schema)
MODELS_SCHEMA = "analytics"  # where dbt builds the models (the profiles' default)

_QUERY = """
import datetime, decimal, json, sys
import duckdb
def plain(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value
read = sys.argv[3] == "read"
with duckdb.connect(sys.argv[1], read_only=read) as connection:
    result = connection.execute(sys.argv[2])
    rows = result.fetchall() if read else []
print(json.dumps([[plain(value) for value in row] for row in rows]))
"""


def target_duckdb_config(database: Path, directory: Path) -> Path:
    path = directory / "target-duckdb.json"
    path.write_text(json.dumps({"path": str(database), "default_target_schema": LANDED_SCHEMA,
                                "add_metadata_columns": True}, indent=2))
    return path


def load_duckdb(messages: str, database: Path, directory: Path, timeout: float = 300) -> str:
    """Pipe Singer messages into target-duckdb; returns what it printed (the last STATE)."""
    config = target_duckdb_config(database, directory)
    proc = subprocess.run([str(tools.ensure("target-duckdb")), "--config", str(config)], input=messages,
                          capture_output=True, text=True, timeout=timeout)
    (directory / "target-duckdb.log").write_text(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"target-duckdb failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return proc.stdout


def query_duckdb(database: Path, sql: str, *, write: bool = False) -> List[List[Any]]:
    """Rows of a query on a DuckDB file, read with the duckdb of the dbt-duckdb tool (`write`: statements
    that change the file, which return no rows)."""
    python = tools.ensure("dbt-duckdb").parent / "python"
    proc = subprocess.run([str(python), "-c", _QUERY, str(database), sql, "write" if write else "read"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"DuckDB query failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def dbt(args: Sequence[str], work: Path, *, target: str = "duckdb", env: Optional[Dict[str, str]] = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """Run dbt on the project with its own profiles.yml; its target/ and logs/ go to `work`."""
    executable = tools.ensure("dbt-duckdb" if target == "duckdb" else "dbt-postgres")
    argv = [str(executable), *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
            "--target", target, "--target-path", str(work / "dbt-target"), "--log-path", str(work / "dbt-logs")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=work,
                          env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(env or {})})


def duckdb_env(database: Path) -> Dict[str, str]:
    return {"WOOTRIC_DUCKDB_PATH": str(database)}


def postgres_env(port: int, database: str) -> Dict[str, str]:
    return {"WOOTRIC_PG_HOST": "127.0.0.1", "WOOTRIC_PG_PORT": str(port), "WOOTRIC_PG_USER": "postgres",
            "WOOTRIC_PG_PASSWORD": "unused", "WOOTRIC_PG_DATABASE": database}


def results(work: Path) -> Dict[str, Dict[str, Any]]:
    """dbt's run_results.json of the last command in `work`: {node name: {status, failures}}."""
    document = json.loads((work / "dbt-target" / "run_results.json").read_text())
    return {result["unique_id"].split(".")[2]: {"status": result["status"], "failures": result.get("failures")}
            for result in document["results"]}
