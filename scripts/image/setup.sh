#!/bin/sh
# Runs inside the image's root file system, as root, after its packages are installed: by the
# Dockerfile (RUN) and by scripts/build-image (mmdebstrap's customize hook), so both images are
# the same. Adds the user fluxd runs as and the known_hosts of the public git hosts.
set -eu
groupadd --gid 10001 flux
useradd --uid 10001 --gid 10001 --home-dir /home/flux --create-home --shell /usr/sbin/nologin flux
install -m 0644 /tmp/image/known_hosts /etc/ssh/ssh_known_hosts
# What a slim runtime does not need.
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/cache/apt/* /var/lib/apt/lists/* /var/log/*
