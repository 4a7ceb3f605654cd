"""Outbound sync to Zendesk: customers to users (and organizations), order state to ticket fields.

Job kinds (registered in handlers.py; configured by `[zendesk_sync]` in the mappings file):

* `zendesk.sync_customers` (destination `zendesk:users`), payload `{"customer_ids": [...]}`:
  reads the customers from commercetools and upserts them as Zendesk users with
  `create_or_update_many` (at most 100 per call), polls the Zendesk job and records each
  customer's outcome (Created / Updated / Failed) in the audit log. Live changes are enqueued one
  customer at a time after a short batch window; the job that runs first absorbs the other
  queued ones, so a burst of changes costs one Zendesk call per 100 customers.
* `zendesk.order_to_tickets` (destination `zendesk`), payload `{"order_id": ...}`: finds the
  tickets linked to the order (the audit log's ticket-to-order associations, and Zendesk search
  on the order-number field) and enqueues one ticket job per ticket.
* `zendesk.ticket_fields` (destination `zendesk:tickets`), payload `{"ticket_id", "order_id"}`,
  coalesced per ticket: reads the order (its latest state) and the ticket, and writes the mapped
  fields that differ, as a `safe_update`.

De-duplication rules (docs/sync.md, "Zendesk"):

* `external_id` of a Zendesk user = a commercetools customer id; users are matched by it, else by
  email, so a Zendesk user that already has the email but no external id is **linked**, not
  duplicated.
* Customers of several stores sharing one email become **one** Zendesk user. Its external id is
  the id of the **oldest** of those customers (earliest `createdAt`, then smallest id): a choice
  that does not depend on which customer happens to sync first and does not change when another
  store's customer signs up later. The other customers' ids go into the user field named by
  `other_ids_field`, space-separated.
* A customer whose email changed is updated through its external id, never recreated: Zendesk
  adds the new address as an identity, and the sync makes it the primary one.
* Nothing is ever merged or deleted in Zendesk; conflicts (the new email belongs to another
  Zendesk user) are recorded as Failed for an agent to resolve.

Backfill: `python -m commerce_context.zendesk_sync customers --since 2024-01-01` enqueues a sync
of every customer modified since that date (workers then run it: the service's in-process
workers or `commerce-context worker`); it is resumable.

Every handler is idempotent: it re-reads commercetools, so a re-run writes the latest values, and
a ticket field already holding the wanted value is not written again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from . import correlation
from .commercetools import CommercetoolsClient
from .exceptions import CommerceContextError, ConfigError, UpstreamNotFound, UpstreamRejected
from .jobs import Job, Ledger, Permanent, Queue, Retry
from .queries import (
    Read,
    by_ids,
    compose,
    filtered,
    order_by_id,
    order_by_number,
    orders_by_email,
)
from .scrub import scrub
from .settings import Settings, ZendeskSync, load_settings
from .views import View, string_literal
from .worker import JobContext, open_engine
from .zendesk import MAX_BATCH, ZendeskClient, sanitise

__all__ = [
    "CUSTOMERS_KIND",
    "HANDLERS",
    "ORDER_KIND",
    "TICKET_KIND",
    "backfill_customers",
    "enqueue_customer",
    "enqueue_customers",
    "enqueue_for_events",
    "enqueue_order",
    "enqueue_ticket_created",
    "order_to_tickets",
    "sync_customers",
    "ticket_created",
    "ticket_fields",
]

logger = logging.getLogger(__name__)

CUSTOMERS_KIND = "zendesk.sync_customers"
ORDER_KIND = "zendesk.order_to_tickets"
TICKET_KIND = "zendesk.ticket_fields"
TICKET_CREATED_KIND = "zendesk.ticket_created"
SOURCE = "worker"
SAME_EMAIL_LIMIT = 500  # customers sharing the batch's emails, read in one query
RETRY_FAILED_AFTER = 60.0  # seconds before customers Failed in a Zendesk job are tried again

SYNC_CUSTOMER = View(
    "zendesk_customer",
    "Customer",
    """
    id version createdAt email customerNumber firstName lastName locale companyName
    customerGroup { key }
    storesRef { key }
    """,
)
CUSTOMER_ID = View("zendesk_customer_id", "Customer", "id")
ORDER_TOTALS = View(
    "zendesk_order_totals",
    "Order",
    "orderState totalPrice { centAmount currencyCode fractionDigits }",
)
ORDERS_PER_CUSTOMER = 500  # orders counted per customer for order_count and total_spent
ORDER_STATS = frozenset({"order_count", "total_spent"})
SYNC_ORDER = View(
    "zendesk_order",
    "Order",
    """
    id version orderNumber orderState shipmentState paymentState locale country origin
    storeRef { key }
    totalPrice { currencyCode }
    shippingAddress { country }
    lineItems { distributionChannel { key } }
    """,
)
# Order messages after which the mapped ticket fields may change.
ORDER_MESSAGES = frozenset(
    {
        "OrderCreated", "OrderImported", "OrderStateChanged", "OrderShipmentStateChanged",
        "OrderPaymentStateChanged", "ParcelAddedToDelivery", "DeliveryAdded",
        "ReturnInfoAdded", "ReturnInfoSet", "OrderStoreSet", "OrderStateTransition",
        "ResourceCreated", "ResourceUpdated",
    }
)  # fmt: skip


def _config(ctx: JobContext) -> ZendeskSync:
    return ctx.settings.mappings.zendesk_sync


def _client(ctx: JobContext) -> ZendeskClient:
    if not ctx.settings.zendesk_api_enabled:
        # Retrying cannot help until an operator configures the credential (then: jobs retry).
        raise Permanent("the Zendesk API is not configured (CC_ZENDESK_API_EMAIL/TOKEN)")
    return ZendeskClient(ctx.settings, ctx.http)


# -- producing -----------------------------------------------------------------------------------


async def enqueue_customer(
    queue: Queue,
    settings: Settings,
    customer_id: str,
    *,
    version: int | None = None,
    source: str = "commercetools",
    correlation_id: str | None = None,
) -> Job:
    """One changed customer; synced after the batch window together with others queued then."""
    marker = version if version is not None else f"t{time.time_ns()}"
    return await queue.enqueue(
        CUSTOMERS_KIND,
        {"customer_ids": [customer_id]},
        key=f"zendesk:customer:{customer_id}:{marker}",
        destination="zendesk:users",
        coalesce=f"zendesk:customer:{customer_id}",
        delay=settings.mappings.zendesk_sync.batch_window,
        correlation_id=correlation_id,
        source=source,
    )


async def enqueue_customers(
    queue: Queue,
    customer_ids: Sequence[str],
    *,
    key: str,
    source: str = "backfill",
    correlation_id: str | None = None,
) -> list[Job]:
    """Customers in batches of 100 (a backfill page); `key` makes re-enqueueing a no-op."""
    jobs = []
    for start in range(0, len(customer_ids), MAX_BATCH):
        batch = list(customer_ids[start : start + MAX_BATCH])
        jobs.append(
            await queue.enqueue(
                CUSTOMERS_KIND,
                {"customer_ids": batch},
                key=f"{key}:{start // MAX_BATCH}",
                destination="zendesk:users",
                correlation_id=correlation_id,
                source=source,
            )
        )
    return jobs


async def enqueue_order(
    queue: Queue,
    order_id: str,
    *,
    version: int | None = None,
    source: str = "commercetools",
    correlation_id: str | None = None,
) -> Job:
    """A changed order; coalesced while queued, so only its latest state is looked at."""
    marker = version if version is not None else f"t{time.time_ns()}"
    return await queue.enqueue(
        ORDER_KIND,
        {"order_id": order_id},
        key=f"zendesk:order:{order_id}:{marker}",
        destination="zendesk",
        coalesce=f"zendesk:order:{order_id}",
        correlation_id=correlation_id,
        source=source,
    )


async def enqueue_for_events(queue: Queue, settings: Settings, events: Iterable[Any]) -> int:
    """Sync jobs for commercetools events (`events.Event`: kind, type, resource_id, version),
    as the subscription endpoint and the Messages poller deliver them. Returns jobs enqueued."""
    config = settings.mappings.zendesk_sync
    if not settings.zendesk_api_enabled:
        return 0
    count = 0
    cid = correlation.current()
    for event in events:
        if event.kind == "customer" and config.customers and event.type != "CustomerDeleted":
            await enqueue_customer(
                queue, settings, event.resource_id, version=event.version, correlation_id=cid
            )
            count += 1
        elif event.kind == "order" and config.orders and event.type in ORDER_MESSAGES:
            await enqueue_order(queue, event.resource_id, version=event.version, correlation_id=cid)
            count += 1
    return count


async def enqueue_ticket_created(
    queue: Queue,
    settings: Settings,
    ticket: Mapping[str, Any],
    *,
    invocation: str,
    correlation_id: str | None = None,
    source: str | None = None,
) -> Job | None:
    """A ticket just created in Zendesk (its webhook): fill its routing fields (store, channel,
    currency, locale, market, order state...) from its order, or from its brand's store, so
    Zendesk triggers and SLA policies can route on them. `ticket`: the webhook's ticket_id,
    emails, brand_id and order_number. None when there is nothing to do."""
    config = settings.mappings.zendesk_sync
    if not (settings.zendesk_api_enabled and config.orders and config.ticket_fields):
        return None
    if ticket.get("ticket_id") is None:
        return None
    return await queue.enqueue(
        TICKET_CREATED_KIND,
        {k: ticket.get(k) for k in ("ticket_id", "emails", "brand_id", "order_number")},
        key=f"zendesk:{invocation}:routing",
        destination="commercetools",
        correlation_id=correlation_id,
        source=source,
    )


async def backfill_customers(
    commercetools: CommercetoolsClient,
    queue: Queue,
    ledger: Ledger,
    *,
    since: datetime,
    page_size: int = MAX_BATCH,
) -> dict[str, int]:
    """Enqueue a sync of every customer modified since `since`, one job per page of 100.

    Pages are read in id order after a cursor. Each page read is recorded in the ledger with
    the cursor of the next one, so a backfill stopped half-way resumes where it stopped (the
    recorded pages are skipped without reading commercetools again), and enqueueing a page
    twice is a no-op (its idempotency key). The last, partial page is not recorded: running the
    backfill again later picks up customers created since."""
    start = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    cursor, pages, customers = "", 0, 0
    while True:
        key = f"zendesk:backfill:{start}:{cursor}"
        done = await ledger.done(key)
        if done is None:
            where = f"lastModifiedAt >= {string_literal(start)} and id > {string_literal(cursor)}"
            read = filtered(
                "page", "customers", "Customer", where, [CUSTOMER_ID], limit=page_size,
                store=None, sort="id asc",
            )  # fmt: skip
            found = (await commercetools.fetch(compose([read], "ZendeskBackfill")))["page"]
            ids = [str(c["id"]) for c in found or [] if isinstance(c, dict) and c.get("id")]
            if ids:
                await enqueue_customers(queue, ids, key=key)
            done = {"next": ids[-1] if len(ids) == page_size else None, "count": len(ids)}
            if done["next"]:
                await ledger.record(key, done)
        pages += 1
        customers += int(done.get("count") or 0)
        if not done.get("next"):
            return {"pages": pages, "customers": customers}
        cursor = str(done["next"])


# -- customers to users --------------------------------------------------------------------------


async def sync_customers(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    config = _config(ctx)
    if not config.customers:
        return {"skipped": "customer sync is off ([zendesk_sync] customers)"}
    ids = _ids(payload.get("customer_ids"))
    ids = await _with_absorbed(ctx, ids)
    customers, groups = await _read_customers(ctx, ids)
    if not customers:
        return {"users": 0, "missing": len(ids)}
    client = _client(ctx)
    org_names: dict[str, str] = {}
    organizations: dict[str, int] = {}
    if config.organizations:
        canonicals = [groups[_email(c)][0] for c in customers]
        org_names = _organization_names(canonicals)
        organizations = await _organizations(ctx, client, set(org_names.values()))
    stats: dict[str, list[dict[str, Any]]] = {}
    if ORDER_STATS & set(config.user_fields.values()):
        people = _unique(m["id"] for customer in customers for m in groups[_email(customer)])
        stats = await _orders_of(ctx, people)
    # One Zendesk user per email: the batch's customers grouped by their canonical customer.
    users: list[dict[str, Any]] = []
    members: list[list[dict[str, Any]]] = []
    position: dict[str, int] = {}
    for customer in customers:
        group = groups[_email(customer)]
        canonical = group[0]
        if canonical["id"] not in position:
            position[canonical["id"]] = len(users)
            organization = organizations.get(org_names.get(canonical["id"], ""))
            users.append(_user(config, canonical, group, organization, stats))
            members.append([])
        members[position[canonical["id"]]].append(customer)
    job = await _run_zendesk_job(ctx, client, users)
    counts, failed, updated = await _record_outcomes(ctx, job, users, members)
    if updated:
        await _primary_emails(client, updated)
    if failed and int(payload.get("retry", 0)) < config.failed_retries:
        attempt = int(payload.get("retry", 0)) + 1
        await ctx.queue.enqueue(
            CUSTOMERS_KIND,
            {"customer_ids": failed, "retry": attempt},
            key=f"{ctx.job.key}:failed:{attempt}",
            destination="zendesk:users",
            delay=RETRY_FAILED_AFTER * attempt,
            correlation_id=ctx.job.correlation_id,
            source=SOURCE,
        )
    return {
        "users": len(users),
        "created": counts["Created"],
        "updated": counts["Updated"],
        "failed": counts["Failed"],
        "zendesk_job": job.get("id"),
    }


async def _record_outcomes(
    ctx: JobContext,
    job: Mapping[str, Any],
    users: list[dict[str, Any]],
    members: list[list[dict[str, Any]]],
) -> tuple[dict[str, int], list[str], dict[int, str]]:
    """One audit row per customer from the Zendesk job's results (in request order); returns
    the counts, the customers to try again, and the updated users (id -> requested email)."""
    # A re-run after a crash polls the same Zendesk job: its outcomes are recorded only once.
    # The rows and the ledger entry commit together (one transaction, one commit for the
    # whole batch), so a crash part-way records none of them and the re-run records all.
    audited_key = f"zendesk:users-audited:{job.get('id')}"
    audited = await ctx.ledger.done(audited_key) is not None
    results = job.get("results") or []
    counts = {"Created": 0, "Updated": 0, "Failed": 0}
    failed: list[str] = []
    updated: dict[int, str] = {}
    rows: list[dict[str, Any]] = []
    for index, user in enumerate(users):
        result = results[index] if index < len(results) and isinstance(results[index], dict) else {}
        status = str(result.get("status") or "Failed")
        counts[status if status in counts else "Failed"] += 1
        if status == "Updated" and isinstance(result.get("id"), int):
            updated[result["id"]] = user["email"]
        for customer in members[index]:
            if status not in ("Created", "Updated"):
                failed.append(customer["id"])
            rows.append(
                {
                    "action": "zendesk.user.sync",
                    "source": SOURCE,
                    "target": "zendesk:user",
                    "outcome": status.lower(),
                    "correlation_id": ctx.job.correlation_id or correlation.current(),
                    "customer_id": customer["id"],
                    "job_id": ctx.job.id,
                    "detail": _outcome_detail(result, user),
                }
            )
    if not audited:
        async with ctx.queue.db.transaction() as tx:
            for row in rows:
                await ctx.audit.record(**row, tx=tx)
            await ctx.ledger.record(audited_key, {"users": len(users)}, tx=tx)
    return counts, failed, updated


async def _with_absorbed(ctx: JobContext, ids: list[str]) -> list[str]:
    """This job's customers plus those of other queued customer jobs, up to 100.

    The absorbed jobs are written to the ledger before they are cancelled, so a crash after the
    cancel still syncs them when this job runs again; and they are cancelled before commercetools
    is read, so a change arriving meanwhile makes a new job instead of being lost."""
    key = f"zendesk:absorbed:{ctx.job.key}"
    done = await ctx.ledger.done(key)
    if done is not None:
        return _unique([*ids, *_ids(done.get("customer_ids"))])[:MAX_BATCH]
    absorbed: list[str] = []
    jobs: list[Job] = []
    room = MAX_BATCH - len(ids)
    if room > 0:
        for job in await ctx.queue.list(state="queued", kind=CUSTOMERS_KIND, limit=200):
            if job.id == ctx.job.id or job.payload.get("retry"):
                continue
            extra = [i for i in _ids(job.payload.get("customer_ids")) if i not in ids]
            if len(absorbed) + len(extra) > room:
                break
            absorbed.extend(i for i in extra if i not in absorbed)
            jobs.append(job)
    await ctx.ledger.record(key, {"customer_ids": absorbed})
    for job in jobs:
        # Claimed by another worker meanwhile: it syncs them too, harmlessly.
        with contextlib.suppress(CommerceContextError):
            await ctx.queue.cancel(job.id)
    return _unique([*ids, *absorbed])


async def _read_customers(
    ctx: JobContext, ids: list[str]
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The customers (with an email) and, per lower-cased email, every customer sharing it,
    oldest first."""
    if not ids:
        return [], {}
    read = by_ids("customers", "Customer", ids, [SYNC_CUSTOMER], key="customers")
    found = (await ctx.commercetools.fetch(compose([read], "ZendeskSyncCustomers")))["customers"]
    customers = [c for c in found or [] if isinstance(c, dict) and c.get("email")]
    emails = sorted({_email(c) for c in customers})
    if not emails:
        return [], {}
    where = f"lowercaseEmail in ({', '.join(string_literal(e) for e in emails)})"
    same = filtered(
        "same_email", "customers", "Customer", where, [SYNC_CUSTOMER], limit=SAME_EMAIL_LIMIT,
        store=None,
    )  # fmt: skip
    sharing = (await ctx.commercetools.fetch(compose([same], "ZendeskSyncSameEmail")))["same_email"]
    groups: dict[str, list[dict[str, Any]]] = {e: [] for e in emails}
    for customer in [*customers, *(sharing or [])]:
        group = groups.get(_email(customer))
        if group is not None and all(c["id"] != customer["id"] for c in group):
            group.append(customer)
    for group in groups.values():
        group.sort(key=lambda c: (str(c.get("createdAt") or ""), str(c["id"])))
    return customers, groups


