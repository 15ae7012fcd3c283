"""Checks the admin API's OpenAPI document with tools this project did not write.

argv[1]: the document, as GET /openapi.json served it.
argv[2]: answers the admin gave during the test, a JSON list of
         {"method", "path" (the documented template), "status", "body"}.

1. openapi-spec-validator validates the document as OpenAPI 3.1.
2. jsonschema (draft 2020-12, OpenAPI 3.1's dialect) validates every answer against
   the schema the document gives for its operation and status, and every field of an
   answer object must be a documented property: an answer may not carry what the
   document does not say.
"""

import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

doc = json.load(open(sys.argv[1]))
answers = json.load(open(sys.argv[2]))

validate(doc)
assert doc["openapi"].startswith("3.1"), doc["openapi"]
print("the document is valid OpenAPI", doc["openapi"])

URI = "urn:sluice:admin-openapi"
registry = Registry().with_resource(URI, Resource(doc, specification=DRAFT202012))


def pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(schema):
    while isinstance(schema, dict) and "$ref" in schema:
        target = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = target
    return schema


def documented_fields(schema):
    """Every property name the schema allows at its top level, or None for any."""
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return None
    if schema.get("additionalProperties") not in (None, False):
        return None
    names = set(schema.get("properties", {}))
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(key, []):
            more = documented_fields(part)
            if more is None:
                return None
            names |= more
    if not names and "type" not in schema and not any(k in schema for k in ("allOf", "oneOf", "anyOf")):
        return None
    return names


def check_fields(schema, body, where):
    if not isinstance(body, dict):
        return
    allowed = documented_fields(schema)
    if allowed is None:
        return
    extra = set(body) - allowed
    assert not extra, f"{where}: undocumented fields {sorted(extra)}"
    resolved = resolve(schema)
    props = {}
    for part in [resolved] + [resolve(p) for p in resolved.get("allOf", [])]:
        props.update(part.get("properties", {}))
    items = props.get("items")
    if items and isinstance(body.get("items"), list):
        item_schema = resolve(items).get("items")
        for i, item in enumerate(body["items"][:5]):
            check_fields(item_schema, item, f"{where}.items[{i}]")


checked = 0
for a in answers:
    method, path, status = a["method"].lower(), a["path"], str(a["status"])
    op = doc["paths"].get(path, {}).get(method)
    assert op is not None, f"{method.upper()} {path} is not documented"
    response = op["responses"].get(status)
    assert response is not None, f"{method.upper()} {path}: status {status} is not documented"
    content = response.get("content", {}).get("application/json")
    if content is None:
        assert a["body"] is None, f"{method.upper()} {path} {status}: a body the document does not describe"
        checked += 1
        continue
    ref = {"$ref": URI + "#/" + pointer("paths", path, method, "responses", status, "content", "application/json", "schema")}
    where = f"{method.upper()} {path} {status}"
    errors = sorted(Draft202012Validator(ref, registry=registry).iter_errors(a["body"]), key=str)
    assert not errors, f"{where}: " + "; ".join(e.message for e in errors[:3])
    check_fields(content["schema"], a["body"], where)
    checked += 1

print(f"{checked} answers match their documented schemas")
