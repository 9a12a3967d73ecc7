"""docker-compose.local.yml, checked without a Docker engine: it must describe a stack that can start.

Parsed with PyYAML, interpolated the way `docker compose` does with no .env (defaults only), and
checked against the repository: build contexts, Dockerfiles and their COPY sources exist, NGINX's
upstream is a real service and port, the SQL mount is sql/, and every environment variable the
collector and the API read (found by reading their code) is set or has a default named below.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.local.yml"
TEMPLATES = REPO / "nginx" / "templates"

# Variables the services read that compose deliberately leaves to the code's default, and why.
# A variable the code starts reading fails test_every_variable_the_code_reads_is_set until it is
# set in docker-compose.local.yml or listed here with its reason.
DEFAULTS_ARE_RIGHT = {
    # DATABASE_URL is given; the parts are its alternative (the old README's names).
    "DB_HOST": "DATABASE_URL is set", "DB_PORT": "DATABASE_URL is set", "DB_NAME": "DATABASE_URL is set",
    "DB_USER": "DATABASE_URL is set", "DB_PASSWORD": "DATABASE_URL is set", "DB_SSLMODE": "loopback network",
    # AWS only: secrets by ARN/ID, ElastiCache AUTH, CloudWatch.
    "RITHMIC_SECRET_ID": "AWS", "RITHMIC_SECRET_ARN": "AWS", "DB_SECRET_ID": "AWS", "DATABASE_SECRET_ARN": "AWS",
    "REDIS_AUTH_SECRET_ARN": "AWS", "API_KEYS_SECRET_ARN": "AWS", "REDIS_PASSWORD": "AWS (ElastiCache AUTH)",
    "RDC_API_DB_PASSWORD": "AWS migration task", "POWERTOOLS_METRICS_NAMESPACE": "AWS",
    "METRICS_NAMESPACE": "AWS", "ARCHIVE_BUCKET": "AWS", "REDIS_HOST": "AWS (REDIS_URL here)",
    "REDIS_PORT": "AWS (REDIS_URL here)", "REDIS_SSL": "AWS (REDIS_URL here)", "LOG_FORMAT": "AWS",
    # Tuning knobs whose defaults are the intended values.
    "BATCH_SIZE": "tuning", "FLUSH_INTERVAL_MS": "tuning", "MAX_PENDING_ROWS": "tuning", "DB_TIMEOUT_S": "tuning",
    "CONNECT_TIMEOUT_S": "tuning", "STALL_TIMEOUT_S": "tuning", "SPOOL_MAX_BYTES": "tuning",
    "MAX_RECONNECT_DELAY_S": "tuning", "DB_STATEMENT_TIMEOUT_MS": "tuning", "DB_CONNECT_TIMEOUT_S": "tuning",
    "DB_POOL_MAX_SIZE": "tuning", "REDIS_TIMEOUT_S": "tuning", "SECRET_MAX_AGE_S": "tuning",
    "API_MAX_RANGE_DAYS": "tuning", "API_MAX_DAILY_BARS_RANGE_DAYS": "tuning", "API_MAX_BODY_BYTES": "tuning",
    "REQUIRE_API_KEY_FOR_WRITES": "open locally", "METRICS_INTERVAL_S": "tuning",
    "LIVE_SNAPSHOTS": "on by default; 0 only to measure their cost (make bench)",
    "ARCHIVE_LOCK_TIMEOUT_S": "tuning", "ARCHIVE_SAFETY_MARGIN_MINUTES": "tuning", "ARCHIVE_WORKERS": "tuning",
    "ARCHIVE_URL_EXPIRES_S": "tuning (presigned S3 links; the local archive's links do not expire)",
    "CONFORMANCE_STATUS_INTERVAL_S": "read only by the conformance command, not by the service",
    "RDC_ENV_FILE": "read only by check-connection and conformance, run by hand",
    # Per-container defaults that are right inside the image.
    "COLLECTOR_ID": "container hostname", "CONFIG_FILE": "no config.json in the image",
    "HEALTH_FILE": "set in the Dockerfile", "RITHMIC_CA_FILE": "system CAs", "AWS_REGION": "AWS",
    "AWS_DEFAULT_REGION": "AWS", "AWS_CHALICE_CLI_MODE": "set by chalice",
}
# What the issue names as read by each service; the code must still read them (see below).
NAMED_IN_THE_ISSUE = {
    "collector": {"RITHMIC_USER", "RITHMIC_PASSWORD", "RITHMIC_SYSTEM_NAME", "RITHMIC_APP_NAME",
                  "RITHMIC_APP_VERSION", "RITHMIC_URL", "SYMBOLS", "DATABASE_URL", "REDIS_URL", "LOG_LEVEL"},
    "api": {"DATABASE_URL", "REDIS_URL", "API_KEYS"},
}
CODE = {
    "collector": [REPO / "collector_ecs"],
    "api": [REPO / "api_chalice" / "app.py", REPO / "api_chalice" / "chalicelib"],
}

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
)
_ENV_READ = [
    re.compile(r"\b(?:env|environ|environment)\s*(?:\.get\(\s*|\.pop\(\s*|\[\s*)[\"']([A-Z][A-Z0-9_]*)[\"']"),
    re.compile(r"\bgetenv\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    re.compile(r"\b_[a-z_]+\(\s*(?:env|environ|os\.environ)\s*,\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    # ("batch_size", "BATCH_SIZE") pairs that a loop then reads from the environment.
    re.compile(r"\(\s*[\"'][a-z_]+[\"']\s*,\s*[\"']([A-Z][A-Z0-9_]*)[\"']\s*\)"),
]


def interpolate(value, env: dict[str, str] | None = None):
    """Compose's variable substitution, with `env` standing for the shell environment plus .env."""
    env = env or {}
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg")
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return arg if current is None else current
        if op in (":?", "?"):
            if not current:
                raise ValueError(f"{name} is required: {arg}")
            return current
        if op == ":+":
            return arg if current else ""
        return current or ""

    return _INTERPOLATION.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: str(interpolate(str(v), env)) for k, v in raw.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def dockerfile(service: dict) -> tuple[Path, Path]:
    build = service["build"]
    context = REPO / (build if isinstance(build, str) else build.get("context", "."))
    return context, context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def env_names_read(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            text = f.read_text()
            for pattern in _ENV_READ:
                names.update(pattern.findall(text))
    return names


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


# --- shape -----------------------------------------------------------------------------------


def test_the_topology_of_make_run(services):
    assert set(services) == {"db", "redis", "simulator", "migrate", "collector", "api", "nginx"}


def test_every_variable_has_a_default_so_up_works_without_an_env_file():
    for m in _INTERPOLATION.finditer(COMPOSE_FILE.read_text()):
        if m.group(0) == "$$":
            continue
        assert m.group("op") in (":-", "-"), f"{m.group(0)} has no default"


def test_depends_on_names_real_services(services):
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_migrate_runs_before_the_collector_and_the_api(services):
    for name in ("collector", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert command(services["migrate"]) == ["python", "-m", "collector_ecs", "migrate"]


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["simulator", "migrate", "collector", "api"])
def test_build_context_and_dockerfile_exist(services, name):
    context, path = dockerfile(services[name])
    assert context.is_dir() and context == REPO, "images build from the repository root"
    assert path.is_file(), f"{path} missing"


@pytest.mark.parametrize("path", ["collector_ecs/Dockerfile", "api_chalice/Dockerfile", "simulator/Dockerfile"])
def test_dockerfile_copy_sources_exist_and_it_runs_unprivileged(path):
    steps = instructions(REPO / path)
    assert steps[0] == ("FROM", "python:3.11-slim")
    copies = [args for word, args in steps if word in ("COPY", "ADD")]
    assert copies
    for args in copies:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        for source in parts[:-1]:
            assert list(REPO.glob(source.rstrip("/"))), f"{path}: COPY source {source} does not exist"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{path} must end as a non-root USER"


def test_collector_image(services):
    steps = instructions(REPO / "collector_ecs/Dockerfile")
    copied = {shlex.split(args)[0].rstrip("/") for word, args in steps if word == "COPY"}
    assert {"pyproject.toml", "collector_ecs", "rdc_common", "sql"} <= copied
    health = [args for word, args in steps if word == "HEALTHCHECK"]
    assert health and 'CMD ["python", "-m", "collector_ecs", "healthcheck"]' in health[0]
    assert dockerfile(services["collector"])[1] == REPO / "collector_ecs/Dockerfile"


def test_cdk_uses_the_same_collector_dockerfile():
    import json

    context = json.loads((REPO / "infra/cdk/cdk.json").read_text())["context"]
    assert (REPO / context["rdc:collector_image_dir"] / context["rdc:collector_dockerfile"]).is_file()


def test_dockerignore_keeps_secrets_and_local_data_out_of_images():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".env", ".local", ".venv", ".git"} <= ignored
    for needed in ("sql", "collector_ecs", "rdc_common", "pyproject.toml", "api_chalice", "simulator"):
        assert needed not in ignored


