#!/bin/sh
# Lint and type-check tunkit: ruff over the code, mypy over the package, and `mypy --strict` over
# tests/typing/user_script.py (a user's script: the public API must be type-clean for it).
#
# Not part of the test suite or CI (those stay stdlib + pytest): ruff and mypy are installed into a
# venv of their own, outside the repo (TUNKIT_LINT_VENV, default ~/.cache/tunkit-lint-venv).
#
# Usage: sh scripts/check.sh           # exit 0 when all checks pass
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${TUNKIT_LINT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tunkit-lint-venv}"

if [ ! -x "$VENV/bin/ruff" ] || [ ! -x "$VENV/bin/mypy" ]; then
    echo "scripts/check.sh: installing ruff and mypy into $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q ruff mypy
fi

rc=0
echo "== ruff check"
"$VENV/bin/ruff" check tunkit tests bench || rc=1
echo "== mypy --strict tests/typing/user_script.py (the public API as a user sees it)"
# follow-imports=silent: tunkit's own modules are analysed for their types, their internal findings
# are the next check's business
MYPYPATH=. "$VENV/bin/mypy" --strict --follow-imports=silent --cache-dir "$VENV/mypy-cache" tests/typing/user_script.py || rc=1
echo "== mypy tunkit (the package, default strictness)"
"$VENV/bin/mypy" --cache-dir "$VENV/mypy-cache" -p tunkit || rc=1
exit "$rc"
