#!/usr/bin/env python3
"""The edge of the distributed mode on one machine: Debian's nginx with deploy/nginx's config.

    python3 deploy/local/edge.py --import 127.0.0.1:8001 --ingest 127.0.0.1:8002 \
        --query 127.0.0.1:8003 --port 8000          # runs until Ctrl-C
    python3 deploy/local/edge.py --import 127.0.0.1:8001,127.0.0.1:8011 ...   # two replicas

The config is deploy/nginx/insights.conf.template with its ${INSIGHTS_*} names filled in, as the
official nginx image fills them from the environment (only those names: nginx's own $variables
stay), inside a main nginx.conf of this run's own (pid, logs and temporary files in a directory of
its own, so no root-owned path of the system's nginx is touched). Standard library only.
"""

# A command-line tool: it prints, and it runs nginx found on this machine by design.
# ruff: noqa: T201, S603

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "insights.conf.template"
DASHBOARD = ROOT / "services" / "insights-query" / "src" / "insights_query" / "dashboard_assets"
NGINX_PACKAGE = "nginx"  # Debian's (1.22 on Debian 12)
# Served when the dashboard is not built, as `insights dev` does.
UNBUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>User Insights</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>User Insights</h1>
<p>The web dashboard is not built: <code>make dashboard</code> builds it. The API is served
under <code>/api/v1</code>; its reference is at <a href="/api/docs">/api/docs</a>.</p></body></html>
"""
_NAME = re.compile(r"\$\{(INSIGHTS_[A-Z_]+)\}")
# A `server` line of an upstream, whose address is one of the names: written once per address.
_SERVER = re.compile(r"^([ \t]*)server \$\{(INSIGHTS_[A-Z_]+_UPSTREAM)\}([^;\n]*);$", re.M)


def render(template: str, values: dict[str, str]) -> str:
    """The template with each ${INSIGHTS_*} replaced; a name without a value is an error.

    An upstream's value may name several servers, comma-separated: its `server` line is then
    written once for each, with the template's parameters (max_fails...) on every one. nginx
    sends each new request to the next server in turn."""
    missing = sorted({name for name in _NAME.findall(template) if name not in values})
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")

    def server_lines(match: re.Match[str]) -> str:
        indent, name, parameters = match.groups()
        return "\n".join(
            f"{indent}server {address}{parameters};" for address in addresses(values[name])
        )

    return _NAME.sub(lambda match: values[match.group(1)], _SERVER.sub(server_lines, template))


def addresses(upstream: str) -> list[str]:
    """`host:port`, or several comma-separated, as a list."""
    found = [part.strip() for part in upstream.split(",") if part.strip()]
    if not found:
        raise ValueError(f"no host:port in {upstream!r}")
    return found


def nginx_binary() -> str:
    found = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).is_file():
        raise RuntimeError(
            "nginx is not installed: `make edge` installs Debian's nginx package "
            "(apt-get install nginx), or set NGINX to an nginx executable"
        )
    return found


def _mime_types() -> Path:
    for candidate in (Path("/etc/nginx/mime.types"), Path("/usr/local/nginx/conf/mime.types")):
        if candidate.is_file():
            return candidate
    raise RuntimeError("nginx's mime.types is missing (reinstall Debian's nginx-common)")


@dataclass
class Edge:
    """One nginx in front of the three HTTP services; `start` waits until it answers."""

    import_upstream: str
    ingest_upstream: str
    query_upstream: str
    port: int
    host: str = "127.0.0.1"
    workers: int = 1
    dashboard: Path = DASHBOARD
    tls_cert: Path | None = None
    tls_key: Path | None = None
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="insights-edge-")))
    """Config and logs (nginx's master opens them before its workers give up root)."""
    process: subprocess.Popen[bytes] | None = None
    shared: Path | None = None
    """What the workers read and write (temporary files, the pages when the dashboard is not
    built): under /tmp, readable by nobody, whatever the mode of `work_dir`'s parents."""

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.work_dir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.work_dir / "access.log"

    def config(self) -> Path:
        """Write this edge's nginx.conf (and its pages when the dashboard is not built)."""
        # Workers run as nobody when nginx starts as root: everything they read or write is
        # theirs to reach.
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.shared is None:
            self.shared = Path(tempfile.mkdtemp(prefix="insights-edge-shared-"))
            self.shared.chmod(0o755)
        root = self.dashboard
        if not (root / "index.html").is_file():
            root = self.shared / "pages"
            root.mkdir(exist_ok=True)
            (root / "index.html").write_text(UNBUILT_PAGE, encoding="utf-8")
        temp = self.shared / "temp"
        temp.mkdir(exist_ok=True)
        user = ""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(temp, nobody.pw_uid, nobody.pw_gid)
            user = "user nobody nogroup;"
        listen = f"{self.host}:{self.port}"
        tls = ""
        if self.tls_cert and self.tls_key:
            listen += " ssl"
            tls = f"ssl_certificate {self.tls_cert}; ssl_certificate_key {self.tls_key};"
        site = render(
            TEMPLATE.read_text(encoding="utf-8"),
            {
                "INSIGHTS_EDGE_LISTEN": listen,
                "INSIGHTS_EDGE_TLS": tls,
                "INSIGHTS_IMPORT_UPSTREAM": self.import_upstream,
                "INSIGHTS_INGEST_UPSTREAM": self.ingest_upstream,
                "INSIGHTS_QUERY_UPSTREAM": self.query_upstream,
                "INSIGHTS_DASHBOARD_ROOT": str(root),
                "INSIGHTS_EDGE_ACCESS_LOG": str(self.access_log),
            },
        )
        (self.work_dir / "insights.conf").write_text(site, encoding="utf-8")
        main = self.work_dir / "nginx.conf"
        main.write_text(
            f"""{user}
worker_processes {self.workers};
daemon off;
pid {self.work_dir / "nginx.pid"};
error_log {self.error_log} warn;
events {{ worker_connections 4096; }}
http {{
    include {_mime_types()};
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    include {self.work_dir / "insights.conf"};
}}
""",
            encoding="utf-8",
        )
        return main

    def start(self, timeout: float = 15.0) -> None:
        nginx = nginx_binary()
        main = self.config()
        checked = subprocess.run(
            [nginx, "-t", "-q", "-e", str(self.error_log), "-c", str(main)],
            capture_output=True,
            text=True,
            check=False,
        )
        if checked.returncode != 0:
            raise RuntimeError(f"nginx refused the edge's config:\n{checked.stderr}")
        with (self.work_dir / "nginx.out").open("ab") as sink:
            self.process = subprocess.Popen(
                [nginx, "-e", str(self.error_log), "-c", str(main)],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.logs()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} in {timeout:g} s:\n{self.logs()}")

    def pids(self) -> list[int]:
        """The master's and its workers' process ids (for measuring their CPU)."""
        if self.process is None or self.process.poll() is not None:
            return []
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        try:
            workers = [int(pid) for pid in children.read_text().split()]
        except OSError:
            workers = []
        return [master, *workers]

    def kill(self) -> None:
        """SIGKILL the master (its workers follow when they notice), as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """A graceful stop (SIGQUIT: requests in progress finish), then SIGKILL after 20 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.shared is not None:
            shutil.rmtree(self.shared, ignore_errors=True)
            self.shared = None

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:]
            for path in (self.work_dir / "nginx.out", self.error_log)
            if path.exists()
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--import", dest="import_", default="127.0.0.1:8001")
    parser.add_argument("--ingest", default="127.0.0.1:8002")
    parser.add_argument("--query", default="127.0.0.1:8003")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    args = parser.parse_args()
    edge = Edge(
        args.import_,
        args.ingest,
        args.query,
        args.port,
        host=args.host,
        workers=args.workers,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    edge.start()
    print(f"the edge serves {edge.url} (logs in {edge.work_dir})", file=sys.stderr)
    try:
        assert edge.process is not None  # noqa: S101 - started above
        edge.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        edge.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
