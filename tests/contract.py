"""OpenAPI contract checks for both vendor APIs, against the vendors' files in ../shared/specs/.

Used by tests/test_contract_*.py: `validate_exchange` checks one httpx request/response pair and
`ValidatingTransport` checks (and records) every exchange a client has with a simulator. Specs are
read once per process and never copied. Where a file is broken for a validator, or older than
the live docs (../shared/api/), one named patch below adjusts only that spot and says why.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from jsonschema.exceptions import ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_schema_validator import OAS31Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPECS_ENV = "RECONCILER_SPECS_DIR"
# Cursor of a `Link: rel="next"` URL (docs: pagination guide); the spec declares no parameter.
_PAGINATION_KEYS = {"next"}
_MAX_ERRORS = 5
_FILTER_KEY = re.compile(r"(\w+)\[(\w+)\](?:\[\d*\])?")
SKIP_MESSAGE = "../shared/specs not found: contract tests need the vendors' OpenAPI files"


def find_specs_dir() -> Path | None:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
    folder = Path(os.environ.get(SPECS_ENV) or default)
    return folder if folder.is_dir() else None


# Read at import: test fixtures may clear RECONCILER_* from the environment later.
SPECS_DIR = find_specs_dir()


def require_specs() -> Path:
    """The specs folder; skips the calling test module when it is absent."""
    if SPECS_DIR is None:
        pytest.skip(SKIP_MESSAGE, allow_module_level=True)
    return SPECS_DIR


@dataclass(frozen=True)
class Spec:
    name: str
    server_url: str
    """The spec's production server; exchanges are rewritten onto it before validation."""
    openapi: OpenAPI
    document: dict[str, Any]
    """The patched spec as plain data (parameter lists for the query checks)."""

    def operation(self, request: httpx.Request) -> str:
        """ "METHOD /path/{template}" of the operation `request` hits; AssertionError if none."""
        found = self._find(request)
        if found is None:
            raise AssertionError(f"{self.name}: no operation in the spec for {_label(request)}")
        return f"{request.method} {found.path.parts[-1]}"

    def documents(self, request: httpx.Request, status: int) -> bool:
        """Whether the spec lists `status` (or a default) for the operation `request` hits."""
        found = self._find(request)
        responses = found.operation / "responses" if found is not None else {}
        return str(status) in responses or "default" in responses

    def parameters(self, request: httpx.Request) -> list[dict[str, Any]]:
        """The query/header/path parameters the spec declares for `request`'s operation."""
        found = self._find(request)
        if found is None:
            return []
        item = self.document["paths"][found.path.parts[-1]]
        return [*item.get("parameters", []), *item[request.method.lower()].get("parameters", [])]

    def _find(self, request: httpx.Request) -> Any:
        url = self.server_url + _path_below_server(self, request)
        try:
            return APICallPathFinder(self.openapi.spec).find(request.method.lower(), url)
        except Exception:  # PathNotFound, OperationNotFound, ServerNotFound
            return None


def _patch_learning(spec: dict[str, Any]) -> None:
    _visit(spec, _nullable_to_type_list)
    for item in spec["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                # `mail[eq]=` style filters: the schema has properties but no "type", and
                # openapi-core only decodes deepObject parameters typed "object".
                if param.get("style") == "deepObject":
                    param["schema"].setdefault("type", "object")
    # The scheme is oauth2 with no flows, which openapi-core cannot check; its description
    # says "Authorization: Bearer <token>", so check exactly that.
    spec["components"]["securitySchemes"]["oauth2"] = {"type": "http", "scheme": "bearer"}
    # Docs (api/360learning.md §1.1): the live example sends expires_in as a string "3600",
    # the spec types it as a number. The docs are newer: accept both.
    token = spec["components"]["schemas"]["GenerateTokenResponse"]["properties"]["expires_in"]
    token["type"] = ["number", "string"]
    # Custom fields (api/360learning.md §4): a value is a "string type" or a "date type"
    # string, and authorized values a list of either; every date is also a string, so `oneOf`
    # fails on every value (and on []). The docs say which applies by the field's type.
    schemas = spec["components"]["schemas"]
    value = schemas["CustomFieldValueDTO"]["properties"]["value"]
    value["anyOf"] = value.pop("oneOf")
    authorized = schemas["ReplaceAuthorizedValuesDTO"]["properties"]["authorizedValues"]
    authorized["anyOf"] = authorized.pop("oneOf")
    path = spec["paths"]["/api/v2/custom-fields/{customFieldId}/authorized-values"]
    for method in ("get", "put"):
        listed = path[method]["responses"]["200"]["content"]["application/json"]["schema"]
        listed["anyOf"] = listed.pop("oneOf")


def _nullable_to_type_list(node: dict[str, Any]) -> None:
    # This 3.1 file uses the 3.0 keyword `nullable`, which JSON Schema 2020-12 ignores; the docs
    # (§2.6) and the spec's own text say null clears a PATCHed field.
    if node.pop("nullable", False) is True and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]


