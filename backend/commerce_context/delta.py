"""Planning a delta view: check versions with one request, fetch again only what changed.

A view whose entries are cached but no longer fresh asks commercetools for the same reads
selecting only `id version lastModifiedAt` (`version_reads`). `Plan` then compares the answer
with the snapshot: an entity missing from the cache, at another version, or cached without a
view this request needs is fetched again, by id, with the union of the views every read of
this request wants of it (`Plan.changes`); the others are confirmed current. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import queries, views
from .entries import NESTED, ROOTS, Entity, Snapshot, entities_of

__all__ = ["Plan", "version_reads"]

NESTED_VERSION = {
    "Order": views.View("order_customer_version", "Order", "customer { id version lastModifiedAt }")
}


def version_reads(reads: Sequence[queries.Read]) -> list[queries.Read]:
    """`reads` selecting only what tells whether an entity changed."""
    return [
        queries.Read(r.key, r.root, r.type, r.args, _version_views(r), r.many, r.store)
        for r in reads
    ]


def _version_views(read: queries.Read) -> tuple[views.View, ...]:
    extra = (NESTED_VERSION[read.type],) if views.ORDER_CUSTOMER in read.views else ()
    return (views.VERSION, *extra)


@dataclass
class Plan:
    """What to fetch again after a version check, and the versions upstream reported."""

    needs: dict[str, dict[str, set[views.View]]] = field(default_factory=dict)  # type -> id
    versions: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, reads: Sequence[queries.Read], found: Mapping[str, Any], snapshot: Snapshot
    ) -> Plan:
        plan = cls()
        for read in reads:
            for entity in entities_of(found.get(read.key)):
                plan._visit(read.type, entity, read.views, snapshot)
        return plan

    def _visit(
        self, type_: str, entity: Entity, wanted: Iterable[views.View], snapshot: Snapshot
    ) -> None:
        wanted = set(wanted)
        self.versions[(type_, entity["id"])] = int(entity["version"])
        cached = snapshot.entities.get((type_, entity["id"]))
        names = {v.name for v in wanted if v.name != views.ORDER_CUSTOMER.name}
        if cached is None or cached.version != int(entity["version"]) or not names <= cached.views:
            # One entity may be in several reads with different views (the order in detail and
            # in the list): it is refetched once, with all of them.
            self.needs.setdefault(type_, {}).setdefault(entity["id"], set()).update(wanted)
        for field_name, nested_type in NESTED.get(type_, {}).items():
            nested = entity.get(field_name)
            if views.ORDER_CUSTOMER in wanted and nested:
                self._visit(nested_type, nested, [views.CUSTOMER], snapshot)
                if cached is not None:
                    cached.nested[field_name] = nested["id"]

    def changes(self) -> list[queries.Read]:
        """One by-id read per type of what must be fetched again; empty when nothing must."""
        wanted = {t: ids for t, ids in self.needs.items() if ids}
        return [
            queries.by_ids(
                ROOTS[t],
                t,
                sorted(ids),
                sorted({v for vs in ids.values() for v in vs}, key=lambda v: v.name),
                key=f"n{i}",
            )
            for i, (t, ids) in enumerate(sorted(wanted.items()))
        ]
