"""Which streams and fields the catalog selects."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from singer import metadata
from singer.catalog import Catalog, CatalogEntry

from tap_wootric.errors import InputFileError
from tap_wootric.streams import StreamSpec, get_stream


def _is_selected(entry: CatalogEntry, spec: StreamSpec) -> bool:
    stream_metadata = metadata.to_map(entry.metadata or []).get((), {})
    selected = stream_metadata.get("selected")
    if selected is None and entry.schema is not None:
        selected = entry.schema.selected  # the pre-metadata way of selecting
    if selected is None:
        selected = stream_metadata.get("selected-by-default", spec.selected_by_default)
    return bool(selected)


def selected_streams(catalog: Catalog, state: Dict[str, Any]) -> List[Tuple[StreamSpec, CatalogEntry]]:
    """Selected streams in catalog order, starting with the one an interrupted run was in."""
    chosen = []
    for entry in catalog.streams:
        spec = get_stream(entry.tap_stream_id)
        if spec is None:
            raise InputFileError(f"the catalog names an unknown stream '{entry.tap_stream_id}'")
        if _is_selected(entry, spec):
            chosen.append((spec, entry))
    interrupted = state.get("currently_syncing")
    names = [spec.name for spec, _ in chosen]
    if interrupted in names:
        index = names.index(interrupted)
        chosen = chosen[index:] + chosen[:index]
    return chosen


def selected_schema(schema: Dict[str, Any], mdata: Dict, breadcrumb: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """The schema of exactly the fields that will be emitted."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    kept = {}
    for name, sub_schema in properties.items():
        child = breadcrumb + ("properties", name)
        field_metadata = mdata.get(child, {})
        inclusion = field_metadata.get("inclusion")
        if inclusion == "unsupported":
            continue
        if inclusion != "automatic" and field_metadata.get("selected") is False:
            continue
        kept[name] = selected_schema(sub_schema, mdata, child)
    return {**schema, "properties": kept}


