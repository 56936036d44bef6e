"""Egress through an allowlist: an internal Docker network and a proxy the supervisor runs.

The agent's container sits only on an *internal* network (no route out of its
subnet, and `inhibit_ipv4` leaves the host's end of that bridge without an
address, so the host is not on it either). The proxy container sits on that
network and on the default bridge; it is the only way out and it checks every
request against the allowlist before it connects (see egress_proxy.py).
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Sequence

import docker
import docker.errors

from sandbox.base import LABEL_AGENT, LABEL_PREFIX, LABEL_ROLE, LABEL_RUN, Egress, SandboxError

PROXY_PORT = 3128
_INHIBIT_HOST_IP = {"com.docker.network.bridge.inhibit_ipv4": "true"}


def proxy_source() -> str:
    return importlib.resources.files("sandbox").joinpath("egress_proxy.py").read_text("utf-8")


def open_egress(client: docker.DockerClient, run_id: str, agent_id: str, image: str,
                allow: Sequence[str], deny: Sequence[str]) -> Egress:
    """Create the agent's internal network and start its proxy; labelled so reap removes both."""
    labels = {LABEL_PREFIX: "1", LABEL_RUN: run_id, LABEL_AGENT: agent_id}
    name = f"fresh-egress-{run_id}-{agent_id}"
    try:
        net = client.networks.create(name, driver="bridge", internal=True, options=_INHIBIT_HOST_IP,
                                     labels=labels)
        net.reload()
        subnet = net.attrs["IPAM"]["Config"][0]["Subnet"]
        config = {"allow": list(allow), "deny": list(deny), "subnet": subnet, "port": PROXY_PORT}
        proxy = client.containers.create(
            image, ["python3", "-I", "-S", "-c", proxy_source(), json.dumps(config)], name=name,
            user="1000:1000", cap_drop=["ALL"], security_opt=["no-new-privileges"], read_only=True,
            init=True, network_mode=name, mem_limit="128m", pids_limit=64, nano_cpus=int(0.5e9),
            labels={**labels, LABEL_ROLE: "egress"}, use_config_proxy=False)
        # Created on the internal network first, so it resolves names with Docker's DNS (the
        # allowlisted test peers by container name); the bridge is its way out.
        client.networks.get("bridge").connect(proxy)
        proxy.start()
        proxy.reload()
        ip = proxy.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
    except docker.errors.APIError as exc:
        raise SandboxError(f"cannot start the egress proxy: {exc.explanation or exc}") from exc
    # By address: the agent's resolv.conf may not reach Docker's DNS, and needs not.
    return Egress(network=name, proxy_url=f"http://{ip}:{PROXY_PORT}", proxy_id=str(proxy.id),
                  subnet=subnet)


def remove_networks(client: docker.DockerClient, run_id: str | None) -> None:
    """Remove the egress networks of `run_id` (or of every run); their containers must be gone."""
    label = f"{LABEL_RUN}={run_id}" if run_id else f"{LABEL_PREFIX}=1"
    for net in client.networks.list(filters={"label": label}):
        try:
            net.remove()
        except docker.errors.APIError:
            pass  # still in use by a held sandbox
