"""The one typed settings object.

Values come from, in order: keyword arguments (tests, the demo), environment variables prefixed
`CC_`, a `.env` file, then the defaults below. Mappings that are data rather than deployment
knobs (stores, the field policy) live in a TOML file named by `CC_CONFIG_FILE`.

`load_settings()` turns any validation failure into one `ConfigError` line naming the setting,
which the CLI prints before exiting. Secrets are `SecretStr`, so reprs and logs show `**********`.
Every field is documented in docs/configuration.md; a test fails when one is not.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from babel import Locale, UnknownLocaleError
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .exceptions import ConfigError
from .scrub import pattern_problem

__all__ = [
    "Mappings",
    "Settings",
    "StoreScope",
    "check_settings",
    "load_settings",
    "setting_hint",
    "setting_names",
]

REGIONS = (
    "us-central1.gcp",
    "us-east-2.aws",
    "europe-west1.gcp",
    "eu-central-1.aws",
    "australia-southeast1.gcp",
)
ENV_PREFIX = "CC_"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_SUBDOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MIN_HMAC_KEY_BYTES = 32
_MIN_RSA_KEY_BITS = 2048
# Requests per destination the job engine allows itself (CC_RATE_LIMITS adds or overrides).
DEFAULT_RATE_LIMITS = {
    "commercetools": "20/s",
    "zendesk": "400/min",
    "zendesk:tickets": "100/min",
    "zendesk:users": "60/min",
    "tidio": "54/min",  # Tidio Plus allows 60 a minute: a tenth below (benchmarks, t3)
}
# Zendesk settings that mean nothing without the account they belong to.
_ZENDESK_NEED_SUBDOMAIN = (
    "zendesk_app_id",
    "zendesk_installation_id",
    "zendesk_public_key",
    "zendesk_key_url",
    "zendesk_shared_secret",
)

Treatment = Literal["show", "mask", "exclude"]


class StoreScope(BaseModel):
    """One commercetools store and the helpdesk channels that map to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    locale: str = Field(description="Locale used for money and dates, e.g. de-DE")
    currency: str = Field(description="ISO 4217 currency code, e.g. EUR")
    zendesk_brands: tuple[int, ...] = Field(default=(), description="Zendesk brand ids")
    tidio_widgets: tuple[str, ...] = Field(default=(), description="Tidio public keys")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError(f"{value!r} is not an ISO 4217 code such as EUR")
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        try:
            Locale.parse(value, sep="-")
        except (ValueError, UnknownLocaleError):
            raise ValueError(f"{value!r} is not a known locale such as en-GB") from None
        return value


Direction = Literal["to_commercetools", "to_zendesk", "both", "off"]
ActionName = Literal[
    "set_support_status", "set_internal_note", "cancel_order", "request_refund", "create_return"
]
OrderState = Literal["Open", "Confirmed", "Complete", "Cancelled"]


class FieldWriteback(BaseModel):
    """One order custom field that Zendesk ticket changes may write ([writebacks.fields.X])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zendesk_field_id: int | None = Field(default=None, gt=0, description="ticket field id")
    direction: Direction = "to_commercetools"
    values: dict[str, str] = Field(
        default_factory=dict, description="Zendesk value -> commercetools value"
    )
    allowed: tuple[str, ...] = Field(default=(), description="commercetools values accepted")
    max_length: int = Field(default=2000, ge=1, le=100_000)

    @property
    def writes_commercetools(self) -> bool:
        return self.direction in ("to_commercetools", "both")

    def translate(self, value: str) -> str | None:
        """The commercetools value for a Zendesk value; None when the mapping refuses it."""
        value = value.strip()
        if self.values:
            mapped = self.values.get(value)
            if mapped is None:
                return None
            value = mapped
        if self.allowed and value not in self.allowed:
            return None
        if len(value) > self.max_length:
            return None
        return value


class Writebacks(BaseModel):
    """[writebacks]: which ticket fields reach which order custom fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    custom_type_key: str = Field(
        default="commerce-context-order",
        min_length=1,
        description="order custom type set when an order has none",
    )
    fields: dict[str, FieldWriteback] = Field(default_factory=dict)

    def by_zendesk_field(self, field_id: int) -> tuple[str, FieldWriteback] | None:
        for name, spec in self.fields.items():
            if spec.zendesk_field_id == field_id:
                return name, spec
        return None

    @model_validator(mode="after")
    def _unique_ticket_fields(self) -> Writebacks:
        seen: dict[int, str] = {}
        for name, spec in self.fields.items():
            if spec.zendesk_field_id is None:
                continue
            if spec.zendesk_field_id in seen:
                raise ValueError(
                    f"ticket field {spec.zendesk_field_id} is mapped to both "
                    f"{seen[spec.zendesk_field_id]!r} and {name!r}"
                )
            seen[spec.zendesk_field_id] = name
        return self


