"""Turning API rows into records of the catalog's schema.

The API is not versioned, so a field can appear, or change type, without notice. Neither may
stop a sync: an unknown field is dropped with one WARNING per stream and run, and a value that
does not fit its schema goes out as null with a WARNING naming the stream, field and record id.
Values are never logged: they can be personal data.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from singer.transform import UNIX_SECONDS_INTEGER_DATETIME_PARSING, SchemaMismatch, Transformer

from tap_wootric.errors import ApiError
from tap_wootric.timeutil import recent_rfc3339, whole_second_rfc3339

LOGGER = logging.getLogger(__name__)

# After this many warnings about one field of one stream, the rest are only counted.
WARNINGS_PER_FIELD = 5

PathElement = Union[str, int]
Converter = Callable[[Any], Any]


# A field typed with every JSON type holds any JSON value, kept as the API sends it (for example a CXI
# custom property's value, whose type its data_type names). singer-python's Transformer would coerce it
# to the first type that accepts it (bool("x") is True), so such a field is passed through unchanged.
ANY_JSON_TYPES = frozenset(("null", "boolean", "integer", "number", "string", "object", "array"))


def is_any_json(schema: Dict[str, Any]) -> bool:
    types = schema.get("type")
    return isinstance(types, list) and frozenset(types) == ANY_JSON_TYPES


class _NotFastPathable(Exception):
    """A value the compiled path does not handle; singer-python's Transformer takes the record."""


def _is_dropped(mdata: Dict, breadcrumb: Tuple[str, ...]) -> bool:
    """singer-python's rule: a field goes unless automatic, when deselected or unsupported."""
    field_metadata = mdata.get(breadcrumb, {})
    inclusion = field_metadata.get("inclusion")
    if inclusion == "automatic":
        return False
    return field_metadata.get("selected") is False or inclusion == "unsupported"


def compile_converter(schema: Dict[str, Any], mdata: Dict, breadcrumb: Tuple[str, ...] = ()) -> Optional[Converter]:
    """A converter giving exactly what singer-python's Transformer gives for the values the API
    normally sends (ints, strings, the API's time strings, objects, lists), and raising
    _NotFastPathable for anything else. None when the schema has a shape it does not cover.

    The Transformer walks the schema and the metadata again for every value of every record,
    which was most of the tap's CPU time; the walk is done once here.
    """
    if "anyOf" in schema or "$ref" in schema:
        return None
    if "type" not in schema or is_any_json(schema):
        return _identity
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    compile_kind = _compiler_for(types, schema.get("format"))
    return None if compile_kind is None else compile_kind(schema, mdata, breadcrumb, "null" in types)


def _compiler_for(types: List[str], format_: Optional[str]) -> Optional[Callable[..., Optional[Converter]]]:
    """How to compile a schema of exactly one type besides null; None for any other."""
    kinds = [kind for kind in types if kind != "null"]
    return _COMPILERS.get((kinds[0], format_)) if len(kinds) == 1 else None


def _compile_object(schema: Dict[str, Any], mdata: Dict, breadcrumb: Tuple[str, ...],
                    nullable: bool) -> Optional[Converter]:
    properties = schema.get("properties")
    if not properties:
        return _free_object(nullable) if not schema.get("patternProperties") else None
    children: Dict[str, Converter] = {}
    dropped = set()
    for name, sub_schema in properties.items():
        child = breadcrumb + ("properties", name)
        if _is_dropped(mdata, child):
            dropped.add(name)
            continue
        converter = compile_converter(sub_schema, mdata, child)
        if converter is None:
            return None
        children[name] = converter
    return _object(children, frozenset(dropped), nullable)


def _compile_array(schema: Dict[str, Any], mdata: Dict, breadcrumb: Tuple[str, ...],
                   nullable: bool) -> Optional[Converter]:
    items = compile_converter(schema.get("items") or {}, mdata, breadcrumb + ("items",))
    return None if items is None else _array(items, nullable)


def _leaf(make: Callable[[bool], Converter]) -> Callable[..., Converter]:
    return lambda schema, mdata, breadcrumb, nullable: make(nullable)


