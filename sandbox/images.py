"""Build the agent image, with or without an image registry.

Registry path: `build_images(base_image="debian:bookworm")` builds
images/agent/Dockerfile FROM that public base (apt installs what it lacks).
Offline path: `build_images()` first debootstraps Debian from the mirror and
`docker import`s it as OFFLINE_BASE_IMAGE (cached), then builds FROM it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from sandbox.base import SandboxError
from sandbox.docker import connect

AGENT_IMAGE = "fresh-sandbox/agent:latest"
OFFLINE_BASE_IMAGE = "fresh-sandbox/base:bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
BASE_PACKAGES = "git,python3,python3-pytest,python3-pip,python3-venv,ca-certificates,procps"
IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"

Log = Callable[[str], None]


class ImageBuildFailed(SandboxError):
    """An image could not be built."""


def build_images(
    *,
    base_image: str | None = None,
    extra_ca: Path | None = None,
    force: bool = False,
    mirror: str = DEFAULT_MIRROR,
    log: Log = print,
    tag: str = AGENT_IMAGE,
) -> str:
    """Build the agent image `tag` (from `base_image`, or from the offline base built first)."""
    client = connect()
    if base_image is None:
        build_offline_base(force=force, mirror=mirror, log=log)
        base_image = OFFLINE_BASE_IMAGE
    if not force and _image_exists(client, tag):
        log(f"{tag} exists; pass force to rebuild")
        return tag
    _build_agent(client, base_image, extra_ca, tag, log)
    return tag


def build_offline_base(*, force: bool = False, mirror: str = DEFAULT_MIRROR, log: Log = print) -> None:
    """Debootstrap Debian into a temp dir and import it as OFFLINE_BASE_IMAGE (skipped if present)."""
    client = connect()
    if not force and _image_exists(client, OFFLINE_BASE_IMAGE):
        log(f"{OFFLINE_BASE_IMAGE} exists; pass force to rebuild")
        return
    _check_debootstrap_can_run(mirror)
    root = Path(tempfile.mkdtemp(prefix="fresh-sandbox-base.", dir="/var/tmp"))
    try:
        log(f"debootstrap {SUITE} from {mirror} (about a minute)")
        _run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", SUITE, str(root), mirror],
             "debootstrap failed")
        # Downloaded .debs and indexes only make the image bigger.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True, exist_ok=True)
        log(f"importing {OFFLINE_BASE_IMAGE}")
        _import_tree(root, OFFLINE_BASE_IMAGE)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check_debootstrap_can_run(mirror: str) -> None:
    """Fail early, with a hint, on the three usual reasons debootstrap cannot work."""
    if shutil.which("debootstrap") is None:
        raise ImageBuildFailed("debootstrap is not installed", hint="apt-get install debootstrap")
    if os.geteuid() != 0:
        raise ImageBuildFailed(
            "building the offline base needs root (debootstrap creates device nodes and chroots)",
            hint="run as root, or pass a public base image with a registry (e.g. debian:bookworm)",
        )
    release = f"{mirror.rstrip('/')}/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(release, timeout=15) as response:
            response.read(1)
    except (urllib.error.URLError, OSError) as exc:
        raise ImageBuildFailed(
            f"the Debian mirror {mirror} is unreachable: {exc}",
            hint="check the network or pass another mirror",
        ) from exc


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise ImageBuildFailed(f"{what} (exit {proc.returncode}): {tail}")


def _import_tree(root: Path, name: str) -> None:
    """`tar -C root -c . | docker import - name`, through the CLI (it streams the tar)."""
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run(["docker", "import", "-", name], stdin=tar.stdout,
                              capture_output=True, text=True)
    finally:
        tar.wait()
    if proc.returncode != 0 or tar.returncode != 0:
        raise ImageBuildFailed(f"docker import failed: {proc.stderr[-2000:]}")


def _build_agent(client: docker.DockerClient, base_image: str, extra_ca: Path | None, tag: str,
                 log: Log) -> None:
    """Build images/agent/Dockerfile in a temp context holding extra-ca/."""
    with tempfile.TemporaryDirectory(prefix="fresh-sandbox-ctx.") as ctx:
        shutil.copy(IMAGES_DIR / "agent" / "Dockerfile", Path(ctx) / "Dockerfile")
        ca_dir = Path(ctx) / "extra-ca"
        ca_dir.mkdir()
        if extra_ca is not None:
            if not extra_ca.is_file():
                raise ImageBuildFailed(f"extra CA {extra_ca} is not a file")
            # update-ca-certificates only picks up files ending in .crt
            shutil.copy(extra_ca, ca_dir / "extra-ca.crt")
        log(f"building {tag} FROM {base_image}")
        _docker_build(client, ctx, base_image, tag, log)


def _docker_build(client: docker.DockerClient, ctx: str, base_image: str, tag: str,
                  log: Log) -> None:
    try:
        for chunk in client.api.build(path=ctx, tag=tag, buildargs={"BASE": base_image},
                                      rm=True, forcerm=True, decode=True):
            if "stream" in chunk and chunk["stream"].strip():
                log(chunk["stream"].rstrip())
            if "error" in chunk:
                raise ImageBuildFailed(f"building {tag} failed: {chunk['error'].strip()}",
                                       hint=f"is {base_image} available (pulled or built)?")
    except docker.errors.APIError as exc:
        raise ImageBuildFailed(f"building {tag} failed: {exc}") from exc


def _image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True
