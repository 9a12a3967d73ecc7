"""`make run`'s decisions (pure plan, unit-tested) and one real run against servers the user runs.

The real run hands devstack the suite's own PostgreSQL and Redis and a simulator this test starts
as if it were the user's Rithmic gateway: devstack must use them and start none of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from devstack.plan import (
    PORT_DEFAULTS,
    STOP_ORDER,
    PlanError,
    describe,
    make_plan,
    mask_url,
    merge_env,
    parse_dotenv,
)
from devstack.run import banner, load_plan
from devstack.services import collect_orphaned_clusters, free_port, wait_port
from devstack.testing import REPO, StackProcess, get_json, http
from simulator.config import SYSTEMS as SIMULATOR_SYSTEMS

# --- the plan: pure --------------------------------------------------------------------------

EXTERNAL = {
    "DATABASE_URL": "postgresql://rdc:s3cret-pw@db.example.internal:5432/rithmic_db",
    "REDIS_URL": "redis://:r3dis-pw@cache.example.internal:6379/0",
    "RITHMIC_USER": "alice",
    "RITHMIC_PASSWORD": "rithmic-pw",
    "RITHMIC_SYSTEM_NAME": "Rithmic 01",
    "RITHMIC_URL": "wss://gateway.example:443",
}

SUITE_NOW = dt.datetime(2026, 11, 24, 15, tzinfo=dt.UTC).timestamp()  # a Tuesday, CME open


def plan(env: dict, repo: Path = Path("/repo")):
    return make_plan(env, repo, python="/venv/bin/python")


@pytest.mark.unit
def test_defaults_start_everything_on_the_simulator():
    p = plan({})
    assert p.services == ("postgres", "redis", "migrate", "simulator", "api", "nginx", "collector")
    assert p.ports == {name: default for name, (_, default) in PORT_DEFAULTS.items()}
    assert p.ports["nginx"] == 8080 and p.http_url == "http://127.0.0.1:8080"
    assert p.local_dir == Path("/repo/.local")
    assert p.database_url == "postgresql://postgres@127.0.0.1:55432/rdc"
    assert p.redis_url == "redis://127.0.0.1:56379/0"
    collector = p.envs["collector"]
    assert collector["RITHMIC_URL"] == "ws://127.0.0.1:8765"
    assert (collector["RITHMIC_USER"], collector["RITHMIC_PASSWORD"]) == ("demo", "demo")
    assert collector["RITHMIC_SYSTEM_NAME"] == "Rithmic Test"
    assert collector["RITHMIC_SYSTEM_NAME"] in SIMULATOR_SYSTEMS, "a system the simulator lists"
    assert collector["SYMBOLS"] == "ES,NQ,CL,GC"
    assert collector["DATABASE_URL"] == p.database_url and collector["REDIS_URL"] == p.redis_url
    assert collector["RDC_SPOOL_DIR"] == "/repo/.local/spool"
    assert p.envs["api"]["DATABASE_URL"] == p.database_url and p.envs["api"]["REDIS_URL"] == p.redis_url
    assert p.commands["simulator"] == ["/venv/bin/python", "-m", "simulator", "--host", "127.0.0.1", "--port", "8765",
                                       "--control-port", "8766", "--seed", "1", "--rate", "200"]
    assert p.commands["collector"] == ["/venv/bin/python", "-m", "collector_ecs"]
    assert p.commands["api"][-6:] == ["local", "--host", "127.0.0.1", "--port", "58000", "--no-autoreload"]
    assert p.cwds["api"] == Path("/repo/api_chalice")
    assert all(e["PYTHONPATH"] == "/repo" for e in p.envs.values())
    assert set(p.listening_ports()) == set(PORT_DEFAULTS)


@pytest.mark.unit
def test_the_users_servers_and_rithmic_credentials_mean_none_of_our_own():
    p = plan(EXTERNAL)
    assert p.services == ("migrate", "api", "nginx", "collector")
    assert not p.starts("postgres") and not p.starts("redis") and not p.simulated
    assert "simulator" not in p.commands
    assert set(p.listening_ports()) == {"api", "nginx"}
    assert p.database_url == EXTERNAL["DATABASE_URL"] and p.redis_url == EXTERNAL["REDIS_URL"]
    collector = p.envs["collector"]
    for var in ("DATABASE_URL", "REDIS_URL", "RITHMIC_USER", "RITHMIC_PASSWORD", "RITHMIC_SYSTEM_NAME", "RITHMIC_URL"):
        assert collector[var] == EXTERNAL[var]
    assert p.envs["api"]["DATABASE_URL"] == EXTERNAL["DATABASE_URL"]
    assert "RITHMIC_PASSWORD" not in p.envs["api"], "only the collector holds the Rithmic password"


@pytest.mark.unit
def test_each_external_server_is_independent():
    p = plan({"REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert p.starts("postgres") and not p.starts("redis") and p.simulated
    p = plan({"DATABASE_URL": "postgresql://u@h/d"})
    assert not p.starts("postgres") and p.starts("redis")


@pytest.mark.unit
def test_real_rithmic_needs_password_and_url():
    with pytest.raises(PlanError, match="RITHMIC_PASSWORD and RITHMIC_URL"):
        plan({"RITHMIC_USER": "alice"})
    with pytest.raises(PlanError, match="RITHMIC_URL"):
        plan({"RITHMIC_USER": "alice", "RITHMIC_PASSWORD": "x"})
    # Only Rithmic's test gateway has a default system name; any other gateway needs it named.
    real = {"RITHMIC_USER": "alice", "RITHMIC_PASSWORD": "x"}
    with pytest.raises(PlanError, match="RITHMIC_SYSTEM_NAME"):
        plan({**real, "RITHMIC_URL": "wss://g:443"})
    p = plan({**real, "RITHMIC_URL": "wss://g:443", "RITHMIC_SYSTEM_NAME": "Rithmic 01"})
    assert p.envs["collector"]["RITHMIC_SYSTEM_NAME"] == "Rithmic 01"
    p = plan({**real, "RITHMIC_URL": "wss://rituz00100.rithmic.com:443"})
    assert p.envs["collector"]["RITHMIC_SYSTEM_NAME"] == "Rithmic Test"


@pytest.mark.unit
def test_old_readme_db_parts_become_one_url_and_do_not_reach_the_children():
    p = plan({"DB_HOST": "db", "DB_USER": "rdc", "DB_PASSWORD": "p@ss/word", "DB_NAME": "rithmic_db"})
    assert not p.starts("postgres")
    assert p.database_url == "postgresql://rdc:p%40ss%2Fword@db:5432/rithmic_db"
    assert "DB_PASSWORD" not in p.envs["collector"] and "DB_HOST" not in p.envs["api"]


@pytest.mark.unit
def test_ports_local_dir_symbols_and_rate_are_overridable():
    env = {var: str(20000 + i) for i, (var, _) in enumerate(PORT_DEFAULTS.values())}
    env |= {"RDC_LOCAL_DIR": "/tmp/x", "SYMBOLS": " esz6, nq ,", "RDC_NGINX_RATE": "500r/s", "RDC_NGINX_BURST": "7"}
    p = plan(env)
    assert p.ports == {name: int(env[var]) for name, (var, _) in PORT_DEFAULTS.items()}
    assert p.local_dir == Path("/tmp/x") and p.envs["collector"]["RDC_SPOOL_DIR"] == "/tmp/x/spool"
    assert p.envs["collector"]["SYMBOLS"] == "ESZ6,NQ"
    assert (p.nginx_rate_limit, p.nginx_burst) == ("500r/s", 7)
    assert plan({"RDC_LOCAL_DIR": "data"}).local_dir == Path("/repo/data")


@pytest.mark.unit
@pytest.mark.parametrize("env, var", [
    ({"RDC_HTTP_PORT": "eighty"}, "RDC_HTTP_PORT"),
    ({"RDC_PG_PORT": "70000"}, "RDC_PG_PORT"),
    ({"RDC_NGINX_RATE": "fast"}, "RDC_NGINX_RATE"),
    ({"RDC_NGINX_BURST": "-1"}, "RDC_NGINX_BURST"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"SYMBOLS": " , "}, "SYMBOLS"),
])
def test_bad_settings_name_the_variable(env, var):
    with pytest.raises(PlanError, match=var):
        plan(env)


@pytest.mark.unit
def test_dotenv_parsing_and_the_environment_winning():
    text = """
