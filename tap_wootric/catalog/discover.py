"""The Singer catalog: schemas shipped with the package plus stream and field metadata."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Dict, Iterator, Tuple

from singer import metadata
from singer.catalog import Catalog, CatalogEntry
from singer.schema import Schema

from tap_wootric.streams import STREAMS, StreamSpec

Breadcrumb = Tuple[str, ...]


def load_schema(stream_name: str) -> Dict[str, Any]:
    text = resources.files("tap_wootric").joinpath("schemas").joinpath(f"{stream_name}.json").read_text("utf-8")
    return json.loads(text)


def _nested_breadcrumbs(schema: Dict[str, Any], parent: Breadcrumb) -> Iterator[Breadcrumb]:
    for name, sub_schema in schema.get("properties", {}).items():
        breadcrumb = parent + ("properties", name)
        yield breadcrumb
        yield from _nested_breadcrumbs(sub_schema, breadcrumb)


def stream_metadata(spec: StreamSpec, schema: Dict[str, Any]) -> list:
    automatic = set(spec.key_properties) | ({spec.replication_key} if spec.replication_key else set())
    mdata = metadata.to_map(
        metadata.get_standard_metadata(
            schema=schema,
            key_properties=list(spec.key_properties),
            valid_replication_keys=[spec.replication_key] if spec.replication_key else None,
            replication_method=spec.replication_method,
        )
    )
    mdata = metadata.write(mdata, (), "selected-by-default", spec.selected_by_default)
    # get_standard_metadata covers only top-level fields and leaves replication keys
    # "available"; targets and UIs need every field, nested ones included.
    for breadcrumb in _nested_breadcrumbs(schema, ()):
        inclusion = "automatic" if len(breadcrumb) == 2 and breadcrumb[1] in automatic else "available"
        mdata = metadata.write(mdata, breadcrumb, "inclusion", inclusion)
    return metadata.to_list(mdata)


def discover() -> Catalog:
    entries = []
    for spec in STREAMS:
        schema = load_schema(spec.name)
        entries.append(
            CatalogEntry(
                tap_stream_id=spec.name,
                stream=spec.name,
                key_properties=list(spec.key_properties),
                schema=Schema.from_dict(schema),
                metadata=stream_metadata(spec, schema),
                replication_method=spec.replication_method,
                replication_key=spec.replication_key,
            )
        )
    return Catalog(entries)
