"""What `make run` will start and how each piece is configured, decided from the environment alone.

Pure: `make_plan(env, repo)` reads no files, opens no sockets and starts nothing, so every
combination of settings (own servers or the user's, simulator or real Rithmic) is unit-tested.
`devstack.run` carries the plan out.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from rdc_common.clock import Clock, ClockError, clock_from_env
from rdc_common.gateways import TEST_SYSTEM_NAME, default_system_name
from rdc_common.products import DEFAULT_PRODUCTS, PRODUCTS

# Each port the stack listens on, its default and the variable that changes it.
PORT_DEFAULTS: dict[str, tuple[str, int]] = {
    "postgres": ("RDC_PG_PORT", 55432),
    "redis": ("RDC_REDIS_PORT", 56379),
    "simulator": ("RDC_SIM_PORT", 8765),
    "simulator-control": ("RDC_SIM_CONTROL_PORT", 8766),
    "api": ("RDC_API_PORT", 58000),
    "nginx": ("RDC_HTTP_PORT", 8080),
}
PORT_PURPOSE = {
    "postgres": "the private PostgreSQL",
    "redis": "the private Redis",
    "simulator": "the Rithmic simulator",
    "simulator-control": "the simulator's control port",
    "api": "the API behind NGINX",
    "nginx": "NGINX, the URL you curl",
}
# Start order; `STOP_ORDER` is what a shutdown follows: the collector first, so it can flush
# what it holds into a PostgreSQL that is still up.
START_ORDER = ("postgres", "redis", "migrate", "simulator", "api", "nginx", "collector")
STOP_ORDER = ("collector", "api", "nginx", "simulator", "redis", "postgres")

SIMULATOR_USER = "demo"
SIMULATOR_PASSWORD = "demo"
# One of the systems the simulator lists, and the one Rithmic's test gateway offers.
SIMULATOR_SYSTEM_NAME = TEST_SYSTEM_NAME
DEFAULT_SYMBOLS = ",".join(DEFAULT_PRODUCTS)
DEFAULT_RATE_LIMIT = "50r/s"
DEFAULT_BURST = 100

_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_RATE = re.compile(r"^\d+r/[sm]$")


class PlanError(ValueError):
    """A setting the user gave that cannot work; the message says which variable to change."""


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines as a shell would read them: quotes stripped, `#` comments ignored.

    No variable expansion: `.env` holds literal values (passwords may contain `$`).
    """
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _DOTENV_LINE.match(line)
        if not m:
            raise PlanError(f".env line {lineno} is not KEY=VALUE: {stripped[:40]!r}")
        key, raw = m.group(1), m.group(2).strip()
        if raw[:1] in ("'", '"'):
            quote_char = raw[0]
            end = raw.find(quote_char, 1)
            if end == -1:
                raise PlanError(f".env line {lineno}: the value of {key} has no closing {quote_char}")
            value = raw[1:end]
            if quote_char == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.split(r"(?:^|\s+)#", raw, maxsplit=1)[0].strip()
        out[key] = value
    return out