def _patch_hibob(spec: dict[str, Any]) -> None:
    for item in spec["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                # The merge left `content: {}` where a page documents no body; openapi-core
                # then demands one.
                if response.get("content") == {}:
                    del response["content"]
    for path in ("/people/search", "/people/{identifier}"):
        responses = spec["paths"][path]["post"]["responses"]
        wrapper = responses["200"]["content"]["application/json"]["schema"]
        items = wrapper["properties"]["employees"]["items"]
        # The "machine format" and "human readable" employee shapes are open objects with no
        # required keys, so most employees match both and `oneOf` can never pass.
        items["anyOf"] = items.pop("oneOf")
        # Docs (api/hibob.md §4.1): custom fields are `work.custom.field_<n>`, so the nested
        # form holds an object of them under work.custom; the file types it an array of strings.
        for shape in items["anyOf"]:
            work = shape.get("properties", {}).get("work", {}).get("anyOf", [{}])[0]
            custom = work.get("properties", {}).get("custom")
            if custom is not None:
                work["properties"]["custom"] = {"anyOf": [custom, {"type": "object"}]}
        # Docs (api/hibob.md §2.2): nested category objects carry nulls for empty fields.
        for shape in items["anyOf"]:
            _visit(shape, _nullable_properties)
            if shape["title"].startswith("Human readable"):
                # Docs (§2.2): human-readable dates follow the caller's display format
                # ("08/09/2019"), not the `format: date` this shape declares.
                _visit(shape, _drop_format)
    single = spec["paths"]["/people/{identifier}"]["post"]["responses"]["200"]["content"]
    # Docs (§3.1): this read "returns one employee object"; the file wraps it in
    # {"employees": [...]}. Accept either, but check the employee in both.
    wrapper = single["application/json"]["schema"]
    employee = wrapper["properties"]["employees"]["items"]
    single["application/json"]["schema"] = {
        "anyOf": [{**wrapper, "required": ["employees"]}, employee]
    }
    for path, method in (
        ("/people/search", "post"),
        ("/people/{identifier}", "post"),
        ("/company/named-lists/{listName}", "get"),
    ):
        responses = spec["paths"][path][method]["responses"]
        # Docs (api/hibob.md §6.2, §6.4): every endpoint answers 401 (often with an empty
        # body) on bad credentials and 429 past its rate limit; the file omits them here.
        responses.setdefault("401", {"description": "Bad credentials (docs)."})
        responses.setdefault("429", {"description": "Rate limited (docs)."})
    named_list = spec["paths"]["/company/named-lists/{listName}"]["get"]["responses"]["200"]
    # Typed integer, but the same response's description and the docs (§3.3) say an item id
    # "may be textual or numeric depending on the list".
    _visit(named_list["content"]["application/json"]["schema"], _widen_id)


def _visit(node: Any, change: Callable[[dict[str, Any]], None]) -> None:
    """Call `change` on every mapping inside `node`, outermost first."""
    if isinstance(node, dict):
        change(node)
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in list(children):
        _visit(child, change)


def _nullable_properties(node: dict[str, Any]) -> None:
    for schema in node.get("properties", {}).values():
        if isinstance(schema, dict) and "type" in schema:
            schema["nullable"] = True


def _drop_format(node: dict[str, Any]) -> None:
    if isinstance(node.get("format"), str):
        del node["format"]


def _widen_id(node: dict[str, Any]) -> None:
    ident = node.get("properties", {}).get("id")
    if isinstance(ident, dict) and ident.get("type") == "integer":
        # OpenAPI 3.0 has no type lists.
        node["properties"]["id"] = {"anyOf": [{"type": "integer"}, {"type": "string"}]}


_SPECS: dict[str, tuple[str, str, Callable[[dict[str, Any]], None]]] = {
    "learning": (
        "360learning-core-api.openapi.json",
        "https://app.360learning.com",
        _patch_learning,
    ),
    "hibob": ("hibob-public-api.generated.yml", "https://api.hibob.com/v1", _patch_hibob),
}


@functools.cache
def load_spec(name: str) -> Spec:
    """The named spec ("learning" or "hibob"), read and patched once per process."""
    file_name, server_url, patch = _SPECS[name]
    path = require_specs() / file_name
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_YamlLoader)
    patch(data)
    # Validating the 650 KB vendor document itself takes ~8 s and is not what we test.
    openapi = OpenAPI.from_dict(data, config=Config(spec_validator_cls=None))
    return Spec(name, server_url, openapi, data)


