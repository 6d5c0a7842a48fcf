#!/usr/bin/env bash
# Runs every test of privca on a fresh Debian machine with Rust installed:
# installs what the interop tests need (OpenSSL, curl, a Python venv with pkilint and
# josepy),
# then runs the cargo tests with the interop gate on.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# 1. System packages: OpenSSL and curl (real clients), Python venv (pkilint), gcc
#    (aws-lc-sys builds C code).
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(gcc)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# SCEP interop (tests/tests/e2e_scep.rs): micromdm scepclient (Debian `scep`), certmonger
# (its daemon runs on a private session bus, so dbus-daemon too).
command -v scepclient >/dev/null || need+=(scep)
command -v lego >/dev/null || need+=(lego)            # ACME client (tests/tests/e2e_acme.rs)
# dns-01 (tests/tests/e2e_acme.rs): Knot DNS, started by the test on a loopback port with a
# TSIG key for lego's RFC 2136 updates; kdig (knot-dnsutils) tells when it serves the zone.
command -v knotd >/dev/null || need+=(knot)
command -v kdig >/dev/null || need+=(knot-dnsutils)
# keyChange with a real client (tests/clients/go_keyrollover): Go and Debian's
# golang.org/x/crypto, built offline in GOPATH mode.
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/crypto/acme ] || need+=(golang-golang-x-crypto-dev)
command -v caddy >/dev/null || need+=(caddy)        # ACME client (tests/tests/e2e_acme.rs)
command -v certmonger >/dev/null || need+=(certmonger)
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
# PKCS#11: SoftHSM2 (the token of the HSM tests) and OpenSC's pkcs11-tool.
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
# Metrics (tests/tests/metrics.rs): `promtool check metrics` from Debian `prometheus`.
command -v promtool >/dev/null || need+=(prometheus)
# PostgreSQL store backend (store/tests/pg.rs): the tests run initdb and pg_ctl from
# /usr/lib/postgresql/<version>/bin into a temporary directory as the postgres user.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The web console's browser tests (tests/tests/e2e_console.rs): headless Chromium driven
# over WebDriver by chromedriver.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# The package starts a default cluster on port 5432 where services auto-start; the tests
# do not use it (each test binary starts its own on a free loopback port), so stop it.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  log "stopping the distribution's default PostgreSQL cluster (the tests start their own)"
  pg_lsclusters -h | awk '$4 == "online" { print $1, $2 }' | while read -r ver name; do
    $SUDO pg_ctlcluster "$ver" "$name" stop || true
  done
fi

# 2. pkilint in a project-local venv (pinned).
PKILINT_VERSION=0.13.3
if ! .venv/bin/python -c "import pkilint, sys; from importlib.metadata import version; sys.exit(version('pkilint') != '$PKILINT_VERSION')" >/dev/null 2>&1; then
  log "installing pkilint $PKILINT_VERSION into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "pkilint==$PKILINT_VERSION"
fi
# josepy, the JOSE library certbot signs its ACME requests with
# (tests/tests/acme_jws_josepy.rs), in the same venv (pinned).
JOSEPY_VERSION=2.2.0
if ! .venv/bin/python -c "import josepy, sys; from importlib.metadata import version; sys.exit(version('josepy') != '$JOSEPY_VERSION')" >/dev/null 2>&1; then
  log "installing josepy $JOSEPY_VERSION into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "josepy==$JOSEPY_VERSION"
fi
# certbot, the ACME client of tests/tests/e2e_acme.rs, in the same venv (pinned; the
# Debian package is years older).
CERTBOT_VERSION=5.8.0
if ! .venv/bin/python -c "import certbot, sys; from importlib.metadata import version; sys.exit(version('certbot') != '$CERTBOT_VERSION')" >/dev/null 2>&1; then
  log "installing certbot $CERTBOT_VERSION into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "certbot==$CERTBOT_VERSION"
fi
# certbot's RFC 2136 DNS plugin (dns-01 through Knot in tests/tests/e2e_acme.rs), pinned to
# certbot's version.
if ! .venv/bin/python -c "import certbot_dns_rfc2136, sys; from importlib.metadata import version; sys.exit(version('certbot-dns-rfc2136') != '$CERTBOT_VERSION')" >/dev/null 2>&1; then
  log "installing certbot-dns-rfc2136 $CERTBOT_VERSION into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "certbot-dns-rfc2136==$CERTBOT_VERSION"
fi
export PATH="$PWD/.venv/bin:$PATH"

# Incremental caches (1.5 GB for this workspace) only help an edit-compile loop; a test run
# does without them unless the caller asks.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

log "disk before the build (the target directory takes about 2.5 GB)"
df -h . | tail -1

log "tool versions"
openssl version
curl --version | head -1
lint_pkix_cert --help >/dev/null && echo "pkilint $PKILINT_VERSION"
python -c "import josepy" && echo "josepy $JOSEPY_VERSION"
echo "scepclient $(scepclient -version)"
dpkg-query -W -f='certmonger ${Version}\n' certmonger
dpkg-query -W -f='lego ${Version}\n' lego
knotd --version
go version
echo "caddy $(caddy version)"
softhsm2-util --version | sed 's/^/softhsm2 /'
cargo --version

# 3. Formatting and lints are gates too.
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# 3b. Dependency gates (deny.toml): licenses, bans (duplicate versions included), sources,
#     and the RustSec advisories. cargo-deny is built with `cargo install` once (about 4
#     minutes on 2 cores) and reused while `cargo deny --version` says this version.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  log "installing cargo-deny $CARGO_DENY_VERSION"
  cargo install --locked --quiet cargo-deny --version "=$CARGO_DENY_VERSION"
fi
log "cargo deny check bans licenses sources"
cargo deny --log-level warn --locked check bans licenses sources
# The advisory database is a git repository on GitHub. Where it cannot be fetched the check
# is skipped, and said so loudly: a skipped check is not a pass.
log "cargo deny check advisories"
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level warn --locked check advisories
else
  echo "SKIPPED: cargo deny check advisories: the RustSec advisory database" \
    "(https://github.com/RustSec/advisory-db) cannot be fetched from this machine;" \
    "no advisory was checked."
fi

# 4. The tests, interop included.
export PRIVCA_INTEROP=1
log "cargo test --workspace"
cargo test --workspace --locked --no-fail-fast 2>&1

# 5. The fuzz targets (fuzz/, its own crate) over their checked-in seed corpora, each seed
#    once, on stable (no nightly or libFuzzer run needed; fuzz/README.md), with the
#    workspace's target directory so the dependencies built above are reused.
log "fuzz targets over their seed corpora (fuzz/tests/corpus.rs)"
(cd fuzz && CARGO_TARGET_DIR="$PWD/../target" cargo test --locked 2>&1)
