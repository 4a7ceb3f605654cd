"""Settings: named errors (every one at once), warnings, secrets hidden, the mapping file
validated, docs complete; the demo's port."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from commerce_context.cli import demo_address
from commerce_context.exceptions import ConfigError
from commerce_context.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("clean_environment")
BASE: dict[str, Any] = {
    "ct_project_key": "proj",
    "ct_client_id": "client-id",
    "ct_client_secret": "not-a-real-secret",
    "ct_region": "europe-west1.gcp",
}


def load(**overrides: Any) -> Settings:
    return load_settings(**{**BASE, **overrides})


def test_defaults_derive_hosts_and_scopes_from_region() -> None:
    settings = load()
    assert settings.api_url == "https://api.europe-west1.gcp.commercetools.com"
    assert settings.auth_url == "https://auth.europe-west1.gcp.commercetools.com"
    assert settings.mc_url == "https://mc.europe-west1.gcp.commercetools.com"
    assert settings.scopes.split() == [
        "view_orders:proj",
        "view_customers:proj",
        "view_payments:proj",
        "view_stores:proj",
    ]


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC_CT_PROJECT_KEY", "from-env")
    monkeypatch.setenv("CC_CT_CLIENT_ID", "id")
    monkeypatch.setenv("CC_CT_CLIENT_SECRET", "not-a-real-secret")
    monkeypatch.setenv("CC_CT_REGION", "us-east-2.aws")
    monkeypatch.setenv("CC_CT_TIMEOUT", "2.5")
    settings = load_settings()
    assert settings.ct_project_key == "from-env"
    assert settings.ct_timeout == 2.5
    assert settings.api_url == "https://api.us-east-2.aws.commercetools.com"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "CC_CT_PROJECT_KEY=dotenv\nCC_CT_CLIENT_ID=id\nCC_CT_CLIENT_SECRET=not-a-real-secret\n"
        "CC_CT_REGION=europe-west1.gcp\n"
    )
    assert load_settings().ct_project_key == "dotenv"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ct_client_id": None}, "invalid setting CC_CT_CLIENT_ID: "),
        ({"ct_region": "mars-1"}, "invalid setting CC_CT_REGION: 'mars-1' is not one of"),
        ({"ct_timeout": -1}, "invalid setting CC_CT_TIMEOUT: Input should be greater than 0"),
        (
            {"ct_api_url": "ftp://x"},
            "invalid setting CC_CT_API_URL: 'ftp://x' is not an http(s) URL",
        ),
        ({"ct_region": None}, "set CC_CT_REGION, or both CC_CT_API_URL and CC_CT_AUTH_URL"),
        ({"ct_backoff_base": 10, "ct_backoff_max": 1}, "CC_CT_BACKOFF_BASE must not exceed"),
        ({"unknown_knob": 1}, "invalid setting CC_UNKNOWN_KNOB: not a setting"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_the_setting(
    overrides: dict[str, Any], expected: str
) -> None:
    values = {k: v for k, v in {**BASE, **overrides}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_settings(**values)
    message = caught.value.message
    assert expected in message
    assert "\n" not in message
    assert "not-a-real-secret" not in message


def test_secrets_never_appear_in_repr_or_dump() -> None:
    settings = load()
    assert "not-a-real-secret" not in repr(settings)
    assert "not-a-real-secret" not in str(settings.model_dump())
    assert settings.ct_client_secret.get_secret_value() == "not-a-real-secret"


MAPPINGS = """
order_custom_fields = ["supportStatus", "rmaStatus"]

[stores.berlin]
locale = "de-DE"
currency = "EUR"
zendesk_brands = [101]
tidio_widgets = ["pk-berlin"]

[stores.london]
locale = "en-GB"
currency = "GBP"
zendesk_brands = [102]

