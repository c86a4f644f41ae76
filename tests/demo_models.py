"""`make demo`: the sync of tests/demo.py, then the warehouse: the demo's Singer messages land in a DuckDB file
through a real Singer target (target-duckdb), every stream's rows are counted against the tap's output, the dbt
models in dbt_wootric/ are built and tested, and the monthly NPS comes from wootric__nps_monthly, with a chart.

No Wootric account needed. Everything lands in demo-output/ (or DEMO_OUTPUT).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import demo  # noqa: E402
import nps_chart  # noqa: E402
import tools  # noqa: E402
import warehouse  # noqa: E402

DATABASE_NAME = "demo.duckdb"
TIMEZONE = "America/Los_Angeles"  # dbt_wootric's default wootric_account_timezone, the tap's account_timezone


def tap_keys(messages: Path) -> dict:
    """Distinct primary keys the tap emitted, by stream: what a target that upserts must hold."""
    key_properties, keys = {}, defaultdict(set)
    for line in messages.open(encoding="utf-8"):
        message = json.loads(line)
        if message["type"] == "SCHEMA":
            key_properties[message["stream"]] = message["key_properties"]
        elif message["type"] == "RECORD":
            record = message["record"]
            keys[message["stream"]].add(tuple(record[key] for key in key_properties[message["stream"]]))
    return keys


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> int:
    started = time.monotonic()
    # The two DuckDB tools install (the first time) while the tap runs.
    installs = [threading.Thread(target=tools.ensure, args=(name,)) for name in ("target-duckdb", "dbt-duckdb")]
    for thread in installs:
        thread.start()
    demo.main()
    for thread in installs:
        thread.join()

    out = demo.OUT
    messages, database = out / "messages.jsonl", out / DATABASE_NAME
    database.unlink(missing_ok=True)  # fresh data each run
    warehouse.load_duckdb(messages.read_text(encoding="utf-8"), database, out)
    keys = tap_keys(messages)
    landed = {stream: warehouse.query_duckdb(database, f"SELECT count(*) FROM {warehouse.LANDED_SCHEMA}.{stream}")
              [0][0] for stream in sorted(keys)}
    print(f"\nLanded in {relative(database)} by target-duckdb (schema {warehouse.LANDED_SCHEMA}):")
    print(f"{'stream':<10} {'tap rows':>9} {'in DuckDB':>10}")
    for stream in sorted(keys):
        print(f"{stream:<10} {len(keys[stream]):>9} {landed[stream]:>10}")
    short = [stream for stream in keys if landed[stream] != len(keys[stream])]
    if short:
        print(f"Row counts differ for {', '.join(short)}", file=sys.stderr)
        return 1

    build = warehouse.dbt(["build"], out, env=warehouse.duckdb_env(database))
    (out / "dbt-build.log").write_text(build.stdout + build.stderr)
    outcome = warehouse.results(out) if (out / "dbt-target" / "run_results.json").exists() else {}
    models = sum(1 for name in outcome if name.startswith(("stg_", "wootric__")))
    tests = len(outcome) - models
    if build.returncode != 0:
        print(build.stdout[-3000:], file=sys.stderr)
        print(f"dbt build failed; its log: {out / 'dbt-build.log'}", file=sys.stderr)
        return 1
    print(f"\ndbt build: {models} models built and {tests} tests passed (schema {warehouse.MODELS_SCHEMA}; "
          f"log {relative(out / 'dbt-build.log')})")

    rows = warehouse.query_duckdb(database, f"SELECT strftime(month, '%Y-%m'), nps, responses, declines, "
                                            f"response_rate FROM {warehouse.MODELS_SCHEMA}.wootric__nps_monthly "
                                            "ORDER BY month")
    shown = rows[-12:]
    print(f"\nNPS by month from {warehouse.MODELS_SCHEMA}.wootric__nps_monthly ({TIMEZONE} months; "
          f"the last {len(shown)} of {len(rows)}):")
    print(f"  {'month':<8} {'NPS':>6} {'responses':>10} {'declines':>9} {'response rate':>14}")
    for month, nps, responses, declines, rate in shown:
        nps_text = "" if nps is None else f"{nps:.1f}"
        rate_text = "" if rate is None else f"{rate:.1f}%"
        print(f"  {month:<8} {nps_text:>6} {responses:>10} {declines:>9} {rate_text:>14}")

    series = [(month, nps, responses) for month, nps, responses, *_ in rows]
    title = f"NPS by month ({TIMEZONE}), with responses"
    chart = out / "nps_by_month.html"
    chart.write_text(nps_chart.page(series, title, "From wootric__nps_monthly, built by make demo from the "
                                                   "bundled fake Wootric API."), encoding="utf-8")
    (out / "nps_by_month.svg").write_text(nps_chart.svg(series, title), encoding="utf-8")
    print(f"\nChart: {chart.resolve()} (open it in a browser; also {relative(out / 'nps_by_month.svg')})")

    dbt = relative(tools.TOOLS_DIR / "dbt-duckdb" / "bin" / "dbt")
    target = relative(tools.TOOLS_DIR / "target-duckdb" / "bin" / "target-duckdb")
    print(f"""
Next:
  Database  {relative(database)}: the landed tables in schema {warehouse.LANDED_SCHEMA}, the models in schema \
{warehouse.MODELS_SCHEMA}
  Models    dbt_wootric/ (what each mart answers: docs/models.md); rebuild them with
            WOOTRIC_DUCKDB_PATH={relative(database)} {dbt} build --project-dir dbt_wootric --profiles-dir dbt_wootric
  Your own account, into DuckDB (PostgreSQL and Meltano: the README's "Models"):
    1. config.json with client_id, client_secret and start_date (see sample_config.json)
    2. .venv/bin/tap-wootric --config config.json --discover > catalog.json
    3. echo '{{"path": "wootric-data.duckdb", "default_target_schema": "wootric"}}' > target-duckdb.json
       .venv/bin/tap-wootric --config config.json --catalog catalog.json | {target} --config target-duckdb.json
    4. WOOTRIC_DUCKDB_PATH=wootric-data.duckdb {dbt} build --project-dir dbt_wootric --profiles-dir dbt_wootric

Done in {time.monotonic() - started:.0f} s.""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
