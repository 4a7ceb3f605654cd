"""The baseline: the same ticket view the panels show, done the plain REST way, with no cache.

The customer by email, then that customer's orders, newest first, with their payments expanded
(the payments panel). Full resources come back: REST has no field selection.
"""

from __future__ import annotations

from typing import Any

import httpx

RECENT_ORDERS = 10


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def rest_ticket_view(
    http: httpx.AsyncClient, api_url: str, project_key: str, token: str, email: str
) -> dict[str, Any]:
    """Customer and recent orders (payments included) for a requester email."""
    base = f"{api_url}/{project_key}"
    headers = {"Authorization": f"Bearer {token}"}
    response = await http.get(
        f"{base}/customers",
        params={"where": f"lowercaseEmail={_quoted(email.lower())}"},
        headers=headers,
    )
    response.raise_for_status()
    customers = response.json()["results"]
    if not customers:
        return {"customer": None, "orders": []}
    ids = ", ".join(_quoted(c["id"]) for c in customers)
    response = await http.get(
        f"{base}/orders",
        params={
            "where": f"customerId in ({ids})",
            "sort": "createdAt desc",
            "limit": str(RECENT_ORDERS),
            "expand": "paymentInfo.payments[*]",
        },
        headers=headers,
    )
    response.raise_for_status()
    return {"customer": customers[0], "orders": response.json()["results"]}
