#!/usr/bin/env bash
# Sets up fresh-sandbox on a Debian/Ubuntu machine: a Docker daemon that answers,
# debootstrap for the offline base image, the Python package, and the images.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '==> %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { echo "error: $1 needs root (run: sudo $0)" >&2; exit 2; }; }

apt_install() {
  need_root "installing $*"
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. A Docker daemon. Start one when none answers (a CI box, a fresh VM).
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || { say "installing Docker Engine (docker.io)"; apt_install docker.io; }
  if ! docker info >/dev/null 2>&1; then
    need_root "starting dockerd"
    say "starting dockerd (log: /var/log/fresh-dockerd.log)"
    nohup dockerd >/var/log/fresh-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "error: dockerd did not answer within 60 s; see /var/log/fresh-dockerd.log" >&2; exit 2; }
  fi
fi

# 2. Tools for the offline base image and for host-side git.
command -v git >/dev/null 2>&1 || apt_install git
if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then say "installing debootstrap"; apt_install debootstrap; fi
fi

# 3. The Python package and its test dependencies. Debian's own python3 refuses pip
#    (PEP 668): activate a venv first to keep it untouched; otherwise we install anyway.
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
  { echo "error: fresh-sandbox needs Python 3.11 or newer (python3 is $(python3 --version 2>&1))" >&2; exit 2; }
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
pip_args=(-q --disable-pip-version-check)
if [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
  say "system Python is externally managed: installing with --break-system-packages (activate a venv first to avoid this)"
  pip_args+=(--break-system-packages)
fi
say "installing the fresh-sandbox package"
python3 -m pip install "${pip_args[@]}" -e '.[test]'

# 4. The images: offline Debian base, then the agent image. A CA bundle of the
#    host (TLS-intercepting proxies) is trusted inside when present.
ca_args=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && ca_args=(--extra-ca /etc/ssl/certs/ca-certificates.crt)
say "building images"
fresh-sandbox images build "${ca_args[@]}"
say "ready: try 'fresh-sandbox demo'"
