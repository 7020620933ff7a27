# Shared by scripts/test-sdk-crypto.sh and scripts/test-metrics.sh (sourced,
# not run): a work directory and the wxauth process, cleaned up on exit;
# `fail`; and a throwaway virtualenv with pinned packages from PyPI.
# Expects NAME (for messages) and BIN set by the caller.

[ -x "$BIN" ] || { echo "$NAME: no binary at $BIN (cargo build first)" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "$NAME: FAIL: $*" >&2
    echo "--- wxauth log" >&2; cat "$work/wxauth.log" >&2 || true
    exit 1
}

# make_venv DIR IMPORTS PACKAGE...: DIR holds a virtualenv where `import
# IMPORTS` works, made with the PACKAGEs (pinned) when it does not yet.
make_venv() {
    local dir=$1 imports=$2
    shift 2
    if ! "$dir/bin/python" -c "import $imports" 2>/dev/null; then
        python3 -m venv "$dir" || fail "python3 -m venv (Debian: apt-get install python3-venv)"
        "$dir/bin/pip" install -q "$@" || fail "pip install $*"
    fi
}
