"""Build and check the Zendesk Support app package (the zip an admin uploads).

    python -m commerce_context.zendesk_package --backend-url https://cc.example.com \\
        --out dist/commerce-context-zendesk.zip

`build_package` copies `zendesk_app/` (manifest, translations, assets) into a zip, with the
ticket-sidebar URL, the `domainWhitelist` and the `backend_url` default pointing at the real
backend, and refuses to write a package that `validate_package` rejects.

`validate_package` checks a zip offline. Zendesk's own check (`zcli apps:validate`) uploads the
zip to an account, so this module re-implements the rules of the `zendesk_apps_support` gem that
Zendesk runs server-side (github.com/zendesk/zendesk_apps_support), plus Zendesk's documented file
requirements (logos) and a few rules of this project. Rules the gem only *warns* about (secure
parameters without scopes, defaults on secure parameters, key-like names that are not secure) are
errors here: a package we ship must not trigger them.

A bad backend URL prints one line and exits with status 2; an invalid package exits with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .exceptions import CommerceContextError, ConfigError

__all__ = [
    "PLACEHOLDER_BACKEND_URL",
    "SIDEBAR_PATH",
    "PackageError",
    "build_package",
    "main",
    "normalise_backend_url",
    "package_entries",
    "png_size",
    "validate_package",
    "write_zip",
]

SIDEBAR_PATH = "/zendesk/sidebar"
PLACEHOLDER_BACKEND_URL = "https://commerce-context.example.com"
DEFAULT_OUT = Path("dist/commerce-context-zendesk.zip")

# --- rules taken from the zendesk/zendesk_apps_support gem ---------------------------------
# manifest.rb RUBY_TO_JSON + validations/manifest.rb boolean_error / string_error
BOOLEAN_KEYS = ("requirementsOnly", "marketingOnly", "singleInstall", "signedUrls", "private")
STRING_KEYS = (
    "defaultLocale",
    "version",
    "frameworkVersion",
    "remoteInstallationURL",
    "termsConditionsURL",
    "gaID",
)
# app_version.rb: AppVersion::TO_BE_SERVED
SERVABLE_FRAMEWORK_VERSIONS = ("2.0",)
# manifest/parameter.rb TYPES, minus the gated `mtls`
PARAMETER_TYPES = ("text", "checkbox", "url", "number", "multiline", "hidden", "oauth")
# validations/manifest.rb SECURE_PARAM_SCOPES
SECURE_PARAM_SCOPES = (
    "header",
    "body",
    "url",
    "jwt_secret_key",
    "jwt_claim",
    "basic_auth_username",
    "basic_auth_password",
)
# validations/secure_settings.rb SECURABLE_KEYWORDS
SECURABLE_KEYWORDS = re.compile("token|key|pwd|password", re.IGNORECASE)
# validations/manifest.rb OAUTH_REQUIRED_FIELDS
OAUTH_REQUIRED_FIELDS = ("client_id", "client_secret", "authorize_uri", "access_token_uri")
# validations/translations.rb VALID_LOCALE (Ruby's \w is ASCII)
VALID_LOCALE = re.compile(r"[a-z]{2,3}(-\w{2,3})?", re.ASCII)
# product.rb PRODUCTS_AVAILABLE (name -> legacy name) and location.rb LOCATIONS_AVAILABLE
PRODUCTS = {"support": "zendesk", "chat": "zopim", "standalone_chat": "lotus_box", "sell": "sell"}
LOCATIONS = {
    "support": frozenset(
        {
            "top_bar",
            "nav_bar",
            "ticket_sidebar",
            "new_ticket_sidebar",
            "user_sidebar",
            "organization_sidebar",
            "background",
            "modal",
            "ticket_editor",
            "system_top_bar",
        }  # custom_object_record_sidebar is gated behind a feature flag
    ),
    "chat": frozenset({"chat_sidebar", "background"}),
    "standalone_chat": frozenset({"nav_bar", "system_top_bar"}),
    "sell": frozenset(
        {
            "deal_card",
            "person_card",
            "company_card",
            "lead_card",
            "background",
            "modal",
            "dashboard",
            "note_editor",
            "call_log_editor",
            "email_editor",
            "top_bar",
            "visit_editor",
        }
    ),
}
LEGACY_URI_STUB = "_legacy"
# validations/translations.rb get_missing_keys
PUBLIC_TRANSLATION_KEYS = (
    "name",
    "short_description",
    "installation_instructions",
    "long_description",
)
# validations/banner.rb
BANNER_SIZES = ((830, 200), (1660, 400))
# validations/mime.rb UNSUPPORTED_MIME_TYPES (checked by extension and by magic bytes)
BLOCKED_EXTENSIONS = frozenset(
    {"rar", "zip", "gz", "gzip", "pdf", "doc", "docx", "avi", "bin", "bz", "bz2", "csh", "sh"}
    | {"jar", "mp3", "mpeg", "odt", "pptx", "ppt", "xls", "xlsx", "7z"}
)
BLOCKED_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"%PDF", b"Rar!", b"7z\xbc\xaf\x27\x1c", b"BZh")

# --- Zendesk's documented file requirements (developer.zendesk.com: apps-v2/setup "File
# requirements"; publish/create_assets: logo.png 320x320, logo-small.png 128x128) -------------
REQUIRED_LOGOS = {"assets/logo.png": (320, 320), "assets/logo-small.png": (128, 128)}

# --- this project's packaging rules -------------------------------------------------------------
ALLOWED_TOP_LEVEL_FILES = frozenset({"manifest.json", "requirements.json"})
ALLOWED_TOP_LEVEL_DIRS = frozenset({"assets", "translations"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class PackageError(CommerceContextError):
    """The Zendesk app package could not be built."""

    code = "package_error"


# ================================================================================ building


def normalise_backend_url(url: str) -> str:
    """Return the backend base URL without a trailing slash, or raise ConfigError (one line).

    Zendesk loads an absolute location URL only over https, or from `localhost`
    (validations/manifest.rb `valid_absolute_uri?`), so anything else is refused here.
    """
    raw = url.strip()
    parts = urlsplit(raw)
    shown = raw if "@" not in parts.netloc else "(a URL with credentials)"
    local = parts.hostname == "localhost"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"backend URL must be an absolute https:// URL, got {shown!r}")
    if parts.scheme == "http" and not local:
        raise ConfigError(
            "backend URL must use https:// (plain http is allowed only for localhost), "
            f"got {shown!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError("backend URL must not contain a user name or password")
    if parts.query or parts.fragment or any(ch.isspace() for ch in raw):
        raise ConfigError(
            f"backend URL must not contain a query, fragment or spaces, got {shown!r}"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def package_entries(app_dir: Path, backend_url: str) -> dict[str, bytes]:
    """The files of the package (zip path -> bytes), with the backend URL substituted."""
    base = normalise_backend_url(backend_url)
    manifest_path = app_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"no Zendesk app found: {manifest_path} does not exist")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PackageError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise PackageError(f"{manifest_path} is not a JSON object")
    _substitute_backend(manifest, base)
    entries = {
        "manifest.json": (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    }
    if (app_dir / "requirements.json").is_file():
        entries["requirements.json"] = (app_dir / "requirements.json").read_bytes()
    for folder in sorted(ALLOWED_TOP_LEVEL_DIRS):
        for path in sorted((app_dir / folder).rglob("*")):
            relative = path.relative_to(app_dir).as_posix()
            if any(part.startswith(".") for part in relative.split("/")):
                continue  # dotfiles (editor state, .DS_Store) never ship
            if path.is_symlink():
                raise PackageError(f"{relative} is a symlink; Zendesk rejects symlinks in apps")
            if path.is_file():
                entries[relative] = path.read_bytes()
    return entries


def _substitute_backend(manifest: dict[str, Any], base: str) -> None:
    support = manifest.get("location", {})
    support = support.get("support") if isinstance(support, dict) else None
    if not isinstance(support, dict) or "ticket_sidebar" not in support:
        raise PackageError("manifest.json has no location.support.ticket_sidebar to point at")
    sidebar = support["ticket_sidebar"]
    if isinstance(sidebar, dict):
        sidebar["url"] = base + SIDEBAR_PATH
    else:
        support["ticket_sidebar"] = base + SIDEBAR_PATH
    host = urlsplit(base).hostname or ""
    placeholder = urlsplit(PLACEHOLDER_BACKEND_URL).hostname
    existing = manifest.get("domainWhitelist")
    if existing is not None and not isinstance(existing, list):
        raise PackageError("manifest.json: domainWhitelist must be an array of strings")
    others = [d for d in existing or [] if d not in (placeholder, host)]
    manifest["domainWhitelist"] = [host, *others]
    for parameter in manifest.get("parameters") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "backend_url":
            parameter["default"] = base


def write_zip(entries: Mapping[str, bytes], out: Path) -> Path:
    """Write `entries` as a reproducible zip (sorted names, fixed timestamps)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    return out


