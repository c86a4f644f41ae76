"""FULL_TABLE streams: segments, survey templates, e-mail stats sources and the CXI API's responses,
tags, projects and imports.

Each sync reads the whole table and stamps its records with a table version. ACTIVATE_VERSION
goes out before the first full read of a stream (so the table exists at once) and after every
full read that proved it read every row, when targets that support it drop the rows of older
versions: rows deleted at the source disappear. A read that is interrupted keeps its version in
the state, so the rerun's rows join it.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator

from tap_wootric.readers.cxi import READERS
from tap_wootric.readers.listing import in_pages, keyed_rows, paged_rows, rows_of
from tap_wootric.stream_run import StreamRun, new_version

LOGGER = logging.getLogger(__name__)


def rows(run: StreamRun) -> Iterator[Dict[str, Any]]:
    """Every row of the stream, as its row in the stream table says to read them."""
    spec = run.spec
    if spec.reader is not None:
        return READERS[spec.reader](run)
    if spec.rows_keys:
        return keyed_rows(run, run.get())
    if spec.paged:
        return paged_rows(run, spec.path)
    return iter(rows_of(run.get(), spec.path, spec.enveloped))


class FullTableReader:
    def __init__(self, run: StreamRun):
        self.run = run

    def run_stream(self) -> None:
        run = self.run
        run.write_schema()
        bookmark = run.bookmark
        run.version = bookmark.get("version") or new_version()
        first_read = not bookmark.get("initial_full_table_complete")
        bookmark["version"] = run.version
        run.save_state()
        if first_read:
            run.writer.activate_version(run.name, run.version)
        for page in in_pages(rows(run)):
            run.emit(page)
        if run.complete:
            run.writer.activate_version(run.name, run.version)
        else:
            # Targets would delete the rows this read did not reach.
            LOGGER.warning("%s: the read was incomplete, so no ACTIVATE_VERSION is sent: targets keep the rows "
                           "of earlier reads", run.name)
        bookmark.pop("version", None)
        bookmark["initial_full_table_complete"] = True
        run.save_state()
        run.finish(f" (full table, version {run.version})")