_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _OpenAPIRequest:
    """An httpx.Request seen by openapi-core, moved onto the spec's server."""

    def __init__(self, spec: Spec, request: httpx.Request, hidden: set[str]) -> None:
        server = urlsplit(spec.server_url)
        self.host_url = f"{server.scheme}://{server.netloc}"
        self.path = server.path.rstrip("/") + _path_below_server(spec, request)
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(
                [
                    (key, value)
                    for key, value in request.url.params.multi_items()
                    if _base_name(key) not in hidden
                ]
            ),
            header=Headers(request.headers.multi_items()),
            cookie=ImmutableMultiDict(),
        )


class _OpenAPIResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.data = response.content
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(response.headers.multi_items())


def _path_below_server(spec: Spec, request: httpx.Request) -> str:
    """The request path after the base path (e.g. /v1), which both simulators and spec share."""
    prefix = urlsplit(spec.server_url).path.rstrip("/")
    path = request.url.path
    if prefix:
        marker = path.find(prefix + "/")
        if marker < 0:
            raise AssertionError(f"{_label(request)}: path lies outside the spec's {prefix}")
        path = path[marker + len(prefix) :]
    return path


def validate_request(spec: Spec, request: httpx.Request) -> None:
    """AssertionError naming every way `request` breaks the spec."""
    declared = spec.parameters(request)
    deep = {p["name"]: p for p in declared if p.get("style") == "deepObject"}
    problems = _query_problems(request, declared, deep)
    try:
        spec.openapi.validate_request(_OpenAPIRequest(spec, request, set(deep)))
    except AssertionError:
        raise
    except Exception as exc:
        problems.append(_describe(exc))
    if problems:
        raise AssertionError(f"{spec.name} request {_label(request)}: " + "\n  ".join(problems))


def _query_problems(
    request: httpx.Request, declared: list[dict[str, Any]], deep: dict[str, dict[str, Any]]
) -> list[str]:
    """Undeclared query keys, and deepObject filters openapi-core cannot decode.

    360Learning's filters repeat `mail[in]=a&mail[in]=b` (an index is optional) for arrays
    (docs: filtering guide); openapi-core 0.23 keeps only the first value and then fails, so
    those parameters are rebuilt here and checked against their schema with jsonschema.
    """
    known = {p["name"] for p in declared if p["in"] == "query"} | _PAGINATION_KEYS
    problems, filters = [], {}
    for key, value in request.url.params.multi_items():
        name, op = _base_name(key), _FILTER_KEY.fullmatch(key)
        if name not in known:
            problems.append(f"query parameter {key!r} is not in the spec")
        elif name in deep:
            if op is None:
                problems.append(f"query parameter {key!r} must be written {name}[operator]")
            else:
                filters.setdefault(name, []).append((op[2], value))
    for name, pairs in filters.items():
        schema = deep[name]["schema"]
        unknown = sorted({op for op, _ in pairs} - set(schema["properties"]))
        if unknown:
            problems.append(f"filter {name}: operator(s) {', '.join(unknown)} not in the spec")
        value = _filter_object(pairs, schema)
        problems += [
            f"filter {name}: {_describe_schema_error(e)}"
            for e in OAS31Validator(schema).iter_errors(value)
        ]
    return problems