def build_package(app_dir: Path, backend_url: str, out: Path) -> Path:
    """Build the installable zip at `out` and return its path.

    Raises ConfigError for a bad backend URL or a missing app directory, PackageError when the
    result would not pass `validate_package` (nothing is left at `out` in that case).
    """
    entries = package_entries(app_dir, backend_url)
    partial = out.with_name(out.name + ".partial")
    write_zip(entries, partial)
    errors = validate_package(partial)
    if errors:
        partial.unlink()
        raise PackageError(
            "the Zendesk app package is invalid:\n" + "\n".join(f"  - {e}" for e in errors)
        )
    os.replace(partial, out)
    return out


# ================================================================================ validation


def validate_package(zip_path: Path | str) -> list[str]:
    """Check a package zip offline; return human-readable errors (empty when it is valid)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            files = {info.filename: archive.read(info) for info in infos}
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"{zip_path} is not a readable zip file: {exc}"]
    errors = _structure_errors(infos, files)
    manifest, manifest_errors = _load_manifest(files)
    errors += manifest_errors
    if manifest is not None:
        errors += _manifest_errors(manifest, files)
        errors += _translation_errors(manifest, files)
    errors += _asset_errors(files)
    return errors


# ---------------------------------------------------------------------------- file structure


def _structure_errors(infos: Iterable[zipfile.ZipInfo], files: Mapping[str, bytes]) -> list[str]:
    errors = []
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "\\" in name:
            errors.append(f"{name}: unsafe path in the zip")
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            errors.append(f"{name}: symlinks are not allowed in an app (zendesk_apps_support)")
        if any(part.startswith(".") for part in parts):
            errors.append(f"{name}: dotfiles do not belong in the package")
        elif len(parts) == 1 and name not in ALLOWED_TOP_LEVEL_FILES:
            errors.append(
                f"{name}: unexpected file; the package holds only manifest.json, "
                "requirements.json, assets/ and translations/"
            )
        elif len(parts) > 1 and parts[0] not in ALLOWED_TOP_LEVEL_DIRS:
            errors.append(
                f"{name}: unexpected folder {parts[0]}/; the package holds only assets/ and "
                "translations/ besides the manifest"
            )
        extension = name.rsplit(".", 1)[-1].lower() if "." in parts[-1] else ""
        if extension in BLOCKED_EXTENSIONS or files[name].startswith(BLOCKED_MAGIC):
            errors.append(f"{name}: unsupported file type for a Zendesk app")
    return errors


# ---------------------------------------------------------------------------- manifest


def _load_manifest(files: Mapping[str, bytes]) -> tuple[dict[str, Any] | None, list[str]]:
    if "manifest.json" not in files:
        nested = sorted(n for n in files if re.fullmatch(r"[^/]+/manifest\.json", n))
        if nested:
            return None, [f"manifest.json must be at the top of the zip, found {nested[0]}"]
        return None, ["manifest.json is missing"]
    try:
        manifest = json.loads(files["manifest.json"], object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKeyError as exc:
        return None, [f"manifest.json: duplicate key {exc.args[0]!r}"]
    except ValueError as exc:
        return None, [f"manifest.json is not valid JSON: {exc}"]
    if not isinstance(manifest, dict):
        return None, ["manifest.json is not a JSON object"]
    return manifest, []


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _manifest_errors(manifest: dict[str, Any], files: Mapping[str, bytes]) -> list[str]:
    return [
        *_required_key_errors(manifest),
        *_type_errors(manifest),
        *_author_errors(manifest),
        *_oauth_errors(manifest),
        *_default_locale_errors(manifest, files),
        *_framework_errors(manifest),
        *_location_errors(manifest, files),
        *_parameter_errors(_parameters(manifest)),
        *_secure_setting_errors(_parameters(manifest)),
        *_domain_whitelist_errors(manifest),
    ]


def _required_key_errors(manifest: Mapping[str, Any]) -> list[str]:
    required = ("author", "defaultLocale", "location", "frameworkVersion")
    missing = [key for key in required if manifest.get(key) in (None, {}, [], "")]
    if not missing:
        return []
    return [f"manifest.json is missing required key(s): {', '.join(missing)}"]


def _type_errors(manifest: Mapping[str, Any]) -> list[str]:
    errors = []
    for key in BOOLEAN_KEYS:
        # `private` defaults to true only when absent; an explicit null is rejected by the gem
        present = key in manifest if key == "private" else manifest.get(key) is not None
        if present and not isinstance(manifest[key], bool):
            errors.append(f"manifest.json: {key} must be a boolean value, got {manifest[key]!r}")
    for key in STRING_KEYS:
        value = manifest.get(key)
        if value is not None and not isinstance(value, str):
            errors.append(f"manifest.json: {key} must be a string, got {value!r}")
    if not isinstance(manifest.get("experiments", {}), dict):
        errors.append("manifest.json: experiments must be an object")
    whitelist = manifest.get("domainWhitelist")
    if whitelist is not None and not (
        isinstance(whitelist, list) and all(isinstance(d, str) for d in whitelist)
    ):
        errors.append("manifest.json: domainWhitelist must be an array of strings")
    if manifest.get("parameters") is not None and not isinstance(manifest["parameters"], list):
        errors.append("manifest.json: parameters must be an array")
    if manifest.get("requirementsOnly") is True or manifest.get("marketingOnly") is True:
        errors.append(
            "manifest.json: requirementsOnly/marketingOnly apps have no sidebar; "
            "this package must be a location app"
        )
    return errors


def _author_errors(manifest: Mapping[str, Any]) -> list[str]:
    author = manifest.get("author")
    errors = []
    if author is not None and not isinstance(author, dict):
        return [f"manifest.json: author must be an object with name, email and url, got {author!r}"]
    for field in ("name", "email", "url"):
        value = (author or {}).get(field)
        if author is not None and not (isinstance(value, str) and value.strip()):
            errors.append(f"manifest.json: author {field} must be a non-empty string")
    url = (author or {}).get("url")
    if isinstance(url, str) and url.strip() and not _valid_http_url(url):
        errors.append(f"manifest.json: author url must be a valid http(s) URL, got {url!r}")
    terms = manifest.get("termsConditionsURL")
    if isinstance(terms, str) and not _valid_http_url(terms):
        errors.append(f"manifest.json: termsConditionsURL must be a valid URL, got {terms!r}")
    return errors


def _valid_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def _oauth_errors(manifest: Mapping[str, Any]) -> list[str]:
    oauth = manifest.get("oauth")
    if oauth is None:
        return []
    if not isinstance(oauth, dict):
        return ["manifest.json: oauth must be an object"]
    errors = []
    missing = [key for key in OAUTH_REQUIRED_FIELDS if not oauth.get(key)]
    if missing:
        errors.append(f"manifest.json: oauth is missing {', '.join(missing)}")
    if not any(p.get("type") == "oauth" for p in _parameters(manifest)):
        errors.append("manifest.json: an oauth section needs a parameter of type oauth")
    return errors


def _default_locale_errors(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    locale = manifest.get("defaultLocale")
    if not isinstance(locale, str):
        return []
    if not VALID_LOCALE.fullmatch(locale):
        return [f"manifest.json: {locale!r} is not a valid default locale"]
    if f"translations/{locale}.json" not in files:
        return [f"missing translation file translations/{locale}.json for the default locale"]
    return []


def _framework_errors(manifest: Mapping[str, Any]) -> list[str]:
    errors = []
    version = manifest.get("frameworkVersion")
    if version is not None and version not in SERVABLE_FRAMEWORK_VERSIONS:
        errors.append(
            f"manifest.json: {version!r} is not a valid framework version; "
            f"available: {', '.join(SERVABLE_FRAMEWORK_VERSIONS)}"
        )
    no_template = manifest.get("noTemplate")
    if no_template not in (None, False, []):
        errors.append("manifest.json: noTemplate is not allowed for framework 2.0 apps")
    return errors


def _location_errors(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    location = manifest.get("location")
    if location is None:
        return []
    if isinstance(location, (list, str)):
        return ["manifest.json: app locations need to be URLs for framework 2.0 (location object)"]
    if not isinstance(location, dict):
        return [f"manifest.json: location must be an object, got {location!r}"]
    errors = []
    known_hosts = {*PRODUCTS, *PRODUCTS.values()}
    errors += [
        f"manifest.json: {h} is an invalid host for apps" for h in location if h not in known_hosts
    ]
    for product, legacy in PRODUCTS.items():
        locations = location.get(product, location.get(legacy))
        if locations is None:
            continue
        if not isinstance(locations, dict):
            errors.append(f"manifest.json: location.{product} must be an object")
            continue
        for name, options in locations.items():
            errors += _one_location_errors(product, name, options, files)
    support = location.get("support", location.get("zendesk"))
    if not (isinstance(support, dict) and "ticket_sidebar" in support):
        errors.append("manifest.json: location.support.ticket_sidebar is required for this app")
    return errors


def _one_location_errors(
    product: str, name: str, options: Any, files: Mapping[str, bytes]
) -> list[str]:
    where = f"location.{product}.{name}"
    if name not in LOCATIONS[product]:
        return [f"manifest.json: {name} is an invalid location in {product.capitalize()}"]
    if isinstance(options, str):
        options = {"url": options}
    if not isinstance(options, dict):
        return [f"manifest.json: {where} must be a URL or an options object"]
    errors = []
    url = options.get("url")
    if url == LEGACY_URI_STUB:
        errors.append(f"manifest.json: {where} must be a URL for framework 2.0")
    elif isinstance(url, str) and url:
        if not _valid_location_url(url, files):
            errors.append(
                f"manifest.json: {where} url {url!r} is either an invalid location URI, "
                "refers to a missing asset, or does not use HTTPS"
            )
    elif options.get("autoLoad", True) is not False:
        errors.append(f"manifest.json: {where} location does not specify a URI")
    flexible = options.get("flexible")
    if flexible is not None and not isinstance(flexible, bool):
        errors.append(f"manifest.json: {where}.flexible must be a boolean, got {flexible!r}")
    return errors


def _valid_location_url(url: str, files: Mapping[str, bytes]) -> bool:
    if "{{setting." in url:
        return True  # resolved at runtime from a setting; the gem does not check these
    if any(ch.isspace() for ch in url):
        return False
    parts = urlsplit(url)
    if parts.scheme:
        return bool(parts.hostname) and (parts.scheme == "https" or parts.hostname == "localhost")
    return parts.path.startswith("assets/") and parts.path in files


# ---------------------------------------------------------------------------- parameters


def _parameters(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    parameters = manifest.get("parameters")
    if not isinstance(parameters, list):
        return []
    return [p for p in parameters if isinstance(p, dict)]


def _parameter_errors(parameters: list[dict[str, Any]]) -> list[str]:
    errors = []
    names = [p.get("name") for p in parameters]
    duplicates = sorted({str(n) for n in names if names.count(n) > 1})
    if duplicates:
        errors.append(f"manifest.json: duplicate app parameters defined: {', '.join(duplicates)}")
    for index, parameter in enumerate(parameters):
        name = parameter.get("name")
        label = f'parameters[name="{name}"]'
        if not (isinstance(name, str) and name):
            errors.append(f"manifest.json: parameters[{index}] needs a non-empty string name")
        if name == "name":
            errors.append("manifest.json: a parameter cannot be called 'name'")
        kind = parameter.get("type") or "text"
        if kind not in PARAMETER_TYPES:
            errors.append(f"manifest.json: {label}: {kind!r} is an invalid parameter type")
        for flag in ("required", "secure"):
            value = parameter.get(flag)
            if value is not None and not isinstance(value, bool):
                errors.append(f"manifest.json: {label}.{flag} must be a boolean, got {value!r}")
        if kind == "hidden" and parameter.get("required"):
            errors.append(f"manifest.json: {label} is set to hidden and cannot be required")
        if kind == "oauth" and parameter.get("secure"):
            errors.append(f"manifest.json: {label}: an oauth parameter cannot be secure")
        errors += _scope_errors(label, parameter)
    if sum(1 for p in parameters if p.get("type") == "oauth") > 1:
        errors.append("manifest.json: at most one parameter may have type oauth")
    return errors


def _scope_errors(label: str, parameter: Mapping[str, Any]) -> list[str]:
    scopes = parameter.get("scopes")
    if scopes is None:
        return []
    errors = []
    if not parameter.get("secure"):
        errors.append(f"manifest.json: {label}.scopes cannot be defined in a non-secure parameter")
    if not isinstance(scopes, list):
        return [*errors, f"manifest.json: {label}.scopes must be an array"]
    if not scopes:
        errors.append(f"manifest.json: {label}.scopes cannot be empty")
    invalid = [str(s) for s in scopes if s not in SECURE_PARAM_SCOPES]
    if invalid:
        errors.append(
            f"manifest.json: {label}.scopes contains invalid values: {', '.join(invalid)}"
        )
    return errors


def _secure_setting_errors(parameters: list[dict[str, Any]]) -> list[str]:
    """validations/secure_settings.rb: warnings in the gem, errors for this project."""
    errors = []
    for parameter in parameters:
        name = parameter.get("name")
        label = f'parameters[name="{name}"]'
        secure = parameter.get("secure") is True
        kind = parameter.get("type") or "text"
        if secure and not parameter.get("scopes"):
            errors.append(
                f"manifest.json: {label} is secure but has no scopes "
                f"(allowed: {', '.join(SECURE_PARAM_SCOPES)}); this may expose the secret"
            )
        if "default" in parameter and (secure or kind == "hidden"):
            errors.append(
                f"manifest.json: {label}: default values for secure or hidden parameters "
                "are not stored securely"
            )
        looks_secret = isinstance(name, str) and SECURABLE_KEYWORDS.search(name) is not None
        if looks_secret and kind == "text" and not secure:
            errors.append(
                f"manifest.json: {label} looks like a secret (token/key/pwd/password) "
                "and must be secure"
            )
    return errors


def _domain_whitelist_errors(manifest: Mapping[str, Any]) -> list[str]:
    """Project rule: secure settings need a whitelist, and it names the sidebar's host."""
    whitelist = manifest.get("domainWhitelist")
    if not isinstance(whitelist, list):
        whitelist = []
    errors = []
    if any(p.get("secure") is True for p in _parameters(manifest)) and not whitelist:
        errors.append("manifest.json: secure parameters need a domainWhitelist")
    location = manifest.get("location")
    support = location.get("support") if isinstance(location, dict) else None
    sidebar = support.get("ticket_sidebar") if isinstance(support, dict) else None
    url = sidebar.get("url") if isinstance(sidebar, dict) else sidebar
    if isinstance(url, str) and urlsplit(url).scheme:
        host = urlsplit(url).hostname
        if host and host not in whitelist:
            errors.append(f"manifest.json: domainWhitelist must contain the backend host {host}")
    return errors


