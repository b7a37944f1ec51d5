#!/usr/bin/env bash
# `make test`: the whole suite, against a real Redis server, SQLite and a throwaway PostgreSQL cluster
# (both started by the test session itself, see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
unset FLASK_APP OMEGAOPS_ENV OMEGAOPS_DATABASE_URL OMEGAOPS_REDIS_URL
exec pytest "$@"
