#!/usr/bin/env bash
# Creates .venv in the repository root and installs the project into it (pip install -e '.[dev]').
# Called by `make` whenever pyproject.toml is newer than the .venv/.installed stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PYTHON="${PYTHON:-}"

pick_python() {
    if [ -n "$PYTHON" ]; then echo "$PYTHON"; return; fi
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"; return
        fi
    done
    echo "No Python 3.11 or newer found: install it (Debian/Ubuntu: sudo apt-get install -y python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11" >&2
    exit 1
}

make_venv() {
    "$1" -m venv "$VENV" 2>/tmp/rdc-venv.err.$$ && { rm -f /tmp/rdc-venv.err.$$; return 0; }
    rm -rf "$VENV"
    cat /tmp/rdc-venv.err.$$ >&2; rm -f /tmp/rdc-venv.err.$$
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    py="$(pick_python)"
    echo "creating $VENV with $py"
    if ! make_venv "$py"; then
        # Debian and Ubuntu ship venv/ensurepip in a separate package.
        version="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq "python${version}-venv" || apt-get install -y -qq python3-venv
            make_venv "$py"
        else
            echo >&2
            echo "$py cannot create a virtual environment (no ensurepip). Install it with:" >&2
            echo "    sudo apt-get install -y python${version}-venv" >&2
            echo "(or python3-venv), then run make again." >&2
            exit 1
        fi
    fi
fi

echo "installing the project into $VENV (pip install -e '.[dev]')"
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
touch "$VENV/.installed"