# (type, format) -> how to compile it. singer-python checks no "date" format: the value passes as a
# string (the day streams set it). Any other format is left to singer-python's Transformer.
_COMPILERS: Dict[Tuple[str, Optional[str]], Callable[..., Optional[Converter]]] = {
    ("object", None): _compile_object,
    ("array", None): _compile_array,
    ("string", "date-time"): _leaf(lambda nullable: _datetime(nullable)),
    ("number", None): _leaf(lambda nullable: _number(nullable)),
    ("string", "date"): _leaf(lambda nullable: _scalar(str, nullable)),
    ("string", None): _leaf(lambda nullable: _scalar(str, nullable)),
    ("integer", None): _leaf(lambda nullable: _scalar(int, nullable)),
    ("boolean", None): _leaf(lambda nullable: _scalar(bool, nullable)),
}


_NO_TYPES: frozenset = frozenset()


def _identity(value: Any) -> Any:
    return value


def _null_or_fail(value: Any, nullable: bool) -> None:
    # The Transformer reads "" as null for every type but string.
    if nullable and (value is None or value == ""):
        return None
    raise _NotFastPathable


def _free_object(nullable: bool) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is dict:
            return value
        return _null_or_fail(value, nullable)

    return _keeps(convert, dict, nullable)


def _keeps(convert: Converter, python_type: type, nullable: bool) -> Converter:
    """Note on a converter which types of value it returns unchanged, so that objects can copy those
    values without calling it: most of a record's values are already what the schema asks for."""
    convert.unchanged = frozenset((python_type, type(None)) if nullable else (python_type,))  # type: ignore[attr-defined]
    return convert


def _object(children: Dict[str, Converter], dropped: frozenset, nullable: bool) -> Converter:
    unchanged = {name: getattr(child, "unchanged", _NO_TYPES) for name, child in children.items()}

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            return _null_or_fail(value, nullable)
        result = {}
        for key, item in value.items():
            if type(item) in unchanged.get(key, _NO_TYPES):
                result[key] = item
                continue
            converter = children.get(key)
            if converter is not None:
                result[key] = converter(item)
            elif key not in dropped:
                raise _NotFastPathable  # unknown to the schema: the Transformer drops and reports it
        return result

    return convert


def _array(items: Converter, nullable: bool) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is list:
            return [items(item) for item in value]
        return _null_or_fail(value, nullable)

    return convert


def _datetime(nullable: bool) -> Converter:
    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int:
            formatted = recent_rfc3339(value) or whole_second_rfc3339(value)
            if formatted is not None:
                return formatted
        return _null_or_fail(value, nullable)

    return convert


def _number(nullable: bool) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is float or type(value) is int:
            try:
                return float(value)
            except OverflowError:
                raise _NotFastPathable from None
        if value is None or value == "":
            return _null_or_fail(value, nullable)
        raise _NotFastPathable

    return convert


def _scalar(python_type: type, nullable: bool) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is python_type:
            return value
        if value is None or (value == "" and python_type is not str):
            return _null_or_fail(value, nullable)
        raise _NotFastPathable

    return _keeps(convert, python_type, nullable)


