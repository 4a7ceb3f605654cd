"""Validate payloads against the vendored official commercetools OpenAPI spec.

``assert_valid("OrderImportDraft", payload)`` checks ``payload`` against
``#/components/schemas/OrderImportDraft`` in ``tests/specs/openapi.yaml``.

Discriminated unions need extra work. The spec (OpenAPI 3.0) writes them the way the RAML
generator emits them. The base schema (e.g. ``OrderUpdateAction``) has a
``discriminator.mapping`` but no ``oneOf``, and every subtype is
``allOf: [{$ref: base}, {...}]``. openapi-schema-validator handles ``discriminator`` only
next to ``oneOf``/``anyOf``/``allOf``. So, as written, ``{"action": "setCustomField"}`` without
``name``, or ``{"action": "noSuchAction"}``, would pass as a valid ``OrderUpdateAction``.
Before building the validator we rewrite each such union:

* ``Base`` becomes ``{required: [prop], properties: {prop: {enum: [mapped values]}},
  x-dispatch: mapping}``. ``x-dispatch`` is a keyword we add to the validator: it validates
  the payload against the subtype that its discriminator value maps to. A missing or unknown
  value fails ``required``/``enum`` with one clear message. (The library's own discriminator
  handling would also try ``#/components/schemas/{value}`` for unknown values, which produces
  confusing errors.)
* A copy of the original base without the discriminator is stored as ``Base__base``. Each mapped
  subtype's ``allOf`` points at that copy instead of ``Base``, so dispatch does not loop back.
  The subtype also gets ``enum`` on the discriminator property, so validating directly against
  ``OrderSetCustomFieldAction`` rejects ``"action": "addPayment"``.

A second artefact of the RAML conversion is map types. RAML pattern properties such as
``LocalizedString``'s ``/^[a-z]{2}(-[A-Z]{2})?$/: string`` ended up as literal names in
``required``, and no payload could satisfy that. We move them into an ``x-key-patterns``
keyword (every key must match one of the patterns), which a small validator extension checks.
So ``{"de_DE": "…"}`` still fails, and ``{"de-DE": "…"}`` passes. ``//`` ("any key") is dropped.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from openapi_schema_validator import OAS30Validator, OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

SPEC_PATH = Path(__file__).resolve().parent / "specs" / "openapi.yaml"
SPEC_URI = "urn:commercetools:openapi"  # base URI the spec is registered under
_SCHEMAS = "#/components/schemas/"


@functools.cache
def load_spec() -> dict[str, Any]:
    """The spec exactly as vendored (parsed once: the file is about 3 MB)."""
    with SPEC_PATH.open("rb") as fh:
        spec = yaml.load(fh, Loader=yaml.CSafeLoader)
    if not isinstance(spec, dict) or "components" not in spec:
        raise RuntimeError(f"{SPEC_PATH} is not an OpenAPI document")
    return spec


def _is_raml_pattern(name: object) -> bool:
    return isinstance(name, str) and len(name) >= 2 and name.startswith("/") and name.endswith("/")


def _rewrite_pattern_required(schemas: dict[str, Any]) -> None:
    for schema in schemas.values():
        required = schema.get("required") if isinstance(schema, dict) else None
        if not isinstance(required, list) or not any(map(_is_raml_pattern, required)):
            continue
        patterns = [r[1:-1] for r in required if _is_raml_pattern(r) and r != "//"]
        schema["required"] = [r for r in required if not _is_raml_pattern(r)]
        if not schema["required"]:
            del schema["required"]  # draft 4 forbids an empty `required`
        if patterns:
            schema["x-key-patterns"] = patterns


def _key_patterns(
    validator: Any, patterns: list[str], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    for key in instance:
        if key not in declared and not any(re.search(p, key) for p in patterns):
            yield ValidationError(f"key {key!r} does not match {' or '.join(patterns)}")


def _dispatch(
    validator: Any, dispatch: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    ref = dispatch["mapping"].get(instance.get(dispatch["propertyName"]))
    if isinstance(ref, str):  # missing/unknown values are reported by `required`/`enum`
        yield from validator.descend(instance, {"$ref": ref})


def _rewrite_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``spec`` with its discriminated unions and map types enforced."""
    spec = copy.deepcopy(spec)
    schemas: dict[str, Any] = spec["components"]["schemas"]
    _rewrite_pattern_required(schemas)
    bases = {
        name: schema
        for name, schema in list(schemas.items())
        if isinstance(schema, dict)
        and "mapping" in schema.get("discriminator", {})
        and not {"oneOf", "anyOf", "allOf"} & schema.keys()
    }
    for name, base in bases.items():
        prop = base["discriminator"]["propertyName"]
        mapping: dict[str, str] = base["discriminator"]["mapping"]
        plain = {k: v for k, v in base.items() if k != "discriminator"}
        schemas[f"{name}__base"] = plain
        base_ref = f"{_SCHEMAS}{name}"

        values_by_sub: dict[str, list[str]] = {}
        for value, ref in mapping.items():
            values_by_sub.setdefault(ref, []).append(value)
        for ref, values in values_by_sub.items():
            sub = schemas.get(ref.removeprefix(_SCHEMAS))
            if not isinstance(sub, dict):
                continue
            all_of = sub.get("allOf", [])
            sub["allOf"] = [
                {"$ref": f"{base_ref}__base"} if part == {"$ref": base_ref} else part
                for part in all_of
            ] + [{"properties": {prop: {"enum": values}}}]

        # Intermediate subtypes the mapping does not list (DeliveryPayload under
        # SubscriptionNotification, whose official mapping names only Event) inherit the base's
        # fields, not its dispatch: `allOf: [base]` there means "has the base's properties".
        for other in schemas.values():
            if isinstance(other, dict) and isinstance(other.get("allOf"), list):
                other["allOf"] = [
                    {"$ref": f"{base_ref}__base"} if part == {"$ref": base_ref} else part
                    for part in other["allOf"]
                ]

        schemas[name] = {
            "type": "object",
            "required": [prop],
            "properties": {prop: {"type": "string", "enum": sorted(mapping)}},
            "x-dispatch": {"propertyName": prop, "mapping": mapping},
        }
    return spec


