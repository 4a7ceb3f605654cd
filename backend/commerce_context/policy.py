"""The field-level PII policy (v1): what an agent may see of a shopper, applied to every entity.

Why a policy at all
    Support agents need enough to recognise a shopper and answer "where is my order?", not a
    copy of the shopper's record. Every entity read from commercetools goes through
    `Policy.apply()` before it is cached, rendered or logged, so a masked value never exists
    anywhere in this service in clear, and an excluded one never exists at all. Fields that
    carry card data, payment tokens and PSP identifiers are never requested
    (`views.FORBIDDEN_FIELDS`, enforced by `queries.compose()`); card numbers and secrets that
    an integration wrote into free text are masked by the scrubber (`scrub.Scrubber`), which
    `apply()` runs on every string it copies, whatever its field. Order custom fields are kept
    only when the mapping file lists them, masked or excluded as it says (`custom_fields`).

How fields are named
    A path is the entity kind followed by the GraphQL field path, dot-separated, with lists
    traversed transparently: `customer.email`, `customer.addresses.phone`,
    `order.shippingAddress.postalCode`, `order.returnInfo.items.comment`. The kinds are
    `customer`, `order`, `cart`, `payment` and `store`. An entity read through another one is
    governed by its own kind's paths, so it looks the same wherever it is shown: payments under
    an order or a cart (`paymentInfo.payments`) by the `payment.` paths, the customer of an
    order, cart or payment (`order.customer`) by the `customer.` paths (see `NESTED`).

The defaults (`DEFAULT_POLICY`)
    * show what identifies the shopper to a human and is needed to talk to them: names, title,
      company, city, region, country, the merchant's own identifiers (`externalId`), return
      comments, the PSP's status text, tracking ids;
    * mask what reaches the shopper or their door: e-mail addresses, phone, mobile and fax
      numbers, street, street number, building, apartment, PO box, free-text address notes,
      anonymous session ids, VAT ids; the postal code keeps its first two characters (the
      region), a phone number its country code and last two digits, an e-mail address its
      first character, the first character of its domain and the TLD: enough to confirm
      "is this the address ending in 67?" without reading the number out;
    * exclude what a support conversation never needs: the date of birth.

    Masked values use fixed-width fillers, so they do not even reveal the length of what they
    hide. A path the policy does not know (ids, states, money, line items) is not personal data
    and passes through unchanged; naming such a path in the `[field_policy]` table of the
    mapping file is a configuration error, so a typo cannot leave a field in clear. Address
    groups (`order.shippingAddress`, `customer.addresses`, ...) can be set as a whole: a
    stricter group setting wins over its fields' own (`exclude` > `mask` > `show`).

Logs
    `RedactingFilter` masks card numbers and payment secrets (the scrubber's built-in rules),
    e-mail addresses and phone-like digit runs (also URL-encoded, or separated by dots,
    slashes or no-break spaces) in every log record (message, arguments, string extras,
    tracebacks), so logs never carry them, even when someone logs one by mistake. Attach it to
    the handlers.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, cast, get_args, overload
from urllib.parse import unquote

from .exceptions import ConfigError
from .scrub import SCRUB_VERSION, Scrubber, scrub

if TYPE_CHECKING:
    from .settings import Mappings

__all__ = [
    "ADDRESS_FIELDS",
    "ADDRESS_PATHS",
    "DEFAULT_POLICY",
    "FILL",
    "KINDS",
    "KNOWN_FIELDS",
    "NESTED",
    "Policy",
    "RedactingFilter",
    "Treatment",
    "mask",
    "mask_email",
    "mask_phone",
    "mask_postal_code",
    "mask_text",
    "own_path",
    "redact",
]

Treatment: TypeAlias = Literal["show", "mask", "exclude"]
TREATMENTS: Final[tuple[Treatment, ...]] = get_args(Treatment)

KINDS: Final = ("customer", "order", "cart", "payment", "store")

# -- the default policy -------------------------------------------------------------------------

#: The fields of a commercetools `Address`, wherever one appears.
ADDRESS_FIELDS: Final[Mapping[str, Treatment]] = {
    "title": "show",
    "salutation": "show",
    "firstName": "show",
    "lastName": "show",
    "company": "show",
    "department": "show",
    "streetName": "mask",
    "streetNumber": "mask",
    "additionalStreetInfo": "mask",
    "building": "mask",
    "apartment": "mask",
    "pOBox": "mask",
    "postalCode": "mask",
    "city": "show",
    "region": "show",
    "state": "show",
    "country": "show",
    "phone": "mask",
    "mobile": "mask",
    "fax": "mask",
    "email": "mask",
    "additionalAddressInfo": "mask",
}

#: Every place an `Address` appears in the entities the service reads.
ADDRESS_PATHS: Final = (
    "customer.addresses",
    "customer.shippingAddresses",
    "customer.billingAddresses",
    "customer.defaultShippingAddress",
    "customer.defaultBillingAddress",
    "order.shippingAddress",
    "order.billingAddress",
    "order.itemShippingAddresses",
    "order.shippingInfo.deliveries.address",
    "order.shipping.shippingAddress",
    "order.shipping.shippingInfo.deliveries.address",
    "cart.shippingAddress",
    "cart.billingAddress",
    "cart.itemShippingAddresses",
    "cart.shippingInfo.deliveries.address",
    "cart.shipping.shippingAddress",
    "cart.shipping.shippingInfo.deliveries.address",
)

# `createdBy` / `lastModifiedBy` (an `Initiator`) on every entity.
_INITIATOR: Final[Mapping[str, Treatment]] = {"anonymousId": "mask", "externalUserId": "mask"}

_ENTITY_FIELDS: Final[Mapping[str, Mapping[str, Treatment]]] = {
    "customer": {
        "email": "mask",
        "title": "show",
        "salutation": "show",
        "firstName": "show",
        "middleName": "show",
        "lastName": "show",
        "companyName": "show",
        "vatId": "mask",
        "dateOfBirth": "exclude",
        "externalId": "show",
    },
    "order": {
        "customerEmail": "mask",
        "anonymousId": "mask",
        "returnInfo.items.comment": "show",
        "returnInfo.returnTrackingId": "show",
        "shippingInfo.deliveries.parcels.trackingData.trackingId": "show",
        "shipping.shippingInfo.deliveries.parcels.trackingData.trackingId": "show",
    },
    "cart": {"customerEmail": "mask", "anonymousId": "mask"},
    "payment": {"anonymousId": "mask", "paymentStatus.interfaceText": "show"},
    "store": {},
}


def _default_policy() -> dict[str, Treatment]:
    policy: dict[str, Treatment] = {}
    for kind, fields in _ENTITY_FIELDS.items():
        policy.update({f"{kind}.{name}": treatment for name, treatment in fields.items()})
    for group in ADDRESS_PATHS:
        policy[group] = "show"  # the group itself; its fields decide
        policy.update({f"{group}.{name}": t for name, t in ADDRESS_FIELDS.items()})
    for kind in KINDS:
        for initiator in ("createdBy", "lastModifiedBy"):
            policy.update({f"{kind}.{initiator}.{n}": t for n, t in _INITIATOR.items()})
    return dict(sorted(policy.items()))


#: Treatment of every governed path when the mapping file says nothing.
DEFAULT_POLICY: Final[Mapping[str, Treatment]] = _default_policy()
#: Every path the policy governs; anything else passes through unchanged.
KNOWN_FIELDS: Final = frozenset(DEFAULT_POLICY)

#: Entities read through another entity, and the kind whose paths govern them.
NESTED: Final[Mapping[str, str]] = {
    "order.paymentInfo.payments": "payment",
    "cart.paymentInfo.payments": "payment",
    "order.customer": "customer",
    "cart.customer": "customer",
    "payment.customer": "customer",
    "order.store": "store",
    "cart.store": "store",
}


# -- masking ------------------------------------------------------------------------------------

FILL: Final = "•••"
_EMAIL_FILL: Final = "***"


def _clean(value: str) -> str:
    return unicodedata.normalize("NFC", value.strip())


def _head(value: str, n: int) -> str:
    """The first `n` characters, but only when at least as many stay hidden."""
    return value[:n] if len(value) >= 2 * n else ""


@overload
def mask_email(value: str) -> str: ...
@overload
def mask_email(value: None) -> None: ...
def mask_email(value: str | None) -> str | None:
    """`anna.schmidt@example.com` → `a***@e***.com`: first characters and the TLD only."""
    if value is None:
        return None
    text = _clean(value)
    if not text:
        return ""
    local, at, domain = text.rpartition("@")
    if not at:
        return _EMAIL_FILL  # not an address: nothing is safe to show
    labels = domain.split(".")
    shown = _head(labels[0], 1) + _EMAIL_FILL
    if len(labels) > 1 and labels[-1]:
        shown += "." + labels[-1]
    return f"{_head(local, 1)}{_EMAIL_FILL}@{shown}"


# ITU-T E.164 country calling codes are prefix-free: these are the one- and two-digit ones,
# every other code has three digits.
# fmt: off
_CALLING_CODES: Final = frozenset(str(code) for code in (
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53,
    54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
))
# fmt: on


def _calling_code(digits: str) -> str:
    for size in (1, 2):
        if digits[:size] in _CALLING_CODES:
            return digits[:size]
    return digits[:3]


@overload
def mask_phone(value: str) -> str: ...
@overload
def mask_phone(value: None) -> None: ...
def mask_phone(value: str | None) -> str | None:
    """`+49 30 1234567` → `+49 ••• ••67`: the country code and the last two digits only."""
    if value is None:
        return None
    text = _clean(value)
    if not text:
        return ""
    digits = "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())
    prefix = ""
    if text.startswith("+") and digits:
        code = _calling_code(digits)
        prefix, digits = f"+{code} ", digits[len(code) :]
    if len(digits) >= 6:  # the last two digits leave at least four hidden
        return f"{prefix}{FILL} ••{digits[-2:]}"
    return prefix + FILL


@overload
def mask_text(value: str) -> str: ...
@overload
def mask_text(value: None) -> None: ...
def mask_text(value: str | None) -> str | None:
    """`Hauptstraße` → `H•••`: the first character only (none of a one-character value)."""
    if value is None:
        return None
    text = _clean(value)
    if not text:
        return ""
    return _head(text, 1) + FILL


@overload
def mask_postal_code(value: str) -> str: ...
@overload
def mask_postal_code(value: None) -> None: ...
def mask_postal_code(value: str | None) -> str | None:
    """`10115` → `10•••`: the first two characters (the region), if at least four exist."""
    if value is None:
        return None
    text = _clean(value)
    if not text:
        return ""
    return _head(text, 2) + FILL


@overload
def mask(value: None) -> None: ...
@overload
def mask(value: object) -> str: ...
def mask(value: object) -> str | None:
    """Any value: strings as `mask_text`, everything else (numbers, lists, ...) as `•••`."""
    if value is None:
        return None
    if isinstance(value, str):
        return mask_text(value)
    return FILL


def _conceal(value: str) -> str:
    return FILL if value.strip() else ""


Masker: TypeAlias = Callable[[str], str]

_MASKERS: Final[Mapping[str, Masker]] = {
    "email": mask_email,
    "customerEmail": mask_email,
    "phone": mask_phone,
    "mobile": mask_phone,
    "fax": mask_phone,
    "postalCode": mask_postal_code,
    "dateOfBirth": _conceal,
}


# -- the compiled policy ------------------------------------------------------------------------

_SHOW, _MASK, _EXCLUDE = 0, 1, 2
_RANK: Final[Mapping[Treatment, int]] = {"show": _SHOW, "mask": _MASK, "exclude": _EXCLUDE}

# A compiled node maps a field name to (action, masker, children, treatment).
_Node: TypeAlias = dict[str, "_Rule"]
_Rule: TypeAlias = tuple[int, Masker | None, "_Node | None", Treatment]


class _Draft:
    __slots__ = ("children", "treatment")

    def __init__(self) -> None:
        self.treatment: Treatment = "show"
        self.children: dict[str, _Draft] = {}

    def at(self, segments: Iterable[str]) -> _Draft:
        draft = self
        for segment in segments:
            draft = draft.children.setdefault(segment, _Draft())
        return draft


def _compile(effective: Mapping[str, Treatment]) -> dict[str, _Node]:
    roots = {kind: _Draft() for kind in KINDS}
    for path, treatment in effective.items():
        kind, *segments = path.split(".")
        roots[kind].at(segments).treatment = treatment
    for host, nested in NESTED.items():  # shared drafts: one source of truth per kind
        kind, *segments = host.split(".")
        parent = roots[kind].at(segments[:-1])
        parent.children[segments[-1]] = roots[nested]
    return {kind: _freeze(root.children, _SHOW) for kind, root in roots.items()}


def _freeze(children: Mapping[str, _Draft], cap: int) -> _Node:
    """Nested rules with the stricter of parent and own treatment; all-show branches dropped."""
    node: _Node = {}
    for name, draft in children.items():
        action = max(_RANK[draft.treatment], cap)
        label = TREATMENTS[action]
        if action == _EXCLUDE:
            node[name] = (_EXCLUDE, None, None, label)
        elif draft.children:
            below = _freeze(draft.children, action)
            if below or action != _SHOW:
                node[name] = (_SHOW, None, below, label)
        elif action == _MASK:
            node[name] = (_MASK, _MASKERS.get(name, mask_text), None, label)
    return node


Scrub: TypeAlias = Callable[[str], str]
# Kinds whose entities may carry the configured (order) custom fields.
_WITH_CUSTOM_FIELDS: Final = frozenset(KINDS)


def _copy(value: Any, scrub: Scrub) -> Any:
    """A deep copy of JSON-shaped data with every string scrubbed (cheaper than deepcopy)."""
    kind = type(value)
    if kind is str:
        return scrub(value)
    if kind is dict:
        return {key: _copy(item, scrub) for key, item in value.items()}
    if kind is list:
        return [_copy(item, scrub) for item in value]
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, str):
        return scrub(str(value))
    if isinstance(value, Mapping):
        return {key: _copy(item, scrub) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item, scrub) for item in value]
    return value


def _apply(node: _Node, value: Any, scrub: Scrub) -> Any:
    if isinstance(value, dict | Mapping):
        out: dict[str, Any] = {}
        get = node.get
        for key, item in value.items():
            rule = get(key)
            if rule is None:
                out[key] = _copy(item, scrub)
            elif rule[0] == _SHOW:
                out[key] = _apply(rule[2], item, scrub) if rule[2] else _copy(item, scrub)
            elif rule[0] == _MASK:
                out[key] = _mask_value(cast(Masker, rule[1]), item, scrub)
            # _EXCLUDE: the key is left out
        return out
    if isinstance(value, list | tuple):
        return [_apply(node, item, scrub) for item in value]
    return _copy(value, scrub)


def _mask_value(masker: Masker, value: Any, scrub: Scrub) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return masker(scrub(value))
    if isinstance(value, list | tuple):
        return [_mask_value(masker, item, scrub) for item in value]
    return FILL


def _custom_fields(entity: dict[str, Any], treatments: Mapping[str, Treatment]) -> None:
    """Keep only the configured custom fields of `entity`, each treated as configured."""
    custom = entity.get("custom")
    if not isinstance(custom, dict):
        return
    raw = custom.get("customFieldsRaw")
    if isinstance(raw, list):
        kept = []
        for field in raw:
            name = field.get("name") if isinstance(field, dict) else None
            treatment = treatments.get(name) if isinstance(name, str) else None
            if treatment is None or treatment == "exclude":
                continue
            if treatment == "mask":
                field = {**field, "value": _conceal_any(field.get("value"))}
            kept.append(field)
        custom["customFieldsRaw"] = kept
    for other in ("fields", "customFields"):  # every field at once: never configured, never kept
        custom.pop(other, None)


def _conceal_any(value: Any) -> Any:
    if value is None or value == "" or value == []:
        return value
    return FILL


class Policy:
    """The field policy in force: the defaults plus the mapping file's `[field_policy]` table.

    Build it once at start-up (`Policy.from_mappings`); `apply()` then walks a precompiled
    tree of the governed fields, scrubs every string it copies (`scrub.Scrubber`: card
    numbers, payment secrets, the configured patterns) and keeps only the configured custom
    fields. `custom_fields=None` (tests, tools) keeps every custom field, scrubbed.
    """

    __slots__ = ("_custom", "_effective", "_overrides", "_scrubber", "_trees")

    def __init__(
        self,
        overrides: Mapping[str, Treatment] | None = None,
        *,
        custom_fields: Mapping[str, Treatment] | None = None,
        scrubber: Scrubber | None = None,
    ) -> None:
        overrides = dict(overrides or {})
        for path, treatment in overrides.items():
            if path not in KNOWN_FIELDS:
                raise ConfigError(_unknown_path(path))
            if treatment not in TREATMENTS:
                raise ConfigError(
                    f"field_policy: {path!r} = {treatment!r} is not one of show, mask, exclude"
                )
        for name, treatment in (custom_fields or {}).items():
            if treatment not in TREATMENTS:
                raise ConfigError(
                    f"order_custom_fields: {name!r} treatment {treatment!r} is not one of "
                    "show, mask, exclude"
                )
        self._overrides: dict[str, Treatment] = overrides
        self._effective: dict[str, Treatment] = {**DEFAULT_POLICY, **overrides}
        self._trees = _compile(self._effective)
        self._custom = dict(custom_fields) if custom_fields is not None else None
        self._scrubber = scrubber if scrubber is not None else Scrubber()

    @classmethod
    def from_mappings(cls, mappings: Mappings) -> Policy:
        """The policy the mapping file describes (ConfigError on an unknown field path)."""
        return cls(
            mappings.field_policy,
            custom_fields={n: f.treatment for n, f in mappings.custom_fields.items()},
            scrubber=Scrubber(mappings.scrub.patterns),
        )

    def __repr__(self) -> str:
        return f"Policy({self._overrides!r})"

    @property
    def overrides(self) -> Mapping[str, Treatment]:
        return dict(self._overrides)

    @property
    def fingerprint(self) -> str:
        """Changes whenever what `apply()` returns could change: key cache entries by it."""
        custom = sorted(self._custom.items()) if self._custom is not None else None
        state = [SCRUB_VERSION, sorted(self._overrides.items()), custom, self._scrubber.patterns]
        return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]

    @property
    def scrubber(self) -> Scrubber:
        return self._scrubber

    def treatment(self, path: str) -> Treatment:
        """What happens to the value at `path`, including a stricter treatment of a group.

        Paths the policy does not govern are `show`; a path below an excluded group is
        `exclude`. Nested entities answer by their own kind's path (`NESTED`).
        """
        kind, _, rest = path.partition(".")
        node: _Node | None = self._trees.get(kind)
        if node is None or not rest:
            return "show"
        treatment: Treatment = "show"
        for segment in rest.split("."):
            rule = node.get(segment) if node is not None else None
            if rule is None:
                return "show"
            action, _, node, treatment = rule
            if action != _SHOW:
                return treatment
        return treatment

    def apply(self, kind: str, entity: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A new deep copy of `entity`: masked, excluded keys removed, every string scrubbed."""
        tree = self._tree(kind)
        if entity is None:
            return None
        if not isinstance(entity, Mapping):
            raise TypeError(f"expected a {kind} mapping, got {type(entity).__name__}")
        return self._one(kind, tree, entity)

    def apply_many(
        self, kind: str, entities: Iterable[Mapping[str, Any] | None]
    ) -> list[dict[str, Any] | None]:
        tree = self._tree(kind)
        return [None if entity is None else self._one(kind, tree, entity) for entity in entities]

    def _one(self, kind: str, tree: _Node, entity: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = _apply(tree, entity, self._scrubber)
        if self._custom is not None and kind in _WITH_CUSTOM_FIELDS:
            _custom_fields(result, self._custom)
        return result

    def _tree(self, kind: str) -> _Node:
        try:
            return self._trees[kind]
        except KeyError:
            raise ValueError(f"unknown entity kind {kind!r}; use one of {KINDS}") from None


def own_path(path: str) -> str:
    """The path that governs `path`: `order.customer.email` → `customer.email`."""
    rewritten = True
    while rewritten:
        rewritten = False
        for host, kind in NESTED.items():
            if path.startswith(host + "."):
                path = f"{kind}.{path.removeprefix(host + '.')}"
                rewritten = True
    return path


def _unknown_path(path: str) -> str:
    candidates: list[str] = []
    own = own_path(path)
    if own != path and own in KNOWN_FIELDS:
        candidates.append(own)
    candidates += difflib.get_close_matches(path, sorted(KNOWN_FIELDS), n=3, cutoff=0.6)
    lowered = {known.lower(): known for known in KNOWN_FIELDS}
    if path.lower() in lowered:
        candidates.insert(0, lowered[path.lower()])
    hint = ", ".join(dict.fromkeys(candidates))
    return (
        f"field_policy: unknown field path {path!r}"
        + (f"; did you mean {hint}?" if hint else "")
        + " (fields outside the policy are not personal data and are always shown;"
        " docs/privacy.md lists the governed paths)"
    )


# -- logs ---------------------------------------------------------------------------------------

# An e-mail address, also URL-encoded (`%40`), as it appears in a logged query string.
_EMAIL_RE: Final = re.compile(r"([\w.+%-]+)(@|%40)([\w-]+(?:\.[\w-]+)+)")
# Between the digits of a phone number: spaces (also no-break and thin), dashes, dots,
# slashes, parentheses, and their URL-encoded forms (`%20`, `+` in a form-encoded query).
_PHONE_SEP: Final = r"(?:[ \-()./+\u00a0\u202f\u2009]|%2[0BbDdEeFf89]|%[Cc]2%[Aa]0)"
# A phone-like run: 7+ ASCII digits, optionally after a + (or `%2B`), with up to three
# separators between digits; not part of a word, an id (`a1-4466...`), or an ISO date.
# Decimal numbers, IPv4 addresses and dotted or slashed dates are left alone
# (`_mask_phone_match`).
_PHONE_RE: Final = re.compile(
    r"(?<![\w+\-.%])(?![0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9]))"
    r"(?![0-9]{1,2}[./][0-9]{1,2}[./][0-9]{2,4}(?![0-9]))"
    rf"(?:\+|%2[Bb])?\(?[0-9](?:{_PHONE_SEP}{{0,3}}[0-9]){{6,}}(?![\w\-]|\.[0-9])"
)
_NOT_A_PHONE: Final = re.compile(
    r"[0-9]+\.[0-9]+"  # a decimal number
    r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3}"  # an IPv4 address
    r"|[0-9]{4}[./][0-9]{1,2}[./][0-9]{1,2}"  # a date
)


