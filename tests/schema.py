"""The official commercetools GraphQL schema, built once per test session."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import GraphQLSchema, build_schema, parse, validate

SDL = Path(__file__).resolve().parent.parent / "backend/commerce_context/emulator/schema.sdl"


@cache
def schema() -> GraphQLSchema:
    return build_schema(SDL.read_text(encoding="utf-8"))


def assert_valid_document(query: str) -> None:
    errors = validate(schema(), parse(query))
    assert not errors, "\n".join(str(e) for e in errors) + "\n" + query
