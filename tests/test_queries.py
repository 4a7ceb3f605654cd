"""Every document the client can compose is valid against the official schema."""

from __future__ import annotations

import itertools

import pytest
from graphql import parse, print_ast

from commerce_context import queries, views
from commerce_context.exceptions import ConfigError
from commerce_context.views import View
from tests.schema import assert_valid_document

ORDER_VIEWS = [
    views.VERSION,
    views.ORDER_SUMMARY,
    views.ORDER_DETAIL,
    views.SHIPMENTS,
    views.PAYMENTS,
    views.RETURNS,
    views.order_custom_fields(("supportStatus", "internalNote")),
    views.order_custom_fields(()),
    views.ORDER_CUSTOMER,
]
CUSTOMER_VIEWS = [views.VERSION, views.CUSTOMER]
CART_VIEWS = [views.VERSION, views.CART]


def every_read(store: str | None) -> list[queries.Read]:
    o = [v for v in ORDER_VIEWS if v.name != "order_custom_fields"] + [ORDER_VIEWS[6]]
    return [
        queries.order_by_number("DE-1001", o, store=store, key="a"),
        queries.order_by_id("id-1", o, store=store, key="b"),
        queries.orders_by_ids(["id-1", "id-2"], [views.VERSION], store=store, key="c"),
        queries.orders_with_payment("pay-1", [views.VERSION], key="p"),
        queries.customer_by_id("cust-1", CUSTOMER_VIEWS, store=store, key="d"),
        queries.customers_by_email("Anna@Example.com", CUSTOMER_VIEWS, store=store, key="e"),
        queries.customer_orders("cust-1", [views.ORDER_SUMMARY], store=store, key="f"),
        queries.guest_orders("Guest@Example.com", [views.ORDER_SUMMARY], store=store, key="g"),
        queries.active_cart("cust-1", CART_VIEWS, store=store, key="h"),
        queries.orders_by_email(["A@x.com", "b@y.org"], o, store=store, key="i"),
        queries.active_carts_by_email(["A@x.com", "b@y.org"], CART_VIEWS, store=store, key="j"),
    ]


@pytest.mark.parametrize("store", [None, "berlin"])
def test_each_read_alone_is_valid(store: str | None) -> None:
    for read in every_read(store):
        assert_valid_document(queries.compose([read]).query)


def test_stores_read_is_valid() -> None:
    assert_valid_document(queries.compose([queries.stores([views.STORE])]).query)


@pytest.mark.parametrize("store", [None, "london"])
def test_all_reads_in_one_document_are_valid(store: str | None) -> None:
    document = queries.compose([*every_read(store), queries.stores([views.STORE], key="s")])
    assert_valid_document(document.query)
    # One variable per argument, and the values never appear in the document text.
    assert "Anna@Example.com" not in document.query
    assert document.variables["e_where"] == 'lowercaseEmail = "anna@example.com"'


def test_every_combination_of_order_views_is_valid() -> None:
    for size in (1, 2, 3):
        for combo in itertools.combinations(ORDER_VIEWS[:-1], size):
            assert_valid_document(queries.compose([queries.order_by_number("1", combo)]).query)


def test_views_never_select_payment_tokens_or_card_data() -> None:
    every_view = [*ORDER_VIEWS, *CUSTOMER_VIEWS, *CART_VIEWS, views.STORE]
    for view in every_view:
        assert not view.field_names() & views.FORBIDDEN_FIELDS, view.name
    document = queries.compose([*every_read(None), queries.stores([views.STORE], key="s")])
    selected = _field_names(document.query)
    assert not selected & views.FORBIDDEN_FIELDS


def test_compose_refuses_a_view_that_selects_a_payment_token() -> None:
    sneaky = View(
        "sneaky", "Order", "paymentInfo { payments { paymentMethodInfo { token { value } } } }"
    )
    with pytest.raises(ConfigError, match="forbidden"):
        queries.compose([queries.order_by_number("1", [sneaky])])


def test_views_are_merged_field_by_field() -> None:
    document = queries.compose(
        [queries.order_by_number("1", [views.ORDER_SUMMARY, views.PAYMENTS])]
    )
    # paymentState is in both views; it must appear once.
    assert document.query.count("paymentState") == 1
    assert "transactions" in document.query and "orderNumber" in document.query


