"""Card numbers and payment secrets masked in any text, whatever field it came from.

The field policy (policy.py) decides per field; this module does not care about fields. Every
string read from commercetools passes `Policy.apply()`, which runs the scrubber on each string
leaf before anything is cached, rendered or logged, and the log filter runs it on every log
line. So a card number that an integration wrote into a free-text field (a payment method
name, a comment, a custom field) is masked wherever it hides.

What is masked
    * **Card numbers**: a run of 12 to 19 digits, written without separators or with single
      spaces, no-break spaces or dashes between digits, whose first digit is one a payment
      card can start with (2 to 6, or 8) and which passes the Luhn check. It becomes
      `•••• 1111` (its last four digits). Within a longer run of separated groups
      (`2 4111 1111 1111 1111`, a quantity before a card number), any consecutive groups
      that form such a number are masked.
    * **Payment tokens and secrets**: Stripe-style ids (`tok_`, `pm_`, `pi_`, `ch_`, `src_`,
      `card_`, `seti_` followed by at least eight letters and digits, one of them a digit),
      secret keys (`sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`, `whsec_`), PSP references
      written as `psp_ref …` / `pspReference: …`, and JSON web tokens (`eyJ….eyJ….…`). The
      prefix stays (`tok_•••`), so an agent still sees what kind of value was there.
    * **Configured patterns**: the mapping file's `[scrub] patterns`, regular expressions
      whose every match becomes `•••`.

What is left alone, on purpose
    A run glued to letters (`1Z999AA10123456784`, `ABC123456789012`), a number written with a
    leading `+` (an international phone number), UUIDs, ISO dates, runs of fewer than 12 or
    more than 19 digits without separators, runs starting with 0, 1, 7 or 9 (order numbers,
    parcel codes), and runs failing the Luhn check. A number that merely *looks* like a card
    (12 to 19 digits, right first digit, Luhn-valid; about one such run in ten) is masked
    even if it was not one: hiding too much is the safe side.

Speed: one precompiled regular expression finds every candidate in a single pass; strings
shorter than the shortest candidate return at once. Scrubbing happens when data is admitted
to the cache, never on a cache hit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

from .exceptions import ConfigError

__all__ = ["CARD_FILL", "FILL", "SCRUB_VERSION", "Scrubber", "luhn_valid", "sanitise", "scrub"]

#: Bumped whenever the built-in rules change, so caches keyed by the policy are rebuilt.
SCRUB_VERSION: Final = 1

FILL: Final = "•••"
#: A masked card number: this, a space, and its last four digits.
CARD_FILL: Final = "••••"

_MIN_CARD, _MAX_CARD = 12, 19
# ISO/IEC 7812 major industry identifiers used by payment cards (8: UnionPay, RuPay ranges).
_CARD_FIRST_DIGITS: Final = frozenset("234568")

_SEP: Final = "[ \\-\u00a0\u202f\u2009]"

# One pass finds every candidate. Alternatives that must stay untouched (UUIDs, ISO dates)
# come first, so their digits are consumed before the card rule can see them.
_PATTERN: Final = re.compile(
    "|".join(
        (
            # a UUID: left as it is
            r"(?P<uuid>(?<![\w-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
            r"-[0-9A-Fa-f]{12}(?![\w-]))",
            # an ISO date (and the day after it): left as it is
            r"(?P<date>(?<!\d)\d{4}-\d{2}-\d{2}(?!\d))",
            # a maximal digit run with single separators; not glued to a word, not after a '+'
            rf"(?P<digits>(?<![\w+])\d(?:{_SEP}?\d){{{_MIN_CARD - 1},}}"
            rf"(?!{_SEP}?\d))",
            # secret keys: any tail
            r"(?P<key>(?<![A-Za-z0-9])(?:sk|rk)_(?:live|test)_|(?<![A-Za-z0-9])whsec_)"
            r"(?P<key_tail>[A-Za-z0-9_]{8,})",
            # payment object ids: a tail with at least one digit
            r"(?P<id>(?<![A-Za-z0-9])(?:tok|pm|pi|ch|src|card|seti)_)"
            r"(?P<id_tail>(?=[A-Za-z_]*\d)[A-Za-z0-9]{8,}(?:_secret_[A-Za-z0-9]+)?)",
            # a PSP reference with its label
            r"(?P<psp>(?i:(?<![A-Za-z0-9])psp_?ref(?:erence)?)[\s:=#_-]*)"
            r"(?P<psp_tail>[A-Za-z0-9][A-Za-z0-9_-]{3,})",
            # a JSON web token
            r"(?P<jwt>(?<![\w.])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)",
        )
    )
)
_SPLIT: Final = re.compile(_SEP)
_ASCII_DIGITS: Final = b"0123456789"
# The commonest long strings in an entity, which hold many digits and nothing secret.
_PLAIN: Final = re.compile(
    rb"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9:.]+(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
    rb"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
# The shortest built-in candidate: `tok_` plus eight characters; a card has at least twelve.
_SHORTEST: Final = 12


def luhn_valid(digits: str) -> bool:
    """True when `digits` (decimal digits only, at least two) pass the Luhn check."""
    if len(digits) < 2:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = unicodedata.decimal(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(ch)) for ch in text)


def _is_card(digits: str) -> bool:
    return (
        _MIN_CARD <= len(digits) <= _MAX_CARD
        and digits[0] in _CARD_FIRST_DIGITS
        and luhn_valid(digits)
    )


def _mask_run(run: str, glued: bool) -> str:
    """Mask every card number inside one maximal run of separated digit groups.

    `glued`: the run's last group runs on into a word (`… 1111 3DS`): that group belongs to
    the word, not to a number."""
    groups: list[str] = _SPLIT.split(run)
    separators: list[str] = _SPLIT.findall(run)
    if glued:
        if len(groups) == 1:
            return run  # a single group glued to letters: part of an identifier
        return _mask_run(run[: -len(groups[-1]) - len(separators[-1])], False) + (
            separators[-1] + groups[-1]
        )
    if len(groups) == 1:
        digits = _ascii_digits(run)
        return f"{CARD_FILL} {digits[-4:]}" if _is_card(digits) else run
    pieces: list[str] = []
    start = 0
    while start < len(groups):
        masked_to = 0
        for end in range(len(groups), start, -1):  # the longest window first
            digits = _ascii_digits("".join(groups[start:end]))
            if len(digits) < _MIN_CARD:
                break
            if _is_card(digits):
                masked_to = end
                pieces.append(f"{CARD_FILL} {digits[-4:]}")
                break
        if masked_to:
            start = masked_to
        else:
            pieces.append(groups[start])
            start += 1
        if start < len(groups):
            pieces.append(separators[start - 1])
    return "".join(pieces)


def _replace(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group == "digits":
        after = match.string[match.end() : match.end() + 1]
        return _mask_run(match.group(), after.isalnum() or after == "_")
    if group in ("key_tail", "id_tail", "psp_tail"):
        prefix = match.group(group.removesuffix("_tail"))
        return prefix + FILL
    if group == "jwt":
        return "eyJ" + FILL
    return match.group()  # a UUID or a date


class Scrubber:
    """Masks card numbers, payment secrets and the configured patterns in a string.

    Build it once (patterns are compiled here; an invalid one is a `ConfigError` naming it);
    calling it is then one regular-expression pass, plus one per configured pattern.
    """

    __slots__ = ("_extra", "_patterns", "_shortest")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._patterns: tuple[str, ...] = tuple(patterns)
        for pattern in self._patterns:
            problem = pattern_problem(pattern)
            if problem:
                raise ConfigError(f"scrub: pattern {pattern!r} {problem}")
        # One by one: a pattern may carry its own flags, e.g. `(?i)`.
        self._extra = tuple(re.compile(p) for p in self._patterns)
        self._shortest = 1 if self._extra else _SHORTEST

    @property
    def patterns(self) -> tuple[str, ...]:
        return self._patterns

    def __repr__(self) -> str:
        return f"Scrubber(patterns={list(self._patterns)!r})"

    def __call__(self, text: str) -> str:
        if len(text) < self._shortest:
            return text
        for pattern in self._extra:
            text = pattern.sub(FILL, text)
        if text.isascii() and not _may_hold_secrets(text.encode()):
            return text
        return _PATTERN.sub(_replace, text)


def _may_hold_secrets(raw: bytes) -> bool:
    """A cheap superset of the built-in rules; ids, timestamps and most text fail it."""
    digits = len(raw) - len(raw.translate(None, _ASCII_DIGITS))
    if digits >= _MIN_CARD:
        return _PLAIN.fullmatch(raw) is None
    return b"_" in raw or b"eyJ" in raw or b"psp" in raw.lower()


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a scrub pattern, in a few words; None when it can."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    if compiled.search("") is not None:
        return "matches the empty string, so it would mask between every character"
    return None


_DEFAULT: Final = Scrubber()


def scrub(text: str) -> str:
    """`text` with card numbers and payment secrets masked by the built-in rules."""
    return _DEFAULT(text)


# -- error text of the SaaS APIs (Zendesk, Tidio) -------------------------------------------------

_EMAIL = re.compile(r"[^\s@<>\"',;:]+@[^\s@<>\"',;:]+")
_LONG_NUMBER = re.compile(r"\+?\d[\d\s().-]{4,}\d")


def sanitise(text: str, limit: int = 200) -> str:
    """An upstream's error text for our messages and logs: e-mail addresses and long numbers
    (phones, ids of people) masked, whitespace collapsed, at most `limit` characters."""
    masked = _LONG_NUMBER.sub("<number>", _EMAIL.sub("<email>", text))
    masked = " ".join(masked.split())
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"
