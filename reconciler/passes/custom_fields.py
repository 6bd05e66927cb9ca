"""Custom fields in a pass: resolve the configured fields (cached in the store), read the
values 360Learning holds where a full or targeted pass compares them, and write a user's
managed values with the replace-all PUT, keeping every value of a field not managed.

Called by reconcile (reads) and apply (writes). The decisions are the core's
(`core.custom_fields`); this module only reads, caches and sends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from reconciler.clients.learning import LearningClient
from reconciler.config import Settings
from reconciler.core.custom_fields import (
    CustomFieldDefinition,
    ResolvedCustomFields,
    custom_key,
    held_values,
    is_custom_key,
    merge_custom_values,
    resolve_custom_fields,
)
from reconciler.core.inputs import PlanInput
from reconciler.core.models import LearningUser
from reconciler.errors import ApiRejected
from reconciler.store.database import Store

log = logging.getLogger("reconciler.passes.custom_fields")
CACHE_KEY = "custom_field_definitions"
"""service_state: the platform's user custom fields (authorized values of the configured ones)."""
READ_WORKERS = 4  # held values are read in parallel, paced by the client's read limiter


def load_custom_fields(
    learning: LearningClient, store: Store, settings: Settings, *, refresh: bool, record: bool
) -> ResolvedCustomFields:
    """The configured custom fields, resolved. From the store's copy unless `refresh` (a full
    pass) or a configured field is missing from it; then read (1 + one call per field)."""
    if not settings.mapping.custom_fields:
        return ResolvedCustomFields()
    cached = cached_definitions(store)
    if not refresh and cached is not None:
        resolved = resolve_custom_fields(settings, cached)
        if not resolved.problems and all(
            d.custom_field_id in _with_authorized(store) for d in resolved.definitions
        ):
            return resolved
    definitions = [
        CustomFieldDefinition(str(f["_id"]), str(f.get("name", "")), str(f.get("type", "string")))
        for f in learning.list_custom_fields()
        if f.get("_id") and f.get("targetType", "users") == "users"
    ]
    wanted = {d.custom_field_id for d in resolve_custom_fields(settings, definitions).definitions}
    definitions = [
        replace(d, authorized_values=tuple(learning.list_authorized_values(d.custom_field_id)))
        if d.custom_field_id in wanted
        else d
        for d in definitions
    ]
    if record:
        store.save_service_state({CACHE_KEY: _dump(definitions, wanted)})
    return resolve_custom_fields(settings, definitions)


def cached_definitions(store: Store) -> list[CustomFieldDefinition] | None:
    raw = store.load_service_state().get(CACHE_KEY)
    if not raw:
        return None
    try:
        return [
            CustomFieldDefinition(d["id"], d["name"], d["type"], tuple(d.get("authorized") or ()))
            for d in json.loads(raw)
        ]
    except (ValueError, KeyError, TypeError):
        return None


def _with_authorized(store: Store) -> set[str]:
    raw = store.load_service_state().get(CACHE_KEY)
    try:
        return {d["id"] for d in json.loads(raw or "[]") if d.get("authorized") is not None}
    except (ValueError, KeyError, TypeError):
        return set()


def _dump(definitions: list[CustomFieldDefinition], read: set[str]) -> str:
    return json.dumps(
        [
            {
                "id": d.custom_field_id,
                "name": d.name,
                "type": d.type,
                "authorized": list(d.authorized_values) if d.custom_field_id in read else None,
            }
            for d in definitions
        ]
    )


def read_held_values(
    learning: LearningClient,
    data: PlanInput,
    resolved: ResolvedCustomFields,
    progress: Callable[[str, int, int | None], None] = lambda phase, done, total: None,
) -> PlanInput:
    """The read users of a full or targeted pass, with the managed custom-field values they
    hold, so the plan compares them (drift). One read per linked, live account whose employee
    Hibob holds as active and that has a managed field in its rules or its snapshot; every
    other account counts as holding what the snapshot says (no read, no write). Each read
    counts as "read" progress: in a full resync they are most of the time, and of its ETA."""
    if not resolved.rules or data.actual is None:
        return data
    keys = {custom_key(d) for d in resolved.definitions}
    stored: dict[str, Mapping[str, Any]] = {}
    to_read: list[str] = []
    for hibob_id, entry in data.snapshot.items():
        user = data.actual.get(entry.learning_user_id or "")
        if user is None or entry.state is None:
            continue
        stored[user.learning_user_id] = entry.state.attributes
        wanted = data.desired.get(hibob_id)
        if user.is_deleted or wanted is None or wanted.verdict != "active":
            continue
        if keys & (set(wanted.attributes) | set(entry.state.attributes)):
            to_read.append(user.learning_user_id)

    def read(user_id: str) -> list[dict[str, Any]] | None:
        try:
            return learning.list_custom_values(user_id)
        except ApiRejected as exc:  # gone since the listing: the snapshot stands in
            if exc.status != 404:
                raise
            return None

    answers: dict[str, list[dict[str, Any]] | None] = {}
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        for user_id, answer in zip(to_read, pool.map(read, to_read), strict=True):
            answers[user_id] = answer
            progress("read", len(answers), len(to_read))
    held = {user_id: values for user_id, values in answers.items() if values is not None}
    actual: dict[str, LearningUser] = {}
    for user_id, user in data.actual.items():
        if user_id in held:
            values = held_values(held[user_id])
            extra = {k: values.get(k) for k in keys}
        elif user_id in stored:
            extra = {k: v for k, v in stored[user_id].items() if k in keys}
        else:
            extra = {}
        actual[user_id] = replace(user, attributes={**user.attributes, **extra}) if extra else user
    if held:
        log.info("read the custom-field values of %d 360Learning users", len(held))
    return replace(data, actual=actual)


def write_custom_values(
    learning: LearningClient,
    learning_user_id: str,
    managed: Mapping[str, str | None],
    definitions: list[CustomFieldDefinition] | None,
) -> bool:
    """Set the managed fields in `managed` (`customField:<id>` -> value, None: remove), keeping
    every other value the user holds: read the set, merge, PUT the whole set when it differs.
    True when a PUT was sent."""
    managed = {k: v for k, v in managed.items() if is_custom_key(k)}
    if not managed:
        return False
    current = learning.list_custom_values(learning_user_id)
    merged = merge_custom_values(current, managed, definitions or [])
    if _as_set(merged) == _as_set(merge_custom_values(current, {}, [])):
        return False
    learning.replace_custom_values(learning_user_id, merged)
    return True


def _as_set(values: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(v["customFieldId"], v["value"]) for v in values}