class Actions(BaseModel):
    """[actions]: what agents may do from the sidebar."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: tuple[ActionName, ...] = ()
    roles: dict[ActionName, tuple[str, ...]] = Field(
        default_factory=dict, description="Zendesk roles allowed per action; absent = any agent"
    )
    cancel_states: tuple[OrderState, ...] = ("Open", "Confirmed")
    support_status_field: str = "supportStatus"
    internal_note_field: str = "internalNote"


class CustomField(BaseModel):
    """One order custom field the panel shows ([order_custom_fields.<name>])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str | dict[str, str] = Field(
        description='"Support status", or per language: {en = "...", de = "..."}'
    )
    treatment: Treatment = "show"

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict):
            if not value:
                raise ValueError("a label needs at least one language")
            return {locale.lower().replace("_", "-"): text for locale, text in value.items()}
        return value

    def label_for(self, locale: str | None = None) -> str:
        """The label for `locale`: exact, then its language, then English, then any."""
        if isinstance(self.label, str):
            return self.label
        tag = (locale or "en").lower().replace("_", "-")
        for key in (tag, tag.split("-")[0], "en"):
            if key in self.label:
                return self.label[key]
        for key, text in self.label.items():  # "en-gb" when only English variants exist
            if key.split("-")[0] == tag.split("-")[0]:
                return text
        return next(iter(self.label.values()))


# Labels of the demo's custom fields, for the list format (`order_custom_fields = [...]`).
_KNOWN_LABELS = {
    "supportStatus": "Support status",
    "internalNote": "Internal note",
    "rmaStatus": "RMA status",
    "warehouse": "Warehouse",
    "marketplaceSource": "Marketplace",
}
DEFAULT_CUSTOM_FIELDS = {
    "supportStatus": CustomField(label={"en": "Support status", "de": "Support-Status"}),
    "internalNote": CustomField(label={"en": "Internal note", "de": "Interne Notiz"}),
    "rmaStatus": CustomField(label={"en": "RMA status", "de": "RMA-Status"}),
}


class Scrub(BaseModel):
    """Extra patterns the scrubber masks in every value read from commercetools ([scrub])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patterns: tuple[str, ...] = Field(default=(), description="regular expressions to mask")

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            problem = pattern_problem(pattern)
            if problem:
                raise ValueError(f"pattern {pattern!r} {problem}")
        return value


UserFieldSource = Literal[
    "store",
    "customer_group",
    "locale",
    "customer_number",
    "company",
    "order_count",
    "total_spent",
]
TicketFieldSource = Literal[
    "order_number",
    "order_state",
    "shipment_state",
    "payment_state",
    "store",
    "channel",
    "currency",
    "locale",
    "market",
]
_FIELD_KEY = re.compile(r"^[a-z0-9_]{1,64}$")


class ZendeskSync(BaseModel):
    """[zendesk_sync]: customers to Zendesk users, order state to ticket fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: bool = Field(default=False, description="sync customers to Zendesk users")
    orders: bool = Field(default=False, description="write order state to ticket fields")
    user_fields: dict[str, UserFieldSource] = Field(
        default_factory=dict, description="Zendesk user field key -> what it holds"
    )
    other_ids_field: str | None = Field(
        default=None, description="user field keeping the other customer ids of a shared email"
    )
    organizations: bool = Field(default=True, description="company name -> organization")
    ticket_fields: dict[TicketFieldSource, int] = Field(
        default_factory=dict, description="what -> Zendesk ticket field id"
    )
    update_solved: bool = Field(default=False, description="also update solved tickets")
    job_poll_interval: float = Field(default=1.0, gt=0, le=60)
    job_poll_timeout: float = Field(default=30.0, gt=0, le=600)
    failed_retries: int = Field(default=3, ge=0, le=10)
    batch_window: float = Field(default=2.0, ge=0, le=300)

    @field_validator("user_fields")
    @classmethod
    def _user_field_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _FIELD_KEY.match(key):
                raise ValueError(f"{key!r} is not a Zendesk user field key (a-z, 0-9, _)")
        return value

    @field_validator("other_ids_field")
    @classmethod
    def _other_ids_field(cls, value: str | None) -> str | None:
        if value is not None and not _FIELD_KEY.match(value):
            raise ValueError(f"{value!r} is not a Zendesk user field key (a-z, 0-9, _)")
        return value

    @field_validator("ticket_fields")
    @classmethod
    def _ticket_field_ids(cls, value: dict[str, int]) -> dict[str, int]:
        if any(field_id <= 0 for field_id in value.values()):
            raise ValueError("ticket field ids are positive integers")
        if len(set(value.values())) != len(value):
            raise ValueError("one ticket field is mapped twice")
        return value


