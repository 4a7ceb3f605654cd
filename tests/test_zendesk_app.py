"""The Zendesk app package: committed sources valid, every offline validator rule bites."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from commerce_context.exceptions import ConfigError
from commerce_context.zendesk_package import (
    PLACEHOLDER_BACKEND_URL,
    PackageError,
    build_package,
    normalise_backend_url,
    package_entries,
    png_size,
    validate_package,
    write_zip,
)

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = ROOT / "zendesk_app"
BACKEND = "https://cc.shop.example"

Entries = dict[str, bytes]


def tiny_png(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + tag + data + crc

    raw = b"".join(b"\x00" + b"\x00\x00\x00\xff" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def entries() -> Entries:
    return package_entries(APP_DIR, BACKEND)


def manifest_of(files: Entries) -> dict[str, Any]:
    manifest = json.loads(files["manifest.json"])
    assert isinstance(manifest, dict)
    return manifest


def with_manifest(change: Callable[[dict[str, Any]], None]) -> Entries:
    files = entries()
    manifest = manifest_of(files)
    change(manifest)
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def with_translation(locale: str, change: Callable[[dict[str, Any]], None]) -> Entries:
    files = entries()
    data = json.loads(files[f"translations/{locale}.json"])
    change(data)
    files[f"translations/{locale}.json"] = json.dumps(data).encode()
    return files


def errors_for(files: Entries, tmp_path: Path) -> list[str]:
    return validate_package(write_zip(files, tmp_path / "app.zip"))


def param(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    found = [p for p in manifest["parameters"] if p["name"] == name]
    assert len(found) == 1
    result = found[0]
    assert isinstance(result, dict)
    return result


def leaf_keys(node: Any, prefix: str = "") -> set[str]:
    if not isinstance(node, dict):
        return {prefix}
    keys: set[str] = set()
    for key, value in node.items():
        keys |= leaf_keys(value, f"{prefix}.{key}" if prefix else key)
    return keys


# ------------------------------------------------------------------------- committed sources


def test_committed_manifest_is_the_designed_one() -> None:
    manifest = json.loads((APP_DIR / "manifest.json").read_text())
    assert manifest["name"] == "commerce-context"
    assert manifest["author"] == {
        "name": "commerce-context team",
        "email": "support@example.com",
        "url": "https://example.com",
    }
    assert manifest["defaultLocale"] == "en"
    assert manifest["private"] is True
    assert manifest["frameworkVersion"] == "2.0"
    assert manifest["version"] == "0.1.0"
    assert manifest["signedUrls"] is True
    assert manifest["location"] == {
        "support": {
            "ticket_sidebar": {
                "url": f"{PLACEHOLDER_BACKEND_URL}/zendesk/sidebar",
                "flexible": True,
            }
        }
    }
    assert manifest["domainWhitelist"] == ["commerce-context.example.com"]
    assert [p["name"] for p in manifest["parameters"]] == [
        "backend_url",
        "order_number_field_id",
        "shared_secret",
    ]
    assert param(manifest, "backend_url")["type"] == "url"
    assert param(manifest, "backend_url")["required"] is True
    assert param(manifest, "backend_url")["secure"] is False
    assert param(manifest, "order_number_field_id")["type"] == "number"
    secret = param(manifest, "shared_secret")
    assert (secret["type"], secret["secure"], secret["required"]) == ("text", True, False)
    assert secret["scopes"] == ["jwt_secret_key"]
    assert "default" not in secret


def test_committed_app_builds_into_a_valid_package(tmp_path: Path) -> None:
    out = build_package(APP_DIR, BACKEND, tmp_path / "dist" / "app.zip")
    assert out == tmp_path / "dist" / "app.zip"
    assert validate_package(out) == []


def test_committed_assets_are_pngs_of_the_required_sizes() -> None:
    assert png_size((APP_DIR / "assets/logo.png").read_bytes()) == (320, 320)
    assert png_size((APP_DIR / "assets/logo-small.png").read_bytes()) == (128, 128)


def test_translations_have_identical_keys_and_placeholders() -> None:
    files = sorted((APP_DIR / "translations").glob("*.json"))
    assert {f.stem for f in files} >= {"en", "de"}
    loaded = {f.stem: json.loads(f.read_text(encoding="utf-8")) for f in files}
    reference = leaf_keys(loaded["en"])
    manifest = json.loads((APP_DIR / "manifest.json").read_text())
    for p in manifest["parameters"]:
        assert f"app.parameters.{p['name']}.label" in reference
        assert f"app.parameters.{p['name']}.helpText" in reference
    for ui in ("refresh", "loading", "nothing_found", "searched_for", "other_customers"):
        assert f"sidebar.{ui}" in reference
    assert {"sidebar.stale_as_of", "sidebar.open_in_merchant_center"} <= reference
    for locale, data in loaded.items():
        assert leaf_keys(data) == reference, locale
        for key in reference:
            node: Any = data
            en: Any = loaded["en"]
            for part in key.split("."):
                node, en = node[part], en[part]
            assert isinstance(node, str) and node.strip(), (locale, key)
            assert re.findall(r"{{\w+}}", node) == re.findall(r"{{\w+}}", en), (locale, key)


# ------------------------------------------------------------------------- build


def test_zip_has_the_substituted_url_and_whitelist_and_nothing_else(tmp_path: Path) -> None:
    out = build_package(APP_DIR, "https://tools.shop.example/cc/", tmp_path / "app.zip")
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert names == [
        "assets/logo-small.png",
        "assets/logo.png",
        "manifest.json",
        "translations/de.json",
        "translations/en.json",
    ]
    sidebar = manifest["location"]["support"]["ticket_sidebar"]
    assert sidebar == {"url": "https://tools.shop.example/cc/zendesk/sidebar", "flexible": True}
    assert manifest["domainWhitelist"] == ["tools.shop.example"]
    assert param(manifest, "backend_url")["default"] == "https://tools.shop.example/cc"
    assert "example.com" not in json.dumps(manifest["location"])


def test_build_is_reproducible(tmp_path: Path) -> None:
    first = build_package(APP_DIR, BACKEND, tmp_path / "a.zip").read_bytes()
    second = build_package(APP_DIR, BACKEND, tmp_path / "b.zip").read_bytes()
    assert first == second


def test_build_leaves_out_readme_and_dotfiles(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app)
    (app / "assets" / ".DS_Store").write_bytes(b"junk")
    (app / "notes.txt").write_text("not shipped")
    files = package_entries(app, BACKEND)
    assert "README.md" not in files
    assert "notes.txt" not in files
    assert not any("/." in name or name.startswith(".") for name in files)


def test_build_refuses_an_invalid_app_and_writes_nothing(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app)
    (app / "assets" / "logo.png").write_bytes(tiny_png(100, 100))
    out = tmp_path / "dist" / "app.zip"
    with pytest.raises(PackageError, match="must be 320x320 pixels, got 100x100"):
        build_package(app, BACKEND, out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://cc.example.com", "https://cc.example.com"),
        ("https://cc.example.com/", "https://cc.example.com"),
        ("  https://cc.example.com:8443/base/ ", "https://cc.example.com:8443/base"),
        ("http://localhost:8000", "http://localhost:8000"),
    ],
)
def test_backend_url_is_normalised(url: str, expected: str) -> None:
    assert normalise_backend_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://cc.example.com",
        "http://127.0.0.1:8000",
        "ftp://cc.example.com",
        "cc.example.com",
        "https://",
        "https://user:pw@cc.example.com",
        "https://cc.example.com/?x=1",
        "https://cc.example.com/#top",
    ],
)
def test_bad_backend_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        normalise_backend_url(url)
    assert "\n" not in caught.value.message
    assert "pw@" not in caught.value.message


# ------------------------------------------------------------------------- validator rules


def _remove_author_url(m: dict[str, Any]) -> None:
    del m["author"]["url"]


def _sidebar(m: dict[str, Any]) -> dict[str, Any]:
    sidebar = m["location"]["support"]["ticket_sidebar"]
    assert isinstance(sidebar, dict)
    return sidebar


def _add_param(**p: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["parameters"].append(p)


MANIFEST_BREAKAGES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "signedUrls-string",
        lambda m: m.update(signedUrls="true"),
        "signedUrls must be a boolean value",
    ),
    ("private-number", lambda m: m.update(private=1), "private must be a boolean value"),
    ("author-missing", lambda m: m.pop("author"), "missing required key(s): author"),
    ("author-url-missing", _remove_author_url, "author url must be a non-empty string"),
    (
        "author-url-not-http",
        lambda m: m["author"].update(url="ftp://example.com"),
        "author url must be a valid http(s) URL",
    ),
    (
        "author-url-no-host",
        lambda m: m["author"].update(url="https://"),
        "author url must be a valid http(s) URL",
    ),
    ("author-string", lambda m: m.update(author="me"), "author must be an object"),
    (
        "defaultLocale-bad",
        lambda m: m.update(defaultLocale="EN_us"),
        "'EN_us' is not a valid default locale",
    ),
    (
        "defaultLocale-no-file",
        lambda m: m.update(defaultLocale="fr"),
        "missing translation file translations/fr.json",
    ),
    (
        "frameworkVersion-old",
        lambda m: m.update(frameworkVersion="1.0"),
        "'1.0' is not a valid framework version",
    ),
    (
        "frameworkVersion-missing",
        lambda m: m.pop("frameworkVersion"),
        "missing required key(s): frameworkVersion",
    ),
    ("noTemplate", lambda m: m.update(noTemplate=True), "noTemplate is not allowed"),
    ("location-missing", lambda m: m.pop("location"), "missing required key(s): location"),
    (
        "location-legacy-array",
        lambda m: m.update(location=["ticket_sidebar"]),
        "locations need to be URLs",
    ),
    (
        "location-unknown-host",
        lambda m: m["location"].update(desk={"ticket_sidebar": "https://a.example"}),
        "desk is an invalid host",
    ),
    (
        "location-unknown-name",
        lambda m: m["location"]["support"].update(ticket_sidebarr={"url": "https://a.example"}),
        "ticket_sidebarr is an invalid location in Support",
    ),
    (
        "location-no-sidebar",
        lambda m: m["location"].update(support={"background": "https://a.example/bg"}),
        "location.support.ticket_sidebar is required",
    ),
    (
        "sidebar-url-http",
        lambda m: _sidebar(m).update(url="http://cc.shop.example/zendesk/sidebar"),
        "does not use HTTPS",
    ),
    (
        "sidebar-url-missing-asset",
        lambda m: _sidebar(m).update(url="assets/iframe.html"),
        "refers to a missing asset",
    ),
    ("sidebar-url-blank", lambda m: _sidebar(m).pop("url"), "does not specify a URI"),
    (
        "sidebar-flexible-string",
        lambda m: _sidebar(m).update(flexible="yes"),
        "flexible must be a boolean",
    ),
    (
        "domainWhitelist-wrong-type",
        lambda m: m.update(domainWhitelist="cc.shop.example"),
        "domainWhitelist must be an array of strings",
    ),
    (
        "domainWhitelist-without-backend",
        lambda m: m.update(domainWhitelist=["other.example"]),
        "domainWhitelist must contain the backend host cc.shop.example",
    ),
    ("parameters-object", lambda m: m.update(parameters={}), "parameters must be an array"),
    (
        "param-duplicate",
        _add_param(name="backend_url", type="url"),
        "duplicate app parameters defined: backend_url",
    ),
    ("param-called-name", _add_param(name="name"), "a parameter cannot be called 'name'"),
    (
        "param-bad-type",
        _add_param(name="colour", type="password"),
        "'password' is an invalid parameter type",
    ),
    (
        "param-hidden-required",
        _add_param(name="internal", type="hidden", required=True),
        "is set to hidden and cannot be required",
    ),
    (
        "param-required-string",
        _add_param(name="flag", type="checkbox", required="no"),
        'parameters[name="flag"].required must be a boolean',
    ),
    (
        "param-secure-without-scopes",
        _add_param(name="api_secret", type="text", secure=True),
        'parameters[name="api_secret"] is secure but has no scopes',
    ),
    (
        "param-scopes-on-insecure",
        _add_param(name="plain", type="text", scopes=["header"]),
        "scopes cannot be defined in a non-secure parameter",
    ),
    (
        "param-scopes-unknown",
        _add_param(name="s2", type="text", secure=True, scopes=["cookie"]),
        "scopes contains invalid values: cookie",
    ),
    (
        "param-scopes-empty",
        _add_param(name="s3", type="text", secure=True, scopes=[]),
        "scopes cannot be empty",
    ),
    (
        "param-secure-default",
        lambda m: param(m, "shared_secret").update(default="abc"),
        "default values for secure or hidden parameters",
    ),
    (
        "param-token-not-secure",
        _add_param(name="api_token", type="text"),
        'parameters[name="api_token"] looks like a secret',
    ),
    (
        "param-untyped-password-not-secure",
        _add_param(name="merchant_password"),
        'parameters[name="merchant_password"] looks like a secret',
    ),
    (
        "param-oauth-secure",
        _add_param(name="auth", type="oauth", secure=True),
        "an oauth parameter cannot be secure",
    ),
    (
        "oauth-incomplete",
        lambda m: m.update(oauth={"client_id": "x"}),
        "oauth is missing client_secret, authorize_uri, access_token_uri",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(c, e, id=i) for i, c, e in MANIFEST_BREAKAGES],
)
def test_each_manifest_rule_catches_its_breakage(
    change: Callable[[dict[str, Any]], None], expected: str, tmp_path: Path
) -> None:
    errors = errors_for(with_manifest(change), tmp_path)
    assert any(expected in e for e in errors), errors


def test_localhost_sidebar_url_over_http_is_accepted(tmp_path: Path) -> None:
    files = package_entries(APP_DIR, "http://localhost:8000")
    assert errors_for(files, tmp_path) == []


def test_duplicate_manifest_keys_are_rejected(tmp_path: Path) -> None:
    files = entries()
    text = files["manifest.json"].decode()
    files["manifest.json"] = text.replace('"version":', '"private": false,\n  "version":').encode()
    assert errors_for(files, tmp_path) == ["manifest.json: duplicate key 'private'"]


def _drop(path: str) -> Callable[[Entries], None]:
    def drop(files: Entries) -> None:
        del files[path]

    return drop


def _put(path: str, data: bytes) -> Callable[[Entries], None]:
    return lambda files: files.update({path: data})


FILE_BREAKAGES: list[tuple[str, Callable[[Entries], None], str]] = [
    ("logo-missing", _drop("assets/logo.png"), "assets/logo.png is missing"),
    ("logo-small-missing", _drop("assets/logo-small.png"), "assets/logo-small.png is missing"),
    (
        "logo-wrong-size",
        _put("assets/logo.png", tiny_png(128, 128)),
        "assets/logo.png must be 320x320 pixels, got 128x128",
    ),
    (
        "logo-small-wrong-size",
        _put("assets/logo-small.png", tiny_png(64, 32)),
        "assets/logo-small.png must be 128x128 pixels, got 64x32",
    ),
    ("logo-not-png", _put("assets/logo.png", b"GIF89a...."), "assets/logo.png is not a PNG"),
    (
        "banner-wrong-size",
        _put("assets/banner.png", tiny_png(800, 200)),
        "assets/banner.png must be 830x200 or 1660x400",
    ),
    (
        "default-translation-missing",
        _drop("translations/en.json"),
        "missing translation file translations/en.json",
    ),
    (
        "translation-not-json",
        _put("translations/de.json", b"{nope"),
        "translations/de.json is not valid JSON",
    ),
    (
        "translation-not-object",
        _put("translations/de.json", b"[]"),
        "translations/de.json is not a JSON object",
    ),
    (
        "translation-bad-locale",
        _put("translations/EN.json", b"{}"),
        "'EN' is not a valid locale",
    ),
    ("readme-in-zip", _put("README.md", b"# hi"), "README.md: unexpected file"),
    ("code-folder", _put("src/app.js", b""), "unexpected folder src/"),
    ("dotfile", _put("assets/.DS_Store", b"x"), "assets/.DS_Store: dotfiles"),
    ("archive-inside", _put("assets/extra.zip", b"PK\x03\x04"), "unsupported file type"),
    ("unsafe-path", _put("assets/../../evil.txt", b"x"), "unsafe path"),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(c, e, id=i) for i, c, e in FILE_BREAKAGES],
)
def test_each_file_rule_catches_its_breakage(
    change: Callable[[Entries], None], expected: str, tmp_path: Path
) -> None:
    files = entries()
    change(files)
    errors = errors_for(files, tmp_path)
    assert any(expected in e for e in errors), errors


TRANSLATION_BREAKAGES: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    (
        "app-name-missing",
        "en",
        lambda t: t["app"].pop("name"),
        "translations/en.json: missing required key(s) name under app",
    ),
    (
        "param-label-missing-on-leaf",
        "de",
        lambda t: t["app"]["parameters"]["backend_url"].pop("label"),
        "translations/de.json: missing required key label on leaf app.parameters.backend_url",
    ),
    (
        "param-leaf-missing",
        "en",
        lambda t: t["app"]["parameters"].pop("order_number_field_id"),
        "app.parameters.order_number_field_id.label is missing",
    ),
    (
        "app-not-object",
        "en",
        lambda t: t.update(app="commerce-context"),
        "translations/en.json: the app object is missing",
    ),
]


@pytest.mark.parametrize(
    ("locale", "change", "expected"),
    [pytest.param(loc, c, e, id=i) for i, loc, c, e in TRANSLATION_BREAKAGES],
)
def test_each_translation_rule_catches_its_breakage(
    locale: str, change: Callable[[dict[str, Any]], None], expected: str, tmp_path: Path
) -> None:
    errors = errors_for(with_translation(locale, change), tmp_path)
    assert any(expected in e for e in errors), errors


def test_public_app_needs_the_marketplace_texts(tmp_path: Path) -> None:
    def public_without_description(files: Entries) -> Entries:
        manifest = manifest_of(files)
        manifest["private"] = False
        files["manifest.json"] = json.dumps(manifest).encode()
        data = json.loads(files["translations/en.json"])
        del data["app"]["long_description"]
        files["translations/en.json"] = json.dumps(data).encode()
        return files

    errors = errors_for(public_without_description(entries()), tmp_path)
    assert errors == ["translations/en.json: missing required key(s) long_description under app"]


def test_missing_and_nested_manifest_and_non_zip(tmp_path: Path) -> None:
    files = entries()
    assert any(
        e == "manifest.json is missing"
        for e in errors_for(_without(files, "manifest.json"), tmp_path)
    )
    nested = {f"commerce-context/{name}": data for name, data in entries().items()}
    assert "manifest.json must be at the top of the zip, found commerce-context/manifest.json" in (
        errors_for(nested, tmp_path)
    )
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"hello")
    (error,) = validate_package(not_zip)
    assert "is not a readable zip file" in error


def _without(files: Entries, name: str) -> Entries:
    return {k: v for k, v in files.items() if k != name}


# ------------------------------------------------------------------------- command line


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commerce_context.zendesk_package", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_builds_and_prints_the_zip_path(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "commerce-context-zendesk.zip"
    result = run_cli(
        "--backend-url", BACKEND, "--out", str(out), "--app-dir", str(APP_DIR), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert validate_package(out) == []


def test_cli_rejects_plain_http_with_exit_2_and_one_line(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    result = run_cli(
        "--backend-url",
        "http://cc.shop.example",
        "--out",
        str(out),
        "--app-dir",
        str(APP_DIR),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "https" in lines[0] and "localhost" in lines[0]
    assert not out.exists()


def test_cli_reports_an_invalid_package_with_exit_1(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app)
    (app / "assets" / "logo-small.png").unlink()
    result = run_cli(
        "--backend-url",
        BACKEND,
        "--out",
        str(tmp_path / "x.zip"),
        "--app-dir",
        str(app),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "assets/logo-small.png is missing" in result.stderr


def test_make_target_requires_backend_url(tmp_path: Path) -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = next(line for line in makefile.splitlines() if line.startswith(".PHONY:"))
    assert "zendesk-package" in phony.split()
    assert (
        '$(BIN)/python -m commerce_context.zendesk_package --backend-url "$(BACKEND_URL)" '
        "--out dist/commerce-context-zendesk.zip" in makefile
    )
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-C", str(ROOT), "zendesk-package", "BACKEND_URL="],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "BACKEND_URL" in result.stderr
