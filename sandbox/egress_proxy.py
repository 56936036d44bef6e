"""The egress proxy (stdlib only; runs in its own container, sent as text like the driver).

An HTTP proxy for CONNECT and plain `GET http://...` requests. It decides before
it connects anywhere: the host must be on the allowlist (exactly, or a subdomain
of an entry; `host:port` entries pin the port, bare ones allow 80 and 443), and
every address the name resolves to must be an ordinary one: not loopback,
link-local (cloud metadata), multicast, reserved or unspecified, not a private
address outside the egress network, and not a denied host (the model endpoint).
The connection then goes to the address that was checked, so a second DNS
answer cannot swap it. Each decision is one JSON line on stdout (`docker logs`).

argv: JSON {"allow": [...], "deny": [...], "subnet": "172.18.0.0/16", "port": 3128}
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import socketserver
import sys
import time
from typing import Any

CONFIG: dict[str, Any] = {}


def log(**fields: Any) -> None:
    sys.stdout.write(json.dumps({"ts": round(time.time(), 3), **fields}) + "\n")
    sys.stdout.flush()


def allowed_port(host: str, port: int) -> bool:
    for entry in CONFIG["allow"]:
        name, _, pinned = entry.lower().partition(":")
        if host == name or host.endswith("." + name):
            if (int(pinned) == port) if pinned else port in (80, 443):
                return True
    return False


def bad_address(ip: str) -> str:
    """Why an address may not be reached, or '' when it may."""
    addr = ipaddress.ip_address(ip)
    subnet = ipaddress.ip_network(CONFIG["subnet"])
    if addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_unspecified or addr.is_reserved:
        return f"{ip} is a loopback, link-local, multicast or reserved address"
    if addr.is_private and addr not in subnet:
        return f"{ip} is a private address outside the egress network"
    if ip in CONFIG["deny_ips"]:
        return f"{ip} is a denied address"
    return ""


def decide(host: str, port: int) -> tuple[str, str]:
    """(address to connect to, '') when allowed, else ('', reason); never connects."""
    host = host.lower().strip("[]")
    if host in CONFIG["deny"]:
        return "", f"{host} is denied"
    if not allowed_port(host, port):
        return "", f"{host}:{port} is not on the allowlist"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return "", f"{host} does not resolve: {exc}"
    ips = sorted({str(info[4][0]) for info in infos})
    for ip in ips:
        why = bad_address(ip)
        if why:
            return "", why
    return ips[0], ""


def pipe(a: socket.socket, b: socket.socket) -> None:
    socks = [a, b]
    while True:
        ready, _, _ = select.select(socks, [], [], 300)
        if not ready:
            return
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            (b if s is a else a).sendall(data)


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1").strip()
        headers = []
        while True:
            h = self.rfile.readline(8192)
            if h in (b"\r\n", b"\n", b""):
                break
            headers.append(h)
        try:
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, p = target.rpartition(":")
                port, path = int(p), ""
            else:
                rest = target.split("://", 1)[1]
                hostport, _, path = rest.partition("/")
                host, _, p = hostport.partition(":")
                port = int(p or 80)
        except (ValueError, IndexError):
            log(decision="bad_request", line=line[:200])
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            return
        ip, why = decide(host, port)
        log(decision="deny" if why else "allow", method=method, host=host, port=port, ip=ip or None,
            reason=why or None, client=self.client_address[0])
        if why:
            self.wfile.write(f"HTTP/1.1 403 Forbidden\r\nContent-Length: {len(why)}\r\n\r\n{why}".encode())
            return
        upstream = socket.create_connection((ip, port), timeout=30)
        with upstream:
            if method == "CONNECT":
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(f"{method} /{path} HTTP/1.0\r\n".encode() + b"".join(
                    h for h in headers if not h.lower().startswith((b"proxy-", b"connection"))) + b"\r\n")
            pipe(self.connection, upstream)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    CONFIG.update(json.loads(sys.argv[1]))
    CONFIG["allow"] = [a.lower() for a in CONFIG["allow"]]
    CONFIG["deny"] = [d.lower() for d in CONFIG.get("deny", [])]
    CONFIG["deny_ips"] = set(CONFIG.get("deny_ips", []))
    with Server(("0.0.0.0", int(CONFIG.get("port", 3128))), Handler) as server:
        log(decision="listening", allow=CONFIG["allow"], deny=CONFIG["deny"], subnet=CONFIG["subnet"])
        server.serve_forever()


if __name__ == "__main__":
    main()