def merge_env(environ: Mapping[str, str], dotenv: Mapping[str, str]) -> dict[str, str]:
    """The settings `make run` uses: `.env` fills in what the environment does not set."""
    return {**dotenv, **environ}


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Plan:
    repo: Path
    local_dir: Path
    services: tuple[str, ...]  # what devstack starts, in START_ORDER
    ports: dict[str, int]  # port of every service devstack starts (and the ones it uses)
    database_url: str = field(repr=False)  # may hold a password: never in a repr or a traceback
    redis_url: str = field(repr=False)
    rithmic_url: str
    rithmic_user: str
    rithmic_system_name: str
    symbols: str
    nginx_rate_limit: str
    nginx_burst: int
    commands: dict[str, list[str]]  # argv of the child processes devstack starts
    envs: dict[str, dict[str, str]] = field(repr=False)  # their environments (they hold secrets)
    cwds: dict[str, Path] = field(default_factory=dict)
    clock: Clock | None = None  # the clock every child shares (RDC_CLOCK_* in their environments)
    # The Parquet archive (ARCHIVE_URL): .local/archive unless set; NGINX serves it when it is local.
    archive_url: str = ""
    archive_dir: Path | None = None

    def starts(self, name: str) -> bool:
        return name in self.services

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['nginx']}"

    @property
    def logs_dir(self) -> Path:
        return self.local_dir / "logs"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    @property
    def simulated(self) -> bool:
        return self.starts("simulator")

    def listening_ports(self) -> dict[str, int]:
        """The ports devstack itself will listen on, so they can be checked free before starting."""
        out = {}
        for name, port in self.ports.items():
            owner = "simulator" if name == "simulator-control" else name
            if self.starts(owner):
                out[name] = port
        return out

    def port_variable(self, name: str) -> str:
        return PORT_DEFAULTS[name][0]

    def front_months(self, now: float) -> list[str]:
        """The contracts the product codes resolve to at instant `now` (for the curl examples)."""
        from rdc_common.calendar import front_contract  # pandas: only when the banner is printed

        out = []
        for item in self.symbols.split(","):
            code = item.strip().upper()
            if code in PRODUCTS:
                out.append(front_contract(code, now).symbol)
            elif code:
                out.append(code)
        return out


