"""The container image and the scale-out set-up, checked statically (no Docker engine runs here):
the Dockerfile through BuildKit's own parser and hadolint, the compose file as YAML, the load
balancer's configuration and the environment template against the settings."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml

from commerce_context.settings import setting_names

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+(\.\d+)?[-\w.]*$")  # name:1.2.3-variant
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE|LINK_KEYS|DATABASE_URL")
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|build-essential|cmake|libc6?-dev|python3?-dev)\b"
)


class Stage:
    def __init__(self, image: str, name: str | None) -> None:
        self.image = image
        self.name = name
        self.commands: list[dockerfile.Command] = []

    def all(self, cmd: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == cmd]


def stages() -> tuple[dict[str, str], list[Stage]]:
    """The Dockerfile's stages, with ARG defaults declared before the first FROM resolved."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "ARG" and not found:
            name, _, default = command.value[0].partition("=")
            args[name] = default
        elif command.cmd == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], command.value[0])
            name = command.value[2] if len(command.value) == 3 else None
            found.append(Stage(image, name))
        else:
            found[-1].commands.append(command)
    return args, found


def test_the_dockerfile_has_a_build_and_a_final_runtime_stage() -> None:
    _, found = stages()
    names = [stage.name for stage in found]
    assert names[0] == "build" and names[-1] == "runtime", names
    final = found[-1]
    # The final stage starts from the slim base again (not from the build stage) and takes
    # only the installed virtualenv from it.
    assert final.image == found[0].image and "slim" in final.image
    copies = final.all("COPY")
    assert copies and all(c.flags == ("--from=prune",) for c in copies), copies
    assert [c.value[0] for c in copies] == ["/opt/venv"]
    # ... from the build with the test-and-demo stand-ins removed.
    [prune] = [stage for stage in found if stage.name == "prune"]
    assert prune.image == "build"
    removed = " ".join(" ".join(c.value) for c in prune.all("RUN"))
    for part in ("commerce_context/emulator", "storefront.py", "demo_sync.py"):
        assert part in removed, part


def test_production_code_never_imports_the_test_and_demo_stand_ins() -> None:
    """What the pruned image removes is reached only from the demo: importing the service,
    its worker and every command's module loads none of it."""
    code = (
        "import sys, commerce_context.app, commerce_context.cli, commerce_context.operations, "
        "commerce_context.worker, commerce_context.handlers\n"
        "bad = sorted(m for m in sys.modules if m.startswith('commerce_context.emulator') "
        "or m in ('commerce_context.storefront', 'commerce_context.demo_sync'))\n"
        "print(bad)"
    )
    result = subprocess.run(  # a fresh interpreter: nothing imported by other tests
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


def test_every_base_image_is_pinned() -> None:
    _, found = stages()
    stage_names = {stage.name for stage in found}
    for stage in found:
        if stage.image in stage_names:
            continue  # built on an earlier stage
        assert PINNED.match(stage.image), f"{stage.image} is not pinned to a version"
        assert ":latest" not in stage.image


def test_the_final_stage_runs_as_a_non_root_user() -> None:
    _, found = stages()
    users = found[-1].all("USER")
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].value[0].split(":")[0]
    assert user not in {"root", "0"}
    # The user is created in that stage, with a fixed numeric id (Kubernetes runAsNonRoot).
    runs = " ".join(" ".join(c.value) for c in found[-1].all("RUN"))
    assert f"--uid {user}" in runs


def test_no_build_tools_node_or_secrets_in_the_final_image() -> None:
    _, found = stages()
    final = found[-1]
    runs = " ".join(" ".join(c.value) for c in final.all("RUN"))
    assert not BUILD_TOOLS.search(runs), runs
    assert "apt-get install" not in runs and "pip install" not in runs
    assert not re.search(r"\b(node|nodejs|npm)\b", runs)
    for stage in found:
        for env in stage.all("ENV"):
            keys = env.value[::2]
            assert not [k for k in keys if SECRET_NAME.search(k)], keys
        assert not stage.all("ADD"), "ADD fetches and unpacks; COPY is explicit"


def test_dependencies_are_installed_from_the_pinned_constraints() -> None:
    _, found = stages()
    runs = " ".join(" ".join(c.value) for c in found[0].all("RUN"))
    assert "-c constraints.txt" in runs
    assert "--only-binary" in runs  # wheels only: the build stage needs no compiler either


def test_the_final_stage_has_a_health_check_and_starts_serve() -> None:
    _, found = stages()
    final = found[-1]
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    assert check.value[0] == "CMD" and "/healthz" in " ".join(check.value)
    assert any(flag.startswith("--interval=") for flag in check.flags)
    assert any(flag.startswith("--timeout=") for flag in check.flags)
    assert final.all("ENTRYPOINT")[-1].value == ("commerce-context",)
    assert final.all("CMD")[-1].value == ("serve",)
    assert final.all("STOPSIGNAL")[-1].value == ("SIGTERM",)
    env = dict(zip(*[iter(v for c in final.all("ENV") for v in c.value)] * 2, strict=True))
    assert env["CC_LOG_FORMAT"] == "json" and env["CC_HOST"] == "0.0.0.0"
    assert set(k for k in env if k.startswith("CC_")) <= set(setting_names())


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path (or a parent of it) decides."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        globs = {glob, glob.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(p, g) for p in prefixes for g in globs):
            ignored = not negate
    return ignored


