"""A throwaway PostgreSQL cluster on 127.0.0.1 for the target-postgres tests.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (Debian's
`postgresql` package creates it; .ci/run installs the package when it is missing).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        found = shutil.which("initdb")
        if not found:
            raise RuntimeError("PostgreSQL is not installed (no initdb); apt-get install postgresql")
        return Path(found).parent
    return Path(candidates[0]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Postgres:
    data_dir: Path
    port: int
    bin_dir: Path

    def _as_owner(self, argv: List[str]) -> None:
        if os.geteuid() == 0:
            subprocess.run(["su", "postgres", "-c", " ".join(f"'{arg}'" for arg in argv)], check=True,
                           capture_output=True, text=True)
        else:
            subprocess.run(argv, check=True, capture_output=True, text=True)

    @classmethod
    def start(cls) -> Postgres:
        bin_dir = _bin_dir()
        data_dir = Path(tempfile.mkdtemp(prefix="tap-wootric-pg-"))
        if os.geteuid() == 0:
            shutil.chown(data_dir, "postgres", "postgres")
        server = cls(data_dir, _free_port(), bin_dir)
        server._as_owner([str(bin_dir / "initdb"), "-D", str(data_dir / "data"), "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--no-sync"])
        server._as_owner([str(bin_dir / "pg_ctl"), "-D", str(data_dir / "data"), "-l", str(data_dir / "log.txt"),
                          "-o", f"-p {server.port} -k {data_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                          "-w", "start"])
        return server

    def stop(self) -> None:
        try:
            self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir / "data"), "-m", "immediate",
                            "-w", "stop"])
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres", *, timezone: Optional[str] = None) -> List[List[str]]:
        """Rows of a query, as lists of text values; `timezone` sets the session's time zone (PGTZ)."""
        env = {**os.environ, **({"PGTZ": timezone} if timezone else {})}
        proc = subprocess.run([str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", database, "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                              check=True, capture_output=True, text=True, env=env)
        return [line.split("\t") for line in proc.stdout.splitlines() if line]
