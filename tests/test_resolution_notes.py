"""Why a customer was chosen, what was left out, and the notes that say so (resolve_answer on
answers shaped like the composed document's: keys as planned, entities as the views read them).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest

from commerce_context import queries
from commerce_context.cli import check_config, store_mapping_warnings
from commerce_context.demo import DemoZendesk
from commerce_context.resolution import (
    BY_ID,
    NOTE_CODES,
    Note,
    Resolution,
    TicketContext,
    owner_key,
    plan,
    resolve_answer,
)
from commerce_context.settings import load_settings

SHARED = "alex@example.com"
OTHER = "alex.work@example.org"


def customer(cid: str, *stores: str, created: str = "2024-01-01T00:00:00.000Z") -> dict[str, Any]:
    return {"id": cid, "createdAt": created, "storesRef": [{"key": s} for s in stores]}


def order(
    oid: str, owner: str | None, store: str | None, created: str, number: str | None = None
) -> dict[str, Any]:
    return {
        "id": oid,
        "orderNumber": number or oid.upper(),
        "customerId": owner,
        "createdAt": created,
        "storeRef": {"key": store} if store else None,
    }


def resolved(
    found: dict[str, Any], store: str | None = None, stores_configured: bool = True, **ctx: Any
) -> Resolution:
    context = TicketContext.parse(ctx)
    # As `resolve` merges them: the reads by id (`BY_ID`) are for the customer the first answer
    # chose; where a test gives none, that follow-up found nothing the first answer lacked.
    first, _ = resolve_answer(context, store, found, custom_fields=("internalNote",))
    owner = first.customer["id"] if first.customer else None
    found = {"co": [], "cl": [], "ck": None, **found}
    result, more = resolve_answer(
        context,
        store,
        found,
        custom_fields=("internalNote",),
        stores_configured=stores_configured,
        owner=owner,
    )
    assert more is None, [r.key for r in more]
    return result


def codes(result: Resolution) -> list[str]:
    return [n.code for n in result.notes]


def note(result: Resolution, code: str) -> Note:
    matches = [n for n in result.notes if n.code == code]
    assert len(matches) == 1, result.notes
    return matches[0]


def test_every_note_code_formats_with_the_params_it_names() -> None:
    for code, text in NOTE_CODES.items():
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        made = Note.of(code, **{name: f"<{name}>" for name in names})
        assert made.code == code and str(made) == made.text
        assert all(f"<{name}>" in made.text for name in names) and "{" not in made.text


def test_the_brands_store_decides_and_says_so() -> None:
    berlin, london = customer("c-berlin", "berlin"), customer("c-london", "london")
    found = {
        "e0": [berlin, london],
        "eo": [order("o1", "c-berlin", "berlin", "2025-05-01T00:00:00.000Z")],
        "co": [],  # the follow-up: london's orders by id (none found by email)
    }
    result = resolved(found, store="london", emails=[SHARED], brand_id=2)
    assert result.customer == london and result.chosen_reason == "store"
    assert result.other_customers == [berlin]
    chosen = note(result, "chosen_by_store")
    assert chosen.params == {"count": 1, "stores": "berlin", "brand_store": "london"}
    assert chosen.text.startswith("1 other customer account(s) use this address (berlin).")


def test_the_most_recent_order_decides_without_a_store() -> None:
    berlin, london = customer("c-berlin", "berlin"), customer("c-london", "london")
    found = {
        "e0": [berlin, london],
        "eo": [
            order("o1", "c-berlin", "berlin", "2025-05-01T00:00:00.000Z"),
            order("o2", "c-london", "london", "2025-06-01T00:00:00.000Z"),
        ],
        "el": [order("o2", "c-london", "london", "2025-06-01T00:00:00.000Z")],
    }
    result = resolved(found, emails=[SHARED], stores_configured=False)
    assert result.customer == london and result.chosen_reason == "recent_order"
    assert codes(result) == ["chosen_by_recent_order", "orders_other_accounts"]
    assert note(result, "orders_other_accounts").params == {"count": 1}
    assert [o["id"] for o in result.orders] == ["o2"] and result.hidden_orders == []


def test_the_earliest_account_decides_when_nobody_ordered() -> None:
    older = customer("c-1", "berlin", created="2023-01-01T00:00:00.000Z")
    newer = customer("c-2", "london", created="2024-01-01T00:00:00.000Z")
    o1 = order("o1", "c-2", "berlin", "2025-01-01T00:00:00Z")
    found = {"e0": [newer, older], "eo": [o1], "el": [o1]}
    found_none = {"e0": [newer, older], "eo": [], "co": []}
    result = resolved(found_none, emails=[SHARED])
    assert result.customer == older and result.chosen_reason == "earliest_account"
    assert note(result, "chosen_by_earliest_account").params["stores"] == "london"
    # An order makes the difference: then it is the most recent order.
    assert resolved({**found, "co": []}, emails=[SHARED]).chosen_reason == "recent_order"


def test_only_accounts_sharing_the_address_are_counted_as_others() -> None:
    berlin, london = customer("c-berlin", "berlin"), customer("c-london", "london")
    work = customer("c-work")
    found = {
        "e0": [berlin, london],
        "e1": [work],
        "eo": [order("o1", "c-berlin", "berlin", "2025-05-01T00:00:00.000Z")],
        "el": [order("o1", "c-berlin", "berlin", "2025-05-01T00:00:00.000Z")],
    }
    result = resolved(found, store="berlin", emails=[SHARED, OTHER], brand_id=1)
    assert result.customer == berlin
    assert result.other_customers == [london]  # not the work address's account
    assert note(result, "chosen_by_store").params["count"] == 1
    assert note(result, "accounts_other_address").params == {"count": 1}


def test_a_single_account_needs_no_choice_note() -> None:
    anna = customer("c-anna", "berlin")
    o1 = order("o1", "c-anna", "berlin", "2025-05-01T00:00:00.000Z")
    found = {"e0": [anna], "eo": [o1], "el": [o1]}
    result = resolved(found, store="berlin", emails=["anna@example.com"], brand_id=1)
    assert result.chosen_reason == "only_account" and result.notes == []


def test_external_id_of_another_store_says_so() -> None:
    james = customer("c-james", "london")
    result = resolved({"xc": james, "xo": [], "xk": None}, store="berlin", external_id="c-james")
    assert result.customer == james and result.chosen_reason == "external_id"
    assert note(result, "other_store_external_id").params == {
        "stores": "london",
        "brand_store": "berlin",
    }
    # A customer of the brand's store, or one of all stores, needs no note.
    for fine in (customer("c-james", "berlin"), customer("c-james")):
        quiet = resolved({"xc": fine, "xo": []}, store="berlin", external_id="c-james")
        assert quiet.notes == []


def test_an_unmapped_brand_gets_a_note_only_when_stores_are_configured() -> None:
    found = {"xc": customer("c-1"), "xo": []}
    unmapped = resolved(found, store=None, external_id="c-1", brand_id=77)
    assert note(unmapped, "no_store_mapping").params == {"brand": 77}
    assert resolved(found, store=None, stores_configured=False, external_id="c-1").notes == []
    assert resolved(found, store="berlin", external_id="c-1", brand_id=77).notes == []


def test_orders_of_other_stores_are_hidden_but_listed_for_reveal() -> None:
    found = {
        "xc": customer("c-1"),
        "xo": [
            order("o-here", "c-1", "berlin", "2025-05-01T00:00:00.000Z"),
            order("o-ny", "c-1", "newyork", "2025-06-01T00:00:00.000Z"),
            order("o-uk", "c-1", "london", "2025-04-01T00:00:00.000Z"),
        ],
        # The newest order read in detail is the newest of the brand's store (inStore).
        "xl": [order("o-here", "c-1", "berlin", "2025-05-01T00:00:00.000Z")],
        "eo": [order("o-x", "c-someone-else", "berlin", "2025-03-01T00:00:00.000Z")],
    }
    result = resolved(found, store="berlin", external_id="c-1", emails=[SHARED], brand_id=1)
    assert [o["id"] for o in result.orders] == ["o-here"]
    assert [o["id"] for o in result.hidden_orders] == ["o-ny", "o-uk"]
    assert result.orders_elsewhere == 3
    assert note(result, "orders_hidden").params == {"count": 2}
    assert note(result, "orders_other_accounts").params == {"count": 1}


def test_a_revealed_order_is_shown_with_its_store_and_not_offered_again() -> None:
    revealed = order("o-ny", "c-1", "newyork", "2025-06-01T00:00:00.000Z", number="US-1")
    found = {
        "order": {**revealed, "customer": customer("c-1")},
        "xc": customer("c-1"),
        "xo": [revealed, order("o-here", "c-1", "berlin", "2025-05-01T00:00:00.000Z")],
    }
    result = resolved(
        found,
        store="berlin",
        external_id="c-1",
        order_id="0b7e4f5c-8a44-4d2e-9a55-2a3b7e1f0c11",
        brand_id=1,
    )
    assert result.order is not None and result.order["id"] == "o-ny"
    assert "customer" not in result.order and "customer" in found["order"]  # answer untouched
    assert result.chosen_reason == "order" and result.hidden_orders == []
    assert "orders_hidden" not in codes(result) and result.orders_elsewhere == 0
    assert note(result, "order_other_store").params == {
        "number": "US-1",
        "store": "newyork",
        "brand_store": "berlin",
    }


def test_a_missing_order_is_named() -> None:
    result = resolved({"order": None}, order_number="XX-1")
    assert note(result, "order_not_found").text == "No order XX-1 was found."


def test_orders_of_a_customer_found_by_email_are_always_read_by_id() -> None:
    anna = customer("c-anna", "berlin")
    guest = order("o-guest", None, "berlin", "2025-05-01T00:00:00.000Z")
    mine = order("o-anna", "c-anna", "berlin", "2025-06-01T00:00:00.000Z")
    context = TicketContext.parse({"emails": ["Anna@Example.com"]})
    # Whether or not some of her orders were found by address: others may carry a third
    # spelling, which only her id finds.
    for found in (
        {"e0": [anna], "eo": [guest], "ek": []},
        {"e0": [anna], "eo": [mine, guest], "el": [mine], "ek": []},
    ):
        _, more = resolve_answer(context, "berlin", found)
        assert more is not None
        assert [(r.key, r.root) for r in more] == [
            ("co", "orders"),
            ("cl", "orders"),
            ("ck", "customerActiveCart"),
        ]
        assert more[0].args[0].value == 'customerId = "c-anna"'
        assert more[2].store == "berlin"
        queries.compose(more)  # one valid document
        # Once they are read (for her): no further request.
        answered = {**found, "co": [mine], "cl": [mine], "ck": None}
        _, none = resolve_answer(context, "berlin", answered, owner="c-anna")
        assert none is None
        # Read for someone else (a stale hint): not hers, so read again for her.
        _, again = resolve_answer(context, "berlin", answered, owner="c-other")
        assert again is not None and again[0].args[0].value == 'customerId = "c-anna"'


def test_the_plan_reads_a_remembered_owners_orders_by_id_in_the_first_request() -> None:
    context = TicketContext.parse({"emails": ["Anna@Example.com"]})
    keys = [r.key for r in plan(context, ("internalNote",), "berlin")]
    assert not set(keys) & set(BY_ID)
    hinted = {r.key: r for r in plan(context, ("internalNote",), "berlin", owner="c-anna")}
    assert set(BY_ID) <= set(hinted)
    assert hinted["co"].args[0].value == 'customerId = "c-anna"'
    queries.compose(list(hinted.values()))  # still one valid document
    # A ticket naming an order or an external id has no hint to use.
    order_ticket = TicketContext.parse({"emails": ["a@x.com"], "order_number": "DE-1"})
    assert owner_key(order_ticket, "berlin") is None
    assert owner_key(context, "berlin") == (("anna@example.com",), "berlin")


def test_the_newest_cart_of_the_shopper_is_chosen() -> None:
    anna = customer("c-anna")
    old = {"id": "k-old", "customerId": "c-anna", "lastModifiedAt": "2025-01-01T00:00:00Z"}
    new = {"id": "k-new", "customerId": None, "lastModifiedAt": "2025-02-01T00:00:00Z"}
    foreign = {"id": "k-x", "customerId": "c-other", "lastModifiedAt": "2025-03-01T00:00:00Z"}
    result = resolved(
        {"xc": anna, "xo": [], "xk": old, "ek": [foreign, new]},
        external_id="c-anna",
        emails=["anna@example.com"],
    )
    assert result.cart == new


@pytest.mark.parametrize("store", [None, "berlin"])
def test_the_plan_reads_carts_in_the_brands_store(store: str | None) -> None:
    context = TicketContext.parse({"emails": ["a@example.com"], "external_id": "c-1"})
    reads = {r.key: r for r in plan(context, ("internalNote",), store)}
    assert reads["xk"].root == "customerActiveCart" and reads["xk"].store == store
    assert reads["ek"].root == "carts" and reads["ek"].store == store
    assert reads["eo"].store is None  # orders are filtered here, so hidden ones can be listed
    where = reads["ek"].args[0].value
    assert where == 'cartState = "Active" and customerEmail in ("a@example.com")'


# -- check-config: stores that no Zendesk brand maps to ---------------------------------------


STORES_TOML = """
[stores.berlin]
locale = "de-DE"
currency = "EUR"
{berlin}
[stores.london]
locale = "en-GB"
currency = "GBP"
{london}
"""


@pytest.mark.parametrize(
    ("berlin", "london", "expected"),
    [
        ("zendesk_brands = [1]", "zendesk_brands = [2]", []),
        ("zendesk_brands = [1]", "", ["store 'london' has no Zendesk brand"]),
        ("", "", ["stores are configured but no Zendesk brand is mapped to one"]),
    ],
)
def test_check_config_warns_when_brands_see_all_stores(
    clean_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    berlin: str,
    london: str,
    expected: list[str],
) -> None:
    config = tmp_path / "stores.toml"
    config.write_text(STORES_TOML.format(berlin=berlin, london=london))
    env = {
        "ct_project_key": "proj",
        "ct_client_id": "id",
        "ct_client_secret": "not-a-real-secret",
        "ct_region": "europe-west1.gcp",
        "config_file": str(config),
        **DemoZendesk.generate().settings(),
    }
    for name, value in env.items():
        monkeypatch.setenv(f"CC_{name.upper()}", str(value))
    warnings = store_mapping_warnings(load_settings(_env_file=None))
    assert [w.split(" (")[0].split(";")[0] for w in warnings] == expected
    assert all("orders and carts of all stores" in w for w in warnings)
    assert check_config() == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if "Zendesk brand" in line]
    assert shown == [f"warning: {w}" for w in warnings]
