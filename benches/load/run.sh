#!/usr/bin/env bash
# The load benchmark in one command (see benches/load/README.md).
#
# Installs what it needs when missing (cmake, which pingora's build needs, and nginx,
# the plain reverse proxy measured as the floor), raises the open-file limit for the
# session benchmark (1,000 event streams), then runs `cargo bench --bench load`.
# Arguments go to the benchmark: `--quick` for a smoke run, `--rate N`, `--out DIR`.
set -euo pipefail
cd "$(dirname "$0")/../.."

install() {
    command -v apt-get >/dev/null || { echo "install $* with your package manager" >&2; return 1; }
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq "$@" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null; }
}

command -v cmake >/dev/null || install cmake
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    install nginx-light || echo "nginx unavailable: the run will have no plain-proxy floor" >&2
    # Debian starts the packaged service on port 80; the benchmark runs its own.
    /usr/sbin/nginx -s stop 2>/dev/null || true
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec cargo bench --bench load -- "$@"
