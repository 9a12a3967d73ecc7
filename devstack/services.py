"""Private PostgreSQL, Redis and NGINX processes for `make run` and the test suite.

Each server runs on loopback with its data under a directory we own, is started with
`start()` and stopped with `stop()`; nothing here touches the machine's own servers.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_USER_CANDIDATES = ("postgres", "rdc")
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGTERM when the process that started it dies, even by SIGKILL.

    Only for servers started from the main thread (Linux ties this to the starting thread).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _preexec(enabled: bool):
    return die_with_parent if enabled else None


class MissingBinary(RuntimeError):
    """A server binary is not installed and could not be installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or 'server'} exited with code {proc.returncode} before listening")
        time.sleep(0.05)
    raise TimeoutError(f"{what or 'server'} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MissingBinary(
            "missing server binaries; install them with: sudo apt-get install -y " + " ".join(packages)
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def pg_bindir() -> Path:
    """Directory of initdb/postgres, installing Debian's server package when allowed."""
    def find() -> Path | None:
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
        if versions:
            return Path(versions[-1]).parent
        initdb = shutil.which("initdb")
        return Path(initdb).parent if initdb else None

    found = find()
    if found is None:
        _apt_install(["postgresql"])
        found = find()
    if found is None:
        raise MissingBinary("PostgreSQL's initdb was not found after installing; set DATABASE_URL instead")
    return found


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        _apt_install(["redis-server"])
        path = shutil.which("redis-server")
    if path is None:
        raise MissingBinary("redis-server was not found after installing; set REDIS_URL instead")
    return path


def nginx_binary() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        _apt_install(["nginx-light"])
        path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).exists():
        raise MissingBinary("nginx was not found after installing")
    return path


def chromium_binary() -> str:
    """Debian's Chromium, for the browser tests (Playwright drives it; it cannot download its own here)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        _apt_install(["chromium"])
        path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise MissingBinary("chromium was not found after installing")
    return path


def _pg_account() -> pwd.struct_passwd | None:
    """The unprivileged account PostgreSQL runs as when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in PG_USER_CANDIDATES:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "rdc"], check=True)
    return pwd.getpwnam("rdc")


def _reachable_by(account: pwd.struct_passwd, path: Path) -> bool:
    """Whether `account` can traverse every parent of `path` (root's home often is 0700)."""
    for parent in list(path.resolve().parents)[::-1]:
        st = parent.stat()
        if st.st_uid == account.pw_uid:
            continue
        if not st.st_mode & 0o001:
            return False
    return True


RELOCATED_ROOT = Path("/var/lib/rdc")
ARCHIVE_RELOCATED_ROOT = Path("/var/lib/rdc-archive")


def nginx_readable_dir(path: Path) -> Path:
    """The real directory behind `path`, one NGINX's workers can read.

    As root, NGINX's workers run as `nobody`, which cannot enter a repository under root's 0700 home:
    then the directory moves to /var/lib/rdc-archive/<key> (its content with it) and `path` becomes a
    link to it, as the private PostgreSQL's data directory does."""
    if path.is_symlink():
        real = path.resolve()
        real.mkdir(parents=True, exist_ok=True)
    else:
        path.mkdir(parents=True, exist_ok=True)
        real = path.resolve()
    if os.geteuid() != 0:
        return real
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return real
    if _reachable_by(nobody, real / "file"):
        return real
    target = ARCHIVE_RELOCATED_ROOT / hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(ARCHIVE_RELOCATED_ROOT, 0o755)
    os.chmod(target, 0o755)
    if path.is_symlink():
        path.unlink()
    else:
        for child in path.iterdir():
            shutil.move(str(child), str(target / child.name))
        path.rmdir()
    path.symlink_to(target)
    return target


def collect_orphaned_clusters(keep: Path | None = None, root: Path | None = None) -> list[Path]:
    """Delete relocated clusters whose link (recorded in their `owner` file) no longer points at them.

    A cluster still running, or without an `owner` file, is never touched. Returns what was deleted.
    """
    root = root or RELOCATED_ROOT
    deleted = []
    if not root.is_dir():
        return deleted
    for entry in root.iterdir():
        owner = entry / "owner"
        if entry == keep or not owner.is_file():
            continue
        link = Path(owner.read_text().strip())
        if link.is_symlink() and Path(os.readlink(link)) == entry / "pg":
            continue
        if Postgres._running(entry / "pg"):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        deleted.append(entry)
    return deleted