# comment
export RITHMIC_USER=alice
RITHMIC_PASSWORD='pa$$ word'   # single quotes: literal
RITHMIC_SYSTEM_NAME="Rithmic Paper Trading"
SYMBOLS=ES,NQ  # trailing comment
EMPTY=
KEYS=        # empty, with a comment
"""
    parsed = parse_dotenv(text)
    assert parsed == {"RITHMIC_USER": "alice", "RITHMIC_PASSWORD": "pa$$ word",
                      "RITHMIC_SYSTEM_NAME": "Rithmic Paper Trading", "SYMBOLS": "ES,NQ", "EMPTY": "", "KEYS": ""}
    merged = merge_env({"SYMBOLS": "GC"}, parsed)
    assert merged["SYMBOLS"] == "GC" and merged["RITHMIC_USER"] == "alice"
    with pytest.raises(PlanError, match="line 1"):
        parse_dotenv("not a setting")
    with pytest.raises(PlanError, match="closing"):
        parse_dotenv("A='open")


@pytest.mark.unit
def test_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    (tmp_path / ".env").write_text("SYMBOLS=GC\nRDC_HTTP_PORT=9999\nRITHMIC_USER=alice\nRITHMIC_PASSWORD=pw\n"
                                   "RITHMIC_URL=wss://gw:443\nRITHMIC_SYSTEM_NAME='Rithmic 01'\n")
    p = load_plan({"RDC_HTTP_PORT": "9000"}, repo=tmp_path)
    assert p.symbols == "GC" and p.ports["nginx"] == 9000 and not p.simulated
    assert p.rithmic_system_name == "Rithmic 01"
    other = tmp_path / "other.env"
    other.write_text("SYMBOLS=CL\n")
    p = load_plan({"RDC_ENV_FILE": str(other)}, repo=tmp_path)
    assert p.symbols == "CL" and p.simulated
    assert load_plan({"RDC_ENV_FILE": str(tmp_path / "missing.env")}, repo=tmp_path).symbols == "ES,NQ,CL,GC"


@pytest.mark.unit
def test_passwords_are_masked_everywhere_we_print():
    assert mask_url("postgresql://rdc:s3cret@db:5432/x") == "postgresql://rdc:***@db:5432/x"
    assert mask_url("redis://:tok@cache:6379/0") == "redis://:***@cache:6379/0"
    assert mask_url("postgresql://postgres@127.0.0.1:55432/rdc") == "postgresql://postgres@127.0.0.1:55432/rdc"
    p = plan(EXTERNAL)
    printed = describe(p) + banner(p, SUITE_NOW) + repr(p)
    for secret in ("s3cret-pw", "r3dis-pw", "rithmic-pw"):
        assert secret not in printed


@pytest.mark.unit
def test_banner_points_at_the_front_month():
    text = banner(plan({}), SUITE_NOW)
    assert "curl 'http://127.0.0.1:8080/api/ticks/ESZ6?limit=10'" in text
    assert "ESZ6, NQZ6, CLF7, GCZ6" in text


@pytest.mark.unit
def test_shutdown_stops_the_collector_first_and_the_database_last():
    assert STOP_ORDER[0] == "collector" and STOP_ORDER[-1] == "postgres"
    assert set(STOP_ORDER) == set(plan({}).services) - {"migrate"}


@pytest.mark.unit
def test_dry_run_prints_the_plan_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL} | EXTERNAL
    out = subprocess.run([sys.executable, "-m", "devstack.run", "--dry-run"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "would start: api, nginx, collector" in out.stdout
    for secret in ("s3cret-pw", "r3dis-pw", "rithmic-pw"):
        assert secret not in out.stdout + out.stderr


@pytest.mark.unit
def test_relocated_clusters_whose_link_is_gone_are_collected(tmp_path):
    root = tmp_path / "rdc"

    def cluster(name: str, owner: Path | None, running: bool = False) -> Path:
        (root / name / "pg").mkdir(parents=True)
        if owner is not None:
            (root / name / "owner").write_text(str(owner))
        if running:
            (root / name / "pg" / "postmaster.pid").write_text(f"{os.getpid()}\n")
        return root / name

    linked = cluster("linked", tmp_path / "repo" / ".local" / "pg")
    (tmp_path / "repo" / ".local").mkdir(parents=True)
    (tmp_path / "repo" / ".local" / "pg").symlink_to(linked / "pg")
    orphan = cluster("orphan", tmp_path / "deleted" / "pg")
    unknown = cluster("unknown", None)
    running = cluster("running", tmp_path / "gone" / "pg", running=True)
    kept = cluster("kept", tmp_path / "also-gone" / "pg")
    assert collect_orphaned_clusters(keep=kept, root=root) == [orphan]
    assert {p.name for p in root.iterdir()} == {linked.name, unknown.name, running.name, kept.name}


# --- one real run against the user's (here: the suite's) servers -----------------------------


async def _tick_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM tick_data")
    finally:
        await conn.close()


@pytest.fixture
def users_simulator(tmp_path):
    """A Rithmic gateway 'the user runs': the simulator, started by the test, not by devstack."""
    port, control = free_port(), free_port()
    log = open(tmp_path / "simulator.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", str(port),
         "--control-port", str(control), "--seed", "7", "--rate", "100"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_port(port, 30, proc, "simulator")
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


@pytest.mark.integration
def test_make_run_uses_the_users_servers_and_starts_none_of_its_own(pg, redis_url, users_simulator):
    database_url = pg.create_database()  # empty: devstack applies the migrations itself
    # A password in the URL (trust auth ignores it) must never be printed.
    with_password = database_url.replace("@", ":s3cret-pw@", 1)
    local = Path(tempfile.mkdtemp(prefix="rdc-devstack-"))
    stack = StackProcess(local, extra_env={
        "DATABASE_URL": with_password, "REDIS_URL": redis_url,
        "RITHMIC_USER": "demo", "RITHMIC_PASSWORD": "demo", "RITHMIC_SYSTEM_NAME": "Rithmic Paper Trading",
        "RITHMIC_URL": users_simulator, "SYMBOLS": "ES",
    })
    stack.start()
    try:
        health = stack.wait_healthy()
        assert health["services"] == {"database": "connected", "redis": "connected"}
        assert set(stack.pids) == {"api", "nginx", "collector"}
        for var in ("RDC_PG_PORT", "RDC_REDIS_PORT", "RDC_SIM_PORT", "RDC_SIM_CONTROL_PORT"):
            assert stack.ports[var] not in stack.listening(), var
        assert not (local / "pg").exists() and not (local / "redis").exists()
        # The collector records into the user's database, from the user's gateway.
        deadline = time.monotonic() + 60
        while asyncio.run(_tick_count(database_url)) == 0:
            assert time.monotonic() < deadline, "no ticks reached the user's database within 60 s"
            time.sleep(1)
        status, doc = get_json(stack.http_url + "/api/symbols")
        assert status == 200
        assert http("GET", stack.http_url + "/nope")[0] == 404
    finally:
        # SIGTERM here (a service manager's stop); the e2e test covers Ctrl-C's SIGINT.
        code = stack.interrupt(sig=signal.SIGTERM)
        output = stack.read_output()
        logs = "".join(p.read_text(errors="replace") for p in (local / "logs").glob("*.log"))
        stack.kill()
        pg.drop_database(database_url)
        shutil.rmtree(local, ignore_errors=True)
    assert code == 0, output
    assert "s3cret-pw" not in output + logs
    assert "postgresql://" in output and ":***@" in output
    assert "SIGTERM received: stopping." in output and "stopping collector" in output
    assert stack.leftovers() == []
    assert stack.listening() == []
