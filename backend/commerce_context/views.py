"""What each panel needs from commercetools, declared as GraphQL selections.

A view names the type it reads (`Order`, `Customer`, `Cart`, `Store`) and the fields it needs,
written as a GraphQL selection set. `queries.py` merges the views a request needs into one
document, so adding a field to a panel is a one-line change here and never a new round trip.

Card data and payment-provider identifiers are never selected: `compose()` refuses any
document that names a field in `FORBIDDEN_FIELDS`, and a test checks every view against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from graphql import FieldNode, InlineFragmentNode, SelectionSetNode, parse
from graphql.language import OperationDefinitionNode

__all__ = [
    "CART",
    "CUSTOMER",
    "FORBIDDEN_FIELDS",
    "ORDER_CUSTOMER",
    "ORDER_DETAIL",
    "ORDER_SUMMARY",
    "PAYMENTS",
    "RETURNS",
    "SHIPMENTS",
    "STORE",
    "VERSION",
    "View",
    "order_custom_fields",
    "string_literal",
]

# Fields that carry payment tokens, card data or PSP identifiers. Never requested.
FORBIDDEN_FIELDS = frozenset(
    {
        "token",
        "interfaceId",
        "interactionId",
        "interfaceInteractionsRaw",
        "interfaceAccount",
        "authenticationMode",
        "password",
    }
)

MONEY = "centAmount currencyCode fractionDigits"
# BaseMoney fields may hold HighPrecisionMoney, whose fractionDigits belong to preciseAmount.
BASE_MONEY = f"type {MONEY} ... on HighPrecisionMoney {{ preciseAmount }}"


@dataclass(frozen=True)
class View:
    """A named selection of fields on one commercetools GraphQL type."""

    name: str
    on: str  # the GraphQL type the selection applies to; "*" for any entity
    fields: str  # a GraphQL selection set body, without the outer braces

    @cached_property
    def selection(self) -> SelectionSetNode:
        document = parse("{" + self.fields + "}", no_location=True)
        operation = document.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        return operation.selection_set

    def field_names(self) -> set[str]:
        """Every field name used anywhere in the selection (for policy checks)."""
        names: set[str] = set()
        stack = [self.selection]
        while stack:
            for node in stack.pop().selections:
                if isinstance(node, FieldNode):
                    names.add(node.name.value)
                if isinstance(node, FieldNode | InlineFragmentNode) and node.selection_set:
                    stack.append(node.selection_set)
        return names


# Every cached entity carries these, so the delta cache can compare versions.
VERSION = View("version", "*", "id version lastModifiedAt")

CUSTOMER = View(
    "customer",
    "Customer",
    """
    id version createdAt lastModifiedAt key customerNumber externalId
    email firstName lastName locale
    customerGroup { id key name }
    storesRef { key }
    addresses { id phone mobile city country }
    """,
)

ORDER_SUMMARY = View(
    "order_summary",
    "Order",
    f"""
    id version createdAt lastModifiedAt orderNumber
    customerId customerEmail locale
    orderState shipmentState paymentState
    storeRef {{ key }}
    totalPrice {{ {MONEY} }}
    """,
)

ORDER_DETAIL = View(
    "order_detail",
    "Order",
    f"""
    lineItems {{
      id quantity
      variant {{ sku }}
      nameAllLocales {{ locale value }}
      price {{ value {{ {BASE_MONEY} }} discounted {{ value {{ {BASE_MONEY} }} }} }}
      totalPrice {{ {MONEY} }}
      discountedPricePerQuantity {{
        quantity
        discountedPrice {{
          value {{ {BASE_MONEY} }}
          includedDiscounts {{ discountRef {{ id }} discountedAmount {{ {BASE_MONEY} }} }}
        }}
      }}
    }}
    customLineItems {{ id quantity nameAllLocales {{ locale value }} totalPrice {{ {MONEY} }} }}
    discountOnTotalPrice {{ discountedAmount {{ {BASE_MONEY} }} }}
    purchaseOrderNumber
    taxedPrice {{ totalNet {{ {MONEY} }} totalGross {{ {MONEY} }} }}
    shippingAddress {{
      firstName lastName streetName streetNumber postalCode city region country phone email
    }}
    """,
)

SHIPMENTS = View(
    "shipments",
    "Order",
    """
    shipmentState
    shippingInfo {
      shippingMethodName
      price { centAmount currencyCode fractionDigits }
      deliveries {
        id key createdAt
        items { id quantity }
        parcels { id key createdAt trackingData { trackingId carrier provider isReturn } }
      }
    }
    """,
)

PAYMENTS = View(
    "payments",
    "Order",
    f"""
    paymentState
    paymentInfo {{
      payments {{
        id version createdAt
        amountPlanned {{ {MONEY} }}
        paymentMethodInfo {{ paymentInterface method nameAllLocales {{ locale value }} }}
        paymentStatus {{ interfaceCode interfaceText }}
        transactions {{ id timestamp type state amount {{ {MONEY} }} }}
      }}
    }}
    """,
)

RETURNS = View(
    "returns",
    "Order",
    """
    returnInfo {
      returnTrackingId returnDate
      items {
        id quantity type comment shipmentState paymentState createdAt
        ... on LineItemReturnItem { lineItemId }
      }
    }
    """,
)

# The customer behind an order, read through the order in the same request.
ORDER_CUSTOMER = View("order_customer", "Order", "customer {" + CUSTOMER.fields + "}")

CART = View(
    "cart",
    "Cart",
    f"""
    id version createdAt lastModifiedAt cartState customerId anonymousId
    locale country storeRef {{ key }}
    totalLineItemQuantity
    totalPrice {{ {MONEY} }}
    lineItems {{ id quantity variant {{ sku }} nameAllLocales {{ locale value }}
                totalPrice {{ {MONEY} }} }}
    """,
)

STORE = View(
    "store",
    "Store",
    "id version key nameAllLocales { locale value } languages countries { code }",
)


def order_custom_fields(names: tuple[str, ...]) -> View:
    """The order's custom fields, limited to the configured names."""
    if not names:
        return View("order_custom_fields", "Order", "custom { typeRef { id } }")
    quoted = ", ".join(string_literal(name) for name in names)
    return View(
        "order_custom_fields",
        "Order",
        f"custom {{ customFieldsRaw(includeNames: [{quoted}]) {{ name value }} }}",
    )


def string_literal(value: str) -> str:
    """A double-quoted string literal, spelt alike in GraphQL and in commercetools predicates.

    The one quoting function: config and request values pass through it, so a stray quote
    cannot change the document or the predicate."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
