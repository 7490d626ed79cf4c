#!/usr/bin/env python3
"""Fetch, start, wait for and stop real Kafka, OpenSearch and PostgreSQL on loopback.

No Docker: Kafka and OpenSearch come from Maven Central (through `mvn`), PostgreSQL from
Debian's packages. Standard library only, so it runs before the workspace is installed.

    python deploy/local/services.py up [kafka|opensearch|postgres ...]   # prints shell exports
    python deploy/local/services.py down [--purge] [NAME ...]
    python deploy/local/services.py kill [NAME ...]   # SIGKILL, as a crash; `up` again after
    python deploy/local/services.py status [NAME ...]
    python deploy/local/services.py env | logs NAME | smoke [NAME ...]
    python deploy/local/services.py cluster up|down|kill|status|env [NODE ...]   # see cluster.py

See deploy/local/README.md.
"""

# A command-line tool: it prints, and it runs programs found on this machine by design.
# ruff: noqa: T201, S603, S607

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# --- Versions: the one place to change them ------------------------------------------------
KAFKA_VERSION = "4.4.0"
KAFKA_SCALA = "2.13"
# Kafka's POMs leave out the SLF4J binding that its distribution ships; same log4j as Kafka's.
LOG4J_VERSION = "2.25.5"
OPENSEARCH_VERSION = "2.19.6"
MAVEN_DEPENDENCY_PLUGIN = ("org.apache.maven.plugins", "maven-dependency-plugin", "3.8.1")
# Java majors each service accepts (OpenSearch 2.19 needs the security manager: gone in 24).
KAFKA_JAVA = (17, 25)
OPENSEARCH_JAVA = (17, 21)
# An OpenID provider for the single sign-on tests; Keycloak 26.7 runs on Java 21 and later.
KEYCLOAK_VERSION = "26.7.3"
KEYCLOAK_JAVA = (21, 25)

SERVICE_NAMES = ("kafka", "opensearch", "postgres", "keycloak")
# What `up`, `status` and `env` take without names: the servers every deployment needs.
# Keycloak is named when wanted (the single sign-on tests); `down` stops it with the others.
DEFAULT_NAMES = ("kafka", "opensearch", "postgres")
DATABASE = "insights"
DB_USER = "insights"
OPENSEARCH_CLUSTER = "user-insights-local"
LOG_ROTATE_BYTES = 20 * 1024 * 1024
START_MARK = "=== services.py start"


@dataclasses.dataclass(frozen=True)
class OpenSearchModule:
    """A module the integ-test zip lacks, assembled from its jar on Maven Central."""

    name: str
    artifact: str  # groupId:artifactId
    classname: str
    description: str
    extends: tuple[str, ...] = ()
    policy: str = ""


PAINLESS_POLICY = """grant {
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""
REINDEX_POLICY = """grant {
  permission java.net.SocketPermission "*", "connect";
};
grant codeBase "${codebase.opensearch-rest-client}" {
  permission java.net.NetPermission "getProxySelector";
};
grant codeBase "${codebase.httpasyncclient}" {
  permission java.net.NetPermission "getProxySelector";
};
"""
# The integ-test zip carries only transport-netty4. These are the modules a search service
# usually leans on: analyzers (edge_ngram, asciifolding...), painless scripts, extra field
# types (search_as_you_type, scaled_float...) and _update_by_query/_delete_by_query.
OPENSEARCH_MODULES = (
    OpenSearchModule(
        "lang-painless",
        "org.opensearch.plugin:lang-painless",
        "org.opensearch.painless.PainlessPlugin",
        "An easy, safe and fast scripting language for OpenSearch",
        policy=PAINLESS_POLICY,
    ),
    OpenSearchModule(
        "analysis-common",
        "org.opensearch.plugin:analysis-common",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        'Adds "built in" analyzers to OpenSearch.',
        extends=("lang-painless",),
    ),
    OpenSearchModule(
        "mapper-extras",
        "org.opensearch.plugin:mapper-extras-client",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "Adds advanced field mappers",
    ),
    OpenSearchModule(
        "reindex",
        "org.opensearch.plugin:reindex-client",
        "org.opensearch.index.reindex.ReindexPlugin",
        "The Reindex module adds APIs to reindex from one index to another or update documents"
        " in place.",
        policy=REINDEX_POLICY,
    ),
)


class ServiceError(Exception):
    """A failure to report to the user as is (no traceback)."""


# --- Settings ------------------------------------------------------------------------------


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ServiceError(f"{name}={raw!r} is not a TCP port number (1-65535)")
    return int(raw)


@dataclasses.dataclass(frozen=True)
class Settings:
    cache_dir: Path
    state_dir: Path
    kafka_port: int
    kafka_controller_port: int
    opensearch_port: int
    opensearch_transport_port: int
    postgres_port: int
    keycloak_port: int
    keycloak_management_port: int
    service_user: str | None  # who runs OpenSearch and PostgreSQL when we are root
    kafka_heap: str
    opensearch_heap: str
    keycloak_heap: str
    timeout: float

    @classmethod
    def from_env(cls) -> Settings:
        root = os.geteuid() == 0
        home = Path.home()
        # As root, ~ is /root (mode 0700) which the unprivileged service user cannot enter.
        cache_default = (
            Path("/var/cache/user-insights")
            if root
            else Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "user-insights"
        )
        state_default = (
            Path("/var/lib/user-insights")
            if root
            else Path(os.environ.get("XDG_STATE_HOME") or home / ".local/state") / "user-insights"
        )
        timeout = os.environ.get("INSIGHTS_SERVICES_TIMEOUT", "240")
        try:
            timeout_s = float(timeout)
        except ValueError:
            raise ServiceError(
                f"INSIGHTS_SERVICES_TIMEOUT={timeout!r} is not a number of seconds"
            ) from None
        return cls(
            cache_dir=Path(os.environ.get("INSIGHTS_SERVICES_CACHE") or cache_default).resolve(),
            state_dir=Path(os.environ.get("INSIGHTS_SERVICES_STATE") or state_default).resolve(),
            kafka_port=_env_port("KAFKA_PORT", 19092),
            kafka_controller_port=_env_port("KAFKA_CONTROLLER_PORT", 19093),
            opensearch_port=_env_port("OPENSEARCH_PORT", 19200),
            opensearch_transport_port=_env_port("OPENSEARCH_TRANSPORT_PORT", 19300),
            postgres_port=_env_port("POSTGRES_PORT", 15432),
            service_user=(os.environ.get("INSIGHTS_SERVICES_USER") or "insights") if root else None,
            keycloak_port=_env_port("KEYCLOAK_PORT", 18080),
            keycloak_management_port=_env_port("KEYCLOAK_MANAGEMENT_PORT", 18081),
            kafka_heap=os.environ.get("INSIGHTS_KAFKA_HEAP") or "512m",
            opensearch_heap=os.environ.get("INSIGHTS_OPENSEARCH_HEAP") or "512m",
            keycloak_heap=os.environ.get("INSIGHTS_KEYCLOAK_HEAP") or "512m",
            timeout=timeout_s,
        )


# --- Small helpers -------------------------------------------------------------------------

_print_lock = threading.Lock()


def say(name: str, message: str) -> None:
    with _print_lock:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 40, since_mark: bool = True) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 256 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    if since_mark and START_MARK in text:
        text = text[text.rindex(START_MARK) :]
    return "\n".join(text.splitlines()[-lines:])


def run(
    cmd: list[str],
    *,
    what: str,
    user: str | None = None,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
) -> str:
    """Run a command to completion; raise ServiceError with its output when it fails."""
    account = _as_user(user)
    try:
        result = subprocess.run(
            cmd,
            input=input_text,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=cwd,
            user=account.uid,
            group=account.gid,
            extra_groups=account.groups,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{what}: no answer within {timeout:.0f}s: {' '.join(cmd)}") from exc
    except FileNotFoundError as exc:
        raise ServiceError(f"{what}: {exc}") from exc
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        raise ServiceError(f"{what} failed (exit {result.returncode}):\n{output}")
    return result.stdout


@dataclasses.dataclass(frozen=True)
class Account:
    """Keyword arguments for subprocess that run a command as `user` (None: as ourselves)."""

    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] | None = None


def _as_user(user: str | None) -> Account:
    if user is None:
        return Account()
    entry = pwd.getpwnam(user)
    return Account(entry.pw_uid, entry.pw_gid, ())


def ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    with contextlib.suppress(ServiceError):  # a parallel run may have created it meanwhile
        run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            what=f"useradd {name}",
        )
    pwd.getpwnam(name)  # raises if it still does not exist


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for item in [root, *(os.path.join(root, n) for n in dirs + files)]:
            st = os.lstat(item)
            if (st.st_uid, st.st_gid) != (entry.pw_uid, entry.pw_gid):
                os.lchown(item, entry.pw_uid, entry.pw_gid)


def check_reachable(path: Path, user: str | None, service: str) -> None:
    """Fail early and clearly when the service user cannot enter one of our directories."""
    if user is None:
        return
    account = _as_user(user)
    probe = subprocess.run(
        ["test", "-x", str(path), "-a", "-r", str(path)],
        user=account.uid,
        group=account.gid,
        extra_groups=account.groups,
    )
    if probe.returncode != 0:
        raise ServiceError(
            f"{service} runs as user {user!r}, which cannot enter {path} (is a parent directory"
            " mode 0700, such as /root?). Point INSIGHTS_SERVICES_CACHE and"
            " INSIGHTS_SERVICES_STATE at directories outside it."
        )


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def java_major(home: Path) -> int | None:
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(?:1\.)?(\d+)', text, re.M)
    return int(match.group(1)) if match else None


def find_java(*, versions: tuple[int, int], prefer_env: tuple[str, ...] = ()) -> Path:
    """A JDK home whose major version is within `versions` (inclusive)."""
    candidates: list[Path] = []
    for var in (*prefer_env, "INSIGHTS_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent.parent)
    candidates += sorted(Path("/usr/lib/jvm").glob("*")) if Path("/usr/lib/jvm").is_dir() else []
    for home in candidates:
        major = java_major(home)
        if (
            major is not None
            and versions[0] <= major <= versions[1]
            and (home / "bin/java").exists()
        ):
            return home
    raise ServiceError(
        f"no JDK {versions[0]}..{versions[1]} found (looked at JAVA_HOME, java on PATH and"
        " /usr/lib/jvm); install one, e.g. apt-get install -y openjdk-17-jre-headless"
    )


_tool_lock = threading.Lock()


def ensure_debian_package(command: str, package: str) -> str:
    """Path of `command`, installing its Debian package first when we may (root)."""
    with _tool_lock:
        found = shutil.which(command)
        if found:
            return found
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise ServiceError(f"{command} is missing: install the Debian package {package}")
        say("setup", f"installing {package} with apt-get")
        with file_lock(Path("/var/lib/user-insights-apt.lock")):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "update"], what="apt-get update", env=env)
            run(
                ["apt-get", "install", "-y", "--no-install-recommends", package],
                what=f"apt-get install {package}",
                env=env,
            )
        found = shutil.which(command)
        if not found:
            raise ServiceError(f"{package} installed but {command} is still not on PATH")
        return found


_maven_lock = threading.Lock()


def maven(settings: Settings, project: Path, goal: str, *, what: str) -> None:
    mvn = ensure_debian_package("mvn", "maven")
    group, artifact, version = MAVEN_DEPENDENCY_PLUGIN
    repo = settings.cache_dir / "maven"
    env = {**os.environ, "JAVA_HOME": str(find_java(versions=(17, 99)))}
    # One mvn at a time: concurrent writers can corrupt a shared local repository.
    with _maven_lock, file_lock(settings.cache_dir / ".maven.lock"):
        run(
            [
                mvn,
                "-B",
                "-q",
                f"-Dmaven.repo.local={repo}",
                "-f",
                str(project / "pom.xml"),
                f"{group}:{artifact}:{version}:{goal}",
            ],
            what=what,
            env=env,
            timeout=1800,
        )


def pom(artifact_id: str, dependencies: str, *, modules: str = "", plugin: bool = True) -> str:
    group, plugin_artifact, plugin_version = MAVEN_DEPENDENCY_PLUGIN
    build = (
        f"""<build><plugins><plugin>
    <groupId>{group}</groupId><artifactId>{plugin_artifact}</artifactId>
    <version>{plugin_version}</version>
    <configuration>
      <outputDirectory>${{project.basedir}}/out</outputDirectory>
      <useRepositoryLayout>true</useRepositoryLayout>
      <includeScope>runtime</includeScope>
    </configuration>
  </plugin></plugins></build>"""
        if plugin
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.user-insights</groupId>
  <artifactId>{artifact_id}</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  {modules}
  <dependencies>{dependencies}</dependencies>
  {build}
</project>
"""


def dependency(coordinates: str, *, kind: str = "jar", exclusions: tuple[str, ...] = ()) -> str:
    group, artifact, version = coordinates.split(":")
    excluded = "".join(
        f"<exclusion><groupId>{e.split(':')[0]}</groupId><artifactId>{e.split(':')[1]}"
        "</artifactId></exclusion>"
        for e in exclusions
    )
    return (
        f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version><type>{kind}</type>"
        f"<exclusions>{excluded}</exclusions></dependency>"
    )


@contextlib.contextmanager
def building(settings: Settings, final: Path) -> Iterator[Path]:
    """A scratch dir that becomes `final` by one rename, so a half fetch is never used."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".build-{final.name}-", dir=settings.cache_dir))
    try:
        yield scratch
        if final.exists():
            shutil.rmtree(final)
        os.rename(scratch / "result", final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def artifact_of_jar(filename: str) -> str:
    match = re.match(r"(.+?)-\d", filename)
    return match.group(1) if match else filename.removesuffix(".jar")


# --- Process bookkeeping -------------------------------------------------------------------


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (PostgreSQL's helpers start sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                if fields[0] != "Z":
                    children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def memory_mib(pid: int) -> tuple[float, float, int]:
    """(RSS, PSS, process count) over the service's process tree."""
    rss = pss = 0
    members = process_tree(pid)
    for member in members:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss / 1024, pss / 1024, len(members)


# --- Services ------------------------------------------------------------------------------


class Service:
    name = ""
    stop_signal = signal.SIGTERM
    drops_privileges = False  # runs as the unprivileged service user when we are root
    least_timeout = 0.0  # seconds to wait for readiness at least, whatever the settings say

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.state_dir / self.name
        self.pid_file = self.dir / f"{self.name}.pid"
        self.log_file = self.dir / f"{self.name}.log"
        self.lock_file = settings.state_dir / f".{self.name}.lock"
        self.ports_file = self.dir / "ports.json"
        self.user = settings.service_user if self.drops_privileges else None
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # Subclasses fill these in.
    def ports(self) -> dict[str, int]:
        raise NotImplementedError

    def exports(self) -> dict[str, str]:
        raise NotImplementedError

    def fetch(self) -> None:
        raise NotImplementedError

    def prepare(self) -> tuple[list[str], dict[str, str]]:
        """Write config, initialise data; return the command line and its environment."""
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def after_ready(self) -> None:
        return None

    def smoke(self) -> list[str]:
        raise NotImplementedError

    # Shared machinery.
    def running_pid(self) -> int | None:
        """Pid of our instance when it is alive (the pid file alone may be stale or reused)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        child = self._children.get(pid)
        if child is not None:  # ours: its launcher script may not have exec'd the server yet
            return pid if child.poll() is None else None
        state = proc_state(pid)
        if state is None or state in "ZX":
            return None
        return pid if str(self.dir) in proc_cmdline(pid) else None

    def previous_pids(self) -> list[int]:
        """Pids a previous instance left in its pid files."""
        with contextlib.suppress(OSError, ValueError):
            return [int(self.pid_file.read_text().split()[0])]
        return []

    def _wait_for_previous(self, grace: float = 15.0) -> None:
        """After a crash or kill -9, let the old process (even as a zombie) and its helpers go.

        PostgreSQL, for one, refuses to start while the pid in its lock file still exists.
        """
        deadline = time.monotonic() + grace
        for pid in self.previous_pids():
            state = proc_state(pid)
            if state not in (None, "Z", "X") and str(self.dir) not in proc_cmdline(pid):
                continue  # the pid was reused by an unrelated process
            while proc_state(pid) is not None and time.monotonic() < deadline:
                time.sleep(0.2)

    def up(self) -> None:
        with file_lock(self.lock_file):
            pid = self.running_pid()
            if pid is not None:
                mismatch = self._ports_mismatch()
                if mismatch:
                    raise ServiceError(f"already running (pid {pid}) {mismatch}: run `down` first")
                say(self.name, f"already running (pid {pid}); checking readiness")
                self._wait_ready(pid)
                self.after_ready()
                return
            self._wait_for_previous()
            self.fetch()
            busy = [
                f"{label} {port}" for label, port in self.ports().items() if not port_free(port)
            ]
            if busy:
                raise ServiceError(
                    f"{self.name}: port in use by a process this tool did not start: "
                    f"{', '.join(busy)}; stop it or choose other ports (see README)"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
            if self.user:
                ensure_user(self.user)
            command, env = self.prepare()
            if self.user:
                chown_tree(self.dir, self.user)
                check_reachable(self.dir, self.user, self.name)
            pid = self._spawn(command, env)
            try:
                self._wait_ready(pid)
            except ServiceError:
                if self._alive(pid):
                    self._stop_pid(pid)
                self.pid_file.unlink(missing_ok=True)
                raise
            self.after_ready()

    def _spawn(self, command: list[str], env: dict[str, str]) -> int:
        account = _as_user(self.user)
        if self.log_file.exists() and self.log_file.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(self.log_file, self.log_file.with_suffix(".log.1"))
        with open(self.log_file, "ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"{START_MARK} {stamp}: {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
                start_new_session=True,  # survives us, and gets its own process group
                user=account.uid,
                group=account.gid,
                extra_groups=account.groups,
            )
        self._children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        self.ports_file.write_text(json.dumps(self.ports()) + "\n")
        say(self.name, f"started pid {proc.pid}, log {self.log_file}")
        pid: int = proc.pid
        return pid

    def _ports_mismatch(self) -> str:
        try:
            started_with = json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            return ""
        if started_with == self.ports():
            return ""
        return f"with ports {started_with}, not the configured {self.ports()}"

    def _wait_ready(self, pid: int) -> None:
        began = time.monotonic()
        timeout = max(self.settings.timeout, self.least_timeout)
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.running_pid() != pid:
                raise ServiceError(
                    f"{self.name} exited during start-up; last lines of {self.log_file}:\n"
                    + tail(self.log_file)
                )
            with contextlib.suppress(OSError, ValueError, struct.error):
                if self.ready():
                    say(self.name, f"ready in {time.monotonic() - began:.1f}s")
                    return
            time.sleep(0.5)
        raise ServiceError(
            f"{self.name} (pid {pid}) not ready after {timeout:.0f}s"
            f" (INSIGHTS_SERVICES_TIMEOUT); last lines of {self.log_file}:\n" + tail(self.log_file)
        )

    def down(self, *, purge: bool = False) -> None:
        with file_lock(self.lock_file):
            pid = self.running_pid()
            if pid is None:
                say(self.name, "not running")
            else:
                self._stop_pid(pid)
            self.pid_file.unlink(missing_ok=True)
            if purge and self.dir.exists():
                shutil.rmtree(self.dir)
                say(self.name, f"removed {self.dir}")

    def kill(self) -> None:
        """SIGKILL the instance and every process of its tree at once, as when its machine
        dies: no shutdown runs, the data stays. `up` starts it again (a fault test's crash)."""
        with file_lock(self.lock_file):
            pid = self.running_pid()
            if pid is None:
                say(self.name, "not running")
                return
            for member in process_tree(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
            say(self.name, f"killed pid {pid} (SIGKILL)")

    def _stop_pid(self, pid: int, grace: float = 45.0) -> None:
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, self.stop_signal)
        while time.monotonic() - began < grace and self._alive(pid):
            time.sleep(0.2)
        if self._alive(pid):
            say(self.name, f"pid {pid} ignored {self.stop_signal.name} for {grace:.0f}s: SIGKILL")
            for member in process_tree(pid):  # its helpers too, wherever their session
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.1)
        # Anything still in its process group (normally nothing: a server takes its helpers down).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        say(self.name, f"stopped pid {pid} in {time.monotonic() - began:.1f}s")

    def _alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        state = proc_state(pid)
        return state is not None and state not in "ZX"

    def status(self) -> tuple[bool, str]:
        pid = self.running_pid()
        endpoint = " ".join(
            f"{k}={v}" for k, v in self.exports().items() if not k.endswith("PASSWORD")
        )
        if pid is None:
            busy = [str(p) for p in self.ports().values() if not port_free(p)]
            note = f" (port {', '.join(busy)} taken by another process)" if busy else ""
            return False, f"{self.name}: stopped{note}"
        try:
            ok = self.ready()
        except (OSError, ValueError, struct.error):
            ok = False
        rss, pss, count = memory_mib(pid)
        health = "ready" if ok else "NOT ready"
        mismatch = self._ports_mismatch()
        if mismatch:
            health += f" (started {mismatch})"
        return ok, (
            f"{self.name}: running pid {pid}, {health}, RSS {rss:.0f} MiB (PSS {pss:.0f} MiB,"
            f" {count} process{'es' if count > 1 else ''}), {endpoint}"
        )


