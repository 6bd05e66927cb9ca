"""HTTP plumbing shared by the 360Learning simulator's modules: the documented error answer,
JSON bodies, `field[op]` filters and `Link: rel="next"` pages. No state of its own."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar
from urllib.parse import unquote_plus

import httpx

from reconciler.sandbox.documents import Json

_FILTER_KEY = re.compile(r"(\w+)\[(eq|ne|in|nin)\](?:\[(\d+)\])?")
_ALL_OPS = ("eq", "ne", "in", "nin")
Filters: TypeAlias = dict[str, dict[str, Any]]
"""field -> operator -> argument: one string for eq and ne, a list of strings for in and nin."""
Row = TypeVar("Row")


class _Refusal(Exception):
    """A documented error answer; `flat` selects the OAuth-style `{"error": "<code>"}` body."""

    def __init__(self, status: int, code: str, message: str = "", flat: bool = False) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.flat = status, code, message or code, flat

    def response(self) -> httpx.Response:
        error: str | dict[str, str] = (
            self.code if self.flat else {"code": self.code, "message": self.message}
        )
        return httpx.Response(self.status, json={"error": error})


def _invalid(message: str) -> _Refusal:
    # Sim decision: the spec documents no body for schema/DTO violations; the Bulk API's
    # `invalidInput` code in the usual nested shape stands in for them.
    return _Refusal(400, "invalidInput", message)


def _json_body(request: httpx.Request, error: _Refusal | None = None) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> Json:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("duplicate property")
        return dict(pairs)

    try:
        return json.loads(request.content or b"", object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise error or _invalid("The body must be one JSON document") from exc


def _query_pairs(request: httpx.Request) -> list[tuple[str, str]]:
    # Brackets arrive raw (`mail[eq]`) or percent-encoded (`mail%5Beq%5D`, what httpx and
    # requests send from `params=`); both decode to the same key. `+` means a space, as in qs.
    raw = request.url.query.decode("ascii", "replace")
    pairs = []
    for part in filter(None, raw.split("&")):
        key, _, value = part.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def _list_query(
    request: httpx.Request, allowed: Mapping[str, tuple[str, ...]]
) -> tuple[Filters, str | None]:
    """The filters and cursor position of a list call; a `next` token overrides the query."""
    pairs = _query_pairs(request)
    cursor = [value for key, value in pairs if key == "next"]
    if cursor:
        try:
            state = json.loads(base64.urlsafe_b64decode(cursor[0] + "=" * (-len(cursor[0]) % 4)))
            return state["f"], state["a"]
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise _invalid("The next token is invalid") from exc
    filters: Filters = {}
    for key, value in pairs:
        match = _FILTER_KEY.fullmatch(key)
        if not match or match[2] not in allowed.get(match[1], ()):
            raise _invalid(f"Unsupported query parameter {key!r}")
        field, op, index = match.groups()
        if op in ("in", "nin"):
            filters.setdefault(field, {}).setdefault(op, []).append(value)
        elif index is not None or op in filters.get(field, {}):
            raise _invalid(f"{field}[{op}] takes a single value")
        else:
            filters.setdefault(field, {})[op] = value
    return filters, None


def _passes(value: Any, ops: dict[str, Any], fold: bool) -> bool:
    def norm(item: Any) -> Any:
        return item.lower() if fold and isinstance(item, str) else item

    value = norm(value)
    for op, argument in ops.items():
        if op == "eq" and value != norm(argument) or op == "ne" and value == norm(argument):
            return False
        if op == "in" and value not in {norm(a) for a in argument}:
            return False
        if op == "nin" and value in {norm(a) for a in argument}:
            return False
    return True


def _paged(
    request: httpx.Request,
    rows: list[Row],
    key: Callable[[Row], str],
    size: int,
    filters: Filters,
    after: str | None,
    render: Callable[[Row], object],
) -> httpx.Response:
    rows = sorted((row for row in rows if after is None or key(row) > after), key=key)
    page, headers = rows[:size], dict[str, str]()
    if len(rows) > size:
        state = json.dumps({"f": filters, "a": key(page[-1])}).encode()
        token = base64.urlsafe_b64encode(state).decode().rstrip("=")
        url = request.url
        next_url = f"{url.scheme}://{url.netloc.decode()}{url.path}?next={token}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    return httpx.Response(200, headers=headers, json=[render(row) for row in page])
