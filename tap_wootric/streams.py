"""What each stream is, as data. The sync code reads this table; adding a stream
means adding a schema file and a row here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class StreamSpec:
    name: str
    path: str
    key_properties: Tuple[str, ...]
    replication_key: str
    # The field the API can filter (`<filter_param>[gte]=...`) and sort on. When it
    # differs from replication_key the API cannot filter on the replication key, so the
    # tap rescans a lookback window on scan_field and filters on replication_key itself.
    scan_field: str
    filter_param: str
    selected_by_default: bool = True

    @property
    def uses_lookback(self) -> bool:
        return self.scan_field != self.replication_key


STREAMS: Tuple[StreamSpec, ...] = (
    StreamSpec(
        name="end_users",
        path="end_users",
        key_properties=("id",),
        replication_key="updated_at",
        scan_field="updated_at",
        filter_param="updated",
    ),
    StreamSpec(
        name="responses",
        path="responses",
        key_properties=("id",),
        replication_key="updated_at",
        scan_field="created_at",
        filter_param="created",
    ),
    StreamSpec(
        name="declines",
        path="declines",
        key_properties=("id",),
        replication_key="updated_at",
        scan_field="created_at",
        filter_param="created",
    ),
)


def get_stream(name: str) -> Optional[StreamSpec]:
    return next((spec for spec in STREAMS if spec.name == name), None)