class Mappings(BaseModel):
    """The TOML config file: store scoping and the field policy."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    stores: dict[str, StoreScope] = Field(default_factory=dict)
    field_policy: dict[str, Treatment] = Field(default_factory=dict)
    # The TOML key is `order_custom_fields` (a table, or a list of names); the property of
    # that name is the tuple of names to request.
    custom_fields: dict[str, CustomField] = Field(
        default_factory=lambda: dict(DEFAULT_CUSTOM_FIELDS), alias="order_custom_fields"
    )
    scrub: Scrub = Field(default_factory=lambda: Scrub())

    tracking_urls: dict[str, str] = Field(default_factory=dict)
    writebacks: Writebacks = Field(default_factory=Writebacks)
    actions: Actions = Field(default_factory=Actions)
    zendesk_sync: ZendeskSync = Field(default_factory=ZendeskSync)

    @field_validator("tracking_urls")
    @classmethod
    def _tracking_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for carrier, template in value.items():
            if "{tracking_id}" not in template or not template.startswith("https://"):
                raise ValueError(
                    f"tracking URL for {carrier!r} must be an https URL containing {{tracking_id}}"
                )
        # Carriers are matched without regard to case: "DHL" in data, "dhl" in config.
        return {carrier.strip().lower(): template for carrier, template in value.items()}

    @model_validator(mode="after")
    def _no_channel_in_two_stores(self) -> Mappings:
        channels = (("zendesk_brands", "Zendesk brand"), ("tidio_widgets", "Tidio widget"))
        for attribute, label in channels:
            owner: dict[object, str] = {}
            for key, scope in self.stores.items():
                for channel in getattr(scope, attribute):
                    if channel in owner:
                        raise ValueError(
                            f"{label} {channel} is mapped to both stores "
                            f"{owner[channel]!r} and {key!r}"
                        )
                    owner[channel] = key
        return self

    @field_validator("custom_fields", mode="before")
    @classmethod
    def _custom_fields(cls, value: object) -> object:
        # The earlier format, a list of names: each is shown, with its known label.
        if isinstance(value, list | tuple):
            return {str(name): {"label": _KNOWN_LABELS.get(str(name), str(name))} for name in value}
        return value

    @cached_property  # read on every ticket view; the model is frozen
    def order_custom_fields(self) -> tuple[str, ...]:
        """The order custom fields to request: every configured one that is not excluded."""
        return tuple(n for n, f in self.custom_fields.items() if f.treatment != "exclude")

    def custom_field_label(self, name: str, locale: str | None = None) -> str:
        """The configured label of custom field `name` in `locale` (e.g. `de` or `de-DE`)."""
        field = self.custom_fields.get(name)
        return field.label_for(locale) if field is not None else name

    def store_for_brand(self, brand_id: int | None) -> str | None:
        for key, scope in self.stores.items():
            if brand_id is not None and brand_id in scope.zendesk_brands:
                return key
        return None


class Settings(BaseSettings):
    """Deployment settings. See docs/configuration.md for each one."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
    )

    # -- commercetools --------------------------------------------------------------------------
    ct_project_key: str = Field(min_length=1, description="commercetools project key")
    ct_client_id: str = Field(min_length=1, description="API client id")
    ct_client_secret: SecretStr = Field(description="API client secret")
    ct_region: str | None = Field(default=None, description="e.g. europe-west1.gcp")
    ct_api_url: str | None = Field(default=None, description="overrides the region's API host")
    ct_auth_url: str | None = Field(default=None, description="overrides the region's auth host")
    ct_scopes: str | None = Field(default=None, description="space-separated OAuth scopes")
    ct_timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per call")
    ct_max_retries: int = Field(default=3, ge=0, le=10, description="retries of transient errors")
    ct_backoff_base: float = Field(default=0.2, gt=0, le=30, description="first backoff, seconds")
    ct_backoff_max: float = Field(default=5.0, gt=0, le=300, description="backoff ceiling, seconds")
    ct_conflict_retries: int = Field(default=3, ge=0, le=10, description="409 retries per update")
    ct_token_refresh_margin: float = Field(
        default=300.0, ge=0, description="refresh the token this many seconds before it expires"
    )
    merchant_center_url: str | None = Field(
        default=None, description="Merchant Center base URL, derived from the region"
    )

    # -- service --------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="address uvicorn binds")
    port: int = Field(default=8000, ge=0, le=65535, description="port uvicorn binds")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # -- production server and observability (cli.serve, metrics.py, logs.py) -------------------
    log_format: Literal["json", "plain"] = Field(
        default="json", description="json lines (production) or plain text (development)"
    )
    web_concurrency: int = Field(default=1, ge=1, le=64, description="server processes (serve)")
    shutdown_timeout: float = Field(
        default=30.0, ge=0, le=3600, description="seconds in-flight requests get at shutdown"
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="proxies whose X-Forwarded-For/-Proto are trusted"
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token of GET /metrics; unset: no /metrics route"
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve /metrics on this port, without a token"
    )
    config_file: Path | None = Field(default=None, description="TOML file with the mappings")
    public_url: str | None = Field(default=None, description="URL agents reach this service at")

    # -- Zendesk -------------------------------------------------------------------------------
    zendesk_subdomain: str | None = Field(
        default=None, description="the account's subdomain (acme for acme.zendesk.com)"
    )
    zendesk_app_id: int | None = Field(default=None, gt=0, description="the Zendesk app's id")
    zendesk_installation_id: int | None = Field(
        default=None, gt=0, description="the app installation's id (the signed-URL audience)"
    )
    zendesk_public_key: str | None = Field(
        default=None, description="the app's RSA public key (PEM); fetched when not set"
    )
    zendesk_key_url: str | None = Field(
        default=None, description="overrides the URL the app's public key is fetched from"
    )
    zendesk_shared_secret: SecretStr | None = Field(
        default=None, description="secure setting that signs ZAF secure-request JWTs"
    )
    zendesk_jwt_leeway: float = Field(
        default=30.0, ge=0, le=300, description="clock skew allowed on Zendesk JWTs, seconds"
    )
    zendesk_token_max_age: float = Field(
        default=300.0, ge=30, le=3600, description="longest lifetime accepted (exp - iat)"
    )
    session_secret: SecretStr | None = Field(
        default=None, description="key that signs the sidebar's own session tokens"
    )
    session_ttl: int = Field(default=900, ge=30, le=86400, description="session lifetime, seconds")
    # -- cache and upstream protection -----------------------------------------------------------
    cache_backend: Literal["memory", "redis"] = Field(
        default="memory", description="memory (one instance) or redis (several)"
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis for the cache")
    cache_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024 * 1024, description="in-process cache size bound"
    )
    cache_ttl_order: float = Field(default=30, ge=0, description="order freshness, seconds")
    cache_ttl_customer: float = Field(default=60, ge=0, description="customer freshness")
    cache_ttl_cart: float = Field(default=10, ge=0, description="cart freshness, seconds")
    cache_ttl_lists: float = Field(default=30, ge=0, description="read-result freshness")
    cache_stale_ttl: float = Field(
        default=86400, gt=0, description="how long entries are kept for outage serving"
    )
    breaker_threshold: int = Field(default=5, ge=1, description="failures that open the circuit")
    breaker_cooldown: float = Field(default=30, gt=0, description="seconds the circuit stays open")
    view_budget: float = Field(
        default=3.0, gt=0, le=60, description="seconds a ticket view waits for commercetools"
    )
    lookups_per_session: int = Field(
        default=30, ge=1, description="panels lookups per sidebar session per minute"
    )
    lookups_per_agent: int = Field(
        default=60, ge=1, description="panels lookups per Zendesk agent per minute"
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="largest request body"
    )
    body_timeout: float = Field(
        default=10.0, gt=0, le=300, description="seconds to wait for each piece of a body"
    )
    events_secret: SecretStr | None = Field(
        default=None, description="shared secret of the commercetools events endpoint"
    )
    messages_poll_interval: float = Field(
        default=0, ge=0, description="seconds between Messages API polls; 0 disables"
    )
    messages_overlap: float = Field(
        default=60, ge=0, description="seconds re-read by each poll to catch late messages"
    )
    state_path: Path = Field(
        default=Path("commerce-context.sqlite3"), description="SQLite file for durable state"
    )

    zendesk_order_field_id: int | None = Field(
        default=None, gt=0, description="ticket custom field holding an order number"
    )
    # -- Zendesk webhooks (writebacks) ------------------------------------------------------------
    zendesk_webhook_secret: SecretStr | None = Field(
        default=None, description="signing secret of the Zendesk webhook; unset disables it"
    )
    zendesk_webhook_replay_window: float = Field(
        default=300.0, ge=1, le=86400, description="webhook timestamps older or newer are refused"
    )
    zendesk_frame_ancestors: tuple[str, ...] = Field(
        default=(), description="origins allowed to frame the sidebar besides the account's"
    )
    # -- Zendesk API (outbound sync) ----------------------------------------------------------
    zendesk_api_email: str | None = Field(
        default=None, description="agent email the API token belongs to"
    )
    zendesk_api_token: SecretStr | None = Field(default=None, description="Zendesk API token")
    zendesk_oauth_token: SecretStr | None = Field(
        default=None, description="OAuth access token (instead of an API token)"
    )
    zendesk_api_url: str | None = Field(
        default=None, description="overrides https://{subdomain}.zendesk.com (the fake, a proxy)"
    )
    zendesk_timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per call")
    zendesk_fallback_backoff: float = Field(
        default=60.0, gt=0, le=3600, description="wait after a 429 without Retry-After, seconds"
    )

    # -- sync engine (jobs, audit, admin) --------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="sqlite:///path or postgresql://user@host/db; default: SQLite at STATE_PATH",
    )
    database_schema: str | None = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema"
    )
    worker_in_process: bool = Field(default=True, description="run the workers inside serve")
    worker_concurrency: int = Field(default=4, ge=1, le=64, description="jobs run at once")
    jobs_max_attempts: int = Field(default=10, ge=1, le=100, description="attempts before dead")
    jobs_lease: float = Field(default=60.0, ge=0.5, le=3600, description="lease, seconds")
    jobs_backoff_base: float = Field(default=1.0, gt=0, le=3600, description="first retry delay")
    jobs_backoff_max: float = Field(default=600.0, gt=0, le=86400, description="retry ceiling")
    jobs_poll_interval: float = Field(default=1.0, gt=0, le=60, description="idle poll, seconds")
    rate_limits: dict[str, str] = Field(
        default_factory=dict, description="per-destination limits over the defaults, e.g. 20/s"
    )
    audit_retention_days: int = Field(default=90, ge=1, le=3650, description="audit kept, days")
    admin_token: SecretStr | None = Field(
        default=None, description="credential of the admin page and API; unset disables them"
    )

    # -- signed links and Tidio (links.py, tidio.py) ----------------------------------------------
    link_keys: SecretStr | None = Field(
        default=None, description="kid:secret pairs, comma-separated; the first signs, all verify"
    )
    link_ttl: int = Field(
        default=259200, ge=60, le=90 * 86400, description="lifetime of signed links, seconds"
    )
    tidio_identity_secret: SecretStr | None = Field(
        default=None, description="key of the opaque distinct_id given to Tidio"
    )
    tidio_storefront_api_key: SecretStr | None = Field(
        default=None, description="the storefront server's key for POST /tidio/identify"
    )
    tidio_allowed_origins: tuple[str, ...] = Field(
        default=(), description="storefront origins whose pages may call POST /tidio/identify"
    )
    tidio_identify_per_ip: int = Field(
        default=120, ge=1, le=100000, description="identify calls by shoppers per address a minute"
    )
    tidio_webhook_secrets: SecretStr | None = Field(
        default=None, description="Tidio webhook signing secrets, comma-separated"
    )
    tidio_webhook_tolerance: float = Field(
        default=300.0, ge=10, le=86400, description="webhook timestamps older are refused"
    )
    tidio_lyro_token: SecretStr | None = Field(
        default=None, description="bearer token the Lyro order-status action sends"
    )
    tidio_lyro_per_visitor: int = Field(
        default=5, ge=1, le=1000, description="Lyro order lookups per visitor per window"
    )
    tidio_lyro_per_ip: int = Field(
        default=60, ge=1, le=100000, description="Lyro order lookups per client address"
    )
    tidio_lyro_window: float = Field(
        default=600.0, ge=10, le=86400, description="the Lyro rate-limit window, seconds"
    )
    # -- Tidio OpenAPI (outbound contact properties: tidio_api.py, tidio_sync.py) ------------
    tidio_client_id: str | None = Field(
        default=None, pattern=r"^ci_[A-Za-z0-9_-]{1,200}$", description="OpenAPI client id (ci_…)"
    )
    tidio_client_secret: SecretStr | None = Field(
        default=None, description="OpenAPI client secret (cs_…)"
    )
    tidio_api_url: str | None = Field(
        default=None, description="overrides https://api.tidio.com (the fake, a proxy)"
    )
    tidio_timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per call")
    tidio_fallback_backoff: float = Field(
        default=60.0, gt=0, le=3600, description="pause after a 429 without Retry-After, seconds"
    )
    tidio_batch_window: float = Field(
        default=5.0, ge=0, le=3600, description="seconds changes wait to share a batch"
    )
    tidio_cart_idle: float = Field(
        default=3600.0, ge=60, le=30 * 86400, description="idle seconds before a cart is abandoned"
    )
    tidio_cart_lines: bool = Field(
        default=False, description="also send the cart's line items (cart_lines property)"
    )

    # Loaded from config_file, never from the environment.
    mappings: Mappings = Field(default_factory=Mappings, exclude=True)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(
            r"^(sqlite:///.+|postgres(ql)?://)", value.get_secret_value()
        ):
            raise ValueError("must be sqlite:///path/to/file.sqlite3 or postgresql://...")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        from .jobs import parse_rate

        for destination, text in value.items():
            try:
                parse_rate(text)
            except ValueError as exc:
                raise ValueError(f"{destination}: {exc}") from None
        return {**DEFAULT_RATE_LIMITS, **value}

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < _MIN_HMAC_KEY_BYTES:
            raise ValueError(f"must be at least {_MIN_HMAC_KEY_BYTES} characters long")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < _MIN_HMAC_KEY_BYTES:
            raise ValueError(f"must be at least {_MIN_HMAC_KEY_BYTES} characters long")
        return value

    @model_validator(mode="after")
    def _metrics_port(self) -> Settings:
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError(
                f"{ENV_PREFIX}METRICS_PORT must differ from {ENV_PREFIX}PORT (both are {self.port})"
            )
        return self

    @model_validator(mode="after")
    def _engine(self) -> Settings:
        if not self.rate_limits:  # the defaults when nothing was configured
            object.__setattr__(self, "rate_limits", dict(DEFAULT_RATE_LIMITS))
        if self.jobs_backoff_base > self.jobs_backoff_max:
            raise ValueError(
                f"{ENV_PREFIX}JOBS_BACKOFF_BASE must not exceed {ENV_PREFIX}JOBS_BACKOFF_MAX"
            )
        return self

    @property
    def database_location(self) -> str:
        """The job database's URL: CC_DATABASE_URL, else the SQLite file at CC_STATE_PATH."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.state_path}"

    @field_validator("ct_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and value not in REGIONS:
            raise ValueError(f"{value!r} is not one of {', '.join(REGIONS)}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not re.match(r"^rediss?://", value):
            raise ValueError(f"{value!r} is not a redis:// or rediss:// URL")
        return value

    @field_validator("events_secret")
    @classmethod
    def _events_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 24:
            raise ValueError("must be at least 24 characters")
        return value

    @field_validator(
        "ct_api_url", "ct_auth_url", "merchant_center_url", "public_url", "zendesk_api_url"
    )
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("zendesk_subdomain")
    @classmethod
    def _zendesk_subdomain(cls, value: str | None) -> str | None:
        if value is not None and not _SUBDOMAIN.match(value):
            raise ValueError(
                f"{value!r} is not a Zendesk subdomain: give only the first label, such as acme "
                "for acme.zendesk.com"
            )
        return value.lower() if value else value

    @field_validator("zendesk_public_key")
    @classmethod
    def _zendesk_public_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # An environment variable cannot easily hold newlines; accept them written as \n.
        pem = value.replace("\\n", "\n").strip()
        problem = _rsa_public_key_problem(pem)
        if problem:
            raise ValueError(problem)
        return pem + "\n"

    @field_validator("zendesk_key_url")
    @classmethod
    def _zendesk_key_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+/", value):
            raise ValueError(f"{value!r} is not an http(s) URL of the public key")
        return value

    @field_validator("link_keys")
    @classmethod
    def _link_keys(cls, value: SecretStr | None) -> SecretStr | None:
        from .links import parse_keys

        if value is not None:
            parse_keys(value.get_secret_value())  # ValueError names the bad pair, never a secret
        return value

    @field_validator("tidio_identity_secret", "tidio_storefront_api_key", "tidio_lyro_token")
    @classmethod
    def _tidio_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Ours to generate (docs/tidio.md says how): long enough not to be guessed.
        if value is not None and len(value.get_secret_value().encode()) < _MIN_HMAC_KEY_BYTES:
            raise ValueError(f"must be at least {_MIN_HMAC_KEY_BYTES} bytes long")
        return value

    @field_validator("tidio_client_secret")
    @classmethod
    def _tidio_client_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("cs_"):
            raise ValueError("must be the OpenAPI client secret Tidio shows, starting with cs_")
        return value

    @field_validator("tidio_api_url")
    @classmethod
    def _tidio_api_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _tidio_api(self) -> Settings:
        if (self.tidio_client_id is None) != (self.tidio_client_secret is None):
            raise ValueError(
                f"set both {ENV_PREFIX}TIDIO_CLIENT_ID and {ENV_PREFIX}TIDIO_CLIENT_SECRET, "
                "or neither"
            )
        return self

    @field_validator("tidio_webhook_secrets")
    @classmethod
    def _tidio_webhook_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        # Tidio generates these; several (comma-separated) while one is being rotated.
        if value is not None and not all(p.strip() for p in value.get_secret_value().split(",")):
            raise ValueError("must be one or more secrets separated by commas, none empty")
        return value

    @field_validator("zendesk_shared_secret", "session_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # RFC 7518 3.2: an HS256 key must be at least as long as the hash (32 bytes).
        if value is not None and len(value.get_secret_value().encode()) < _MIN_HMAC_KEY_BYTES:
            raise ValueError(
                f"must be at least {_MIN_HMAC_KEY_BYTES} bytes long (HS256 needs a 256-bit key)"
            )
        return value

    @model_validator(mode="after")
    def _zendesk(self) -> Settings:
        p = ENV_PREFIX
        if self.zendesk_subdomain is None:
            for name in _ZENDESK_NEED_SUBDOMAIN:
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{p}{name.upper()} is set but {p}ZENDESK_SUBDOMAIN is not; set both"
                    )
            return self
        required = [
            ("zendesk_installation_id", ""),
            ("zendesk_app_id", f" unless {p}ZENDESK_PUBLIC_KEY is set"),
            ("session_secret", ""),
        ]
        for name, condition in required:
            if name == "zendesk_app_id" and self.zendesk_public_key is not None:
                continue
            if getattr(self, name) is None:
                raise ValueError(
                    f"{p}ZENDESK_SUBDOMAIN is set, so {p}{name.upper()} is required{condition}"
                )
        shared, session = self.zendesk_shared_secret, self.session_secret
        if shared is not None and session is not None and shared == session:
            # Browser code chooses the claims Zendesk signs with the shared secret: with one key
            # for both, an agent could mint themselves a session.
            raise ValueError(f"{p}SESSION_SECRET must differ from {p}ZENDESK_SHARED_SECRET")
        return self

    @model_validator(mode="after")
    def _zendesk_api(self) -> Settings:
        p = ENV_PREFIX
        if (self.zendesk_api_email is None) != (self.zendesk_api_token is None):
            raise ValueError(f"set both {p}ZENDESK_API_EMAIL and {p}ZENDESK_API_TOKEN, or neither")
        if self.zendesk_api_token is not None and self.zendesk_oauth_token is not None:
            raise ValueError(
                f"set {p}ZENDESK_API_TOKEN or {p}ZENDESK_OAUTH_TOKEN, not both (one credential)"
            )
        has_credential = self.zendesk_api_token is not None or self.zendesk_oauth_token is not None
        if has_credential and self.zendesk_subdomain is None and self.zendesk_api_url is None:
            raise ValueError(
                f"Zendesk API credentials are set but neither {p}ZENDESK_SUBDOMAIN nor "
                f"{p}ZENDESK_API_URL says which account to call"
            )
        return self

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        if self.ct_region is None and not (self.ct_api_url and self.ct_auth_url):
            raise ValueError(
                f"set {ENV_PREFIX}CT_REGION, or both {ENV_PREFIX}CT_API_URL and "
                f"{ENV_PREFIX}CT_AUTH_URL",
            )
        if self.ct_backoff_base > self.ct_backoff_max:
            raise ValueError(
                f"{ENV_PREFIX}CT_BACKOFF_BASE must not exceed {ENV_PREFIX}CT_BACKOFF_MAX"
            )
        if self.config_file is not None:
            try:
                mappings = _read_mappings(self.config_file)
            except _MappingsError as exc:
                raise ValueError(f"{ENV_PREFIX}CONFIG_FILE {exc}") from None
            object.__setattr__(self, "mappings", mappings)
        return self

    # -- derived values -------------------------------------------------------------------------
    @property
    def zendesk_enabled(self) -> bool:
        """True when the Zendesk sidebar is configured (the model rules ensure it is complete)."""
        return self.zendesk_subdomain is not None

    @property
    def frame_ancestors(self) -> tuple[str, ...]:
        """Who may embed the sidebar: the Zendesk account, plus any configured origins."""
        own = (f"https://{self.zendesk_subdomain}.zendesk.com",) if self.zendesk_subdomain else ()
        return own + self.zendesk_frame_ancestors

    @property
    def zendesk_api_enabled(self) -> bool:
        """True when the outbound Zendesk API client has an account and a credential."""
        has_account = self.zendesk_api_url is not None or self.zendesk_subdomain is not None
        has_credential = self.zendesk_api_token is not None or self.zendesk_oauth_token is not None
        return has_account and has_credential

    @property
    def tidio_api_enabled(self) -> bool:
        """True when the Tidio OpenAPI client has its two credentials."""
        return self.tidio_client_id is not None and self.tidio_client_secret is not None

    @property
    def tidio_api_base(self) -> str:
        return (self.tidio_api_url or "https://api.tidio.com").rstrip("/")

    @property
    def zendesk_api_base(self) -> str:
        """Base URL of the Zendesk REST API (without /api/v2)."""
        if self.zendesk_api_url:
            return self.zendesk_api_url
        return f"https://{self.zendesk_subdomain}.zendesk.com"

    @property
    def api_url(self) -> str:
        return self.ct_api_url or f"https://api.{self.ct_region}.commercetools.com"

    @property
    def auth_url(self) -> str:
        return self.ct_auth_url or f"https://auth.{self.ct_region}.commercetools.com"

    @property
    def scopes(self) -> str:
        if self.ct_scopes:
            return self.ct_scopes
        pk = self.ct_project_key
        return " ".join(
            f"{scope}:{pk}"
            for scope in ("view_orders", "view_customers", "view_payments", "view_stores")
        )

    @property
    def mc_url(self) -> str:
        if self.merchant_center_url:
            return self.merchant_center_url
        region = self.ct_region or "europe-west1.gcp"
        return f"https://mc.{region}.commercetools.com"


def load_rsa_public_key(pem: str) -> rsa.RSAPublicKey:
    """`pem` as a usable RSA public key; ValueError saying why not, in one line. The one PEM
    loader: for the configured key (here) and the one fetched from Zendesk (tokens.py)."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            "not a PEM public key (expected -----BEGIN PUBLIC KEY----- ... "
            "-----END PUBLIC KEY-----)"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("a PEM public key, but not an RSA one (Zendesk signs with RS256)")
    if key.key_size < _MIN_RSA_KEY_BITS:
        raise ValueError(
            f"a {key.key_size}-bit RSA key; at least {_MIN_RSA_KEY_BITS} bits are required"
        )
    return key


def _rsa_public_key_problem(pem: str) -> str | None:
    """Why `pem` is not a usable RSA public key, in one line; None when it is."""
    try:
        load_rsa_public_key(pem)
    except ValueError as exc:
        return str(exc)
    return None


class _MappingsError(ValueError):
    pass


def _read_mappings(path: Path) -> Mappings:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _MappingsError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _MappingsError(f"{path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _MappingsError(f"{path} is not valid TOML: {exc}") from None
    try:
        return Mappings.model_validate(raw)
    except ValidationError as exc:
        problems = (f"{name}: {why}" if name else why for name, why in _problems(exc, prefix=""))
        raise _MappingsError(f"{path}: {'; '.join(problems)}") from None


def check_settings(**overrides: Any) -> tuple[Settings | None, list[str]]:
    """The settings from the environment (and overrides), or None and every problem found, one
    line each, naming the setting by its environment variable (`CC_…: why`). Rules that relate
    several settings are checked once each of those settings is valid on its own."""
    try:
        return Settings(**overrides), []
    except ValidationError as exc:
        return None, [f"{name}: {why}" if name else why for name, why in _problems(exc)]


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and overrides), or a ConfigError naming every fault: one
    line for one problem, else a heading and one line per problem."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = _problems(exc)
    if len(problems) == 1:
        name, why = problems[0]
        raise ConfigError(f"invalid setting {name}: {why}" if name else f"invalid settings: {why}")
    lines = [f"  {name}: {why}" if name else f"  {why}" for name, why in problems]
    raise ConfigError("\n".join([f"invalid settings ({len(problems)} problems):", *lines]))


def setting_names() -> tuple[str, ...]:
    """Every setting's environment variable (CC_…)."""
    return tuple(ENV_PREFIX + name.upper() for name in Settings.model_fields if name != "mappings")


def setting_hint(name: str) -> str:
    """' (did you mean CC_…?)' when `name` looks like a misspelt setting, else ''."""
    close = difflib.get_close_matches(name.upper(), setting_names(), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _problems(exc: ValidationError, *, prefix: str = ENV_PREFIX) -> list[tuple[str, str]]:
    """(setting, why) for every error: the environment variable (with `prefix`), or the
    `[table.key]` of the config file (prefix ""); setting "" for a rule over several settings,
    whose message names them."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        location = [str(part) for part in error["loc"]]
        why = error["msg"].removeprefix("Value error, ")
        if not location:
            problems.append(("", why))
            continue
        if not prefix:
            problems.append(("[" + ".".join(location) + "]", why))
            continue
        # Keyword arguments are field names; an unknown key from .env arrives as CC_… already.
        name = location[0].upper()
        if not name.startswith(prefix):
            name = prefix + name
        if error["type"] == "missing":
            why = "required, but not set"
        elif error["type"] == "extra_forbidden":
            why = f"not a setting{setting_hint(name)}"
        problems.append((name, why))
    return problems
