#!/usr/bin/env bash
# One entry point for a fresh machine: installs the system packages the build needs when they
# are missing, then runs otedama's main job or its whole test suite.
#
#   bash scripts/otedama.sh run     # the main job: a pool on the embedded devnet with a CPU miner
#   bash scripts/otedama.sh bench   # benchmark the mining kernels
#   bash scripts/otedama.sh test    # the whole test suite
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs the build tools, and with `test` also the nodes the integration tests start.
install_missing() {
    local missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v g++ >/dev/null 2>&1 || missing+=(g++)
    command -v make >/dev/null 2>&1 || missing+=(make)
    if [ "${1:-}" = test ]; then
        command -v litecoind >/dev/null 2>&1 || missing+=(litecoind)
        command -v monerod >/dev/null 2>&1 || missing+=(monero)
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
        command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
        command -v chromium >/dev/null 2>&1 || missing+=(chromium)
        command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
        command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
        # The reference pool (pool_sv2, built for the interop test) compiles Cap'n Proto schemas.
        command -v capnp >/dev/null 2>&1 || missing+=(capnproto)
        [ -f /usr/include/capnp/c++.capnp ] || missing+=(libcapnp-dev)
    fi
    if [ "${1:-}" = test ] && ! python3 -m kubernetes_validate --version >/dev/null 2>&1; then
        echo "installing kubernetes-validate (PyPI)" >&2
        python3 -m pip install --quiet kubernetes-validate
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi
    echo "installing system packages: ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}"
}

# The reference Stratum V2 roles from crates.io, independent peers of the interop tests in
# otedama-cli/tests/proxy_e2e.rs: the translator and the pool. Each is built once (about 4
# minutes) into a cache; $1 is the crate, $2 its version, $3 the variable that may name a
# binary already built.
reference_role() {
    local given="${!3:-}"
    if [ -n "$given" ] && [ -x "$given" ]; then
        echo "$given"
        return
    fi
    local root="${XDG_CACHE_HOME:-$HOME/.cache}/otedama/$1-$2"
    if [ ! -x "$root/bin/$1" ]; then
        echo "building the reference $1 $2 into $root" >&2
        cargo install "$1" --version "$2" --locked --no-default-features --root "$root" >&2
    fi
    echo "$root/bin/$1"
}

threads() {
    nproc 2>/dev/null || echo 1
}

case "${1:-}" in
    run)
        install_missing
        cargo build --release -p otedama-cli
        shift
        # A pool on the embedded devnet with its own CPU miner attached; Ctrl-C stops both.
        exec target/release/otedama-cli pool --threads "$(threads)" --stats-interval 5 "$@"
        ;;
    bench)
        install_missing
        cargo build --release -p otedama-cli
        cli=target/release/otedama-cli
        "$cli" bench --algo sha256d --threads "$(threads)" --seconds 5
        "$cli" bench --algo scrypt --threads "$(threads)" --seconds 5
        "$cli" bench --algo randomx --mode fast --threads "$(threads)" --seconds 10
        ;;
    test)
        install_missing test
        cargo test --workspace --all-features
        OTEDAMA_TRANSLATOR_SV2="$(reference_role translator_sv2 0.6.0 OTEDAMA_TRANSLATOR_SV2)" \
        OTEDAMA_POOL_SV2="$(reference_role pool_sv2 0.7.0 OTEDAMA_POOL_SV2)" \
            cargo test -p otedama-cli --all-features --test proxy_e2e -- --ignored
        # An embedder who takes the engine alone gets no runtime, database or HTTP client.
        if cargo tree -p otedama-pool --no-default-features -e normal --prefix none \
            | grep -E '^(tokio|rusqlite|postgres|ureq|hyper|reqwest) '; then
            echo "otedama-pool without features pulls in the crates above" >&2
            exit 1
        fi
        # The sharechain's rules build without a runtime or the network's crypto.
        if cargo tree -p otedama-p2p --no-default-features -e normal --prefix none \
            | grep -E '^(tokio|snow) '; then
            echo "otedama-p2p without features pulls in the crates above" >&2
            exit 1
        fi
        # The embedding examples run as programs: each asserts what it shows.
        for example in embed_pool stratum_server mine_a_header; do
            cargo run --quiet -p otedama-examples --example "$example"
        done
        # Every fuzz target replays its committed corpus, findings included (docs/FUZZING.md).
        bash fuzz/replay.sh
        ;;
    *)
        echo "usage: bash scripts/otedama.sh run|bench|test" >&2
        exit 2
        ;;
esac
