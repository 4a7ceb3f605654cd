"""The fake Zendesk parent speaks the real ZAF SDK's protocol, end to end, in Chromium.

The probe app (static/zaf_probe.html, served cross-origin on a second loopback port) loads the
committed SDK bundle (static/vendor/zaf_sdk-2.0.37.js), so these tests also prove the bundle
exposes `ZAFClient` the way the CDN build does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from .conftest import FakeZendeskFactory

TICKET: dict[str, Any] = {
    "id": 4242,
    "subject": "Where is my order?",
    "requester": {
        "id": 7,
        "name": "Anna Schmidt",
        "email": "anna@example.com",
        "externalId": "ct-customer-1",
        "identities": [
            {"type": "email", "value": "anna@example.com", "primary": True},
            {"type": "twitter", "value": "@anna"},
            {"type": "email", "value": "anna.schmidt@example.org", "primary": False},
        ],
    },
    "brand": {"id": 1001, "name": "Shop Berlin"},
    "custom_fields": {"360000001": "DE-1003"},
}


async def probe_state(zd_frame: Any, until: str = "done") -> dict[str, Any]:
    await zd_frame.wait_for_function(f"() => window.probe && window.probe.{until}", timeout=10_000)
    state: dict[str, Any] = await zd_frame.evaluate("() => window.probe")
    return state


async def test_signed_url_form_post_and_handshake(
    page: Page, fake_zendesk: FakeZendeskFactory, app_server: str, zendesk_parent: str
) -> None:
    zd = await fake_zendesk(page, f"{app_server}/probe", "signed.jwt<&>", ticket=TICKET)

    # The form was POSTed into the iframe, token in the body, origin/app_guid in the query.
    assert await zd.frame.get_attribute("#app", "data-token") == "signed.jwt<&>"
    assert zd.frame.url.startswith(f"{app_server}/probe?")
    assert f"origin={zendesk_parent.replace(':', '%3A').replace('/', '%2F')}" in zd.frame.url
    assert f"app_guid={zd.app_guid}" in zd.frame.url
    # The SDK shook hands from the app's (cross-)origin, with its protocol version.
    assert zd.handshakes == [{"origin": app_server, "version": "2.0.37"}]
    assert zd.messages[0]["key"] == "iframe.handshake"
    assert zd.messages[0]["appGuid"] == zd.app_guid


async def test_get_invoke_on_round_trip(
    page: Page, fake_zendesk: FakeZendeskFactory, app_server: str, artifacts: Path
) -> None:
    zd = await fake_zendesk(page, f"{app_server}/probe", "t", ticket=TICKET, app_guid="guid-1")
    probe = await probe_state(zd.frame)
    assert probe["errors"] == []
    assert probe["initialised"] is True

    # app.registered delivered context and metadata; client.context()/metadata() read them.
    # (the init callback receives the whole message: {context, metadata})
    assert probe["registered"]["context"]["location"] == "ticket_sidebar"
    assert probe["registered"]["context"]["ticketId"] == 4242
    assert probe["results"]["context"]["instanceGuid"] == "guid-1"
    assert probe["results"]["metadata"]["settings"] == {"title": "commerce-context"}

    # client.get: a single path, then several at once (an unknown path reported under errors).
    assert probe["results"]["email"] == "anna@example.com"
    multi = probe["results"]["multi"]
    assert multi["ticket.id"] == 4242
    assert multi["ticket.requester"]["externalId"] == "ct-customer-1"
    assert multi["ticket.requester"]["identities"][2]["value"] == "anna.schmidt@example.org"
    assert multi["ticket.brand"] == {"id": 1001, "name": "Shop Berlin"}
    assert multi["ticket.customField:custom_field_360000001"] == "DE-1003"
    assert multi["errors"]["ticket.nope"]["name"] == "InvalidPath"
    # ... and a single unknown path rejects the promise, the SDK building the Error.
    assert probe["results"]["singleError"] == {
        "name": "InvalidPath",
        "message": '"ticket.nope" Could not find handler',
    }
    assert ["ticket.requester.email"] in zd.gets

    # client.invoke('resize'): recorded, answered, and applied to the iframe like Zendesk does.
    assert await zd.wait_for_resizes(1) == {"width": "100%", "height": "321px"}
    assert probe["results"]["resize"] == {"resize": None}
    assert (await zd.snapshot())["iframeHeight"] == 321

    # client.on: the SDK told the parent about its subscriptions (its own context.updated
    # included); events flow back in.
    assert zd.subscriptions == {
        "context.updated": 1,
        "ticket.saved": 1,
        "ticket.requester.email.changed": 1,
    }
    assert await zd.fire("ticket.saved", {"ticket": {"id": 4242}}) is True
    await zd.frame.wait_for_function("() => window.probe.events.length === 1")

    await zd.set_ticket(requester={**TICKET["requester"], "email": "new@example.com"})
    await zd.fire("ticket.requester.email.changed", "new@example.com")
    probe = await probe_state(zd.frame, "results.emailAfterChange")
    assert probe["events"] == [
        ["ticket.saved", {"ticket": {"id": 4242}}],
        ["ticket.requester.email.changed", "new@example.com"],
    ]
    assert probe["results"]["emailAfterChange"] == "new@example.com"

    # Only subscribed events are delivered, as in Zendesk.
    assert await zd.fire("ticket.status.changed", "solved", require_subscriber=False) is False

    await page.screenshot(path=str(artifacts / "zaf_protocol.png"))


async def test_new_ticket_without_requester(
    page: Page, fake_zendesk: FakeZendeskFactory, app_server: str
) -> None:
    zd = await fake_zendesk(page, f"{app_server}/probe", "t", ticket={"subject": "New ticket"})
    probe = await probe_state(zd.frame)
    assert probe["results"]["email"] is None
    multi = probe["results"]["multi"]
    assert multi["ticket.id"] is None
    assert multi["ticket.requester"] is None
    assert multi["ticket.customField:custom_field_360000001"] is None
    assert multi["ticket.brand"] is None
    assert list(multi["errors"]) == ["ticket.nope"]


async def test_sdk_refuses_to_start_without_origin_and_app_guid(
    page: Page, app_server: str
) -> None:
    await page.goto(f"{app_server}/probe")
    await page.wait_for_function("() => window.probe && window.probe.initialised === false")


async def test_wrong_origin_parameter_breaks_the_handshake(
    page: Page, fake_zendesk: FakeZendeskFactory, app_server: str
) -> None:
    """The SDK posts only to the `origin` it was given (and trusts only messages from there):
    a page that loses or alters `origin` never registers, and the fixture says so."""
    with pytest.raises(AssertionError, match="never completed the ZAF handshake"):
        await fake_zendesk(
            page,
            f"{app_server}/probe",
            "t",
            origin_param="https://example.zendesk.com",
            within=1.5,
        )
