"""The vendored front-end assets are exactly what the pinned npm packages build to.

`npm run build-assets` (scripts/build_assets.mjs) writes static/vendor/; the generated files are
committed because the Python package serves them. Here we rebuild into a temp dir and compare
bytes, so a hand edit, a stale file or an unpinned/drifted package fails the suite.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not on PATH: install nodejs (make install / .ci/run do)", pytrace=False
        )
    if not (ROOT / "node_modules" / "esbuild").is_dir():
        pytest.fail("node_modules is missing esbuild: run `npm ci`", pytrace=False)
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
    built, committed = _files(rebuilt), _files(VENDOR)
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
    assert f"zaf_sdk-{pins['zendesk_app_framework_sdk']}.js" in names
    for name in names - {f"zaf_sdk-{pins['zendesk_app_framework_sdk']}.js"}:
        match = re.fullmatch(r"(css-[a-z-]+)-(\d+\.\d+\.\d+)\.css", name)
        assert match, name
        assert pins[f"@zendeskgarden/{match[1]}"] == match[2], name
    # the Garden files are verbatim copies of the packages' dist/index.css
    for name in names - {f"zaf_sdk-{pins['zendesk_app_framework_sdk']}.js"}:
        package_name = re.sub(r"-\d+\.\d+\.\d+\.css$", "", name)
        source = ROOT / "node_modules" / "@zendeskgarden" / package_name / "dist" / "index.css"
        assert (VENDOR / name).read_bytes() == source.read_bytes(), name


def test_zaf_bundle_defines_the_global_like_the_cdn_build() -> None:
    bundle = (VENDOR / "zaf_sdk-2.0.11.js").read_text(encoding="utf-8")
    assert bundle.startswith("/*! zendesk_app_framework_sdk 2.0.11 (npm)")
    assert "\nvar ZAFClient = (() => {" in bundle  # a classic script: window.ZAFClient
    assert "require(" not in bundle.replace("__require(", "")  # fully bundled
    assert "zdassets" not in bundle  # loads nothing from Zendesk's CDN


def test_sidebar_script_loads_nothing_remote() -> None:
    assert not re.search(r"https?://", SIDEBAR_JS.read_text(encoding="utf-8"))
