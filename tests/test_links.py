"""Signed links (links.py): the token format, tampering, expiry, key rotation (several keys
verify, the first signs), kinds, bindings, revocation on SQLite and PostgreSQL, the settings
that configure them, and the `commerce-context links` commands."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from commerce_context.cli import main
from commerce_context.database import Database
from commerce_context.exceptions import ConfigError, Gone, Unauthorized
from commerce_context.links import (
    Binding,
    Link,
    LinkKeys,
    Revocations,
    order_url,
    panel_url,
    parse_keys,
)
from tests.engine import Clock, clock, database, location, settings

__all__ = ["clock", "database", "location"]

OLD = ("k2025", b"o" * 32)
NEW = ("k2026", b"n" * 40)
CUSTOMER = "6a1b1f0e-2d3c-4b5a-8f9e-0a1b2c3d4e5f"
ORDER = "0f1e2d3c-4b5a-4968-8776-655443322110"


def keys(*pairs: tuple[str, bytes], clock: Clock) -> LinkKeys:
    return LinkKeys(list(pairs), clock=clock)


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    value: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return value


def test_a_link_verifies_and_carries_its_binding(clock: Clock) -> None:
    signer = keys(NEW, clock=clock)
    binding = Binding("panel", customer_id=CUSTOMER, cart_id="cart-1", store="berlin")
    token = signer.sign(binding, ttl=600)
    link = signer.verify(token, kind="panel")
    assert link.binding == binding
    assert link.kid == "k2026"
    assert link.expires_at - link.issued_at == 600
    assert token.startswith("k2026.")
    # Two links for the same binding are different links (each can be revoked alone).
    other = signer.verify(signer.sign(binding, ttl=600), kind="panel")
    assert other.link_id != link.link_id


@pytest.mark.parametrize("part", [0, 1, 2])
def test_tampering_with_any_part_is_refused(clock: Clock, part: int) -> None:
    signer = keys(NEW, clock=clock)
    token = signer.sign(Binding("panel", customer_id=CUSTOMER), ttl=600)
    pieces = token.split(".")
    if part == 1:
        # Another customer's id in an otherwise intact payload.
        claims = _claims(token)
        claims["c"] = "ffffffff-2d3c-4b5a-8f9e-0a1b2c3d4e5f"
        raw = json.dumps(claims, separators=(",", ":")).encode()
        pieces[1] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    elif part == 2:
        pieces[2] = pieces[2][:-2] + ("AA" if pieces[2][-2:] != "AA" else "BB")
    else:
        pieces[0] = "k2025"  # a key id we do not know
    with pytest.raises(Unauthorized):
        signer.verify(".".join(pieces), kind="panel")


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c.d", "k2026..", "k2026.!!!.???", "x" * 5000, "k2026.e30.e30"]
)
def test_malformed_tokens_are_unauthorized_never_an_error(clock: Clock, token: str) -> None:
    with pytest.raises(Unauthorized):
        keys(NEW, clock=clock).verify(token, kind="panel")


def test_expired_links_are_gone(clock: Clock) -> None:
    signer = keys(NEW, clock=clock)
    token = signer.sign(Binding("order", order_id=ORDER), ttl=60)
    clock.advance(59)
    assert signer.verify(token, kind="order").binding.order_id == ORDER
    clock.advance(1)
    with pytest.raises(Gone):
        signer.verify(token, kind="order")


def test_rotation_old_links_keep_working_until_their_key_is_removed(clock: Clock) -> None:
    before = keys(OLD, clock=clock)
    old_link = before.sign(Binding("panel", anonymous_id="anon-1"), ttl=3600)
    rotated = keys(NEW, OLD, clock=clock)  # the new key first: it signs; both verify
    assert rotated.verify(old_link, kind="panel").kid == "k2025"
    new_link = rotated.sign(Binding("panel", anonymous_id="anon-1"), ttl=3600)
    assert new_link.startswith("k2026.")
    with pytest.raises(Unauthorized):
        before.verify(new_link, kind="panel")  # the old instance does not know the new key
    retired = keys(NEW, clock=clock)
    assert retired.verify(new_link, kind="panel").kid == "k2026"
    with pytest.raises(Unauthorized):
        retired.verify(old_link, kind="panel")


def test_a_link_opens_only_where_its_kind_belongs(clock: Clock) -> None:
    signer = keys(NEW, clock=clock)
    visitor = signer.sign(Binding("visitor", customer_id=CUSTOMER), ttl=600)
    with pytest.raises(Unauthorized):
        signer.verify(visitor, kind="panel")  # a visitor token is not a panel link
    order = signer.sign(Binding("order", order_id=ORDER), ttl=600)
    with pytest.raises(Unauthorized):
        signer.verify(order, kind="panel")
    assert signer.verify(order, kind=("panel", "order")).binding.kind == "order"


def test_a_binding_must_name_something_and_only_ids() -> None:
    with pytest.raises(ValueError, match="bound"):
        Binding("panel")
    with pytest.raises(ValueError, match="not an id"):
        Binding("panel", customer_id='x" or true')
    with pytest.raises(ValueError, match="kind"):
        Binding("admin", customer_id=CUSTOMER)  # type: ignore[arg-type]


def test_urls_carry_only_the_token() -> None:
    url = panel_url("https://cc.example.com/", "k.p.m")
    assert url == "https://cc.example.com/tidio/panel?t=k.p.m"
    assert parse_qs(urlsplit(order_url("https://cc.example.com", "k.p.m")).query) == {
        "t": ["k.p.m"]
    }


def test_parse_keys_names_problems_without_secrets() -> None:
    assert parse_keys("a:" + "x" * 32 + ", b:" + "y" * 33) == [("a", b"x" * 32), ("b", b"y" * 33)]
    with pytest.raises(ValueError, match="pair 2") as short:
        parse_keys("a:" + "x" * 32 + ",nocolon")
    assert "x" * 32 not in str(short.value)
    with pytest.raises(ValueError, match="at least 32") as weak:
        parse_keys("a:tooshort-secret")
    assert "tooshort" not in str(weak.value)
    with pytest.raises(ValueError, match="twice"):
        parse_keys("a:" + "x" * 32 + ",a:" + "y" * 32)


def test_settings_validate_the_keys_and_hide_them() -> None:
    configured = settings(link_keys="k1:" + "s" * 32)
    assert "s" * 32 not in repr(configured)
    assert LinkKeys.from_settings(configured) is not None
    assert LinkKeys.from_settings(settings()) is None
    with pytest.raises(ConfigError, match="CC_LINK_KEYS"):
        settings(link_keys="k1:short")


async def test_revoked_links_are_gone_until_they_expire(database: Database, clock: Clock) -> None:
    signer = keys(NEW, clock=clock)
    revocations = Revocations(database, clock=clock)
    first = signer.verify(
        signer.sign(Binding("panel", customer_id=CUSTOMER), ttl=100), kind="panel"
    )
    second = signer.verify(
        signer.sign(Binding("panel", customer_id=CUSTOMER), ttl=100), kind="panel"
    )
    await revocations.check(first)
    await revocations.revoke(first)
    await revocations.revoke(first)  # twice is once
    with pytest.raises(Gone, match="revoked"):
        await revocations.check(first)
    await revocations.check(second)  # the other link to the same shopper still works
    clock.advance(101)
    assert await revocations.purge() == 1  # expired: refused as expired from now on
    rows = await database.fetchall("SELECT link_id FROM revoked_links")
    assert rows == []


def test_cli_prints_an_order_link_and_revokes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "CC_CT_PROJECT_KEY": "links-test",
        "CC_CT_CLIENT_ID": "client",
        "CC_CT_CLIENT_SECRET": "secret",
        "CC_CT_API_URL": "http://127.0.0.1:9",
        "CC_CT_AUTH_URL": "http://127.0.0.1:9",
        "CC_STATE_PATH": str(tmp_path / "state.sqlite3"),
        "CC_LINK_KEYS": "cli:" + "c" * 32,
        "CC_PUBLIC_URL": "https://cc.example.com",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert main(["links", "order", ORDER, "--ttl", "3600"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("https://cc.example.com/links/order?t=cli.")
    token = parse_qs(urlsplit(url).query)["t"][0]
    link = LinkKeys([("cli", b"c" * 32)]).verify(token, kind="order")
    assert link.binding.order_id == ORDER
    assert link.expires_at - link.issued_at == 3600
    assert main(["links", "revoke", url]) == 0
    assert link.link_id in capsys.readouterr().out
    assert asyncio.run(_revoked(tmp_path / "state.sqlite3", link)) is True
    assert main(["links", "revoke", "cli.not.signed"]) == 2
    assert "not a link signed by this service" in capsys.readouterr().err
    assert main(["links", "order", 'x" or 1']) == 2


async def _revoked(path: Path, link: Link) -> bool:
    db = Database.from_url(f"sqlite:///{path}")
    await db.open()
    try:
        await Revocations(db).check(link)
    except Gone:
        return True
    finally:
        await db.close()
    return False