def test_the_build_context_has_what_copy_needs_and_no_secrets() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    _, found = stages()
    sources = [
        source
        for stage in found
        for copy in stage.all("COPY")
        if not any(flag.startswith("--from") for flag in copy.flags)
        for source in copy.value[:-1]
    ]
    assert "backend" in sources and "constraints.txt" in sources
    for source in sources:
        assert not _ignored(source, patterns), f"{source} is excluded from the build context"
    assert not _ignored("backend/commerce_context/app.py", patterns)
    for secret in (".env", "deploy/commerce-context.env", "state.sqlite3", ".git/config"):
        assert _ignored(secret, patterns), secret
    for heavy in ("node_modules/x", ".venv/bin/python", "tests/test_app.py"):
        assert _ignored(heavy, patterns), heavy


# -- compose -----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def instances(services: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in services.items() if v.get("image", "").startswith("commerce-context")}


def test_compose_has_several_instances_postgres_redis_and_a_load_balancer() -> None:
    services = compose()["services"]
    apps = instances(services)
    assert len(apps) >= 2, sorted(services)
    assert {"postgres", "redis", "lb"} <= set(services)
    for name, app in apps.items():
        assert app["build"]["target"] == "runtime"
        env = app["environment"]
        assert env["CC_CACHE_BACKEND"] == "redis", name
        assert env["CC_REDIS_URL"].startswith("redis://redis:"), name
        assert "ports" not in app, f"{name} is published; only the load balancer should be"
        assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert app["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "commerce-context.env" in app["env_file"]
    lb = services["lb"]
    assert lb["ports"] and set(lb["depends_on"]) == set(apps)
    assert all(dep["condition"] == "service_healthy" for dep in lb["depends_on"].values())


def test_every_service_has_a_health_check_and_a_pinned_image() -> None:
    for name, service in compose()["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no health check"
        image = service["image"]
        assert PINNED.match(image), f"{name}: {image} is not pinned"


def test_compose_holds_no_secret_in_clear() -> None:
    document = compose()
    for name, service in document["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} is given in clear"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), f"{name}: {key}"
    for secret in document.get("secrets", {}).values():
        assert set(secret) == {"file"}  # read from a file beside it, never inline


def test_instances_stop_gracefully_and_use_only_known_settings() -> None:
    known = set(setting_names())
    for name, app in instances(compose()["services"]).items():
        env = app["environment"]
        assert set(env) <= known, set(env) - known
        grace = int(str(app["stop_grace_period"]).removesuffix("s"))
        # In-flight requests, then 10 s for running jobs, then SIGKILL.
        assert grace > int(env["CC_SHUTDOWN_TIMEOUT"]) + 10, name
        assert env["CC_WEB_CONCURRENCY"] == "1" and "CC_METRICS_PORT" in env


def test_the_environment_template_names_only_settings_and_holds_no_values_for_secrets() -> None:
    known = set(setting_names())
    template = (DEPLOY / "commerce-context.env.example").read_text()
    named = re.findall(r"^#?\s*(CC_[A-Z0-9_]+)=(.*)$", template, re.M)
    assert {"CC_CT_CLIENT_SECRET", "CC_DATABASE_URL"} <= {name for name, _ in named}
    for name, value in named:
        assert name in known, name
        if SECRET_NAME.search(name) and name != "CC_DATABASE_URL":
            assert value == "", f"{name} has a value in the template"
    database = dict(named)["CC_DATABASE_URL"]
    assert "@postgres:5432/" in database and ":PASSWORD@" in database  # a placeholder


def test_haproxy_checks_readiness_and_hides_metrics() -> None:
    services = compose()["services"]
    config = (DEPLOY / "haproxy.cfg").read_text()
    assert any("haproxy.cfg" in volume for volume in services["lb"]["volumes"])
    servers = re.findall(r"^\s*server\s+(\S+)\s+(\S+):(\d+)", config, re.M)
    assert {name for name, _, _ in servers} == set(instances(services))
    assert all(port == "8000" for _, _, port in servers)
    assert re.search(r"option httpchk GET /readyz", config)
    assert re.search(r"default-server check", config)
    assert re.search(r"http-request deny .*path /metrics", config)
    assert "option forwardfor" in config
    assert "X-Forwarded-Proto" in config


@pytest.mark.parametrize("doc", ["docs/deploy.md", "docs/operations.md"])
def test_the_deploy_docs_name_the_files(doc: str) -> None:
    text = (ROOT / doc).read_text()
    for name in ("compose.yaml", "Dockerfile"):
        assert name in text, f"{doc} does not mention {name}"
