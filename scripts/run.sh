#!/usr/bin/env bash
# `make run`: migrate, load the shipped services (keeping operators' edits), make the first admin, then run Redis, the web app,
# a worker and the scheduler under one supervisor (honcho). Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

export FLASK_APP=wsgi
export OMEGAOPS_ENV=${OMEGAOPS_ENV:-development}
export PATH="$PWD/.venv/bin:$PATH"
instance=${OMEGAOPS_INSTANCE_DIR:-$PWD/instance}
export OMEGAOPS_INSTANCE_DIR=$instance
mkdir -p "$instance"

flask db upgrade
# a plan an operator edited (in the console, the API, an import) keeps its edits; the others follow their spec
flask createservice --specs services/ --keep-edits

admin_email=${OMEGAOPS_ADMIN_EMAIL:-admin@example.com}
if [ -n "${OMEGAOPS_ADMIN_PASSWORD:-}" ]; then
  printf '%s\n' "$OMEGAOPS_ADMIN_PASSWORD" | flask createadmin --if-none --email "$admin_email" --password-stdin
else
  flask createadmin --if-none --email "$admin_email" --generate-password
fi

export OMEGAOPS_PORT=${OMEGAOPS_PORT:-5000} OMEGAOPS_REDIS_DIR="$instance"
echo "omegaops: http://127.0.0.1:$OMEGAOPS_PORT/  (console: /admin/)  Ctrl-C stops everything"
if [ -n "${OMEGAOPS_REDIS_URL:-}" ]; then
  # an external Redis: don't start the embedded one
  exec honcho start -f Procfile web worker scheduler
fi
export OMEGAOPS_REDIS_PORT=${OMEGAOPS_REDIS_PORT:-6390}
export OMEGAOPS_REDIS_URL="redis://127.0.0.1:$OMEGAOPS_REDIS_PORT/0"
exec honcho start -f Procfile
