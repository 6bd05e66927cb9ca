"""HibobClient: read employees (and named lists) from Hibob's People API over HTTP Basic.

Called by the reconcile pass and the webhook flow; read-only. Turns Hibob's dual response
layout into `Employee` records, keeping "not returned" (unknown) apart from "returned null".
It must not decide anything about provisioning.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from reconciler.clients.http import ApiSession, ApiStats, AuthHints
from reconciler.clients.pacer import RateLimiter
from reconciler.clients.transport import build_http_client
from reconciler.core.models import Employee
from reconciler.errors import ApiRejected, ApiUnavailable, ConfigError
from reconciler.redact import remember_secrets
from reconciler.settings_sections import HibobSettings

SERVICE = "Hibob"
MAX_FIELDS = 400
MAX_ANSWER_BYTES = 16 * 2**20
"""Any answer but the search: one employee, the field metadata or a named list (~1 MB)."""
BYTES_PER_FIELD = 300
"""Search answer budget per employee and requested field: ~3x the ~100 bytes one field takes
in both layouts (nested and humanReadable) in the simulator and the documented examples."""
FIRST_SYNC_POPULATION = 100_000
"""The population a search answer may hold when none is known yet (the largest benchmarked)."""
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_NUMBER_TEXT = re.compile(r"[\d\s.,'\u00a0\u202f-]+")
_AUTH_HINTS = AuthHints(
    unauthorized="check hibob.service_user_id and hibob.service_user_token (token refreshed?)",
    forbidden="the service user's permission group lacks access to these people or categories",
)


class HibobClient:
    def __init__(
        self,
        settings: HibobSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        user_id, token = settings.service_user_id, settings.service_user_token.get_secret_value()
        # An upstream that echoes the request may show the Authorization header's credentials.
        remember_secrets(user_id, token, base64.b64encode(f"{user_id}:{token}".encode()).decode())
        auth = httpx.BasicAuth(user_id, token)
        client = build_http_client(
            settings.base_url,
            timeout_seconds=settings.timeout_seconds,
            transport=transport,
            auth=auth,
            headers={"accept": "application/json"},
        )
        self._session = ApiSession(
            client,
            SERVICE,
            auth_hints=_AUTH_HINTS,
            sleep=sleep,
            wall_clock=wall_clock,
            deadline_setting="hibob.timeout_seconds",
            max_response_bytes=MAX_ANSWER_BYTES,
        )
        self._population: int | None = None
        # The search endpoint allows 50 calls/min: burst + rate stays under that per minute.
        self._search_limiter = RateLimiter(
            settings.search_per_minute / 60, burst=3, clock=clock, sleep=sleep
        )
        # Limits for single reads and named lists are not published (lists: 50/min).
        self._read_limiter = RateLimiter(
            settings.reads_per_minute / 60, burst=5, clock=clock, sleep=sleep
        )

    @property
    def stats(self) -> ApiStats:
        return self._session.stats

    def close(self) -> None:
        self._session.client.close()

    def expect_population(self, population: int | None) -> None:
        """How many employees the last complete read held (the store's count), which sizes the
        cap on the search answer; None or 0 when unknown (a first sync)."""
        self._population = population or None

    def search_employees(
        self, fields: Sequence[str], *, emails: Sequence[str] = ()
    ) -> list[Employee]:
        """Every employee the service user may see, active or not, in one search call; with
        `emails`, only those holding one of them (the search's one `root.email` filter).

        A record without `root.id` comes back as an Employee whose `hibob_id` is "".
        """
        wanted = _with_root_id(fields)
        # Never send `filters: []`: Hibob answers 400. No filter = everyone.
        body: dict[str, Any] = {"fields": wanted, "showInactive": True, "humanReadable": "APPEND"}
        if emails:
            body["filters"] = [
                {"fieldPath": "root.email", "operator": "equals", "values": list(emails)}
            ]
        response = self._session.send(
            lambda: self._session.client.build_request("POST", "/people/search", json=body),
            limiter=self._search_limiter,
            validate_json=False,
            max_bytes=search_answer_cap(self._population, len(wanted)),
        )
        content = response.content
        del response  # a large company's body is hundreds of MB: drop it once decoded
        layout = _SearchLayout(wanted)
        records = layout.decode(content)
        del content
        # Pop as we go so each record is freed once converted (peak memory ~ one copy).
        records.reverse()
        parsed = []
        while records:
            record = records.pop()
            try:
                parsed.append(layout.to_employee(record, _fingerprint(record)))
            except ApiRejected as exc:
                if exc.code != "missingEmployeeId":
                    raise
                # One record without an id must not stop everyone else: the pass reports it.
                parsed.append(Employee(hibob_id=""))
        self._population = max(len(parsed), self._population or 0)
        return parsed

    def get_employee(self, identifier: str, fields: Sequence[str]) -> Employee | None:
        """One employee by backend id or email; None when Hibob does not know it (404)."""
        wanted = _with_root_id(fields)
        body = {"fields": wanted, "humanReadable": "APPEND"}
        path = "/people/" + quote(identifier, safe="@")
        response = self._session.send(
            lambda: self._session.client.build_request("POST", path, json=body),
            limiter=self._read_limiter,
            allow_404=True,
        )
        if response.status_code == 404:
            return None
        payload = response.json()
        # The docs return the employee object itself; the spec wraps it in {"employees": [...]}.
        if isinstance(payload, dict) and isinstance(payload.get("employees"), list):
            items = payload["employees"]
            if not items:
                return None
            payload = items[0]
        if not isinstance(payload, dict):
            raise ApiRejected(SERVICE, 200, "unexpectedResponse", "employee is not an object")
        return parse_employee(payload, wanted)

    def list_fields(self) -> list[dict[str, Any]]:
        """Field metadata (id, categoryId, categoryDisplayName, typeData.listId, ...) of every
        employee field; Hibob requires no permission for it."""
        response = self._session.send(
            lambda: self._session.client.build_request("GET", "/company/people/fields"),
            limiter=self._read_limiter,
        )
        payload = response.json()
        if not isinstance(payload, list):
            raise ApiRejected(SERVICE, 200, "unexpectedResponse", "field metadata is not a list")
        return [item for item in payload if isinstance(item, dict) and "id" in item]

    def get_named_list(self, name: str) -> dict[str, str]:
        """Item id -> label for one named list (hierarchies flattened); names are case-sensitive."""
        path = "/company/named-lists/" + quote(name, safe="")
        response = self._session.send(
            lambda: self._session.client.build_request("GET", path),
            limiter=self._read_limiter,
        )
        payload = response.json()
        labels: dict[str, str] = {}
        _flatten_items(payload.get("items", []) if isinstance(payload, dict) else [], labels)
        return labels


def search_answer_cap(population: int | None, fields: int) -> int:
    """Pure: the most bytes a search answer may hold: BYTES_PER_FIELD for each field of each
    employee, for 4x the known population (at least 10,000 more: a merger), or
    FIRST_SYNC_POPULATION when none is known. A 60-person company's cap is ~45 MB at 15
    fields, so a 200 MB answer is cut early; 100,000 people get ~1.8 GB."""
    expected = FIRST_SYNC_POPULATION if not population else max(4 * population, population + 10_000)
    return expected * max(1, fields) * BYTES_PER_FIELD


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


def _with_root_id(fields: Sequence[str]) -> list[str]:
    wanted = list(dict.fromkeys(["root.id", *fields]))
    if len(wanted) > MAX_FIELDS:
        raise ConfigError(f"hibob: {len(wanted)} field ids requested, Hibob accepts {MAX_FIELDS}")
    return wanted


def _flatten_items(items: Any, labels: dict[str, str]) -> None:
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or "id" not in item:
            continue
        label = item.get("value") or item.get("name")
        if isinstance(label, str):
            labels[str(item["id"])] = label
        _flatten_items(item.get("children"), labels)