class WootricTransformer(Transformer):
    """singer-python's Transformer with a fast path for the API's own time shapes.

    Any other time shape goes through singer-python's parser, but quietly: on failure its
    own helper logs the offending value, and the caller reports the field instead.
    """

    def __init__(self) -> None:
        super().__init__(integer_datetime_fmt=UNIX_SECONDS_INTEGER_DATETIME_PARSING)

    def transform_recur(self, data: Any, schema: Dict[str, Any], path: List[Any]) -> Tuple[bool, Any]:
        if is_any_json(schema):
            return True, data
        return super().transform_recur(data, schema, path)

    def _transform(self, data: Any, typ: str, schema: Dict[str, Any], path: List[Any]) -> Tuple[bool, Any]:
        # singer-python tries "null" last and bool(None) is False, so a null boolean (the API's
        # "not set") would come out as false; leave null and "" to the null type.
        if typ == "boolean" and (data is None or data == ""):
            return False, None
        return super()._transform(data, typ, schema, path)

    def _transform_datetime(self, value: Any) -> Any:
        if value is None or value == "":
            return None
        fast = whole_second_rfc3339(value)
        if fast is not None:
            return fast
        if isinstance(value, bool):
            return None
        try:
            return _odd_moment(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except Exception:  # dateutil and datetime raise several unrelated types for bad input
            return None


def _odd_moment(value: Any) -> datetime:
    """A time in a shape the API does not normally send: epoch seconds (also as digits) or any string
    singer-python can read."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    from singer.utils import strptime_to_utc  # imported late: only odd shapes get here

    return strptime_to_utc(value)


def _failed_leaves(errors: List[Any]) -> List[Tuple[PathElement, ...]]:
    """The Transformer reports a failed leaf and every object above it; only the leaves matter."""
    paths = [tuple(error.path) for error in errors]
    return [p for p in paths if p and not any(len(q) > len(p) and q[: len(p)] == p for q in paths)]


def field_name(path: Sequence[PathElement]) -> str:
    """`notes[0].created_at` for the path ['notes', 0, 'created_at']."""
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else str(element))
    return text


def _allows_null(schema: Dict[str, Any]) -> bool:
    types = schema.get("type")
    return "type" not in schema or types == "null" or (isinstance(types, list) and "null" in types)


def _nullable_target(schema: Dict[str, Any], path: Sequence[PathElement]) -> Optional[Tuple[PathElement, ...]]:
    """The deepest prefix of `path` whose schema allows null, or None if no part of it does."""
    found: Optional[Tuple[PathElement, ...]] = None
    current = schema
    for depth, element in enumerate(path, start=1):
        if isinstance(element, int):
            current = current.get("items") or {}
        else:
            current = (current.get("properties") or {}).get(element)
            if current is None:
                break
        if _allows_null(current):
            found = tuple(path[:depth])
    return found


def _set_null(row: Dict[str, Any], path: Tuple[PathElement, ...]) -> None:
    holder: Any = row
    for element in path[:-1]:
        holder = holder[element]
    holder[path[-1]] = None


class RecordTransformer:
    """One stream's rows to records; counts and reports what did not fit."""

    def __init__(self, stream: str, schema: Dict[str, Any], mdata: Dict) -> None:
        self.stream = stream
        self.schema = schema
        self.mdata = mdata
        self.mismatches: Counter = Counter()
        self._transformer = WootricTransformer()
        self._reported_unknown: set = set()
        self._fast = compile_converter(schema, mdata)

    def transform(self, row: Dict[str, Any]) -> Dict[str, Any]:
        if self._fast is not None:
            try:
                return self._fast(row)
            except _NotFastPathable:
                pass
        transformer = self._transformer
        transformer.errors = []
        try:
            record = transformer.transform(row, self.schema, self.mdata)
        except SchemaMismatch:
            record = self._salvage(row, transformer.errors)
        if len(transformer.removed) != len(self._reported_unknown):
            self._report_unknown(transformer.removed)
        return record

    def _salvage(self, row: Dict[str, Any], errors: List[Any]) -> Dict[str, Any]:
        leaves = _failed_leaves(errors)
        record_id = row.get("id")
        patched = copy.deepcopy(row)
        for path in dict.fromkeys(leaves):
            target = _nullable_target(self.schema, path)
            name = field_name(path)
            if target is None:
                raise ApiError(
                    f"{self.stream}: record id {record_id!r} has a value of the wrong type in field '{name}', "
                    "which cannot be null; the tap cannot emit it"
                )
            _set_null(patched, target)
            self._report_mismatch(name, record_id)
        self._transformer.errors = []
        try:
            return self._transformer.transform(patched, self.schema, self.mdata)
        except SchemaMismatch:
            raise ApiError(f"{self.stream}: record id {record_id!r} does not fit the schema") from None

    def _report_mismatch(self, name: str, record_id: Any) -> None:
        self.mismatches[name] += 1
        count = self.mismatches[name]
        if count <= WARNINGS_PER_FIELD:
            LOGGER.warning(
                "%s: record id %s: field '%s' has a value that does not fit the schema; emitted as null%s",
                self.stream,
                record_id,
                name,
                " (further warnings about this field are only counted)" if count == WARNINGS_PER_FIELD else "",
            )

    def _report_unknown(self, removed: set) -> None:
        for path in sorted(removed - self._reported_unknown):
            LOGGER.warning(
                "%s: field '%s' is not in the catalog's schema and is dropped (rerun discovery to pick up "
                "fields added to the tap)",
                self.stream,
                path,
            )
        self._reported_unknown |= removed

    def summary(self) -> Optional[str]:
        if not self.mismatches:
            return None
        fields = ", ".join(f"{name} ({count})" for name, count in self.mismatches.most_common())
        return f"{sum(self.mismatches.values())} values did not fit the schema and were emitted as null: {fields}"