# --- wiring ----------------------------------------------------------------------------------


def test_sql_is_applied_at_database_init(services):
    volumes = [str(v) for v in services["db"]["volumes"]]
    mount = [v for v in volumes if ":/docker-entrypoint-initdb.d" in v]
    assert mount and mount[0].split(":")[0] in ("./sql", "./sql/")
    assert sorted(p.name for p in (REPO / "sql").glob("*.sql")), "sql/ holds the migrations"


def test_every_database_url_names_the_compose_database(services):
    db_env = environment(services["db"])
    for name in ("migrate", "collector", "api"):
        url = urlsplit(environment(services[name])["DATABASE_URL"])
        assert url.hostname == "db" and url.port == 5432, name
        assert url.username == db_env["POSTGRES_USER"] and url.password == db_env["POSTGRES_PASSWORD"], name
        assert url.path == "/" + db_env["POSTGRES_DB"], name


def test_redis_keeps_an_append_only_file_and_is_where_the_services_look(services):
    argv = command(services["redis"])
    assert option(argv, "--appendonly") == "yes"
    for name in ("collector", "api"):
        assert urlsplit(environment(services[name])["REDIS_URL"]).hostname == "redis"


def test_collector_defaults_to_the_simulator_service(services):
    url = urlsplit(environment(services["collector"])["RITHMIC_URL"])
    assert url.hostname == "simulator"
    assert str(url.port) == option(command(services["simulator"]), "--port")
    real = environment(services["collector"], {"RITHMIC_URL": "wss://gw:443", "RITHMIC_USER": "alice"})
    assert real["RITHMIC_URL"] == "wss://gw:443" and real["RITHMIC_USER"] == "alice"


