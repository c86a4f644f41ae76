"""The shape of a catalog file, checked before singer-python reads it.

singer-python's Catalog.from_dict fails on a wrongly shaped entry with Python internals
("'NoneType' object has no attribute 'get'"); this names the entry and the field instead.
"""

from __future__ import annotations

from typing import Any, Mapping

from tap_wootric.errors import InputFileError


def _entry_name(index: int, entry: Mapping[str, Any]) -> str:
    stream = entry.get("tap_stream_id") or entry.get("stream")
    return f"streams[{index}]" + (f" ('{stream}')" if isinstance(stream, str) else "")


def _require(holder: Mapping[str, Any], key: str, kind: type, where: str, *, optional: bool = False) -> None:
    value = holder.get(key)
    if optional and value is None:
        return
    if not isinstance(value, kind):
        wanted = {dict: "an object", list: "a list", str: "a string"}[kind]
        raise InputFileError(f"{where}: field '{key}' must be {wanted}, not {_json_kind(value)}")


def _check_entry(index: int, entry: Any, source: str) -> None:
    if not isinstance(entry, dict):
        raise InputFileError(f"{source}: streams[{index}] must be an object, not {_json_kind(entry)}")
    where = f"{source}: {_entry_name(index, entry)}"
    _require(entry, "tap_stream_id", str, where)
    _require(entry, "schema", dict, where)
    _require(entry, "key_properties", list, where, optional=True)
    _require(entry, "metadata", list, where, optional=True)
    for number, item in enumerate(entry.get("metadata") or []):
        item_where = f"{where}: metadata[{number}]"
        if not isinstance(item, dict):
            raise InputFileError(f"{item_where} must be an object, not {_json_kind(item)}")
        _require(item, "breadcrumb", list, item_where)
        _require(item, "metadata", dict, item_where)


def _json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null (or missing)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def check_catalog_shape(raw: Mapping[str, Any], source: str) -> None:
    """Raise InputFileError naming the first entry and field of the wrong shape."""
    for index, entry in enumerate(raw.get("streams") or []):
        _check_entry(index, entry, source)
