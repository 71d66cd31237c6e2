#!/usr/bin/python3
# Debian's docker-compose (v1) against `podman system service`'s Docker-compatible API,
# for scripts/compose-test. Run with Debian's /usr/bin/python3 (compose's modules are
# Debian packages); the arguments are docker-compose's. podman answers a few things
# differently from Docker's daemon, and compose v1 takes each for a change of the
# project; the patches below accept podman's answers and change nothing else:
#
# - A network's IPAM: podman reports the gateway it picked and no ip_range, and compose
#   would then refuse the existing network on a second `up` (scaling) as "needs to be
#   recreated". The subnet is still compared.
import sys

import compose.network
from compose.cli.main import main

_check_ipam = compose.network.check_remote_ipam_config


def check_remote_ipam_config(remote, local):
    ipam = remote.get("IPAM") or {}
    wanted = {c.get("subnet") for c in (local.ipam or {}).get("config", [])}
    found = {c.get("Subnet") for c in ipam.get("Config") or []}
    if wanted and wanted != found:
        _check_ipam(remote, local)


compose.network.check_remote_ipam_config = check_remote_ipam_config

if __name__ == "__main__":
    sys.exit(main())