def _base_validator_class() -> Any:
    version = str(load_spec().get("openapi", ""))
    if version.startswith("3.0"):
        return OAS30Validator
    if version.startswith("3.1"):
        return OAS31Validator
    raise RuntimeError(f"unsupported OpenAPI version {version!r} in {SPEC_PATH}")


@functools.cache
def _validator_class() -> Any:
    extra = {"x-key-patterns": _key_patterns, "x-dispatch": _dispatch}
    return extend(_base_validator_class(), extra)


@functools.cache
def _registry() -> Registry[Any]:
    # OAS 3.0 schemas are a draft-4 dialect, 3.1 schemas are draft 2020-12. The dialect
    # decides how `referencing` looks for ids and anchors inside the document.
    dialect = DRAFT4 if _base_validator_class() is OAS30Validator else DRAFT202012
    resource = Resource.from_contents(_rewrite_spec(load_spec()), default_specification=dialect)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


@functools.cache
def _validator(component: str) -> Any:
    schemas = _registry().contents(SPEC_URI)["components"]["schemas"]
    if component not in schemas:
        raise KeyError(f"no schema #/components/schemas/{component} in {SPEC_PATH.name}")
    cls = _validator_class()
    return cls(
        {"$ref": f"{SPEC_URI}{_SCHEMAS}{component}"},
        registry=_registry(),
        format_checker=cls.FORMAT_CHECKER,
    )


def _leaf_errors(error: ValidationError) -> list[ValidationError]:
    """The most specific errors. oneOf/allOf failures bury the useful ones in ``context``."""
    if not error.context:
        return [error]
    leaves: list[ValidationError] = []
    for sub in error.context:
        leaves.extend(_leaf_errors(sub))
    return leaves


def _describe(error: ValidationError) -> str:
    path = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
    return f"  at payload{path}: {error.message}"


def validation_errors(component: str, payload: object) -> list[str]:
    """Readable validation errors for ``payload`` (an empty list means valid)."""
    errors = sorted(_validator(component).iter_errors(payload), key=lambda e: list(e.path))
    lines: list[str] = []
    for error in errors:
        for leaf in _leaf_errors(error):
            line = _describe(leaf)
            if line not in lines:
                lines.append(line)
    return lines


def assert_valid(component: str, payload: object) -> None:
    """Fail with every validation error if ``payload`` does not match ``component``."""
    lines = validation_errors(component, payload)
    if lines:
        raise AssertionError(
            f"payload is not a valid {component} ({len(lines)} error(s)):\n" + "\n".join(lines)
        )
