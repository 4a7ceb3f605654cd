"""Settings: one-line named errors, secrets hidden, the mapping file validated, docs complete."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
        ({"unknown_knob": 1}, "invalid setting CC_UNKNOWN_KNOB: Extra inputs are not permitted"),
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


def test_check_config_command_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CC_CT_PROJECT_KEY": "proj"}
    result = subprocess.run(
        [sys.executable, "-m", "commerce_context", "check-config"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("commerce-context: invalid setting CC_CT_CLIENT_ID")


def test_check_config_command_succeeds_and_hides_secrets(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CC_CT_PROJECT_KEY": "proj",
        "CC_CT_CLIENT_ID": "id",
        "CC_CT_CLIENT_SECRET": "not-a-real-secret",
        "CC_CT_REGION": "europe-west1.gcp",
    }
    result = subprocess.run(
        [sys.executable, "-m", "commerce_context", "check-config"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
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
