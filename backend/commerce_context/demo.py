"""The embedded demo's landing page: live data from the emulator, read the way panels read it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from . import queries, views
from .commercetools import CommercetoolsClient
from .exceptions import NotFound

__all__ = ["index"]


async def index(request: Request) -> Response:
    emails = request.state.demo_emails
    if not emails:
        raise NotFound("This instance runs without the demo. See README.md for the panels.")
    client: CommercetoolsClient = request.state.commercetools
    # One upstream request for the whole first screen, composed from the views it shows.
    reads = [queries.stores([views.STORE])]
    for index, email in enumerate(emails):
        reads.append(queries.customers_by_email(email, [views.CUSTOMER], key=f"c{index}"))
        reads.append(queries.guest_orders(email, [views.ORDER_SUMMARY], key=f"g{index}"))
    found = await client.fetch(queries.compose(reads, "DemoIndex"))
    shoppers = [
        {"email": email, "customers": found[f"c{i}"], "guest_orders": found[f"g{i}"]}
        for i, email in enumerate(emails)
    ]
    context = {"stores": found["stores"], "shoppers": shoppers}
    response: Response = request.state.templates.TemplateResponse(request, "demo.html", context)
    return response