def _mask_email_match(match: re.Match[str]) -> str:
    local, at, domain = match.groups()
    return mask_email(f"{local}@{domain}").replace("@", at)


def _mask_phone_match(match: re.Match[str]) -> str:
    text = match.group()
    if _NOT_A_PHONE.fullmatch(text):
        return text
    return mask_phone(unquote(text))


# URL-encoded separators (space, no-break space, +, -, ., /, :, =, _) are decoded before
# redaction, so `path%204111111111111111` or `%2B49%2030...` cannot hide a number. Nothing
# else is decoded: a control character such as `%0A` stays encoded in the log.
_ENCODED_SEPARATOR: Final = re.compile(r"%(?:20|2[BbDdEeFf]|3[AaDd]|5[Ff]|[Cc]2%[Aa]0)")


def _decode_separator(match: re.Match[str]) -> str:
    return unquote(match.group())


def redact(text: str) -> str:
    """`text` with card numbers and payment secrets scrubbed (`scrub.scrub`), and e-mail
    addresses and phone-like numbers masked as the panels mask them."""
    if "%" in text:
        text = _ENCODED_SEPARATOR.sub(_decode_separator, text)
    text = scrub(text)
    if "@" in text or "%40" in text:
        text = _EMAIL_RE.sub(_mask_email_match, text)
    return _PHONE_RE.sub(_mask_phone_match, text)


_RECORD_ATTRIBUTES: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "correlation_id",
}


class RedactingFilter(logging.Filter):
    """Masks e-mail addresses and phone numbers in log records; attach it to handlers.

    The message is rendered once (`msg % args`) and redacted, so the record stays usable by any
    formatter. String extras, the traceback text and stack info are redacted too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_cc_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the pieces, redacted
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            message = " ".join([str(record.msg), *(str(arg) for arg in args)])
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str):
                record.__dict__[key] = redact(value)
        record._cc_redacted = True
        return True
