#!/usr/bin/env bash
# Install what omegaops needs on a Debian machine, idempotently: system packages (with apt when
# run as root, otherwise a list of what to install), the virtualenv and the Python packages.
#   scripts/setup.sh run    what `make run` needs
#   scripts/setup.sh test   that, plus PostgreSQL for the tests that must hold there and Chromium for the
#                           browser tests (Debian's: Playwright's own browser download is never used)
#   scripts/setup.sh bench  run's and PostgreSQL, plus wrk for the HTTP benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-run}
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}

# package -> a file it installs (checking files, not dpkg, also accepts servers installed by other means)
declare -A NEEDS=(
  [redis-server]=/usr/bin/redis-server
  [git]=/usr/bin/git
  [libpango-1.0-0]=/usr/share/doc/libpango-1.0-0
  [libpangoft2-1.0-0]=/usr/share/doc/libpangoft2-1.0-0
  [libharfbuzz-subset0]=/usr/share/doc/libharfbuzz-subset0
  [fonts-dejavu-core]=/usr/share/fonts/truetype/dejavu
)
if [ "$purpose" = test ] || [ "$purpose" = bench ]; then
  NEEDS[postgresql]=/usr/lib/postgresql
fi
if [ "$purpose" = test ]; then
  NEEDS[chromium]=/usr/bin/chromium
fi
if [ "$purpose" = bench ]; then
  NEEDS[wrk]=/usr/bin/wrk
fi

missing=()
for package in "${!NEEDS[@]}"; do
  [ -e "${NEEDS[$package]}" ] || missing+=("$package")
done
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages; install them and run again:" >&2
    echo "    sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  PYTHON=python3
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# reinstall only when pyproject.toml changed
stamp="$VENV/.omegaops-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi
