#!/usr/bin/env bash
# Installs the system libraries Rein links against (Debian/Ubuntu), if they are missing.
# Idempotent: does nothing when pkg-config already finds them. Uses sudo when not root.
set -euo pipefail

# python3-prometheus-client: the metrics scrape test parses /metrics with it.
packages=(libzmq3-dev libopenblas-dev libdnnl-dev pkg-config python3-prometheus-client)
# oneDNN ships no pkg-config file: its header stands for it.
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libzmq openblas 2>/dev/null \
    && [ -e /usr/include/dnnl.h ] && [ -e /usr/lib/python3/dist-packages/prometheus_client ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get not found; install ${packages[*]} (or your system's equivalents) by hand" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "setup: installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${packages[@]}" >/dev/null
