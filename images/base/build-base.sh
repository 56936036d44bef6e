#!/bin/sh
# Build the offline base image without any registry: debootstrap Debian from
# the mirror and import the tree. Same steps as sandbox.images.build_offline_base;
# prefer `fresh-sandbox images build`, this script is for doing it by hand.
set -eu
NAME=${1:-fresh-sandbox/base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d /var/tmp/fresh-sandbox-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase \
    --include=git,python3,python3-pytest,python3-pip,python3-venv,ca-certificates,procps \
    bookworm "$ROOT" "$MIRROR"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" -c . | docker import - "$NAME"
