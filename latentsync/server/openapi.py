"""The API description in OpenAPI 3.0, which the bundled (offline) Swagger UI 4 renders; FastAPI writes 3.1.

The 3.1-only forms FastAPI uses are rewritten: `anyOf [X, {type: null}]` -> X with `nullable`, a lone
`{type: null}` -> `nullable`, `examples` lists -> `example`, `const` -> a one-value `enum`, numeric
`exclusiveMinimum`/`exclusiveMaximum` -> `minimum`/`maximum` with the boolean flag, `prefixItems` (tuples) ->
`items` of their common shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

VERSION = "3.0.3"


def openapi_30(app: FastAPI) -> dict[str, Any]:
    """The app's schema in 3.0 form, built once."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema = _downgrade(schema)
        schema["openapi"] = VERSION
        app.openapi_schema = schema
    return app.openapi_schema


def _downgrade(node: Any) -> Any:
    if isinstance(node, list):
        return [_downgrade(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [option for option in options if option != {"type": "null"}]
            del node[key]
            if len(rest) == 1:
                node.update(rest[0])
            else:
                node[key] = rest
            node["nullable"] = True
    node = {key: _downgrade(value) for key, value in node.items()}
    if node.get("type") == "null":
        del node["type"]
        node["nullable"] = True
    if isinstance(node.get("examples"), list) and "paths" not in node:
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node.get(bound), bool):
            node[plain] = node.pop(bound)
            node[bound] = True
    if "prefixItems" in node:
        items = node.pop("prefixItems")
        node["items"] = items[0] if all(item == items[0] for item in items) else {"anyOf": items}
        node.setdefault("minItems", len(items))
        node.setdefault("maxItems", len(items))
    return node