def test_conflicting_arguments_are_refused() -> None:
    a = views.order_custom_fields(("a",))
    b = views.order_custom_fields(("b",))
    with pytest.raises(ConfigError, match="arguments"):
        queries.compose([queries.order_by_number("1", [a, b])])


def test_a_view_of_another_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="reads Customer, not Order"):
        queries.compose([queries.order_by_number("1", [views.CUSTOMER])])


def test_duplicate_keys_and_bad_keys_are_refused() -> None:
    read = queries.order_by_number("1", [views.ORDER_SUMMARY])
    with pytest.raises(ConfigError, match="duplicate"):
        queries.compose([read, read])
    with pytest.raises(ConfigError, match="not a GraphQL name"):
        queries.compose([queries.order_by_number("1", [views.ORDER_SUMMARY], key="bad-key")])


def test_orders_by_ids_needs_ids() -> None:
    with pytest.raises(ConfigError, match="at least one id"):
        queries.orders_by_ids([], [views.VERSION])


def test_predicate_values_are_escaped() -> None:
    read = queries.customers_by_email('x"or true or"@example.com', [views.CUSTOMER])
    where = queries.compose([read]).variables["customers_where"]
    assert where == 'lowercaseEmail = "x\\"or true or\\"@example.com"'


def test_guest_orders_match_both_spellings_of_the_email() -> None:
    read = queries.guest_orders(" Guest@Example.com ", [views.ORDER_SUMMARY])
    where = queries.compose([read]).variables["guest_orders_where"]
    assert where == (
        'customerEmail in ("Guest@Example.com", "guest@example.com") and customerId is not defined'
    )


def test_active_carts_by_email_match_both_spellings_newest_first() -> None:
    read = queries.active_carts_by_email([" Anna@Example.com ", "b@y.org"], [views.CART])
    variables = queries.compose([read]).variables
    assert variables["email_carts_where"] == (
        'cartState = "Active" and customerEmail in '
        '("Anna@Example.com", "anna@example.com", "b@y.org")'
    )
    assert variables["email_carts_sort"] == ["lastModifiedAt desc"]
    assert variables["email_carts_limit"] == 1
    with pytest.raises(ConfigError, match="at least one address"):
        queries.active_carts_by_email([], [views.CART])


def test_every_read_a_ticket_view_plans_is_valid() -> None:
    from commerce_context.resolution import TicketContext, follow_up, plan

    context = TicketContext.parse(
        {"emails": ["a@x.com", "B@y.org"], "external_id": "c-1", "order_number": "DE-1"}
    )
    for store in (None, "berlin"):
        for ticket in (context, context.model_copy(update={"order_number": None})):
            reads = plan(ticket, ("supportStatus",), store)
            assert_valid_document(queries.compose(reads).query)
        for detail, cart in ((True, True), (False, False)):
            more = follow_up("c-1", ("supportStatus",), store, detail=detail, cart=cart)
            assert_valid_document(queries.compose(more).query)


def test_document_text_is_built_once_per_shape() -> None:
    first = queries.compose([queries.order_by_number("1", [views.ORDER_SUMMARY])])
    second = queries.compose([queries.order_by_number("2", [views.ORDER_SUMMARY])])
    assert first.query is second.query
    assert first.variables != second.variables


def test_extract_unwraps_store_scope_and_pages() -> None:
    document = queries.compose(
        [
            queries.order_by_number("1", [views.ORDER_SUMMARY], store="berlin", key="o"),
            queries.customer_orders("c", [views.ORDER_SUMMARY], key="l"),
            queries.customers_by_email("a@example.com", [views.CUSTOMER], store="berlin", key="m"),
        ]
    )
    data = {
        "o": {"order": {"id": "1"}},
        "l": {"results": [{"id": "2"}]},
        "m": None,
    }
    assert document.extract(data) == {"o": {"id": "1"}, "l": [{"id": "2"}], "m": []}


def _field_names(query: str) -> set[str]:
    names: set[str] = set()
    text = print_ast(parse(query))
    for token in text.replace("{", " ").replace("}", " ").split():
        if token.isidentifier():
            names.add(token)
    return names
