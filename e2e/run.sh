#!/usr/bin/env bash
# End-to-end tests of the todo demo in a real browser (Debian's Chromium,
# driven by playwright-core from e2e/package-lock.json). Installs what they
# need, builds the server, runs them. Anything that cannot run is a failure,
# never a skip.
#
# Server under test (see e2e/lib/server.mjs):
#   E2E_SERVER_CMD='path/to/server --addr 127.0.0.1:{port} --db {db} --static {web}'
#   default                target/release/adapter-tokio --static web/ (built here)
#   E2E_PROFILE=debug      ... the debug build instead (CI: `cargo test` built it)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'e2e: %s\n' "$*"; }

# --- Chromium from Debian's packages (never a browser download) ---------------
if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y chromium; then
        apt-get update
        apt-get install -y chromium
    fi
fi
/usr/bin/chromium --version

# --- Node and the locked node modules ----------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y nodejs npm; then
        apt-get update
        apt-get install -y nodejs npm
    fi
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    say "node $(node --version) is too old (need 18 or later)" >&2
    exit 1
fi
(cd e2e && npm ci --no-audit --no-fund)

# --- The server under test ----------------------------------------------------
if [ -n "${E2E_SERVER_CMD:-}" ]; then
    say "server: E2E_SERVER_CMD=$E2E_SERVER_CMD"
else
    profile=${E2E_PROFILE:-release}
    export E2E_PROFILE=$profile
    # Cargo's target directory: CARGO_TARGET_DIR when set (lib/server.mjs
    # reads it too), else target/ here.
    target=${CARGO_TARGET_DIR:-target}
    say "server: building $target/$profile/adapter-tokio"
    case "$profile" in
    release) cargo build --release -p adapter-tokio --bin adapter-tokio ;;
    # The workspace's test build (a no-op after `cargo test --workspace`):
    # `cargo build -p adapter-tokio` alone would resolve other features and
    # compile every dependency a second time.
    debug) cargo test --workspace --no-run ;;
    *)
        say "E2E_PROFILE=$profile: use release or debug" >&2
        exit 1
        ;;
    esac
    if [ ! -x "$target/$profile/adapter-tokio" ]; then
        say "$target/$profile/adapter-tokio was not built" >&2
        exit 1
    fi
fi

# --- Run ----------------------------------------------------------------------
concurrency=()
if node --help | grep -q -- '--test-concurrency'; then
    # One file at a time: several Chromiums on two cores would only add noise.
    concurrency=(--test-concurrency=1)
fi
cd e2e
node --test "${concurrency[@]}" tests/
