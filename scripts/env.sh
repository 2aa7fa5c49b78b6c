# Sourced by the scripts: tools on PATH, and the shared cargo cache.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_root/.tools/venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
# One cargo target directory per machine, outside the clone, so a fresh clone (as CI makes)
# reuses compiled dependencies. Cargo keys registry crates by version and features and rebuilds
# the workspace's own crates from their sources, so reuse is safe. Override to use ./target.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/token-service/target}"
# The deployable architecture is arm64, but this machine has only the x86_64 standard library;
# local builds (and the emulator, which is x86_64 here) use x86_64.
export SAM_BUILD_ARCHITECTURE="${SAM_BUILD_ARCHITECTURE:-x86_64}"
unset _root

# The functions template.yaml declares, one "<LogicalId> <binary>" line each (BuildMethod
# rust-cargolambda's Binary), for the scripts that build them all in one cargo invocation.
template_functions() {
  awk '/^  [A-Za-z0-9]+:$/ { id = substr($1, 1, length($1) - 1) }
       /^ +Binary: / { print id, $2 }' "${1:-template.yaml}"
}
