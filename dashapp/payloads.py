"""Check every callback request at the door, before Dash reads it.

A browser sends each callback's inputs and states as JSON. The app's own browser code
only ever sends what the server gave it, but a damaged session or a hand-made request
may send anything. Two checks run first, in the server:

- the request itself must have Dash's shape (an object with ``output``, and ``inputs``
  and ``state`` lists of objects): otherwise it is refused with 400 and a plain reason;
- values of the wrong kind for their property (a page address that is not text, a
  click count that is not a whole number, an object in a form field) are read as empty;
- the session stores, which the server alone writes (``app-result``, ``app-options``,
  the jobs' stores...), must hold the kind of value the server wrote: a store holding
  something else is read as empty, as after a new session. The scenario store
  (``app-scenario``) is checked in full by :func:`dashapp.state.scenario_from_store`.

So no callback ever has to work out what a list is doing where its result should be.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dashapp.state import JOBS

log = logging.getLogger(__name__)

CALLBACK_PATH = "/_dash-update-component"

#: What each server-written session store may hold (``None`` is always allowed).
STORE_TYPES: dict[str, tuple[type, ...]] = {
    "app-scenario": (dict,),
    "app-result": (dict,),
    "app-frontier": (dict,),
    "app-options": (dict,),
    **{f"app-{job}-job": (dict,) for job in JOBS},
    **{f"app-{job}-request": (dict,) for job in JOBS},
    **{f"app-{job}-status": (dict,) for job in JOBS},
    **{f"app-{job}-watch": (dict,) for job in JOBS},
    **{f"app-{job}-progress": (dict,) for job in JOBS},
    **{f"app-{job}-running": (bool,) for job in JOBS},
    **{f"app-{job}-cancel": (int, float) for job in JOBS},
    "compare-pending": (dict, str),
    "compare-refresh": (int,),
}


#: What a component property may hold whatever the component (the app's controls never
#: send anything else), and what a wrong value is read as.
PROPERTY_TYPES: dict[str, tuple[tuple[type, ...], Any]] = {
    "pathname": ((str,), "/"),
    "search": ((str,), ""),
    "hash": ((str,), ""),
    "href": ((str,), None),
    "n_clicks": ((int,), None),
    "n_intervals": ((int,), None),
    "n_submit": ((int,), None),
    "n_blur": ((int,), None),
}


TABLE_IDS = frozenset(
    {"services-table", "compare-saved", "compare-table", "results-scorecard",
     "results-quintiles", "results-changes", "results-frontier-table"}
)  # fmt: skip
"""The app's tables: their ``data`` is a list of rows, each an object."""
MAX_JSON_INT = 2**53
"""A JavaScript number is exact up to 2**53: no browser sends a larger whole number."""


def _too_large(body: Any) -> bool:
    """Whether a request holds a whole number no browser could send (bounded walk)."""
    stack, seen = [body], 0
    while stack and seen < 1_000_000:
        node = stack.pop()
        seen += 1
        if isinstance(node, bool):
            continue
        if isinstance(node, int):
            if abs(node) > MAX_JSON_INT:
                return True
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _fix_property(item: dict) -> bool:
    """Replace a value of the wrong kind for its property; ``True`` if replaced."""
    prop, value = item.get("property"), item.get("value")
    if prop in PROPERTY_TYPES:
        kinds, fallback = PROPERTY_TYPES[prop]
        if not _fits(value, kinds) or (
            prop == "pathname" and value is not None and not str(value).startswith("/")
        ):
            item["value"] = fallback
            return True
    elif prop == "value" and isinstance(value, dict):  # no field of the app holds an object
        item["value"] = None
        return True
    elif (
        prop == "data"
        and item.get("id") in TABLE_IDS
        and not (
            value is None or (isinstance(value, list) and all(isinstance(r, dict) for r in value))
        )
    ):  # a table's rows are objects
        item["value"] = []
        return True
    elif prop == "selected_rows" and not (
        value is None or (isinstance(value, list) and all(_fits(v, (int,)) for v in value))
    ):
        item["value"] = []
        return True
    return False


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true is not a number of clicks or a time
    return isinstance(value, kinds)


def clean_entries(entries: Any) -> int:
    """Empty the session stores in ``entries`` (a request's inputs or states) that hold
    the wrong kind of value; returns how many were emptied."""
    emptied = 0
    for entry in entries:
        items = entry if isinstance(entry, list) else [entry]  # pattern ids: a list each
        for item in items:
            if not isinstance(item, dict):
                continue
            kinds = STORE_TYPES.get(item.get("id")) if isinstance(item.get("id"), str) else None
            if kinds and item.get("property") == "data" and not _fits(item.get("value"), kinds):
                item["value"] = None
                emptied += 1
            elif _fix_property(item):
                emptied += 1
    return emptied


def problem(body: Any) -> str | None:
    """Why a callback request is not in Dash's shape, or ``None`` when it is."""
    if not isinstance(body, Mapping):
        return "a callback request must be a JSON object"
    if not isinstance(body.get("output"), str):
        return "a callback request must name its output"
    for key in ("inputs", "state"):
        value = body.get(key, [])
        if not isinstance(value, list):
            return f"a callback request's '{key}' must be a list"
        for entry in value:
            items = entry if isinstance(entry, list) else [entry]
            if not all(isinstance(i, Mapping) and "property" in i for i in items):
                return f"each of a callback request's '{key}' must name a property"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "a callback request's 'changedPropIds' must be a list of names"
    if _too_large(body):
        return "a callback request holds a whole number larger than a browser can send"
    return None


def install_payload_guard(server) -> None:
    """Check callback requests on the Flask ``server`` (see the module docstring)."""
    import flask

    @server.before_request
    def _check_callback_request():
        request = flask.request
        if request.path != CALLBACK_PATH or request.method != "POST":
            return None
        body = request.get_json(silent=True)  # cached: Dash reads this same object
        reason = problem(body)
        if reason is not None:
            response = flask.make_response(reason + ".\n", 400)
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
            return response
        emptied = clean_entries(body.get("inputs", [])) + clean_entries(body.get("state", []))
        if emptied:
            log.info("callback request: %d session store(s) held the wrong kind of value and "
                     "were read as empty", emptied)  # fmt: skip
        return None


__all__ = ["PROPERTY_TYPES", "STORE_TYPES", "clean_entries", "install_payload_guard", "problem"]
