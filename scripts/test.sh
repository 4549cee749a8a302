#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run the whole suite.
# System packages: PostgreSQL (the store's second engine; the tests start a throwaway server),
# Chromium (the UI's browser tests drive Debian's build through Playwright, whose own browser
# download does not work offline) and Mosquitto (the alert and edge tests publish to a real
# broker on a loopback port). Installed with apt-get when missing, one update for all.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q ./edge ".[test]"

# Run the suite on the installed package (not the source tree), as a user would have it.
python -m pytest -q -p no:cacheprovider "$@"