def _filter_object(pairs: list[tuple[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
    grouped: dict[str, Any] = {}
    for op, value in pairs:
        grouped.setdefault(op, []).append(value)
    is_array = {op: sub.get("type") == "array" for op, sub in schema["properties"].items()}
    # A scalar operator given twice stays a list, so the schema reports it.
    return {
        op: values if is_array.get(op) or len(values) > 1 else values[0]
        for op, values in grouped.items()
    }


def _base_name(key: str) -> str:
    return key.split("[", 1)[0]


def validate_response(spec: Spec, request: httpx.Request, response: httpx.Response) -> None:
    """AssertionError naming every way `response` (to `request`) breaks the spec."""
    if response.status_code >= 500 and not spec.documents(request, response.status_code):
        return  # Neither vendor specifies 5xx bodies (360learning.md §5.2).
    try:
        spec.openapi.validate_response(
            _OpenAPIRequest(spec, request, set()), _OpenAPIResponse(response)
        )
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"{spec.name} response {_label(request)} -> {response.status_code}: {_describe(exc)}"
        ) from None


def validate_exchange(spec: Spec, request: httpx.Request, response: httpx.Response) -> None:
    """Validate both halves of one exchange; AssertionError with a readable message."""
    validate_request(spec, request)
    validate_response(spec, request, response)


class ValidatingTransport(httpx.BaseTransport):
    """Hands each request to `inner` (a simulator's `handle` or a transport), validating both.

    Every exchange is recorded in `exchanges`; every violation in `problems` and raised as an
    AssertionError, which reconciler.clients.http does not catch (it only maps httpx errors).
    """

    def __init__(
        self,
        inner: Callable[[httpx.Request], httpx.Response] | httpx.BaseTransport,
        spec: Spec,
        *,
        check_requests: bool = True,
    ) -> None:
        self._inner = inner if isinstance(inner, httpx.BaseTransport) else None
        self._handle = inner.handle_request if isinstance(inner, httpx.BaseTransport) else inner
        self.spec = spec
        self.check_requests = check_requests
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []
        self.problems: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        if self.check_requests:
            self._check(validate_request, request)
        response = self._handle(request)
        response.read()
        self.exchanges.append((request, response))
        self._check(validate_response, request, response)
        return response

    def close(self) -> None:
        """Close the wrapped transport's connections (the client's close() ends here)."""
        if self._inner is not None:
            self._inner.close()

    def _check(self, validate: Callable[..., None], *exchange: Any) -> None:
        try:
            validate(self.spec, *exchange)
        except AssertionError as exc:
            self.problems.append(str(exc))
            raise

    def operations(self) -> set[str]:
        """Every spec operation ("POST /api/v2/users") that went through this transport."""
        return {self.spec.operation(request) for request, _ in self.exchanges}

    def outcomes(self) -> set[tuple[str, int]]:
        """(operation, status) for every recorded exchange."""
        return {(self.spec.operation(rq), rs.status_code) for rq, rs in self.exchanges}


def _label(request: httpx.Request) -> str:
    query = f"?{request.url.query.decode()}" if request.url.query else ""
    return f"{request.method} {request.url.path}{query}"


def _describe(exc: BaseException) -> str:
    lines: list[str] = []
    node: BaseException | None = exc
    while node is not None:
        errors = getattr(node, "schema_errors", None)
        if errors:
            lines.extend(_describe_schema_error(error) for error in errors[:_MAX_ERRORS])
            if len(errors) > _MAX_ERRORS:
                lines.append(f"... and {len(errors) - _MAX_ERRORS} more")
            break
        line = _clip(str(node) or type(node).__name__)
        if not any(line in seen for seen in lines):
            lines.append(line)
        node = node.__cause__
    return "\n  ".join(lines)


def _describe_schema_error(error: ValidationError) -> str:
    text = f"at {_where(error)}: "
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return text + _clip(error.message)
    # Explain the alternative that came closest: the one with the fewest errors.
    closest = _closest_branch(error)
    return (
        text
        + f"matches no {error.validator} alternative; the closest fails: "
        + "; ".join(_describe_schema_error(sub) for sub in closest[:3])
    )


def _closest_branch(error: ValidationError) -> list[ValidationError]:
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    return min(branches.values(), key=lambda errors: sum(map(_leaf_count, errors)))


def _leaf_count(error: ValidationError) -> int:
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return 1
    return sum(map(_leaf_count, _closest_branch(error)))


def _where(error: ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_path) or "(body)"


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
