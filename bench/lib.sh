# Shared by the benchmark scripts; source it after setting HERE (this folder) and, for
# bench_python, VENV. Nothing here runs on its own.

# die MESSAGE: print "<script>: MESSAGE" and exit 1. log MESSAGE: a progress line on stderr.
die() { echo "$(basename "$0" .sh): $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

# bench_python MODULE...: set PY to $VENV's python. The venv is created from
# bench/requirements.txt (pinned) if missing; the requirements are installed into it if one of
# the MODULEs cannot be imported. BENCH_VENV, when set, must already be a venv.
bench_python() {
    if [[ ! -x $VENV/bin/python ]]; then
        [[ -n ${BENCH_VENV:-} ]] && die "BENCH_VENV=$BENCH_VENV has no bin/python"
        log "creating $VENV (pinned versions from bench/requirements.txt)"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
    fi
    PY=$VENV/bin/python
    local imports
    imports=$(IFS=,; echo "$*")
    if ! "$PY" -c "import $imports" 2>/dev/null; then
        log "installing bench/requirements.txt into $VENV (one of $* is missing)"
        "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
        "$PY" -c "import $imports" || die "$VENV still lacks one of: $*"
    fi
}

# bench_commit [--short]: set SRC (the checkout the benchmarked binary $ETD comes from: $ETD_SRC,
# else the git checkout holding $ETD, else $REPO), COMMIT, COMMIT_SUBJ and DIRTY.
bench_commit() {
    if [[ -n ${ETD_SRC:-} ]]; then
        SRC=$ETD_SRC
    elif [[ -n ${ETD:-} ]] && git -C "$(dirname "$ETD")" rev-parse --show-toplevel >/dev/null 2>&1; then
        SRC=$(git -C "$(dirname "$ETD")" rev-parse --show-toplevel)
    else
        SRC=$REPO
    fi
    COMMIT=$(git -C "$SRC" rev-parse ${1:+"$1"} HEAD 2>/dev/null || echo unknown)
    COMMIT_SUBJ=$(git -C "$SRC" log -1 --format=%s 2>/dev/null || echo "")
    DIRTY=$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (uncommitted changes)" || true)
}