# ---------------------------------------------------------------------------- translations


def _translation_errors(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    errors = []
    default_locale = manifest.get("defaultLocale")
    for path in sorted(files):
        match = re.fullmatch(r"translations/(.*)\.json", path)
        if not match:
            continue
        if not VALID_LOCALE.fullmatch(match.group(1)):
            errors.append(f"{path}: {match.group(1)!r} is not a valid locale")
            continue
        try:
            data = json.loads(files[path])
        except ValueError as exc:
            errors.append(f"{path} is not valid JSON: {exc}")
            continue
        if not isinstance(data, dict):
            errors.append(f"{path} is not a JSON object")
            continue
        errors += _translation_parameter_errors(path, data)
        if match.group(1) == default_locale:
            errors += _default_translation_errors(path, data, manifest)
    return errors


def _translation_parameter_errors(path: str, data: Mapping[str, Any]) -> list[str]:
    app = data.get("app")
    parameters = app.get("parameters") if isinstance(app, dict) else None
    if parameters is None:
        return []
    if not isinstance(parameters, dict):
        return [f"{path}: app.parameters must be an object"]
    return [
        f"{path}: missing required key label on leaf app.parameters.{name}"
        for name, leaf in parameters.items()
        if not (isinstance(leaf, dict) and "label" in leaf)
    ]


def _default_translation_errors(
    path: str, data: Mapping[str, Any], manifest: Mapping[str, Any]
) -> list[str]:
    app = data.get("app")
    if not isinstance(app, dict):
        return [f"{path}: the app object is missing"]
    private = manifest.get("private", True) is not False
    required = ("name",) if private else PUBLIC_TRANSLATION_KEYS
    products = [p for p in PRODUCTS if p in app]
    errors = []
    if products:
        manifest_products = _manifest_products(manifest)
        if set(products) - set(manifest_products):
            errors.append(
                f"{path}: products in translations ({', '.join(products)}) do not match "
                f"the manifest ({', '.join(manifest_products)})"
            )
        blocks = [app[p] if isinstance(app[p], dict) else {} for p in products]
    else:
        blocks = [app]
    for block in blocks:
        keys = {"short_description" if k == "description" else k for k in block}
        missing = [k for k in required if k not in keys]
        if missing:
            errors.append(f"{path}: missing required key(s) {', '.join(missing)} under app")
    labels = app.get("parameters")
    labels = labels if isinstance(labels, dict) else {}
    for parameter in _parameters(manifest):
        name = parameter.get("name")
        # a leaf present without a label is reported by _translation_parameter_errors
        if isinstance(name, str) and name not in labels:
            errors.append(f"{path}: app.parameters.{name}.label is missing (settings form label)")
    return errors


def _manifest_products(manifest: Mapping[str, Any]) -> list[str]:
    location = manifest.get("location")
    if not isinstance(location, dict):
        return ["support"]
    return [p for p, legacy in PRODUCTS.items() if p in location or legacy in location]


# ---------------------------------------------------------------------------- assets


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when `data` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _asset_errors(files: Mapping[str, bytes]) -> list[str]:
    errors = []
    for path, (width, height) in REQUIRED_LOGOS.items():
        if path not in files:
            errors.append(f"{path} is missing (Zendesk requires it, {width}x{height} PNG)")
            continue
        size = png_size(files[path])
        if size is None:
            errors.append(f"{path} is not a PNG image")
        elif size != (width, height):
            errors.append(f"{path} must be {width}x{height} pixels, got {size[0]}x{size[1]}")
    if "assets/banner.png" in files:
        size = png_size(files["assets/banner.png"])
        if size is None:
            errors.append("assets/banner.png is not a PNG image")
        elif size not in BANNER_SIZES:
            errors.append("assets/banner.png must be 830x200 or 1660x400 pixels")
    return errors


# ================================================================================ command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m commerce_context.zendesk_package",
        description="Build the Zendesk Support app zip for a commerce-context backend.",
    )
    parser.add_argument(
        "--backend-url",
        required=True,
        help="backend base URL, e.g. https://cc.example.com (https; http only for localhost)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"zip to write ({DEFAULT_OUT})"
    )
    parser.add_argument(
        "--app-dir", type=Path, default=Path("zendesk_app"), help="app sources (zendesk_app)"
    )
    args = parser.parse_args(argv)
    try:
        path = build_package(args.app_dir, args.backend_url, args.out)
    except ConfigError as exc:
        print(f"zendesk-package: {exc.message}", file=sys.stderr)
        return 2
    except PackageError as exc:
        print(f"zendesk-package: {exc.message}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