class Kafka(Service):
    name = "kafka"

    @property
    def home(self) -> Path:
        return self.settings.cache_dir / f"kafka-{KAFKA_VERSION}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def ports(self) -> dict[str, int]:
        return {
            "broker": self.broker_port,
            "controller": self.controller_port,
        }

    def exports(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}

    def fetch(self) -> None:
        if (self.home / "jars").is_dir():
            return
        with file_lock(self.settings.cache_dir / ".kafka.lock"):
            if (self.home / "jars").is_dir():
                return
            say(self.name, f"fetching Kafka {KAFKA_VERSION} jars with mvn (once)")
            with building(self.settings, self.home) as scratch:
                deps = "".join(
                    [
                        dependency(f"org.apache.kafka:kafka_{KAFKA_SCALA}:{KAFKA_VERSION}"),
                        # The command-line tools; Connect (Jetty, Jersey) is not needed for them.
                        dependency(
                            f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
                            exclusions=("org.apache.kafka:connect-runtime",),
                        ),
                        dependency(f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}"),
                    ]
                )
                (scratch / "pom.xml").write_text(pom("kafka-runtime", deps))
                maven(self.settings, scratch, "copy-dependencies", what="mvn (Kafka jars)")
                jars = scratch / "result" / "jars"
                jars.mkdir(parents=True)
                for jar in (scratch / "out").rglob("*.jar"):
                    shutil.copy2(jar, jars / jar.name)
                say(self.name, f"{len(list(jars.iterdir()))} jars in {self.home}")

    def java(self) -> Path:
        return find_java(versions=KAFKA_JAVA) / "bin/java"

    def _write_log4j(self, path: Path, level: str, target: str) -> None:
        path.write_text(
            "status = warn\n"
            # Log4j's own hook would stop logging before Kafka's shutdown hook has finished.
            "shutdownHook = disable\n"
            "appender.out.type = Console\n"
            "appender.out.name = OUT\n"
            f"appender.out.target = {target}\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            f"rootLogger.level = {level}\n"
            "rootLogger.appenderRef.out.ref = OUT\n"
            "logger.request.name = kafka.request.logger\n"
            "logger.request.level = WARN\n"
            "logger.state.name = state.change.logger\n"
            "logger.state.level = WARN\n"
        )

    def cluster_id(self) -> str | None:
        meta = self.dir / "data" / "meta.properties"
        with contextlib.suppress(OSError):
            match = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.M)
            return match.group(1) if match else None
        return None

    # One broker+controller by default; a node of the cluster (KafkaNode) says otherwise.
    node_id = 1
    replicas = 1  # copies of the internal topics, and the default of new ones
    min_isr = 1
    session_timeout_ms = 9000  # Kafka's defaults
    heartbeat_ms = 2000

    @property
    def broker_port(self) -> int:
        return self.settings.kafka_port

    @property
    def controller_port(self) -> int:
        return self.settings.kafka_controller_port

    def voters(self) -> str:
        return f"1@127.0.0.1:{self.controller_port}"

    def new_cluster_id(self) -> str:
        return _kafka_uuid()

    def prepare(self) -> tuple[list[str], dict[str, str]]:
        s = self.settings
        data = self.dir / "data"
        config = self.dir / "server.properties"
        internal = 3 if self.replicas > 1 else 1  # partitions of the internal topics
        config.write_text(
            "# Generated by deploy/local/services.py on every start; edits are overwritten.\n"
            "process.roles=broker,controller\n"
            f"node.id={self.node_id}\n"
            f"controller.quorum.voters={self.voters()}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.broker_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.broker_port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={data}\n"
            "num.partitions=1\n"
            f"default.replication.factor={self.replicas}\n"
            f"min.insync.replicas={self.min_isr}\n"
            f"offsets.topic.replication.factor={self.replicas}\n"
            f"offsets.topic.num.partitions={internal}\n"
            f"transaction.state.log.replication.factor={self.replicas}\n"
            f"transaction.state.log.min.isr={self.min_isr}\n"
            f"transaction.state.log.num.partitions={internal}\n"
            f"share.coordinator.state.topic.replication.factor={self.replicas}\n"
            f"share.coordinator.state.topic.min.isr={self.min_isr}\n"
            "group.initial.rebalance.delay.ms=0\n"
            # A broker that stops heartbeating is fenced, and its partitions led elsewhere, after
            # this long: the part of losing a broker that writers wait through.
            f"broker.session.timeout.ms={self.session_timeout_ms}\n"
            f"broker.heartbeat.interval.ms={self.heartbeat_ms}\n"
            "num.network.threads=2\n"
            "num.io.threads=4\n"
            "num.recovery.threads.per.data.dir=1\n"
            "log.retention.hours=24\n"
            "log.segment.bytes=67108864\n"
        )
        self._write_log4j(self.dir / "log4j2.properties", "INFO", "SYSTEM_OUT")
        self._write_log4j(self.dir / "tools-log4j2.properties", "WARN", "SYSTEM_ERR")
        java = str(self.java())
        classpath = f"{self.home / 'jars'}/*"
        env = {**os.environ, "JAVA_HOME": str(Path(java).parent.parent)}
        if self.cluster_id() is None:
            shutil.rmtree(data, ignore_errors=True)
            cluster = self.new_cluster_id()
            say(self.name, f"formatting storage in {data} (cluster {cluster})")
            run(
                [
                    java,
                    "-Xmx256m",
                    "-XX:TieredStopAtLevel=1",
                    f"-Dlog4j2.configurationFile={self.dir / 'tools-log4j2.properties'}",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    cluster,
                    "--config",
                    str(config),
                ],
                what="kafka storage format",
                env=env,
            )
        heap = s.kafka_heap
        command = [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.dir}",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(config),
        ]
        return command, env

    def ready(self) -> bool:
        brokers, cluster = kafka_metadata("127.0.0.1", self.broker_port)
        return bool(brokers) and cluster == self.cluster_id()

    def tool(
        self, main: str, *args: str, input_text: str | None = None, timeout: float = 120
    ) -> str:
        java = str(self.java())
        return run(
            [
                java,
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={self.dir / 'tools-log4j2.properties'}",
                "-cp",
                f"{self.home / 'jars'}/*",
                main,
                *args,
            ],
            what=main.rsplit(".", 1)[-1],
            input_text=input_text,
            timeout=timeout,
        )

    def smoke(self) -> list[str]:
        bs = self.bootstrap
        stamp = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
        source, copied = f"smoke-{stamp}", f"smoke-{stamp}-tx"
        report = []
        versions = self.tool(
            "org.apache.kafka.tools.BrokerApiVersionsCommand", "--bootstrap-server", bs
        )
        report.append(f"ApiVersions answered by {versions.splitlines()[0].split(' (')[0]}")
        for topic in (source, copied):
            self.tool(
                "org.apache.kafka.tools.TopicCommand",
                "--bootstrap-server",
                bs,
                "--create",
                "--topic",
                topic,
                "--partitions",
                "1",
                "--replication-factor",
                "1",
            )
        report.append(f"created topics {source}, {copied}")
        messages = [f"hello-{stamp}-{i}" for i in range(3)]
        self.tool(
            "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server",
            bs,
            "--topic",
            source,
            input_text="".join(m + "\n" for m in messages),
        )
        got = self.tool(
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            bs,
            "--topic",
            source,
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
        ).split()
        if got != messages:
            raise ServiceError(f"kafka smoke: consumed {got}, expected {messages}")
        report.append(f"produced and consumed {len(messages)} messages")
        # Transactions: copy the topic in a transaction, then read it read_committed.
        self.tool(
            "org.apache.kafka.tools.TransactionalMessageCopier",
            "--broker-list",
            bs,
            "--input-topic",
            source,
            "--input-partition",
            "0",
            "--output-topic",
            copied,
            "--transactional-id",
            f"smoke-tx-{stamp}",
            "--consumer-group",
            f"smoke-{stamp}",
            "--transaction-size",
            "2",
            "--max-messages",
            "3",
        )
        got = self.tool(
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            bs,
            "--topic",
            copied,
            "--from-beginning",
            "--max-messages",
            "3",
            "--isolation-level",
            "read_committed",
            "--timeout-ms",
            "30000",
        ).split()
        if got != messages:
            raise ServiceError(f"kafka smoke: read_committed got {got}, expected {messages}")
        report.append("transactional copy committed and read back with read_committed")
        self.tool(
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            bs,
            "--delete",
            "--topic",
            f"{source}.*",
        )
        return report