def _port(env: Mapping[str, str], name: str) -> int:
    var, default = PORT_DEFAULTS[name]
    raw = env.get(var, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PlanError(f"{var}={raw!r} is not a TCP port; set it to a number between 1 and 65535")
    return int(raw)


def _database_url_from_parts(env: Mapping[str, str]) -> str | None:
    """The old README's DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD, as one URL."""
    host = env.get("DB_HOST", "").strip()
    if not host:
        return None
    user = quote(env.get("DB_USER", "postgres"), safe="")
    password = env.get("DB_PASSWORD", "")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    return f"postgresql://{auth}@{host}:{env.get('DB_PORT', '5432')}/{quote(env.get('DB_NAME', 'rithmic_db'), safe='')}"


def make_plan(env: Mapping[str, str], repo: Path, python: str = "python") -> Plan:
    """Decide what to start. `env` is the merged environment (see `merge_env`); `python` runs children.

    A simulated clock (RDC_CLOCK_START) must come with its RDC_CLOCK_ANCHOR already set
    (`rdc_common.clock.with_anchor`), so every child gets the same timeline.
    """
    repo = Path(repo)
    try:
        clock = clock_from_env(env)
    except ClockError as exc:
        raise PlanError(str(exc)) from None
    local_dir = Path(env.get("RDC_LOCAL_DIR") or repo / ".local")
    if not local_dir.is_absolute():
        local_dir = repo / local_dir
    ports = {name: _port(env, name) for name in PORT_DEFAULTS}

    services = []
    database_url = (env.get("DATABASE_URL") or "").strip() or _database_url_from_parts(env)
    if not database_url:
        services.append("postgres")
        database_url = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/rdc"
    elif urlsplit(database_url).scheme not in ("postgresql", "postgres"):
        raise PlanError("DATABASE_URL must look like postgresql://user:password@host:5432/dbname")
    redis_url = (env.get("REDIS_URL") or "").strip()
    if not redis_url:
        services.append("redis")
        redis_url = f"redis://127.0.0.1:{ports['redis']}/0"
    elif urlsplit(redis_url).scheme not in ("redis", "rediss"):
        raise PlanError("REDIS_URL must look like redis://host:6379/0 (or rediss:// for TLS)")
    services.append("migrate")

    rithmic_user = (env.get("RITHMIC_USER") or "").strip()
    if rithmic_user:
        missing = [v for v in ("RITHMIC_PASSWORD", "RITHMIC_URL") if not (env.get(v) or "").strip()]
        if missing:
            raise PlanError(
                f"RITHMIC_USER is set, so devstack connects to a real Rithmic gateway and needs "
                f"{' and '.join(missing)} too (in the environment or .env); unset RITHMIC_USER to use the simulator"
            )
        url = env["RITHMIC_URL"].strip()
        system = (env.get("RITHMIC_SYSTEM_NAME") or "").strip() or default_system_name(url)
        if system is None:
            raise PlanError(
                f"RITHMIC_URL={url} is not Rithmic's test gateway, so devstack needs RITHMIC_SYSTEM_NAME too: the "
                "system name Rithmic gave you for that gateway (`.venv/bin/python -m collector_ecs check-connection` "
                "lists them)"
            )
        rithmic = {
            "RITHMIC_USER": rithmic_user,
            "RITHMIC_PASSWORD": env["RITHMIC_PASSWORD"],
            "RITHMIC_URL": url,
            "RITHMIC_SYSTEM_NAME": system,
        }
    else:
        services.append("simulator")
        rithmic = {
            "RITHMIC_USER": SIMULATOR_USER,
            "RITHMIC_PASSWORD": SIMULATOR_PASSWORD,
            "RITHMIC_URL": f"ws://127.0.0.1:{ports['simulator']}",
            "RITHMIC_SYSTEM_NAME": SIMULATOR_SYSTEM_NAME,
        }
    services += ["api", "nginx", "collector"]

    symbols = ",".join(s.strip().upper() for s in (env.get("SYMBOLS") or DEFAULT_SYMBOLS).split(",") if s.strip())
    if not symbols:
        raise PlanError("SYMBOLS is empty; give product codes or contracts, e.g. SYMBOLS=ES,NQ or SYMBOLS=ESZ6")
    rate = (env.get("RDC_NGINX_RATE") or DEFAULT_RATE_LIMIT).strip()
    if not _RATE.match(rate):
        raise PlanError(f"RDC_NGINX_RATE={rate!r} is not an NGINX rate; use e.g. 50r/s or 600r/m")
    burst_raw = (env.get("RDC_NGINX_BURST") or str(DEFAULT_BURST)).strip()
    if not burst_raw.isdigit():
        raise PlanError(f"RDC_NGINX_BURST={burst_raw!r} is not a number of requests; use e.g. 100")

    archive_url = (env.get("ARCHIVE_URL") or "").strip() or str(local_dir / "archive")
    archive_dir = None
    if not archive_url.startswith("s3://"):
        archive_dir = Path(archive_url.removeprefix("file://"))
        if not archive_dir.is_absolute():
            archive_dir = repo / archive_dir
        archive_url = str(archive_dir)
    http_url = f"http://127.0.0.1:{ports['nginx']}"

    base = dict(env)
    # The repository's packages (rdc_common above all) importable from any cwd, installed or not.
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
    shared = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": env.get("LOG_LEVEL") or "INFO"}
    # A DATABASE_URL we derived or were given wins over the parts, so no child reads stale parts.
    for part in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD"):
        base.pop(part, None)
    # Only the collector logs in to Rithmic; no other process holds the password.
    base.pop("RITHMIC_PASSWORD", None)
    envs = {
        "collector": {
            **base, **shared, **rithmic,
            "SYMBOLS": symbols,
            "RITHMIC_APP_NAME": env.get("RITHMIC_APP_NAME") or "RithmicDataCollector",
            "RITHMIC_APP_VERSION": env.get("RITHMIC_APP_VERSION") or "2.0",
            "RDC_SPOOL_DIR": env.get("RDC_SPOOL_DIR") or str(local_dir / "spool"),
            # Per stack, so two stacks on one machine (a `make run` and the e2e test) don't share it.
            "HEALTH_FILE": env.get("HEALTH_FILE") or str(local_dir / "collector-health.json"),
            "PYTHONUNBUFFERED": "1",
        },
        # Download links of archived files (GET /api/archive): NGINX serves the local archive under /archive/.
        "api": {**base, **shared, "PYTHONUNBUFFERED": "1", "ARCHIVE_URL": archive_url,
                "ARCHIVE_DOWNLOAD_URL": (env.get("ARCHIVE_DOWNLOAD_URL") or f"{http_url}/archive")
                if archive_dir is not None else ""},
        # The archive job devstack runs once a day (devstack.run) and `make archive` runs now.
        "archive": {**base, "DATABASE_URL": database_url, "LOG_LEVEL": shared["LOG_LEVEL"],
                    "ARCHIVE_URL": archive_url, "PYTHONUNBUFFERED": "1"},
        "simulator": {**base, "PYTHONUNBUFFERED": "1"},
    }
    commands = {
        "collector": [python, "-m", "collector_ecs"],
        # --no-autoreload: the reloader forks a second server process devstack would not own.
        # TCP_NODELAY: chalice's dev server sends headers and body in two writes, and with
        # Nagle on the body waits for the client's delayed ACK: 40 ms on every response
        # (bench/README.md measures it).
        "api": [python, "-c", "import sys; from chalice import local; "
                "local.ChaliceRequestHandler.disable_nagle_algorithm = True; "
                "from chalice.cli import main; sys.argv[0] = 'chalice'; sys.exit(main())",
                "local", "--host", "127.0.0.1", "--port", str(ports["api"]), "--no-autoreload"],
        "archive": [python, "-m", "collector_ecs", "archive"],
        "simulator": [python, "-m", "simulator", "--host", "127.0.0.1", "--port", str(ports["simulator"]),
                      "--control-port", str(ports["simulator-control"]),
                      "--seed", env.get("RDC_SIM_SEED") or "1", "--rate", env.get("RDC_SIM_RATE") or "200"],
    }
    if "simulator" not in services:
        del commands["simulator"], envs["simulator"]
    return Plan(
        repo=repo,
        local_dir=local_dir,
        services=tuple(s for s in START_ORDER if s in services),
        ports=ports,
        database_url=database_url,
        redis_url=redis_url,
        rithmic_url=rithmic["RITHMIC_URL"],
        rithmic_user=rithmic["RITHMIC_USER"],
        rithmic_system_name=rithmic["RITHMIC_SYSTEM_NAME"],
        symbols=symbols,
        nginx_rate_limit=rate,
        nginx_burst=int(burst_raw),
        commands=commands,
        envs=envs,
        cwds={"api": repo / "api_chalice", "collector": repo, "simulator": repo, "archive": repo},
        clock=clock,
        archive_url=archive_url,
        archive_dir=archive_dir,
    )


def describe(plan: Plan) -> str:
    """One line per service: what runs where, with passwords masked (for --dry-run and the banner)."""
    own = "started here"
    lines = [
        f"postgres   {mask_url(plan.database_url)}  ({own if plan.starts('postgres') else 'yours'})",
        f"redis      {mask_url(plan.redis_url)}  ({own if plan.starts('redis') else 'yours'})",
    ]
    if plan.simulated:
        lines.append(f"simulator  {plan.rithmic_url}  (simulated market, user {plan.rithmic_user})")
    else:
        lines.append(f"rithmic    {mask_url(plan.rithmic_url)}  (real gateway, system "
                     f"{plan.rithmic_system_name!r}, user {plan.rithmic_user})")
    lines += [
        f"collector  symbols {plan.symbols}",
        f"api        http://127.0.0.1:{plan.ports['api']}  (chalice local)",
        f"nginx      {plan.http_url}  (rate {plan.nginx_rate_limit}, burst {plan.nginx_burst})",
        f"archive    {plan.archive_url}  (daily, after each UTC day closes; make archive runs it now)",
    ]
    return "\n".join(lines)


# The archive job's margin past a day's end (collector_ecs.archive.config's default) and a few minutes
# more, so the day is closed when the job starts.
ARCHIVE_AFTER_MIDNIGHT = dt.timedelta(hours=1, minutes=5)


def next_archive_run(now: dt.datetime) -> dt.datetime:
    """When `make run` next runs the archive job after `now`: daily, just after the previous UTC day
    closes. (In AWS an EventBridge schedule runs the same command in the daily maintenance break.)"""
    today = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC) + ARCHIVE_AFTER_MIDNIGHT
    return today if today > now else today + dt.timedelta(days=1)
