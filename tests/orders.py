"""Fresh orders for write-path tests, created through the emulator's REST API (every payload
checked against the official OpenAPI schema), so no test changes the seeded demo data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from commerce_context.emulator.harness import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Harness
from commerce_context.emulator.seed import CUSTOM_TYPE_KEY
from tests.openapi import assert_valid

# (sku, quantity, unit price in cents), all seeded products.
LINES = (("TSHIRT-ORG-M", 2, 2500), ("CAP-NAVY", 1, 1900))


@dataclass
class Api:
    """Plain REST calls to the emulator (as a merchant's other systems would make them)."""

    http: httpx.AsyncClient
    harness: Harness
    _token: str | None = None

    @property
    def base(self) -> str:
        return f"{self.harness.api_url}/{self.harness.project_key}"

    async def headers(self) -> dict[str, str]:
        if self._token is None:
            response = await self.http.post(
                f"{self.harness.auth_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    async def get(self, path: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.base}{path}", headers=await self.headers())
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def post(self, component: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert_valid(component, payload)
        response = await self.http.post(
            f"{self.base}{path}", json=payload, headers=await self.headers()
        )
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    async def order(self, order_id: str) -> dict[str, Any]:
        return await self.get(f"/orders/{order_id}")

    async def payment(self, payment_id: str) -> dict[str, Any]:
        return await self.get(f"/payments/{payment_id}")

    async def delete_order(self, order_id: str) -> None:
        order = await self.order(order_id)
        response = await self.http.delete(
            f"{self.base}/orders/{order_id}",
            params={"version": order["version"]},
            headers=await self.headers(),
        )
        response.raise_for_status()

    async def create_order(
        self,
        *,
        custom: dict[str, str] | None = None,
        order_state: str = "Open",
        shipment_state: str | None = None,
        charged: bool = True,
        email: str | None = None,
    ) -> dict[str, Any]:
        """A guest order in the berlin store (EUR) with two line items and, when `charged`, a
        payment with a successful Charge of the total. `custom`: the order custom type's fields
        (None: no custom type at all)."""
        number = f"T-{uuid.uuid4().hex[:10].upper()}"
        total = sum(q * cents for _, q, cents in LINES)
        draft: dict[str, Any] = {
            "orderNumber": number,
            "customerEmail": email or f"{number.lower()}@example.org",
            "store": {"typeId": "store", "key": "berlin"},
            "country": "DE",
            "lineItems": [
                {
                    "name": {"en-GB": sku},
                    "variant": {"sku": sku},
                    "price": {"value": _eur(cents), "country": "DE"},
                    "quantity": quantity,
                }
                for sku, quantity, cents in LINES
            ],
            "totalPrice": _eur(total),
            "orderState": order_state,
            "paymentState": "Paid" if charged else "Pending",
        }
        if custom is not None:
            draft["custom"] = {
                "type": {"typeId": "type", "key": CUSTOM_TYPE_KEY},
                "fields": custom,
            }
        order = await self.post("OrderImportDraft", "/orders/import", draft)
        actions: list[dict[str, Any]] = []
        if shipment_state is not None:
            actions.append({"action": "changeShipmentState", "shipmentState": shipment_state})
        if charged:
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            payment = await self.post(
                "PaymentDraft",
                "/payments",
                {
                    "amountPlanned": _eur(total),
                    "paymentMethodInfo": {"paymentInterface": "adyen", "method": "CREDIT_CARD"},
                    "transactions": [
                        {"type": "Charge", "amount": _eur(total), "state": "Success",
                         "timestamp": now},
                    ],
                },
            )  # fmt: skip
            actions.append({"action": "addPayment", "payment": {"typeId": "payment",
                                                                "id": payment["id"]}})  # fmt: skip
        if actions:
            order = await self.post(
                "OrderUpdate",
                f"/orders/{order['id']}",
                {"version": order["version"], "actions": actions},
            )
        return order


def _eur(cents: int) -> dict[str, Any]:
    return {"currencyCode": "EUR", "centAmount": cents}


def custom_fields(order: dict[str, Any]) -> dict[str, Any]:
    return dict((order.get("custom") or {}).get("fields") or {})