def _kafka_uuid() -> str:
    while True:  # Kafka's own generator also avoids a leading '-'
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not value.startswith("-"):
            return value


def kafka_metadata(host: str, port: int, timeout: float = 3.0) -> tuple[list[int], str | None]:
    """Broker ids and cluster id from a Kafka Metadata v4 request (no client library needed)."""
    client = b"services.py"
    # Header v1: api_key 3 (Metadata), version 4, correlation id, client id; body: all topics
    # (null array) and allow_auto_topic_creation = false.
    body = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        data = _recv(sock, size)
    correlation, _throttle, count = struct.unpack_from(">iii", data, 0)
    if correlation != 7:
        raise ValueError("unexpected correlation id")
    offset, brokers = 12, []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", data, offset)
        offset += 6 + host_len
        _port, rack_len = struct.unpack_from(">ih", data, offset)
        offset += 6 + max(rack_len, 0)
        brokers.append(node_id)
    (cluster_len,) = struct.unpack_from(">h", data, offset)
    cluster = data[offset + 2 : offset + 2 + cluster_len].decode() if cluster_len >= 0 else None
    return brokers, cluster


def _recv(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class OpenSearch(Service):
    name = "opensearch"
    drops_privileges = True  # it refuses to run as root

    @property
    def home(self) -> Path:
        return self.settings.cache_dir / f"opensearch-{OPENSEARCH_VERSION}"

    # One node by default; a node of the cluster (OpenSearchNode) says otherwise.
    cluster_name = OPENSEARCH_CLUSTER
    node_name = "local"

    @property
    def http_port(self) -> int:
        return self.settings.opensearch_port

    @property
    def transport_port(self) -> int:
        return self.settings.opensearch_transport_port

    def discovery(self) -> str:
        return "discovery.type: single-node\n"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def ports(self) -> dict[str, int]:
        return {"http": self.http_port, "transport": self.transport_port}

    def exports(self) -> dict[str, str]:
        return {"OPENSEARCH_URL": self.url}

    def fetch(self) -> None:
        if (self.home / "bin/opensearch").exists():
            return
        with file_lock(self.settings.cache_dir / ".opensearch.lock"):
            if (self.home / "bin/opensearch").exists():
                return
            say(self.name, f"fetching OpenSearch {OPENSEARCH_VERSION} with mvn (once)")
            with building(self.settings, self.home) as scratch:
                self._fetch_into(scratch)

    def _fetch_into(self, scratch: Path) -> None:
        # One reactor build: the distribution plus one project per module, so each module's
        # own dependencies land in their own folder.
        projects = {
            "dist": dependency(
                f"org.opensearch.distribution.integ-test-zip:opensearch:{OPENSEARCH_VERSION}",
                kind="zip",
            )
        }
        for module in OPENSEARCH_MODULES:
            projects[module.name] = dependency(
                f"{module.artifact}:{OPENSEARCH_VERSION}",
                exclusions=("org.opensearch:opensearch",),  # the server itself is in lib/
            )
        for project, deps in projects.items():
            (scratch / project).mkdir()
            (scratch / project / "pom.xml").write_text(pom(f"opensearch-{project}", deps))
        modules = "<modules>" + "".join(f"<module>{p}</module>" for p in projects) + "</modules>"
        (scratch / "pom.xml").write_text(
            pom("opensearch-runtime", "", modules=modules, plugin=False)
        )
        maven(self.settings, scratch, "copy-dependencies", what="mvn (OpenSearch)")

        (archive,) = (scratch / "dist" / "out").rglob("*.zip")
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                target = Path(zipped.extract(info, scratch / "unzipped"))
                mode = info.external_attr >> 16
                if mode and not info.is_dir():
                    target.chmod(mode & 0o755 | 0o644)
        home = scratch / "result"
        os.rename(scratch / "unzipped" / f"opensearch-{OPENSEARCH_VERSION}", home)
        (home / "plugins").mkdir(exist_ok=True)

        taken = {artifact_of_jar(jar.name) for jar in (home / "lib").glob("*.jar")}
        by_module: dict[str, set[str]] = {}
        for module in OPENSEARCH_MODULES:
            inherited = taken.union(*(by_module[parent] for parent in module.extends))
            target = home / "modules" / module.name
            target.mkdir(parents=True)
            kept = set()
            for jar in sorted((scratch / module.name / "out").rglob("*.jar")):
                artifact_id = jar.parent.parent.name  # repository layout: .../artifact/version/
                if artifact_id not in inherited:  # a second copy of a class fails jar hell
                    shutil.copy2(jar, target / jar.name)
                    kept.add(artifact_id)
            by_module[module.name] = kept
            (target / "plugin-descriptor.properties").write_text(
                f"description={module.description}\n"
                f"version={OPENSEARCH_VERSION}\n"
                f"name={module.name}\n"
                f"classname={module.classname}\n"
                "java.version=11\n"
                f"opensearch.version={OPENSEARCH_VERSION}\n"
                "custom.foldername=\n"
                f"extended.plugins={','.join(module.extends)}\n"
                "has.native.controller=false\n"
            )
            if module.policy:
                (target / "plugin-security.policy").write_text(module.policy)
        say(
            self.name,
            f"assembled {self.home} with modules "
            f"{', '.join(sorted(p.name for p in (home / 'modules').iterdir()))}",
        )

    def prepare(self) -> tuple[list[str], dict[str, str]]:
        s = self.settings
        config, data, logs, tmp = (self.dir / d for d in ("config", "data", "logs", "tmp"))
        for folder in (config, data, logs, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        (config / "opensearch.yml").write_text(
            "# Generated by deploy/local/services.py on every start; edits are overwritten.\n"
            f"cluster.name: {self.cluster_name}\n"
            f"node.name: {self.node_name}\n"
            f"path.data: {data}\n"
            f"path.logs: {logs}\n"
            "network.host: 127.0.0.1\n"
            f"http.port: {self.http_port}\n"
            f"transport.port: {self.transport_port}\n"
            + self.discovery()
            # A nearly full disk must not turn test indices read-only.
            + "cluster.routing.allocation.disk.threshold_enabled: false\n"
        )
        # The distribution's JVM options, with our heap and with paths made absolute (the
        # launcher runs in the read-only home) and GC logs kept small.
        heap = s.opensearch_heap
        options = (self.home / "config" / "jvm.options").read_text()
        options = re.sub(r"^-Xms\S+$", f"-Xms{heap}", options, flags=re.M)
        options = re.sub(r"^-Xmx\S+$", f"-Xmx{heap}", options, flags=re.M)
        options = options.replace("HeapDumpPath=data", f"HeapDumpPath={logs}")
        options = options.replace("logs/", f"{logs}/")
        options = options.replace("filecount=32,filesize=64m", "filecount=2,filesize=16m")
        (config / "jvm.options").write_text(options)
        (config / "jvm.options.d").mkdir(exist_ok=True)
        # The launcher pre-touches the whole heap; a dev node need not hold it all at idle.
        (config / "jvm.options.d" / "insights.options").write_text("-XX:-AlwaysPreTouch\n")
        shutil.copy2(self.home / "config" / "log4j2.properties", config / "log4j2.properties")
        check_reachable(self.home, self.user, self.name)
        java_home = str(find_java(versions=OPENSEARCH_JAVA, prefer_env=("OPENSEARCH_JAVA_HOME",)))
        env = {
            **os.environ,
            "HOME": str(self.dir),
            "OPENSEARCH_JAVA_HOME": java_home,
            "JAVA_HOME": java_home,
            "OPENSEARCH_PATH_CONF": str(config),
            "OPENSEARCH_TMPDIR": str(tmp),
            "OPENSEARCH_JAVA_OPTS": "",
        }
        if self.user:
            env["USER"] = env["LOGNAME"] = self.user
        return [str(self.home / "bin" / "opensearch")], env

    def request(
        self, method: str, path: str, body: object = None, timeout: float = 30
    ) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own http:// URL
            self.url + path,
            data=payload,
            method=method,
            headers={"Content-Type": "application/json"} if payload else {},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
        return answer

    def ready(self) -> bool:
        try:
            health = self.request(
                "GET", "/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5
            )
        except urllib.error.HTTPError:
            return False  # 408 until yellow, 503 while the cluster forms
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return False
        return health.get("cluster_name") == self.cluster_name and health.get("status") in (
            "green",
            "yellow",
        )

    def smoke(self) -> list[str]:
        index = f"smoke-{int(time.time())}-{uuid.uuid4().hex[:6]}"
        root = self.request("GET", "/")
        health = self.request("GET", "/_cluster/health")
        report = [f"OpenSearch {root['version']['number']}, cluster health {health['status']}"]
        self.request(
            "PUT",
            f"/{index}",
            {
                "settings": {
                    "number_of_shards": 1,
                    "number_of_replicas": 0,
                    "analysis": {
                        "tokenizer": {
                            "prefix": {
                                "type": "edge_ngram",
                                "min_gram": 1,
                                "max_gram": 10,
                                "token_chars": ["letter", "digit"],
                            }
                        },
                        "analyzer": {
                            "prefix": {
                                "tokenizer": "prefix",
                                "filter": ["lowercase", "asciifolding"],
                            }
                        },
                    },
                },
                "mappings": {
                    "properties": {
                        "nickname": {
                            "type": "text",
                            "analyzer": "prefix",
                            "search_analyzer": "standard",
                        },
                        "user_id": {"type": "search_as_you_type"},
                        "sent": {"type": "integer"},
                    }
                },
            },
        )
        self.request(
            "PUT",
            f"/{index}/_doc/alex?refresh=true",
            {"nickname": "Álex Kim", "user_id": "alex", "sent": 1},
        )
        self.request(
            "POST",
            f"/{index}/_update/alex?refresh=true",
            {"script": {"source": "ctx._source.sent += params.n", "params": {"n": 2}}},
        )
        found = self.request("POST", f"/{index}/_search", {"query": {"match": {"nickname": "al"}}})[
            "hits"
        ]["hits"]
        if [h["_source"]["sent"] for h in found] != [3]:
            raise ServiceError(f"opensearch smoke: unexpected hits {found}")
        report.append(
            "indexed a document; edge_ngram search, painless update, "
            "search_as_you_type mapping work"
        )
        deleted = self.request(
            "POST", f"/{index}/_delete_by_query?refresh=true", {"query": {"match_all": {}}}
        )["deleted"]
        if deleted != 1:
            raise ServiceError(f"opensearch smoke: _delete_by_query deleted {deleted}")
        report.append("_delete_by_query works")
        self.request("DELETE", f"/{index}")
        return report


class Postgres(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM would wait for clients to leave
    drops_privileges = True  # it refuses to run as root

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def ports(self) -> dict[str, int]:
        return {"port": self.settings.postgres_port}

    def exports(self) -> dict[str, str]:
        return {
            "POSTGRES_DSN": f"postgresql://{DB_USER}@127.0.0.1:{self.settings.postgres_port}/{DATABASE}"
        }

    def bindir(self) -> Path:
        installed = {
            p.parts[-3]: p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        }
        with contextlib.suppress(OSError):  # keep the major version the cluster was made with
            made_with = (self.data / "PG_VERSION").read_text().strip()
            if made_with in installed:
                return installed[made_with]
        if installed:
            return installed[max(installed, key=lambda v: int(v) if v.isdigit() else 0)]
        found = shutil.which("pg_ctl")
        if found:
            return Path(os.path.realpath(found)).parent
        ensure_debian_package("pg_ctlcluster", "postgresql")
        return self.bindir()

    def fetch(self) -> None:
        self.bindir()

    def previous_pids(self) -> list[int]:
        pids = super().previous_pids()
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((self.data / "postmaster.pid").read_text().split()[0]))
        return pids

    def prepare(self) -> tuple[list[str], dict[str, str]]:
        bindir = self.bindir()
        env = {**os.environ, "HOME": str(self.dir), "LC_ALL": "C.UTF-8"}
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self.dir.mkdir(parents=True, exist_ok=True)
            chown_tree(self.dir, self.user)
            check_reachable(self.dir, self.user, self.name)
            say(self.name, f"initdb {self.data}")
            run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    DB_USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                what="initdb",
                user=self.user,
                env=env,
                cwd=self.dir,
            )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.settings.postgres_port),
            "unix_socket_directories": "",  # TCP only: no socket path length or permission issues
            # A throwaway cluster for tests: a process crash is still safe, a power cut is not.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        command = [str(bindir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command, env

    def _client(self, program: str) -> str:
        return str(self.bindir() / program)

    def ready(self) -> bool:
        result = subprocess.run(
            [
                self._client("pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.settings.postgres_port),
                "-U",
                DB_USER,
                "-d",
                "postgres",
                "-t",
                "2",
            ],
            capture_output=True,
            timeout=10,
        )
        return result.returncode == 0

    def psql(self, sql: str, database: str = DATABASE) -> str:
        return run(
            [
                self._client("psql"),
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-qtA",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.settings.postgres_port),
                "-U",
                DB_USER,
                "-d",
                database,
                "-c",
                sql,
            ],
            what="psql",
            env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
            timeout=60,
        ).strip()

    def after_ready(self) -> None:
        query = f"select 1 from pg_database where datname = '{DATABASE}'"  # noqa: S608 - constant
        exists = self.psql(query, "postgres")
        if exists != "1":
            self.psql(f'create database "{DATABASE}"', "postgres")
            say(self.name, f"created database {DATABASE}")

    def smoke(self) -> list[str]:
        one = self.psql("select 1")
        if one != "1":
            raise ServiceError(f"postgres smoke: select 1 returned {one!r}")
        version = self.psql("show server_version")
        rows = self.psql(
            "begin; create temp table smoke(x int); insert into smoke values (1), (2);"
            " select count(*) from smoke; commit;"
        )
        return [f"PostgreSQL {version}: select 1 -> {one}; temp table rows -> {rows}"]


class Keycloak(Service):
    """Keycloak's distribution in development mode: one node, an H2 file database in its state
    dir, plain HTTP on loopback. Its first start makes the master realm's admin, whose
    password is kept beside the data; the tests import their realms through its admin API."""

    name = "keycloak"
    ADMIN = "admin"
    # Its first start builds the server (Quarkus) and its database: 100 s on 2 idle cores,
    # past 190 s beside a busy test run.
    least_timeout = 600.0

    @property
    def home(self) -> Path:
        return self.settings.cache_dir / f"keycloak-{KEYCLOAK_VERSION}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.keycloak_port}"

    @property
    def password_file(self) -> Path:
        return self.dir / "admin-password"

    def ports(self) -> dict[str, int]:
        return {
            "http": self.settings.keycloak_port,
            "management": self.settings.keycloak_management_port,
        }

    def exports(self) -> dict[str, str]:
        exports = {"KEYCLOAK_URL": self.url, "KEYCLOAK_ADMIN_USER": self.ADMIN}
        with contextlib.suppress(OSError):
            exports["KEYCLOAK_ADMIN_PASSWORD"] = self.password_file.read_text().strip()
        return exports

    def fetch(self) -> None:
        if (self.home / "bin/kc.sh").exists():
            return
        with file_lock(self.settings.cache_dir / ".keycloak.lock"):
            if (self.home / "bin/kc.sh").exists():
                return
            say(self.name, f"fetching Keycloak {KEYCLOAK_VERSION} with mvn (once)")
            with building(self.settings, self.home) as scratch:
                coordinates = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}"
                # The archive alone: it carries its own jars, its POM names them again.
                archive_only = dependency(coordinates, kind="tar.gz", exclusions=("*:*",))
                (scratch / "pom.xml").write_text(pom("keycloak-runtime", archive_only))
                maven(self.settings, scratch, "copy-dependencies", what="mvn (Keycloak)")
                (archive,) = (scratch / "out").rglob("*.tar.gz")
                with tarfile.open(archive) as packed:
                    packed.extractall(scratch / "unpacked", filter="tar")
                os.rename(scratch / "unpacked" / f"keycloak-{KEYCLOAK_VERSION}", scratch / "result")
                say(self.name, f"unpacked {self.home}")

    def prepare(self) -> tuple[list[str], dict[str, str]]:
        data = self.dir / "h2"
        env = {
            **os.environ,
            "JAVA_HOME": str(find_java(versions=KEYCLOAK_JAVA, prefer_env=("KEYCLOAK_JAVA_HOME",))),
            "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.settings.keycloak_heap}",
        }
        if not self.password_file.exists():
            # The admin is made only with the master realm: a new password needs a new database.
            shutil.rmtree(data, ignore_errors=True)
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.urlsafe_b64encode(os.urandom(18)).decode() + "\n")
            env["KC_BOOTSTRAP_ADMIN_USERNAME"] = self.ADMIN
            env["KC_BOOTSTRAP_ADMIN_PASSWORD"] = self.password_file.read_text().strip()
        command = [
            str(self.home / "bin" / "kc.sh"),
            "start-dev",
            "--http-host=127.0.0.1",
            f"--http-port={self.settings.keycloak_port}",
            f"--http-management-port={self.settings.keycloak_management_port}",
            "--db=dev-file",
            f"--db-url=jdbc:h2:file:{data}/keycloakdb;NON_KEYWORDS=VALUE",
            "--cache=local",
        ]
        return command, env

    def request(self, path: str, timeout: float = 5) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def ready(self) -> bool:
        try:
            discovery = self.request("/realms/master/.well-known/openid-configuration")
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return False
        return discovery.get("issuer") == f"{self.url}/realms/master"

    def smoke(self) -> list[str]:
        discovery = self.request("/realms/master/.well-known/openid-configuration")
        keys = self.request("/realms/master/protocol/openid-connect/certs")["keys"]
        return [
            f"Keycloak {KEYCLOAK_VERSION}: discovery names {discovery['issuer']}, "
            f"{len(keys)} signing keys published"
        ]


