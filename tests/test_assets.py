"""The vendored front-end assets are exactly what we say they are.

* Zendesk Garden CSS: `npm run build-assets` (scripts/build_assets.mjs) copies it from the pinned
  npm packages into static/vendor/; here we rebuild into a temp dir and compare bytes, so a hand
  edit, a stale file or an unpinned/drifted package fails the suite.
* The Zendesk Apps Framework SDK: Zendesk's official SDK, built from its repository at a pinned
  tag (docs/architecture.md records the tag, commit and sha256). The bytes are pinned here by
  hash, its licence file sits beside it, and the npm fork without the origin allow-list is gone.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "backend" / "commerce_context" / "static" / "vendor"
SCRIPT = ROOT / "scripts" / "build_assets.mjs"
SIDEBAR_JS = ROOT / "backend" / "commerce_context" / "static" / "sidebar.js"
SIDEBAR_HTML = ROOT / "backend" / "commerce_context" / "templates" / "sidebar.html"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# The official ZAF SDK: tag v2.0.37 of github.com/zendesk/zendesk_app_framework_sdk
# (commit 30c435b6d1bb8583c56baa21827bbfdc7eb14c99), webpack production build of that tag.
ZAF_VERSION = "2.0.37"
ZAF_FILE = f"zaf_sdk-{ZAF_VERSION}.js"
ZAF_LICENSE = f"zaf_sdk-{ZAF_VERSION}.LICENSE"
ZAF_SHA256 = "58755658c2d5d4c788d175aa1ef526eaf03c8a6430e86b02ff6741e82c31d0e1"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not on PATH: install nodejs (make install / .ci/run do)", pytrace=False
        )
    if not (ROOT / "node_modules" / "@zendeskgarden" / "css-bedrock").is_dir():
        pytest.fail("node_modules is missing the Garden CSS packages: run `npm ci`", pytrace=False)
    out = tmp_path_factory.mktemp("vendor")
    result = subprocess.run(
        [node, str(SCRIPT), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr or result.stdout
    return out


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_committed_vendor_files_are_the_build_output(rebuilt: Path) -> None:
    built = _files(rebuilt)
    committed = {k: v for k, v in _files(VENDOR).items() if not k.startswith("zaf_sdk-")}
    assert sorted(committed) == sorted(built), "run `npm run build-assets` and commit the result"
    for name, content in built.items():
        assert committed[name] == content, (
            f"{name} differs from the build: run npm run build-assets"
        )


def test_every_asset_is_pinned_and_versioned() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    pins = {**package["dependencies"], **package.get("devDependencies", {})}
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in pins.values()), pins
    assert package["scripts"]["build-assets"] == "node scripts/build_assets.mjs"
    names = set(_files(VENDOR))
    assert {ZAF_FILE, ZAF_LICENSE} <= names
    garden = names - {ZAF_FILE, ZAF_LICENSE}
    for name in garden:
        match = re.fullmatch(r"(css-[a-z-]+)-(\d+\.\d+\.\d+)\.css", name)
        assert match, name
        assert pins[f"@zendeskgarden/{match[1]}"] == match[2], name
    # the Garden files are verbatim copies of the packages' dist/index.css
    for name in garden:
        package_name = re.sub(r"-\d+\.\d+\.\d+\.css$", "", name)
        source = ROOT / "node_modules" / "@zendeskgarden" / package_name / "dist" / "index.css"
        assert (VENDOR / name).read_bytes() == source.read_bytes(), name


def test_the_zaf_sdk_is_the_pinned_official_build() -> None:
    bundle = (VENDOR / ZAF_FILE).read_bytes()
    assert hashlib.sha256(bundle).hexdigest() == ZAF_SHA256, (
        f"{ZAF_FILE} is not the official build recorded in docs/architecture.md"
    )
    # the provenance note names the same tag, commit and hash
    architecture = ARCHITECTURE.read_text(encoding="utf-8")
    for fact in (f"v{ZAF_VERSION}", "30c435b6d1bb8583c56baa21827bbfdc7eb14c99", ZAF_SHA256):
        assert fact in architecture, fact
    # the npm fork (no origin allow-list) is gone from the pins and from node_modules' lock
    package = json.loads((ROOT / "package.json").read_text())
    assert "zendesk_app_framework_sdk" not in {
        **package["dependencies"],
        **package.get("devDependencies", {}),
    }
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert "node_modules/zendesk_app_framework_sdk" not in lock["packages"]
    assert not any(
        name.startswith("zaf_sdk-") and name != ZAF_FILE and name.endswith(".js")
        for name in _files(VENDOR)
    )


def test_the_zaf_sdk_has_its_licence_beside_it() -> None:
    licence = (VENDOR / ZAF_LICENSE).read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence  # the full text, not a pointer
    assert "Copyright 2014 Zendesk" in licence
    # the bundled Native Promise Only (MIT) keeps its notice too
    assert "Native Promise Only" in licence and "The MIT License" in licence


def test_the_zaf_sdk_checks_origins_and_defines_the_global() -> None:
    bundle = (VENDOR / ZAF_FILE).read_text(encoding="utf-8")
    # UMD wrapper: a classic <script> defines window.ZAFClient, as the CDN build does
    assert "e.ZAFClient=t()" in bundle
    # the origin allow-list the npm fork lacks, and its refusal message
    assert r"/^https:\/\/.+\.zendesk\.com$/" in bundle
    assert "Invalid domain " in bundle
    assert '"2.0.37"' in bundle  # the handshake announces the tag's version
    assert "zdassets" not in bundle  # loads nothing from Zendesk's CDN


def test_the_sidebar_loads_the_vendored_sdk() -> None:
    template = SIDEBAR_HTML.read_text(encoding="utf-8")
    assert re.findall(r"vendor/(zaf_sdk-[^'\"]+)", template) == [ZAF_FILE]


def test_sidebar_script_loads_nothing_remote() -> None:
    assert not re.search(r"https?://", SIDEBAR_JS.read_text(encoding="utf-8"))