def _user(
    config: ZendeskSync,
    canonical: dict[str, Any],
    group: list[dict[str, Any]],
    organization_id: int | None,
    stats: Mapping[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    name = " ".join(p for p in (canonical.get("firstName"), canonical.get("lastName")) if p)
    user: dict[str, Any] = {
        # Free text from commercetools is scrubbed (a card number typed into a name never
        # leaves); the email is the user's identity and is sent as it is (docs/privacy.md).
        "name": scrub(name.strip() or str(canonical["email"]).split("@")[0]),
        "email": canonical["email"],
        "external_id": canonical["id"],
        "skip_verify_email": True,
    }
    fields: dict[str, Any] = {}
    for key, source in config.user_fields.items():
        value = _user_field(source, canonical, group, stats)
        fields[key] = scrub(value) if isinstance(value, str) else value
    if config.other_ids_field:
        others = [c["id"] for c in group[1:]]
        fields[config.other_ids_field] = " ".join(others) if others else None
    if fields:
        user["user_fields"] = fields
    if organization_id is not None:
        user["organization_id"] = organization_id
    return user


def _user_field(
    source: str,
    canonical: dict[str, Any],
    group: list[dict[str, Any]],
    stats: Mapping[str, list[dict[str, Any]]],
) -> Any:
    if source in ORDER_STATS:
        # Every customer behind the user; cancelled orders neither count nor add up.
        orders = [
            o for c in group for o in stats.get(c["id"], []) if o.get("orderState") != "Cancelled"
        ]
        return len(orders) if source == "order_count" else _total_spent(orders)
    if source == "store":
        keys = {s.get("key") for c in group for s in c.get("storesRef") or [] if s.get("key")}
        return " ".join(sorted(keys)) or None
    if source == "customer_group":
        return (canonical.get("customerGroup") or {}).get("key")
    if source == "locale":
        return canonical.get("locale")
    if source == "customer_number":
        return canonical.get("customerNumber")
    if source == "company":
        return _company(canonical)
    raise AssertionError(source)  # pragma: no cover - the settings model lists the sources


async def _orders_of(ctx: JobContext, customer_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each customer's orders (state and total), read in one document."""
    reads = [
        filtered(
            f"orders_{index}",
            "orders",
            "Order",
            f"customerId = {string_literal(customer_id)}",
            [ORDER_TOTALS],
            limit=ORDERS_PER_CUSTOMER,
            store=None,
        )
        for index, customer_id in enumerate(customer_ids)
    ]
    if not reads:
        return {}
    data = await ctx.commercetools.fetch(compose(reads, "ZendeskSyncOrderStats"))
    return {cid: list(data.get(f"orders_{i}") or []) for i, cid in enumerate(customer_ids)}


def _total_spent(orders: list[dict[str, Any]]) -> str | None:
    """Per currency, e.g. "EUR 1234.50, GBP 20.00"."""
    cents: dict[str, int] = {}
    digits: dict[str, int] = {}
    for order in orders:
        money = order.get("totalPrice") or {}
        currency = money.get("currencyCode")
        if not currency:
            continue
        cents[currency] = cents.get(currency, 0) + int(money.get("centAmount") or 0)
        digits[currency] = int(money.get("fractionDigits") or 2)
    if not cents:
        return None
    return ", ".join(f"{c} {cents[c] / 10 ** digits[c]:.{digits[c]}f}" for c in sorted(cents))


def _organization_names(customers: list[dict[str, Any]]) -> dict[str, str]:
    """Customer id -> organization name: the customer's company name. (B2B business units are
    not read: the test emulator cannot serve them, so that path could not be tested.)"""
    return {c["id"]: company for c in customers if (company := _company(c))}


async def _organizations(ctx: JobContext, client: ZendeskClient, names: set[str]) -> dict[str, int]:
    """Organization name -> Zendesk organization id. One organization per name (spacing
    normalised, case ignored); each is upserted once ever (the ledger remembers it), as Zendesk
    allows only a few organization updates a minute."""
    ids: dict[str, int] = {}
    for name in sorted(n for n in names if n):
        external_id = "org:" + hashlib.sha256(name.lower().encode()).hexdigest()[:24]
        key = f"zendesk:organization:{external_id}"
        done = await ctx.ledger.done(key)
        if done is None:
            try:
                org = await client.create_or_update_organization(
                    {"name": name, "external_id": external_id}
                )
            except UpstreamRejected as exc:
                # Typically an organization of that name made by hand (names are unique):
                # leave it alone; these users get no organization rather than no profile.
                logger.warning("zendesk organization %s not upserted: %s", external_id, exc)
                continue
            done = {"id": org["id"]}
            await ctx.ledger.record(key, done)
        ids[name] = int(done["id"])
    return ids


async def _run_zendesk_job(
    ctx: JobContext, client: ZendeskClient, users: list[dict[str, Any]]
) -> dict[str, Any]:
    """Submit the batch once per queue job (the ledger keeps the Zendesk job id, so a re-run
    polls the same Zendesk job) and wait for it; Retry when it is still running."""
    config = _config(ctx)
    # The digest ties the Zendesk job to exactly these users: if commercetools changed before
    # a re-run, the re-run submits the new values instead of polling a job with the old ones.
    digest = hashlib.sha256(repr(users).encode()).hexdigest()[:16]
    key = f"zendesk:users-job:{ctx.job.key}:{digest}"
    done = await ctx.ledger.done(key)
    job_id = str(done["id"]) if done else None
    if job_id is None:
        submitted = await client.create_or_update_many_users(users)
        job_id = str(submitted["id"])
        await ctx.ledger.record(key, {"id": job_id})
    deadline = time.monotonic() + config.job_poll_timeout
    while True:
        try:
            job = await client.job_status(job_id)
        except UpstreamNotFound:
            # Zendesk keeps job statuses for a day; an old one is gone: submit again.
            job = await client.create_or_update_many_users(users)
            job_id = str(job["id"])
            continue
        if job.get("status") in ("completed", "failed", "killed"):
            if job.get("status") != "completed":
                logger.warning("zendesk job %s ended %s", job_id, job.get("status"))
            return job
        if time.monotonic() >= deadline:
            raise Retry(f"Zendesk job {job_id} is still {job.get('status')}", after=5.0)
        await asyncio.sleep(config.job_poll_interval)


async def _primary_emails(client: ZendeskClient, updated: Mapping[int, str]) -> None:
    """A changed email is added by Zendesk as a secondary identity: make it the primary one."""
    ids = list(updated)
    shown = await client.show_many_users(ids=ids, include_identities=True)
    for user in shown["users"]:
        wanted = updated.get(user.get("id"), "").lower()
        if not wanted or str(user.get("email") or "").lower() == wanted:
            continue
        for identity in shown["identities"]:
            if (
                identity.get("user_id") == user["id"]
                and identity.get("type") == "email"
                and str(identity.get("value", "")).lower() == wanted
            ):
                await client.make_identity_primary(user["id"], identity["id"])
                break


def _outcome_detail(result: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = {"external_id": user["external_id"]}
    if isinstance(result.get("id"), int):
        detail["zendesk_user_id"] = result["id"]
    if result.get("error"):
        detail["error"] = sanitise(str(result["error"]), 64)
    if result.get("details"):
        detail["reason"] = sanitise(str(result["details"]))
    if not result:
        detail["error"] = "no result for this user in the Zendesk job"
    return detail


# -- order state to ticket fields ----------------------------------------------------------------


async def order_to_tickets(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    config = _config(ctx)
    if not config.orders:
        return {"skipped": "order sync is off ([zendesk_sync] orders)"}
    if not config.ticket_fields:
        return {"skipped": "no ticket fields are mapped"}
    order_id = str(payload.get("order_id") or "")
    order = await _read_order(ctx, order_id)
    if order is None:
        return {"skipped": "order not found"}
    tickets: dict[int, str | None] = {}  # ticket id -> status when known
    for row in await ctx.audit.query(order=order_id, limit=1000):
        if row.ticket_id and row.ticket_id.isdigit():
            tickets.setdefault(int(row.ticket_id), None)
    number = order.get("orderNumber")
    field_id = ctx.settings.zendesk_order_field_id
    if number and field_id and re.fullmatch(r"[^\s\"'\\]{1,100}", str(number)):
        for row in await ctx.audit.query(order=number, limit=1000):
            if row.ticket_id and row.ticket_id.isdigit():
                tickets.setdefault(int(row.ticket_id), None)
        found = await _client(ctx).search_tickets(f"custom_field_{field_id}:{number}")
        for ticket in found:
            if isinstance(ticket.get("id"), int):
                tickets[ticket["id"]] = ticket.get("status")
    enqueued = []
    for ticket_id, status in sorted(tickets.items()):
        if not _may_update(config, status):
            continue
        await ctx.queue.enqueue(
            TICKET_KIND,
            {"ticket_id": ticket_id, "order_id": order_id},
            key=f"zendesk:ticket:{ticket_id}:order:{order_id}:v{order.get('version')}",
            destination="zendesk:tickets",
            coalesce=f"zendesk:ticket:{ticket_id}",
            correlation_id=ctx.job.correlation_id,
            source=SOURCE,
        )
        enqueued.append(ticket_id)
    return {"tickets": enqueued}


async def ticket_fields(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    config = _config(ctx)
    if not config.orders:
        return {"skipped": "order sync is off ([zendesk_sync] orders)"}
    ticket_id = int(payload["ticket_id"])
    order_id = str(payload.get("order_id") or "")
    order = await _read_order(ctx, order_id)
    if order is not None:
        values = _ticket_values(order)
    else:
        # A new ticket without an order: its brand's store still routes it.
        values = _store_values(ctx.settings, payload.get("store"))
        if not values:
            return {"skipped": "order not found"}
        order = {}
    client = _client(ctx)
    ticket = await client.get_ticket(ticket_id)
    wanted = {fid: values[s] for s, fid in config.ticket_fields.items() if s in values}
    current = {f.get("id"): f.get("value") for f in ticket.get("custom_fields") or []}
    changes = {fid: value for fid, value in wanted.items() if current.get(fid) != value}
    status = ticket.get("status")
    if not _may_update(config, status):
        outcome, reason = "skipped", f"ticket is {status}"
    elif not changes:
        outcome, reason = "skipped", "fields already hold these values"
    else:
        # safe_update: if an agent or trigger changed the ticket since we read it, Zendesk
        # answers 409 and the queue retries with a fresh read.
        await client.update_ticket(
            ticket_id, custom_fields=changes, updated_stamp=str(ticket.get("updated_at"))
        )
        outcome, reason = "updated", None
    await ctx.audit.record(
        action="zendesk.ticket.fields",
        source=SOURCE,
        target="zendesk:ticket",
        outcome=outcome,
        correlation_id=ctx.job.correlation_id or correlation.current(),
        ticket_id=ticket_id,
        order_id=order_id or None,
        order_number=order.get("orderNumber"),
        job_id=ctx.job.id,
        detail={"fields": {str(k): v for k, v in changes.items()}, "reason": reason},
    )
    return {
        "ticket_id": ticket_id,
        "outcome": outcome,
        "fields": len(changes) if outcome == "updated" else 0,
    }


async def ticket_created(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A new ticket's routing fields: its order (the order number it names, else the newest
    order of its requester's email), within its brand's store when the brand maps to one; no
    order: the store's own values. The write is the coalesced `zendesk.ticket_fields` job, and
    its audit row links the ticket to the order, so later order changes reach the ticket."""
    config = _config(ctx)
    if not (config.orders and config.ticket_fields):
        return {"skipped": "order sync is off ([zendesk_sync] orders)"}
    ticket_id = int(payload["ticket_id"])
    store = ctx.settings.mappings.store_for_brand(_int(payload.get("brand_id")))
    number = str(payload.get("order_number") or "").strip()
    emails = [e for e in payload.get("emails") or [] if isinstance(e, str) and "@" in e][:5]
    reads: list[Read] = []
    if number:
        reads.append(order_by_number(number, [SYNC_ORDER], store=store, key="by_number"))
    if emails:
        reads.append(orders_by_email(emails, [SYNC_ORDER], limit=1, store=store, key="by_email"))
    found: dict[str, Any] = {}
    if reads:
        found = await ctx.commercetools.fetch(compose(reads, "ZendeskTicketRouting"))
    order = found.get("by_number")
    matched = "order_number"
    if not isinstance(order, dict):
        newest = found.get("by_email") or []
        order = newest[0] if newest and isinstance(newest[0], dict) else None
        matched = "email"
    if order is None and store is None:
        return {"skipped": "no order and no store for this ticket"}
    job_payload: dict[str, Any] = {"ticket_id": ticket_id, "order_id": None, "store": store}
    key = f"zendesk:ticket:{ticket_id}:store:{store}"
    if order is not None:
        job_payload["order_id"] = order["id"]
        key = f"zendesk:ticket:{ticket_id}:order:{order['id']}:v{order.get('version')}"
    await ctx.queue.enqueue(
        TICKET_KIND,
        job_payload,
        key=key,
        destination="zendesk:tickets",
        coalesce=f"zendesk:ticket:{ticket_id}",
        correlation_id=ctx.job.correlation_id,
        source=SOURCE,
    )
    return {"ticket_id": ticket_id, "matched_by": matched if order is not None else "store"}


async def _read_order(ctx: JobContext, order_id: str) -> dict[str, Any] | None:
    if not order_id:
        return None
    read = order_by_id(order_id, [SYNC_ORDER], key="order")
    order = (await ctx.commercetools.fetch(compose([read], "ZendeskSyncOrder")))["order"]
    return order if isinstance(order, dict) else None


def _ticket_values(order: Mapping[str, Any]) -> dict[str, Any]:
    values = {
        # The order number is an identity (Zendesk search finds tickets by it): sent as it is.
        "order_number": order.get("orderNumber"),
        "order_state": order.get("orderState"),
        "shipment_state": order.get("shipmentState"),
        "payment_state": order.get("paymentState"),
        "store": (order.get("storeRef") or {}).get("key"),
        "channel": _channel(order),
        "currency": (order.get("totalPrice") or {}).get("currencyCode"),
        "locale": order.get("locale"),
        # The order's country, else where it ships to.
        "market": order.get("country") or (order.get("shippingAddress") or {}).get("country"),
    }
    return {
        k: scrub(v) if isinstance(v, str) and k != "order_number" else v for k, v in values.items()
    }


def _channel(order: Mapping[str, Any]) -> str | None:
    """The sales channel: the distribution channel of the order's line items (the first that
    has one), else the order's origin (Customer: the shop's checkout, Merchant, Quote)."""
    for line in order.get("lineItems") or []:
        key = ((line or {}).get("distributionChannel") or {}).get("key")
        if key:
            return str(key)
    origin = order.get("origin")
    return str(origin) if origin else None


def _store_values(settings: Settings, store: object) -> dict[str, Any]:
    """Routing values of a ticket without an order: its brand's store (the mapping file)."""
    scope = settings.mappings.stores.get(store) if isinstance(store, str) else None
    if scope is None:
        return {}
    return {"store": store, "currency": scope.currency, "locale": scope.locale}


def _may_update(config: ZendeskSync, status: object) -> bool:
    """Closed tickets cannot change; solved ones only when configured (a write could wake
    triggers that reopen them)."""
    if status == "closed":
        return False
    return status != "solved" or config.update_solved


# -- helpers -------------------------------------------------------------------------------------


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _ids(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return _unique(str(v) for v in value if isinstance(v, str) and v)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _email(customer: Mapping[str, Any]) -> str:
    return str(customer.get("email") or "").strip().lower()


def _company(customer: Mapping[str, Any]) -> str | None:
    """The company name, spacing normalised and scrubbed (it names a Zendesk organization)."""
    company = customer.get("companyName")
    if not isinstance(company, str) or not company.strip():
        return None
    return scrub(" ".join(company.split()))


# -- backfill command -----------------------------------------------------------------------------

COMMANDS = ("sync",)


def add_commands(commands: Any) -> None:
    """`sync customers --since DATE` under the `commerce-context` command (cli.py)."""
    sync = commands.add_parser("sync", help="enqueue a sync of commercetools customers to Zendesk")
    what = sync.add_subparsers(dest="what", required=True)
    customers = what.add_parser("customers", help="customers modified since a date (resumable)")
    customers.add_argument(
        "--since", required=True, type=_moment, help="a date (2024-01-31) or ISO 8601 time"
    )


def run(args: argparse.Namespace) -> int:
    """Enqueue the backfill; ConfigError (exit 2) when the sync cannot run."""
    settings = load_settings()
    if not settings.zendesk_api_enabled:
        raise ConfigError(
            "the Zendesk API is not configured: set CC_ZENDESK_API_EMAIL and "
            "CC_ZENDESK_API_TOKEN (or CC_ZENDESK_OAUTH_TOKEN)"
        )
    if not settings.mappings.zendesk_sync.customers:
        raise ConfigError("customer sync is off: set customers = true in [zendesk_sync]")
    result = asyncio.run(_backfill(settings, args.since))
    print(
        f"{result['customers']} customers enqueued in {result['pages']} pages; the workers "
        "sync them (the service, or `commerce-context worker`); run it again to resume"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m commerce_context.zendesk_sync customers --since DATE` (the same as
    `commerce-context sync customers --since DATE`)."""
    parser = argparse.ArgumentParser(
        prog="python -m commerce_context.zendesk_sync",
        description="Enqueue a sync of commercetools customers to Zendesk users.",
    )
    what = parser.add_subparsers(dest="what", required=True)
    customers = what.add_parser("customers", help="customers modified since a date")
    customers.add_argument(
        "--since", required=True, type=_moment, help="a date (2024-01-31) or ISO 8601 time"
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"commerce-context: {exc.message}", file=sys.stderr)
        return 2
    except CommerceContextError as exc:
        print(f"commerce-context: {exc.message}", file=sys.stderr)
        return 1


async def _backfill(settings: Settings, since: datetime) -> dict[str, int]:
    async with open_engine(settings) as engine, httpx.AsyncClient() as http:
        commercetools = CommercetoolsClient(settings, http)
        return await backfill_customers(commercetools, engine.queue, engine.ledger, since=since)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date such as 2024-01-31 (or an ISO 8601 time)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


HANDLERS = {
    CUSTOMERS_KIND: sync_customers,
    ORDER_KIND: order_to_tickets,
    TICKET_KIND: ticket_fields,
    TICKET_CREATED_KIND: ticket_created,
}


if __name__ == "__main__":
    sys.exit(main())