SERVICES: dict[str, Callable[[Settings], Service]] = {
    "kafka": Kafka,
    "opensearch": OpenSearch,
    "postgres": Postgres,
    "keycloak": Keycloak,
}


# --- Commands ------------------------------------------------------------------------------


def print_exports(services: list[Service]) -> None:
    for service in services:
        for key, value in service.exports().items():
            print(f"export {key}={value}")


def in_parallel(services: list[Service], action: Callable[[Service], object]) -> list[str]:
    """Run `action` on each service at once; return the error messages."""
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(services)) as pool:
        futures = {pool.submit(action, s): s for s in services}
        for future in concurrent.futures.as_completed(futures):
            try:
                future.result()
            except ServiceError as exc:
                errors.append(f"[{futures[future].name}] {exc}")
            except Exception as exc:  # noqa: BLE001 - report every service's failure
                errors.append(f"[{futures[future].name}] {type(exc).__name__}: {exc}")
    return errors


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cluster"]:  # three Kafka brokers and three OpenSearch nodes: cluster.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import cluster  # noqa: PLC0415 - only this command needs it

        return cluster.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (
        ("up", "fetch (once), start and wait for services; print shell exports"),
        ("down", "stop services (SIGTERM, then SIGKILL)"),
        ("kill", "SIGKILL services and their helpers at once, as a crash (data stays)"),
        ("status", "show whether services run and answer"),
        ("env", "print the shell exports without starting anything"),
        ("smoke", "exercise running services for real (topic, produce/consume, index, SQL)"),
        ("logs", "print the end of a service's log"),
    ):
        cmd = sub.add_parser(command, help=text)
        cmd.add_argument(
            "names",
            nargs="*",
            metavar="NAME",
            help=f"any of {', '.join(SERVICE_NAMES)} (default: {', '.join(DEFAULT_NAMES)};"
            " down and kill: all)",
        )
        if command == "down":
            cmd.add_argument("--purge", action="store_true", help="also delete their data")
        if command == "logs":
            cmd.add_argument("-n", "--lines", type=int, default=60)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SERVICE_NAMES]
    if unknown:
        parser.error(
            f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICE_NAMES)}"
        )
    os.umask(0o022)  # the unprivileged service user must read what we fetch and write
    try:
        settings = Settings.from_env()
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    everything = SERVICE_NAMES if args.command in ("down", "kill") else DEFAULT_NAMES
    names = list(dict.fromkeys(args.names)) or list(everything)
    services = [SERVICES[name](settings) for name in names]

    if args.command == "env":
        print_exports(services)
        return 0
    if args.command == "logs":
        for service in services:
            print(f"--- {service.log_file}\n{tail(service.log_file, args.lines, since_mark=False)}")
        return 0
    if args.command == "status":
        results = [service.status() for service in services]
        for _, line in results:
            print(line)
        return 0 if all(ok for ok, _ in results) else 1
    if args.command == "down":
        errors = in_parallel(services, lambda s: s.down(purge=args.purge))
    elif args.command == "kill":
        errors = in_parallel(services, lambda s: s.kill())
    elif args.command == "up":
        began = time.monotonic()
        errors = in_parallel(services, lambda s: s.up())
        if not errors:
            say("up", f"{', '.join(names)} ready in {time.monotonic() - began:.1f}s")
            print_exports(services)
    else:  # smoke

        def smoke(service: Service) -> None:
            if service.running_pid() is None:
                raise ServiceError("not running: run `up` first")
            for line in service.smoke():
                say(service.name, f"ok: {line}")

        errors = in_parallel(services, smoke)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
