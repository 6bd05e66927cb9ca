"""Hibob's answers as `Employee` records: the search answer decoded straight into typed records,
one employee's answer parsed, the labels kept.

Hibob returns each field in two layouts (nested, and a slash key such as `/work/title`) plus its
human-readable form; a field not returned stays unknown, apart from one returned null. Used by
`HibobClient` (in `hibob`); it performs no call and decides nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import Any

import msgspec

from reconciler.core.models import Employee
from reconciler.errors import ApiRejected, ApiUnavailable

SERVICE = "Hibob"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_NUMBER_TEXT = re.compile(r"[\d\s.,'\u00a0\u202f-]+")


class _SearchLayout:
    """Decodes a search answer straight into small typed records holding only `fields`.

    msgspec skips every key it was not asked for, so the full JSON tree is never built. A
    record of an unexpected shape sends the whole answer through the generic dict parser.
    """

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = fields
        self.paths = _field_paths(fields)
        tree = _field_tree(nested for _, nested, _ in self.paths)
        slash = [(f"s{i}", _Slash | None, msgspec.UNSET) for i in range(len(self.paths))]
        top = _struct_fields(tree)
        record: Any = msgspec.defstruct(  # built at run time: typed Any for mypy
            "HibobRecord",
            [*top[0], *slash, ("human", _tree_struct(tree) | None, msgspec.UNSET)],
            rename={
                **top[1],
                "human": "humanReadable",
                **{f"s{i}": p[2] for i, p in enumerate(self.paths)},
            },
            gc=False,
        )
        self._answer = msgspec.defstruct(
            "SearchAnswer", [("employees", list[record] | None, msgspec.UNSET)], gc=False
        )
        self._accessors = [
            (field_id, *_accessor(tree, nested), attrgetter(f"s{i}"))
            for i, (field_id, nested, _) in enumerate(self.paths)
        ]
        self._is_generic = False

    def decode(self, content: bytes) -> list[Any]:
        """The employee records of a search answer (typed, or dicts after a shape surprise)."""
        try:
            answer: Any = msgspec.json.decode(content, type=self._answer)
            employees = answer.employees
        except msgspec.ValidationError:
            self._is_generic = True
            employees = _decode_generic(content)
        except msgspec.DecodeError:
            raise ApiUnavailable(
                SERVICE, 200, "invalidJson", "response from /people/search is not valid JSON"
            ) from None
        if not isinstance(employees, list):
            raise ApiRejected(SERVICE, 200, "unexpectedResponse", "search had no employees list")
        return employees

    def to_employee(self, record: Any, fingerprint: str = "") -> Employee:
        if self._is_generic:
            if not isinstance(record, dict):
                raise ApiRejected(
                    SERVICE,
                    200,
                    "unexpectedResponse",
                    "search returned an employee that is not an object",
                )
            return replace(parse_employee(record, self.fields, self.paths), fingerprint=fingerprint)
        values: dict[str, Any] = {}
        labels: dict[str, str] = {}
        unlabelled: list[str] = []
        human = record.human
        for field_id, get, rest, get_slash in self._accessors:
            value = _follow(get, rest, record)
            if value is _UNSET:
                slash = get_slash(record)
                if slash is None or slash is _UNSET or slash.value is _UNSET:
                    continue  # not permitted or not a valid field id: unknown, not null
                value = slash.value
            if isinstance(value, dict) and "id" in value:
                value = str(value["id"])  # work.reportsTo and other employee objects
            values[field_id] = value
            if _may_have_label(value):
                shown = _follow(get, rest, human)
                if shown is _UNSET or shown is None:
                    unlabelled.append(field_id)
                elif (label := _kept_label(value, shown)) is not None:
                    labels[field_id] = label
        return _employee(values, labels, unlabelled, fingerprint)


def _fingerprint(record: Any) -> str:
    """A hash of one search record, typed or generic, as decoded (~1 µs)."""
    return hashlib.blake2b(msgspec.json.encode(record), digest_size=8).hexdigest()


class _Slash(msgspec.Struct, gc=False):
    value: Any = msgspec.UNSET


_UNSET = msgspec.UNSET
_LEAF, _RAW = object(), object()  # a field's value; a node kept as plain JSON


def _field_tree(paths: Iterable[Sequence[str]]) -> dict[str, Any]:
    """Nested keys to decode: a dict per JSON object, _LEAF per field, _RAW for a node that
    is both a field and the parent of another (decoded as plain JSON)."""
    tree: dict[str, Any] = {}
    for nested in paths:
        node = tree
        for part in nested[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                node[part] = _RAW
                break
            node = child
        else:
            leaf = nested[-1]
            node[leaf] = _LEAF if node.get(leaf, _LEAF) is _LEAF else _RAW
    return tree


def _struct_fields(tree: dict[str, Any]) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    fields, rename = [], {}
    for i, (key, child) in enumerate(tree.items()):
        kind = Any if child is _LEAF or child is _RAW else _tree_struct(child) | None
        fields.append((f"n{i}", kind, msgspec.UNSET))
        rename[f"n{i}"] = key
    return fields, rename


def _tree_struct(tree: dict[str, Any]) -> type:
    fields, rename = _struct_fields(tree)
    return msgspec.defstruct("HibobNode", fields, rename=rename, gc=False)


def _accessor(tree: Any, nested: Sequence[str]) -> tuple[Callable[[Any], Any], tuple[str, ...]]:
    """A getter of the typed part of a field's path, and the plain JSON keys below it."""
    attributes: list[str] = []
    node = tree
    for depth, part in enumerate(nested):
        if not isinstance(node, dict):
            return attrgetter(".".join(attributes)), tuple(nested[depth:])
        attributes.append(f"n{list(node).index(part)}")
        node = node[part]
    return attrgetter(".".join(attributes)), ()


