"""The collector's settings: built once at start-up from the environment, `config.json`
and (in AWS) Secrets Manager, then passed down. A bad setting stops start-up with one
sentence naming it."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from rdc_common.clock import Clock, ClockError, LiveClock, clock_from_env
from rdc_common.gateways import TEST_GATEWAY_URL, default_system_name
from rdc_common.products import (
    DEFAULT_PRODUCTS,
    PRODUCTS,
    SymbolError,
    check_month,
    infer_exchange,
    normalize_exchange,
    normalize_symbol,
    split_symbol,
)

from .secrets import SecretError, read_json_secret

DEFAULT_URL = TEST_GATEWAY_URL


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what it expects."""


class Secret(str):
    """A string that never shows itself in logs, reprs or tracebacks."""

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:  # f-strings and %s go through __str__/__format__
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    @property
    def value(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class SymbolSpec:
    """One SYMBOLS entry: a contract (`ESZ6`), a contract with exchange (`GCZ6:COMEX`) or a product (`ES`)."""

    symbol: str
    exchange: str
    is_product: bool = False


@dataclass(frozen=True)
class Settings:
    rithmic_user: str
    rithmic_password: Secret
    rithmic_system_name: str
    rithmic_app_name: str
    rithmic_app_version: str
    rithmic_url: str
    rithmic_ca_file: str | None
    symbols: tuple[SymbolSpec, ...]
    database_url: Secret
    redis_url: Secret
    log_level: str = "INFO"
    collector_id: str = field(default_factory=socket.gethostname)
    batch_size: int = 20_000
    flush_interval_ms: int = 50
    max_pending_rows: int = 200_000
    db_timeout_s: float = 10.0
    connect_timeout_s: float = 30.0
    heartbeat_file: str = "/tmp/rdc-collector-health.json"
    spool_dir: str = ".local/spool"
    spool_max_bytes: int = 1 << 30
    stall_timeout_s: float | None = None  # None: twice the gateway's heartbeat interval
    max_reconnect_delay_s: float = 30.0
    metrics_interval_s: float = 60.0
    rithmic_secret_id: str | None = None
    # "Now" for every market decision (rolls, expiries, open/closed, receive stamps): RDC_CLOCK_*.
    clock: Clock = field(default_factory=LiveClock)
    conformance_status_interval_s: float = 60.0
    # Per-symbol live snapshots in Redis for the web console (/api/live); LIVE_SNAPSHOTS=0 turns them off.
    live_snapshots: bool = True

    def public_summary(self) -> dict:
        """What start-up logs: everything but credentials."""
        return {
            "rithmic_url": self.rithmic_url, "system_name": self.rithmic_system_name,
            "user": self.rithmic_user, "symbols": [f"{s.symbol}:{s.exchange}" for s in self.symbols],
            "database": redact_url(self.database_url.value), "redis": redact_url(self.redis_url.value),
            "batch_size": self.batch_size, "flush_interval_ms": self.flush_interval_ms,
            "collector_id": self.collector_id, "live_snapshots": self.live_snapshots,
        }


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def parse_symbols(raw) -> tuple[SymbolSpec, ...]:
    """SYMBOLS as a comma-separated string or a config.json list (strings or {symbol, exchange})."""
    items = [s for s in raw.split(",") if s.strip()] if isinstance(raw, str) else list(raw)
    if not items:
        raise ConfigError("SYMBOLS is empty: give contracts (ESZ6), contracts with exchange (GCZ6:COMEX) "
                          "or products (ES), separated by commas")
    out: list[SymbolSpec] = []
    for item in items:
        if isinstance(item, Mapping):
            sym, exch = str(item.get("symbol", "")), item.get("exchange")
        else:
            sym, _, exch = str(item).strip().partition(":")
            exch = exch or None
        sym = sym.strip().upper()
        try:
            if sym in PRODUCTS:
                spec = SymbolSpec(sym, normalize_exchange(exch) if exch else PRODUCTS[sym].exchange, True)
            else:
                sym = normalize_symbol(sym)
                if split_symbol(sym)[0] in PRODUCTS:
                    check_month(sym)
                spec = SymbolSpec(sym, normalize_exchange(exch) if exch else infer_exchange(sym))
        except SymbolError as exc:
            raise ConfigError(f"SYMBOLS entry '{item}': {exc}") from None
        if spec not in out:
            out.append(spec)
    return tuple(out)


def _int(env: Mapping, name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number between {lo} and {hi}, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _float(env: Mapping, name: str, default: float | None, lo: float, hi: float) -> float | None:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds between {lo} and {hi}, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _switch(env: Mapping, name: str, default: bool) -> bool:
    raw = str(env.get(name, "")).strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (on or off), not {raw[:20]!r}")


def _database_url(env: Mapping, secrets_client) -> str:
    if env.get("DATABASE_URL"):
        url = env["DATABASE_URL"]
        if urlsplit(url).scheme not in ("postgres", "postgresql"):
            raise ConfigError("DATABASE_URL must be a postgresql://user:password@host:port/dbname URL")
        return url
    secret_id = env.get("DB_SECRET_ID") or env.get("DATABASE_SECRET_ARN")
    if secret_id:
        s = read_json_secret(secret_id, secrets_client, required=("username", "password"))
        host = env.get("DB_HOST") or s.get("host")
        if not host:
            raise ConfigError(f"DB_HOST is not set and secret {secret_id} has no host")
        port, name = s.get("port", 5432), env.get("DB_NAME") or s.get("dbname", "rithmic_db")
        return f"postgresql://{quote(s['username'])}:{quote(s['password'], safe='')}@{host}:{port}/{name}"
    host = env.get("DB_HOST", "127.0.0.1")
    port = _int(env, "DB_PORT", 5432, 1, 65535)
    user = env.get("DB_USER", "postgres")
    password = env.get("DB_PASSWORD", "")
    auth = f"{quote(user)}:{quote(password, safe='')}" if password else quote(user)
    return f"postgresql://{auth}@{host}:{port}/{env.get('DB_NAME', 'rithmic_db')}"


def _with_sslmode(url: str, env: Mapping[str, str]) -> str:
    """DB_SSLMODE (set to `require` in AWS, where RDS forces TLS) as the URL's sslmode."""
    mode = env.get("DB_SSLMODE")
    if not mode or "sslmode=" in url:
        return url
    allowed = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
    if mode not in allowed:
        raise ConfigError(f"DB_SSLMODE must be one of {', '.join(allowed)}, not {mode!r}")
    return url + ("&" if "?" in url else "?") + "sslmode=" + mode


def database_url_from_env(env: Mapping[str, str], secrets_client=None) -> str:
    """The database URL alone (what `migrate` needs, without Rithmic credentials)."""
    try:
        return _with_sslmode(_database_url(dict(env), secrets_client), env)
    except SecretError as exc:
        raise ConfigError(f"DB_SECRET_ID: {exc}") from None


def _redis_url(env: Mapping[str, str]) -> str:
    url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL must be a redis:// or rediss:// URL")
    # ElastiCache AUTH: the token arrives as its own ECS secret, never inside the URL.
    if env.get("REDIS_PASSWORD") and parts.password is None:
        netloc = f":{quote(env['REDIS_PASSWORD'], safe='')}@{parts.netloc}"
        url = parts._replace(netloc=netloc).geturl()
    return url


def load_config_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object with keys such as symbols and collector")
    return data


def system_name_for(url: str, given: str | None) -> str:
    """The system to log in to: the one given, else `Rithmic Test` on the test gateway; any other
    gateway has no default, because its systems are whatever Rithmic set up for the account."""
    if given:
        return given
    default = default_system_name(url)
    if default is None:
        raise ConfigError(
            f"RITHMIC_SYSTEM_NAME is not set, and {url} is not Rithmic's test gateway (where it would mean "
            f"'Rithmic Test'): set it to the system name Rithmic gave you for this gateway "
            f"(`python -m collector_ecs check-connection` lists the gateway's systems; in AWS it is "
            f"rdc:rithmic_system_name)")
    return default


def load_settings(env: Mapping[str, str] | None = None, secrets_client=None, *,
                  require_system_name: bool = True) -> Settings:
    """Settings from the environment (the old README's names), config.json and Secrets Manager.

    `require_system_name=False` (check-connection, conformance) leaves a missing system name empty
    instead of stopping, so those commands can list the gateway's systems first."""
    env = dict(os.environ if env is None else env)
    file_cfg = load_config_file(Path(env.get("CONFIG_FILE", "config.json")))
    coll = file_cfg.get("collector", {}) if isinstance(file_cfg.get("collector", {}), dict) else {}
    # config.json fills what the environment leaves unset; the environment always wins.
    for key, name in (("batch_size", "BATCH_SIZE"), ("flush_interval_ms", "FLUSH_INTERVAL_MS"),
                      ("max_pending_rows", "MAX_PENDING_ROWS"), ("db_timeout_s", "DB_TIMEOUT_S"),
                      ("connect_timeout_s", "CONNECT_TIMEOUT_S"), ("stall_timeout_s", "STALL_TIMEOUT_S"),
                      ("spool_max_bytes", "SPOOL_MAX_BYTES")):
        if key in coll and name not in env:
            env[name] = str(coll[key])

    user, password, system = env.get("RITHMIC_USER"), env.get("RITHMIC_PASSWORD"), env.get("RITHMIC_SYSTEM_NAME")
    secret_id = env.get("RITHMIC_SECRET_ID")
    if secret_id:
        try:
            s = read_json_secret(secret_id, secrets_client, required=("user", "password"))
        except SecretError as exc:
            raise ConfigError(f"RITHMIC_SECRET_ID: {exc}") from None
        user, password, system = s["user"], s["password"], s.get("system_name") or system
    if not user:
        raise ConfigError("RITHMIC_USER is not set: give your Rithmic user name (or RITHMIC_SECRET_ID in AWS)")
    if not password:
        raise ConfigError("RITHMIC_PASSWORD is not set: give your Rithmic password (or RITHMIC_SECRET_ID in AWS)")

    url = env.get("RITHMIC_URL") or DEFAULT_URL
    if "://" not in url:
        url = "wss://" + url
    if urlsplit(url).scheme not in ("ws", "wss") or not urlsplit(url).hostname:
        raise ConfigError(f"RITHMIC_URL must be a ws:// or wss:// gateway address such as {DEFAULT_URL}")
    try:
        system = system_name_for(url, system)
    except ConfigError:
        if require_system_name:
            raise
        system = ""
    ca_file = env.get("RITHMIC_CA_FILE") or None
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"RITHMIC_CA_FILE names {ca_file}, which is not a readable file")

    symbols_raw = env.get("SYMBOLS") or file_cfg.get("symbols") or ",".join(DEFAULT_PRODUCTS)
    log_level = env.get("LOG_LEVEL", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
    try:
        database_url = _with_sslmode(_database_url(env, secrets_client), env)
    except SecretError as exc:
        raise ConfigError(f"DB_SECRET_ID: {exc}") from None
    redis_url = _redis_url(env)
    try:
        clock = clock_from_env(env)
    except ClockError as exc:
        raise ConfigError(str(exc)) from None

    return Settings(
        rithmic_user=user, rithmic_password=Secret(password),
        rithmic_system_name=system,
        rithmic_app_name=env.get("RITHMIC_APP_NAME", "RithmicDataCollector"),
        rithmic_app_version=env.get("RITHMIC_APP_VERSION", "2.0"),
        rithmic_url=url, rithmic_ca_file=ca_file,
        symbols=parse_symbols(symbols_raw),
        database_url=Secret(database_url), redis_url=Secret(redis_url), log_level=log_level,
        collector_id=env.get("COLLECTOR_ID") or socket.gethostname(),
        batch_size=_int(env, "BATCH_SIZE", 20_000, 1, 100_000),
        flush_interval_ms=_int(env, "FLUSH_INTERVAL_MS", 50, 1, 60_000),
        max_pending_rows=_int(env, "MAX_PENDING_ROWS", 200_000, 1000, 10_000_000),
        db_timeout_s=_float(env, "DB_TIMEOUT_S", 10.0, 0.1, 600),
        connect_timeout_s=_float(env, "CONNECT_TIMEOUT_S", 30.0, 1, 600),
        heartbeat_file=env.get("HEALTH_FILE", "/tmp/rdc-collector-health.json"),
        spool_dir=env.get("RDC_SPOOL_DIR", ".local/spool"),
        spool_max_bytes=_int(env, "SPOOL_MAX_BYTES", 1 << 30, 1024, 1 << 40),
        stall_timeout_s=_float(env, "STALL_TIMEOUT_S", None, 0.5, 3600),
        max_reconnect_delay_s=_float(env, "MAX_RECONNECT_DELAY_S", 30.0, 0.1, 600),
        rithmic_secret_id=secret_id,
        clock=clock,
        conformance_status_interval_s=_float(env, "CONFORMANCE_STATUS_INTERVAL_S", 60.0, 0.1, 3600),
        live_snapshots=_switch(env, "LIVE_SNAPSHOTS", True),
    )