@dataclass
class Postgres:
    """A private PostgreSQL cluster: `initdb` on first use, reused afterwards."""

    datadir: Path
    port: int
    logfile: Path
    proc: subprocess.Popen | None = field(default=None, init=False)
    user: str = "postgres"
    die_with_parent: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/rdc"

    def start(self, timeout: float = 60) -> None:
        bindir = pg_bindir()
        account = _pg_account()
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        if account is not None and not _reachable_by(account, self.datadir.parent):
            # The repository sits where the postgres account cannot go (root's 0700 home):
            # keep the cluster under /var/lib and leave a link where the user looks for it.
            # A stable name (not hash(), which changes per process), so a second run finds the data.
            link = self.datadir.parent.resolve() / self.datadir.name
            key = hashlib.sha256(str(link).encode()).hexdigest()[:16]
            real = RELOCATED_ROOT / key
            real.mkdir(parents=True, exist_ok=True)
            os.chown(real, account.pw_uid, account.pw_gid)
            if not self.datadir.is_symlink():
                if self.datadir.exists():
                    shutil.rmtree(self.datadir)
                self.datadir.symlink_to(real / "pg")
            # Who links here: lets a later start delete clusters whose link is gone (a deleted
            # .local, a test run's temporary directory) instead of piling them up.
            (real / "owner").write_text(str(link))
            collect_orphaned_clusters(keep=real)
            datadir = Path(os.readlink(self.datadir))
        else:
            datadir = self.datadir
        run_as = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        if not (datadir / "PG_VERSION").exists():
            datadir.mkdir(parents=True, exist_ok=True)
            if account is not None:
                os.chown(datadir, account.pw_uid, account.pw_gid)
            os.chmod(datadir, 0o700)
            subprocess.run(
                [str(bindir / "initdb"), "-D", str(datadir), "-U", self.user, "--auth=trust",
                 "--encoding=UTF8", "--no-sync"],
                check=True, stdout=subprocess.DEVNULL, cwd="/", **run_as,
            )
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.logfile, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        if account is not None:
            os.chown(self.logfile, account.pw_uid, account.pw_gid)
        if self._running(datadir):
            raise RuntimeError(f"a PostgreSQL server already runs on {datadir}; stop it first")
        self.proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(datadir), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={datadir}",
             "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=200",
             "-c", "shared_buffers=256MB", "-c", "max_wal_size=4GB", "-c", "timezone=UTC"],
            stdout=log, stderr=log, cwd="/", start_new_session=True,
            preexec_fn=_preexec(self.die_with_parent), **run_as,
        )
        wait_port(self.port, timeout, self.proc, "PostgreSQL")
        self._wait_ready(timeout)
        self._ensure_database()

    @staticmethod
    def _running(datadir: Path) -> bool:
        pid_file = datadir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
            return True
        except (ProcessLookupError, ValueError, PermissionError):
            return False

    def _psql(self, dbname: str, sql: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", dbname,
             "-tAc", sql], capture_output=True, text=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._psql("postgres", "SELECT 1").returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL accepted connections but never answered")

    def _ensure_database(self) -> None:
        if self._psql("postgres", "SELECT 1 FROM pg_database WHERE datname='rdc'").stdout.strip() != "1":
            self._psql("postgres", "CREATE DATABASE rdc")

    def create_database(self, name: str) -> str:
        self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        res = self._psql("postgres", f'CREATE DATABASE "{name}"')
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: 'fast' (SIGINT), 'immediate' (SIGQUIT) or 'smart' (SIGTERM)."""
        if self.proc is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class Redis:
    """A private Redis server with an append-only file, so subscription commands survive a restart."""

    datadir: Path
    port: int
    logfile: Path
    proc: subprocess.Popen | None = field(default=None, init=False)
    die_with_parent: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> None:
        binary = redis_binary()
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.datadir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", str(self.logfile), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", start_new_session=True,
            preexec_fn=_preexec(self.die_with_parent),
        )
        wait_port(self.port, timeout, self.proc, "Redis")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


REPO_ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = REPO_ROOT / "nginx" / "templates" / "default.conf.template"
_PLACEHOLDER = string.Template.pattern


def render_nginx_template(values: dict[str, str], template: Path = NGINX_TEMPLATE) -> str:
    """Substitute `${NAME}` the way the nginx image's envsubst step does; NGINX's own `$vars` stay.

    Every upper-case placeholder in the template must be given: a missing one would otherwise
    reach NGINX as a variable it does not know, and fail at start with a less helpful message.
    """
    text = template.read_text()
    wanted = {
        m.group("braced") or m.group("named")
        for m in _PLACEHOLDER.finditer(text)
        if (m.group("braced") or m.group("named") or "").isupper()
    }
    missing = sorted(wanted - values.keys())
    if missing:
        raise KeyError(f"{template.name} needs values for: {', '.join(missing)}")
    return string.Template(text).safe_substitute(values)


@dataclass
class Nginx:
    """NGINX in front of the API, from nginx/templates/ exactly as the compose file's image uses it.

    Everything NGINX writes (pid, logs, temp files) lives under `confdir` and `logdir`; the
    generated top-level nginx.conf includes the rendered template inside `http { }`, as the
    official image's nginx.conf includes conf.d/*.conf.
    """

    confdir: Path
    port: int
    upstream: str
    logdir: Path
    rate_limit: str = "50r/s"
    burst: int = 100
    host: str = "127.0.0.1"
    die_with_parent: bool = False
    # The local Parquet archive served read-only under /archive/ (None: an empty directory, so 404s).
    archive_root: Path | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.logdir / "nginx-access.log"

    @property
    def error_log(self) -> Path:
        return self.logdir / "nginx-error.log"

    def render(self) -> Path:
        """Write conf.d/default.conf and nginx.conf under `confdir`; returns the nginx.conf path."""
        confd = self.confdir / "conf.d"
        tmp = self.confdir / "tmp"
        for d in (confd, tmp, self.logdir):
            d.mkdir(parents=True, exist_ok=True)
        archive = self.archive_root or self.confdir / "no-archive"
        archive.mkdir(parents=True, exist_ok=True)
        server = render_nginx_template({
            "API_UPSTREAM": self.upstream,
            "ARCHIVE_ROOT": str(archive.resolve()),
            # The template's `listen` takes an address too; locally we never listen beyond loopback.
            "NGINX_PORT": f"{self.host}:{self.port}",
            "NGINX_RATE_LIMIT": self.rate_limit,
            "NGINX_RATE_BURST": str(self.burst),
        })
        (confd / "default.conf").write_text(server)
        # As root the master stays root (to open logs and the port) and the workers drop to the
        # compiled-in default account (nobody), which is why nothing is spooled to temp files.
        main = f"""# Generated by devstack from nginx/templates/default.conf.template; edit the template.
daemon off;
worker_processes 1;
pid {self.confdir / "nginx.pid"};
error_log {self.error_log} warn;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    access_log {self.access_log};
    client_body_temp_path {tmp / "client_body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};

    include {confd / "default.conf"};
}}
"""
        path = self.confdir / "nginx.conf"
        path.write_text(main)
        return path

    def _command(self, binary: str, conf: Path, *extra: str) -> list[str]:
        return [binary, "-p", str(self.confdir), "-e", str(self.error_log), "-c", str(conf), *extra]

    def start(self, timeout: float = 15) -> None:
        binary = nginx_binary()
        conf = self.render()
        check = subprocess.run(self._command(binary, conf, "-t", "-q"), capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected {conf}: {check.stderr.strip()}")
        self.proc = subprocess.Popen(
            self._command(binary, conf),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", start_new_session=True,
            preexec_fn=_preexec(self.die_with_parent),
        )
        try:
            wait_port(self.port, timeout, self.proc, "NGINX")
        except (RuntimeError, TimeoutError):
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is None:
            return
        # SIGQUIT: graceful, lets in-flight requests finish; SIGKILL only if that hangs.
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
