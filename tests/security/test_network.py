"""Item 5: no way out. Setup may use the network; the agent phase then has only the proxy.

Traffic in these tests goes only between this project's own containers: the
refusals are proven by the proxy's decisions (it refuses before it connects)
and by the routes in the agent's container, never by probing outside addresses.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sample import SampleRepo
from orchestrator.testing import Bash, ScriptedModelServer, Submit
from tests.security.conftest import event, run_containers, tool_outputs

pytestmark = [pytest.mark.docker]

FETCH = ("python3 - <<'PY'\n"
         "import urllib.request, urllib.error, sys\n"
         "for url in sys.argv[1:] or {urls}:\n"
         "    try:\n"
         "        print(url, urllib.request.urlopen(url, timeout=10).read().decode()[:80])\n"
         "    except urllib.error.HTTPError as e:\n"
         "        print(url, e.code, e.read().decode()[:120])\n"
         "    except Exception as e:\n"
         "        print(url, 'error', e)\n"
         "PY")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def _attach_when_network_appears(repo: Path, server: str, stop: threading.Event) -> None:
    """Join the test server to the run's egress network as soon as the run creates it."""
    while not stop.is_set():
        runs = list((repo / ".fresh" / "runs").glob("*")) if (repo / ".fresh" / "runs").exists() else []
        for run in runs:
            nets = docker("network", "ls", "-q", "--filter", f"label=fresh-sandbox.run={run.name}").split()
            for net in nets:
                subprocess.run(["docker", "network", "connect", net, server], capture_output=True, check=False)
                return
        time.sleep(0.2)


def test_setup_has_network_then_the_agent_only_reaches_allowlisted_hosts(start: Any, sample_repo: SampleRepo,
                                                                          tmp_path: Path) -> None:
    server = f"fresh-egress-testsrv-{secrets.token_hex(4)}"
    docker("network", "create", "--internal", "--label", "fresh-sandbox.test=1", server)
    docker("run", "-d", "--name", server, "--label", "fresh-sandbox.test=1", "--network", server,
           "--user", "1000:1000", "--read-only", "--tmpfs", "/tmp", "fresh-sandbox/agent:latest", "sh", "-c",
           "mkdir -p /tmp/w && echo egress-ok-marker > /tmp/w/index.html && cd /tmp/w && "
           "exec python3 -m http.server 8000")
    subnet = json.loads(docker("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Subnet"]
    bridge_gw = str(next(ipaddress.ip_network(subnet).hosts()))
    policy = tmp_path / "egress.toml"
    policy.write_text(f'setup_command = "ls /sys/class/net > ~/setup-ifaces; cat /proc/net/route > ~/setup-routes"\n'
                      f'setup_network = true\negress_allow = ["{server}:8000"]\n')
    urls = [f"http://{server}:8000/", "http://169.254.169.254/latest/meta-data/", f"http://{bridge_gw}:2375/",
            "http://127.0.0.1:8080/", "http://api.openai.com/v1/models", f"http://{server}:22/",
            "http://pypi.org.evil.example/"]
    wait = (f"for i in $(seq 100); do python3 -c \"import urllib.request as u; "
            f"u.urlopen('http://{server}:8000/', timeout=2)\" 2>/dev/null && break; sleep 0.3; done")
    script = [Bash("cat ~/setup-ifaces ~/setup-routes; echo ===; ls /sys/class/net; cat /proc/net/route; env | grep -i _proxy"),
              Bash(wait), Bash(FETCH.replace("{urls}", repr(urls))), Bash("echo 'X = 1' > inventory/extra.py"),
              Submit("Added a constant.")]
    stop = threading.Event()
    watcher = threading.Thread(target=_attach_when_network_appears, args=(sample_repo.path, server, stop))
    watcher.start()
    try:
        with ScriptedModelServer(script) as model:
            run = start(model.base_url, "--policy", str(policy), "--keep")
            seen = tool_outputs(model)
        proxy = event(run, "egress_proxy_started")["container_id"]
        decisions = [json.loads(line) for line in docker("logs", proxy).splitlines() if line.startswith("{")]
    finally:
        stop.set()
        watcher.join()
        subprocess.run(["docker", "rm", "-f", server], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", server], capture_output=True, check=False)
    try:
        _check(run, seen, decisions, server, bridge_gw, urls)
    finally:
        for cid in run_containers(run):
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", event(run, "egress_proxy_started")["network"]],
                       capture_output=True, check=False)
    # The gate ran the same networked setup in its own sandbox, was cut off before the tests, and passed.
    assert run.report()["agents"][0]["status"] == "pushed"


def _check(run: Any, seen: list[str], decisions: list[dict[str, Any]], server: str, bridge_gw: str,
           urls: list[str]) -> None:
    before, _, agent_view = seen[0].partition("===")
    assert "eth0" in before  # setup was on the bridge
    fetched = seen[2]
    assert f"http://{server}:8000/ egress-ok-marker" in fetched  # the allowlisted peer answered via the proxy
    # Routes of the agent phase: only the internal network; the host holds no address on it.
    cut = event(run, "network_cut")
    assert cut["egress_proxy"] and "HTTPS_PROXY" in agent_view
    gw_hex = "".join(f"{int(o):02X}" for o in reversed(bridge_gw.split(".")))
    routes = agent_view.split("Iface")[1].split("HTTP")[0]
    assert gw_hex not in routes  # no route to the default bridge's gateway (the host)
    net = json.loads(docker("network", "inspect", cut_network(run)))[0]
    assert net["Internal"] is True
    inner_gw = net["IPAM"]["Config"][0]["Gateway"]
    host_ips = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    assert f" {inner_gw}/" not in host_ips  # inhibit_ipv4: the host is not on the internal network
    verdicts = {(d.get("host"), d.get("port")): d for d in decisions if d.get("decision") in ("allow", "deny")}
    assert verdicts[(server, 8000)]["decision"] == "allow"
    for host, port in [("169.254.169.254", 80), (bridge_gw, 2375), ("127.0.0.1", 8080), ("api.openai.com", 80),
                       (server, 22), ("pypi.org.evil.example", 80)]:
        assert verdicts[(host, port)]["decision"] == "deny", (host, verdicts.get((host, port)))
        assert verdicts[(host, port)]["ip"] is None  # refused before any connection
    assert fetched.count(" 403 ") == 6


def cut_network(run: Any) -> str:
    return str(event(run, "egress_proxy_started")["network"])
