"""All the text a Dash component tree shows, for asserting on what a page says."""

from __future__ import annotations

from dash import no_update


def component_text(component) -> str:
    """Text of a component tree: children, table rows, and stored messages.

    A dict is a stored message (its ``head`` and ``lines``) when it has either key, and
    a table row (its values) otherwise.
    """
    if component is None or component is no_update:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(component_text(c) for c in component)
    if isinstance(component, dict):
        if "head" in component or "lines" in component:
            return " ".join([str(component.get("head", "")), *map(str, component.get("lines", []))])
        return " ".join(component_text(v) for v in component.values())
    parts = [component_text(getattr(component, "children", None))]
    data = getattr(component, "data", None)  # a DataTable's rows
    if isinstance(data, list):
        parts += [component_text(row) for row in data]
    return " ".join(parts)
