"""What each stream is, as data. The sync code reads this table; adding a stream
means adding a schema file and a row here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from tap_wootric.api.apis import CXI, V1, V2, Api

INCREMENTAL = "INCREMENTAL"
FULL_TABLE = "FULL_TABLE"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    path: str
    key_properties: Tuple[str, ...]
    # INCREMENTAL streams: the bookmark field. FULL_TABLE streams have none.
    replication_key: Optional[str] = None
    # The field every row is found by, which the API documents as a filter
    # (`<filter_param>[gte]=...`) and a sort: the first sync and the reconciliation pass read it.
    # When it differs from replication_key, what the API honours on replication_key is proved
    # by a probe each run and picks the read strategy (see strategies.py).
    scan_field: Optional[str] = None
    filter_param: Optional[str] = None
    # The filter parameter that belongs to replication_key, when it is only tried, not documented.
    replication_filter_param: Optional[str] = None
    created_field: str = "created_at"
    # Rows are edited after they are created (so the lookback rescan can find something).
    edited: bool = True
    # A second sort key the API documents (used to reach rows that tie on scan_field in one second).
    alternative_sort_key: Optional[str] = None
    selected_by_default: bool = True
    api: Api = V1
    # A refusal of a required stream fails the run; any other stream the account lacks is skipped
    # (sync.py, with the rule in apis.py).
    required: bool = False
    # FULL_TABLE streams: whether the endpoint pages (page/per_page, at most 30 x 50), extra fixed
    # query parameters, and whether rows come in a {"total_count", "items"} envelope.
    paged: bool = False
    params: Tuple[Tuple[str, str], ...] = ()
    enveloped: bool = False
    # FULL_TABLE streams read by more than one listing: the name of their reader in readers/cxi.py (READERS).
    reader: Optional[str] = None
    # Day streams (see daily.py): one request per account-local day, the day (YYYY-MM-DD) sent in both of
    # these query parameters (range start, range end). The record is the body, or the object under
    # record_key with the body's other top-level keys beside it, plus the day under replication_key.
    day_params: Optional[Tuple[str, str]] = None
    record_key: Optional[str] = None
    # FULL_TABLE streams whose body is an object: the keys holding its row lists, read in order. With
    # kind_field, each row says in that field which key it came from.
    rows_keys: Tuple[str, ...] = ()
    kind_field: Optional[str] = None
    # The body key naming the default row's id, and the boolean field that marks that row.
    default_id_key: Optional[str] = None
    default_field: Optional[str] = None

    @property
    def read_by(self) -> str:
        """Which reader reads the stream: "daily", "incremental" or "full_table"."""
        if self.day_params is not None:
            return "daily"
        return "incremental" if self.replication_key else "full_table"

    @property
    def replication_method(self) -> str:
        return INCREMENTAL if self.replication_key else FULL_TABLE

    @property
    def probes_edits(self) -> bool:
        """Whether edits must be found by a strategy the probe picks (scan_field is not the replication key)."""
        return (self.replication_method == INCREMENTAL and self.scan_field is not None
                and self.scan_field != self.replication_key)


STREAMS: Tuple[StreamSpec, ...] = (
    StreamSpec(
        name="end_users",
        path="end_users",
        required=True,
        key_properties=("id",),
        replication_key="updated_at",
        scan_field="updated_at",
        filter_param="updated",
        alternative_sort_key="created_at",
    ),
    StreamSpec(
        name="responses",
        path="responses",
        required=True,
        key_properties=("id",),
        replication_key="updated_at",
        scan_field="created_at",
        filter_param="created",
        replication_filter_param="updated",
    ),
    # The notes say declines are never edited: no lookback rescan, and edits (should one come) are
    # still caught by the newest-first walk where the sort is honoured, else by the reconciliation pass.
    StreamSpec(
        name="declines",
        path="declines",
        required=True,
        key_properties=("id",),
        replication_key="updated_at",
        scan_field="created_at",
        filter_param="created",
        replication_filter_param="updated",
        edited=False,
    ),
    # Segments have no id; a name is unique in an account.
    StreamSpec(name="segments", path="segments", key_properties=("name",)),
    # The CXI API cannot filter responses by date, and imports can add old feedback at any time, so
    # its streams are read whole (and responses through every route the API offers; see cxi.py).
    StreamSpec(name="cxi_responses", path="responses", key_properties=("id",), selected_by_default=False,
               api=CXI, paged=True, enveloped=True, reader="cxi_responses"),
    StreamSpec(name="cxi_tags", path="tags", key_properties=("id",), selected_by_default=False, api=CXI,
               paged=True, params=(("flat", "true"), ("sort", "name_asc")), reader="tags_with_parents"),
    StreamSpec(name="cxi_projects", path="projects", key_properties=("id",), selected_by_default=False,
               api=CXI),
    StreamSpec(name="cxi_imports", path="imports", key_properties=("id",), selected_by_default=False,
               api=CXI, paged=True),
    # Aggregates by account-local day, one request each: opt-in for their cost (README, "Day streams").
    StreamSpec(name="nps_summary", path="nps_summary", key_properties=("date",), replication_key="date",
               selected_by_default=False, day_params=("date[start]", "date[end]")),
    StreamSpec(name="email_stats", path="email_stats", key_properties=("date",), replication_key="date",
               selected_by_default=False, api=V2,
               day_params=("date_range[start_date]", "date_range[end_date]"), record_key="email_stats"),
    # One request each; opt-in so that upgrading the tap adds no table to an existing pipeline, and (v2)
    # because many accounts send no e-mail surveys.
    StreamSpec(name="email_stats_sources", path="email_stats/sources", key_properties=("kind", "id"),
               selected_by_default=False, api=V2, rows_keys=("ongoing", "sends"), kind_field="kind"),
    StreamSpec(name="survey_templates", path="survey_templates", key_properties=("id",), selected_by_default=False,
               rows_keys=("survey_templates",), default_id_key="default_survey_template_id",
               default_field="is_default"),
)


def get_stream(name: str) -> Optional[StreamSpec]:
    return next((spec for spec in STREAMS if spec.name == name), None)