def test_the_default_gateway_and_system_name_agree(services):
    """The default pair is the simulator and a system it lists; a user's pair passes through."""
    from simulator.config import SYSTEMS

    env = environment(services["collector"])
    assert env["RITHMIC_SYSTEM_NAME"] in SYSTEMS
    real = environment(services["collector"], {"RITHMIC_URL": "wss://gw:443", "RITHMIC_SYSTEM_NAME": "Rithmic 01"})
    assert (real["RITHMIC_URL"], real["RITHMIC_SYSTEM_NAME"]) == ("wss://gw:443", "Rithmic 01")


def test_nginx_renders_the_shared_template_with_a_real_upstream(services):
    nginx = services["nginx"]
    assert str(nginx["image"]).split(":")[0] == "nginx", "the official image renders templates with envsubst"
    volumes = [str(v) for v in nginx["volumes"]]
    assert any(v.split(":")[:2] == ["./nginx/templates", "/etc/nginx/templates"] for v in volumes)
    # The image writes <name> for <name>.template into conf.d: default.conf replaces its stock server.
    assert (TEMPLATES / "default.conf.template").is_file()
    env = environment(nginx)
    placeholders = {m.group("braced") or m.group("named")
                    for m in _INTERPOLATION.finditer((TEMPLATES / "default.conf.template").read_text())
                    if (m.group("braced") or m.group("named") or "").isupper()}
    assert placeholders <= env.keys(), f"template needs {placeholders - env.keys()}"
    host, port = env["API_UPSTREAM"].rsplit(":", 1)
    assert host in services and host == "api"
    assert option(command(services["api"]), "--port") == port
    assert option(command(services["api"]), "--host") == "0.0.0.0"
    published = [str(p) for p in nginx["ports"]]
    assert any(interpolate(p).split(":")[-1] == env["NGINX_PORT"] for p in published)
    assert any(interpolate(p).split(":")[0] == "80" for p in published), "NGINX on port 80 by default"


# --- environment -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["collector", "api"])
def test_every_variable_the_code_reads_is_set(services, name):
    read = env_names_read(CODE[name])
    assert NAMED_IN_THE_ISSUE[name] <= read, f"{name} no longer reads {NAMED_IN_THE_ISSUE[name] - read}"
    env = environment(services[name])
    missing = sorted(read - env.keys() - DEFAULTS_ARE_RIGHT.keys())
    assert not missing, (
        f"{name} reads {missing}, which docker-compose.local.yml does not set: set them there, or add them to "
        f"DEFAULTS_ARE_RIGHT in {Path(__file__).name} with the reason the default is right"
    )
    for var in NAMED_IN_THE_ISSUE[name] - {"API_KEYS"}:
        assert env[var], f"{name}: {var} is empty"


def test_collector_settings_load_from_the_compose_environment(services):
    from collector_ecs.config import load_settings

    env = environment(services["collector"]) | {"CONFIG_FILE": str(REPO / "no-such-config.json")}
    settings = load_settings(env)
    assert urlsplit(settings.database_url.value).hostname == "db"
    assert urlsplit(settings.redis_url.value).hostname == "redis"
    assert urlsplit(settings.rithmic_url).hostname == "simulator"
    assert [s.symbol for s in settings.symbols] == ["ES", "NQ", "CL", "GC"]


def test_api_settings_load_from_the_compose_environment(services):
    config = _load_module("rdc_api_config_under_test", REPO / "api_chalice/chalicelib/config.py")
    settings = config.load_settings(environment(services["api"]))
    assert urlsplit(settings.database_url).hostname == "db"
    assert urlsplit(settings.redis_url).hostname == "redis"
    assert settings.api_keys == ()