def _follow(get: Callable[[Any], Any], rest: Sequence[str], node: Any) -> Any:
    """The value at a field's path in a typed record, or UNSET when it is not there."""
    try:
        value = get(node)  # a missing or null object on the way has no attribute
    except AttributeError:
        return _UNSET
    if rest and value is not _UNSET:
        found, value = _walk(value, rest)
        return value if found else _UNSET
    return value


def _decode_generic(content: bytes) -> Any:
    payload = msgspec.json.decode(content)
    return payload.get("employees") if isinstance(payload, dict) else None


def parse_employee(
    raw: Mapping[str, Any], fields: Sequence[str], paths: Sequence[_FieldPath] | None = None
) -> Employee:
    """An Employee holding each requested field Hibob returned (nulls included), nothing else."""
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    unlabelled: list[str] = []
    human = raw.get("humanReadable")
    for field_id, nested, slash in paths or _field_paths(fields):
        found, value = _lookup(raw, nested, slash)
        if not found:
            continue  # not permitted or not a valid field id: unknown, not null
        if isinstance(value, dict) and "id" in value:
            value = str(value["id"])  # work.reportsTo and other employee objects
        values[field_id] = value
        if not _may_have_label(value):
            continue
        is_shown, shown = _walk(human, nested)
        if not is_shown or shown is None:
            unlabelled.append(field_id)
        elif (label := _kept_label(value, shown)) is not None:
            labels[field_id] = label
    return _employee(values, labels, unlabelled)


def _employee(
    values: dict[str, Any],
    labels: dict[str, str],
    unlabelled: Sequence[str] = (),
    fingerprint: str = "",
) -> Employee:
    hibob_id = values.get("root.id")
    if not isinstance(hibob_id, str | int) or isinstance(hibob_id, bool) or hibob_id == "":
        raise ApiRejected(
            SERVICE,
            200,
            "missingEmployeeId",
            "an employee came back without root.id; check the permission group's root category",
        )
    values["root.id"] = str(hibob_id)
    # root.id is never a list item; every other non-null value has a human-readable form.
    gaps = frozenset(f for f in unlabelled if f != "root.id")
    return Employee(
        hibob_id=str(hibob_id),
        values=values,
        labels=labels,
        unlabelled=gaps,
        fingerprint=fingerprint,
    )


_FieldPath = tuple[str, list[str], str]  # field id, path in the nested form, slash key


def _field_paths(fields: Sequence[str]) -> list[_FieldPath]:
    return [(f, _nested_path(f), "/" + f.replace(".", "/")) for f in fields]


def _lookup(raw: Mapping[str, Any], nested: Sequence[str], slash_key: str) -> tuple[bool, Any]:
    """(present, value): the nested form first (carries nulls), then the slash key."""
    found, value = _walk(raw, nested)
    if found:
        return True, value
    slash = raw.get(slash_key)
    if isinstance(slash, dict) and "value" in slash:
        return True, slash["value"]
    return False, None


def _may_have_label(value: Any) -> bool:
    # Human-readable dates follow the caller's locale and numbers/booleans are reformatted:
    # take labels only for list ids (numeric ones too, e.g. work.siteId), texts and employee
    # references.
    if type(value) is str:  # the common case first: this runs for every field of everyone
        return not (value[4:5] == "-" and _ISO_DATE.match(value))
    return not (value is None or isinstance(value, bool | float | dict))


def _kept_label(value: Any, label: Any) -> str | None:
    # A number whose human form is only the number re-printed has no label.
    if not isinstance(label, str) or (isinstance(value, int) and _NUMBER_TEXT.fullmatch(label)):
        return None
    return label


def _nested_path(field_id: str) -> list[str]:
    parts = field_id.split(".")
    # root.* fields sit un-prefixed at the top level of the nested form.
    return parts[1:] if parts[0] == "root" and len(parts) > 1 else parts


def _walk(node: Any, path: Sequence[str]) -> tuple[bool, Any]:
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node