[field_policy]
"customer.email" = "mask"
"order.shippingAddress" = "exclude"
"""


def test_mapping_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "commerce-context.toml"
    path.write_text(MAPPINGS)
    mappings = load(config_file=path).mappings
    assert mappings.stores["berlin"].currency == "EUR"
    assert mappings.store_for_brand(102) == "london"
    assert mappings.store_for_brand(999) is None
    assert mappings.field_policy["customer.email"] == "mask"
    assert mappings.order_custom_fields == ("supportStatus", "rmaStatus")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MAPPINGS.replace("zendesk_brands = [102]", "zendesk_brands = [101]"),
            "Zendesk brand 101 is mapped to both stores 'berlin' and 'london'",
        ),
        (
            MAPPINGS.replace('currency = "GBP"', 'currency = "pounds"'),
            "[stores.london.currency]: 'pounds' is not an ISO 4217 code",
        ),
        (
            MAPPINGS.replace('locale = "en-GB"', 'locale = "xx-QQ"'),
            "[stores.london.locale]: 'xx-QQ' is not a known locale",
        ),
        (
            MAPPINGS.replace('= "exclude"', '= "hide"'),
            "[field_policy.order.shippingAddress]: Input should be 'show', 'mask' or 'exclude'",
        ),
        (MAPPINGS + "\n[surprise]\n", "[surprise]: Extra inputs are not permitted"),
        ("stores = [", "is not valid TOML"),
    ],
)
def test_contradictory_or_malformed_mappings_fail_with_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(config_file=path)
    assert expected in caught.value.message
    assert "CC_CONFIG_FILE" in caught.value.message
    assert "\n" not in caught.value.message


def test_missing_mapping_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CC_CONFIG_FILE .*missing\.toml does not exist"):
        load(config_file=tmp_path / "missing.toml")


def check_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`commerce-context check-config` in a clean environment (only PATH and `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "commerce_context", "check-config"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_lists_every_problem_at_once(tmp_path: Path) -> None:
    result = check_config(
        tmp_path,
        CC_CT_PROJET_KEY="proj",  # a typo: so CC_CT_PROJECT_KEY is missing
        CC_CT_TIMEOUT="soon",
        CC_CT_REGION="mars-1",
        CC_ZENDESK_SUBDOMAIN="acme.zendesk.com",
        CC_CT_CLIENT_SECRET="not-a-real-secret",
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "commerce-context: 5 configuration errors:"
    assert lines[1:3] == [
        "error: CC_CT_PROJECT_KEY: required, but not set",
        "error: CC_CT_CLIENT_ID: required, but not set",
    ]
    assert lines[3].startswith("error: CC_CT_REGION: 'mars-1' is not one of ")
    assert lines[4].startswith("error: CC_CT_TIMEOUT: Input should be a valid number")
    assert lines[5].startswith("error: CC_ZENDESK_SUBDOMAIN: 'acme.zendesk.com' is not a Zendesk")
    assert lines[6:] == [
        "warning: CC_CT_PROJET_KEY is set but is not a setting, so it is ignored "
        "(did you mean CC_CT_PROJECT_KEY?)"
    ]
    assert "not-a-real-secret" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_several_problems_make_one_error_listing_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ct_project_key="proj", ct_client_secret="not-a-real-secret", ct_timeout=-1)
    assert caught.value.message.splitlines() == [
        "invalid settings (2 problems):",
        "  CC_CT_CLIENT_ID: required, but not set",
        "  CC_CT_TIMEOUT: Input should be greater than 0",
    ]


def test_an_unknown_key_in_dotenv_is_named_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "CC_CT_PROJECT_KEY=p\nCC_CT_CLIENT_ID=id\nCC_CT_CLIENT_SECRET=not-a-real-secret\n"
        "CC_CT_REGION=europe-west1.gcp\nCC_CT_TIMOUT=3\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.message == (
        "invalid setting CC_CT_TIMOUT: not a setting (did you mean CC_CT_TIMEOUT?)"
    )


def test_a_rule_over_several_settings_is_reported_once_each_is_valid(tmp_path: Path) -> None:
    # CC_CT_REGION vs CC_CT_API_URL/CC_CT_AUTH_URL is checked once the other settings pass.
    result = check_config(
        tmp_path, CC_CT_PROJECT_KEY="p", CC_CT_CLIENT_ID="id", CC_CT_CLIENT_SECRET="s"
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "commerce-context: 1 configuration errors:",
        "error: set CC_CT_REGION, or both CC_CT_API_URL and CC_CT_AUTH_URL",
    ]


def test_check_config_warns_but_passes(tmp_path: Path) -> None:
    result = check_config(
        tmp_path,
        CC_CT_PROJECT_KEY="proj",
        CC_CT_CLIENT_ID="id",
        CC_CT_CLIENT_SECRET="not-a-real-secret",
        CC_CT_REGION="europe-west1.gcp",
        CC_CHACHE_BACKEND="redis",
        CC_SOMETHING_ELSE="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration OK (3 warnings)\n")
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: CC_CHACHE_BACKEND is set but is not a setting, so it is ignored "
        "(did you mean CC_CACHE_BACKEND?)",
        "warning: CC_SOMETHING_ELSE is set but is not a setting, so it is ignored",
        "warning: the Zendesk sidebar is not configured, so /zendesk/sidebar answers 404: set "
        "CC_ZENDESK_SUBDOMAIN, CC_ZENDESK_INSTALLATION_ID, CC_ZENDESK_APP_ID (or "
        "CC_ZENDESK_PUBLIC_KEY) and CC_SESSION_SECRET (see docs/configuration.md)",
    ]
    assert result.stderr == ""


def test_check_config_has_no_sidebar_warning_when_zendesk_is_configured(tmp_path: Path) -> None:
    result = check_config(
        tmp_path,
        CC_CT_PROJECT_KEY="proj",
        CC_CT_CLIENT_ID="id",
        CC_CT_CLIENT_SECRET="not-a-real-secret",
        CC_CT_REGION="europe-west1.gcp",
        CC_ZENDESK_SUBDOMAIN="acme",
        CC_ZENDESK_INSTALLATION_ID="7",
        CC_ZENDESK_APP_ID="1",
        CC_SESSION_SECRET="s" * 40,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration OK\n")
    assert "warning:" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("port", "environ", "expected"),
    [
        (None, {}, ("127.0.0.1", 8000)),
        (None, {"CC_PORT": "8001"}, ("127.0.0.1", 8001)),
        (None, {"CC_PORT": " 8002 ", "CC_HOST": "0.0.0.0"}, ("0.0.0.0", 8002)),
        (9000, {"CC_PORT": "8001"}, ("127.0.0.1", 9000)),  # --port wins
    ],
)
def test_demo_port_comes_from_the_option_then_cc_port(
    port: int | None, environ: dict[str, str], expected: tuple[str, int]
) -> None:
    assert demo_address(None, port, environ) == expected


@pytest.mark.parametrize("value", ["eighty", "0", "70000", "-1"])
def test_a_bad_demo_port_is_a_readable_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid setting CC_PORT: .* is not a port number"):
        demo_address(None, None, {"CC_PORT": value})


def test_make_run_passes_port_to_the_demo() -> None:
    make = shutil.which("make")
    assert make is not None, "make is not installed"
    for args, expected in (
        (["PORT=8001"], " demo --port 8001"),
        ([], " demo"),
    ):
        result = subprocess.run(
            [make, "-n", "-W", "pyproject.toml", "run", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        demo = [line for line in result.stdout.splitlines() if "commerce-context demo" in line]
        assert demo and demo[-1].rstrip().endswith(expected), result.stdout


def test_the_demo_listens_on_cc_port(tmp_path: Path) -> None:
    """The real command: `commerce-context demo` with CC_PORT set answers on that port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "demo.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "commerce_context", "demo"],
            env={"PATH": os.environ["PATH"], "CC_PORT": str(port)},
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        status = None
        for _ in range(600):  # up to a minute: the emulator is seeded first
            if process.poll() is not None:
                break
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200, log.read_text()
        assert f"open http://127.0.0.1:{port}/" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_check_config_command_succeeds_and_hides_secrets(tmp_path: Path) -> None:
    result = check_config(
        tmp_path,
        CC_CT_PROJECT_KEY="proj",
        CC_CT_CLIENT_ID="id",
        CC_CT_CLIENT_SECRET="not-a-real-secret",
        CC_CT_REGION="europe-west1.gcp",
    )
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert "not-a-real-secret" not in result.stdout


def test_every_setting_is_documented() -> None:
    documented = (ROOT / "docs/configuration.md").read_text()
    headings = set(re.findall(r"^### `(CC_[A-Z0-9_]+)`", documented, re.M))
    fields = {f"CC_{name.upper()}" for name in Settings.model_fields if name != "mappings"}
    assert fields - headings == set(), "settings missing from docs/configuration.md"
    assert headings - fields == set(), "docs/configuration.md documents unknown settings"


def test_every_mapping_key_is_documented() -> None:
    from commerce_context.settings import Mappings, StoreScope

    documented = (ROOT / "docs/configuration.md").read_text()
    for name in [*Mappings.model_fields, *StoreScope.model_fields]:
        assert f"`{name}`" in documented, name
