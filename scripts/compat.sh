#!/usr/bin/env bash
# `make compat`: the real omegaml client (PyPI `omegaml`, 0.18.x) against a throwaway omegaops.
#
# Installs the client in its own virtualenv (.venv-compat; reused when it holds the pinned version),
# starts omegaops on its own SQLite database and Redis in a temporary directory (migrated, services
# loaded, one confirmed user with an API key whose sign-up installed a COMPLETED omegaml deployment),
# serves it with gunicorn on 127.0.0.1, and reaches it under a dotted name, as the client requires
# (it refuses http://127.0.0.1 and http://localhost; see shared/CLIENT-CONTRACT.md): hub.omegaml.test
# must map to 127.0.0.1 in /etc/hosts (added when run as root). Then, with the client:
#   1. om cloud login <userid> <apikey> --apiurl http://hub.omegaml.test:PORT   (writes config.yml)
#   2. AuthenticationEnv.secure().get_userconfig_from_api(...)  (the raw call of the contract)
#   3. om cloud config --services   (informational: it does not decide the exit status)
#   4. om cloud add worker --specs size=1, update --specs size=0, remove: POST the command, poll it to "5"
# Exit 0 only when 1, 2 and 4 worked. OMEGA_TEST_MODE is never set (the client would skip HTTP).
# Everything started here is stopped, and the temporary directory removed, on exit.
#
#   OMEGAML_VERSION=0.18.0  the client release to test      COMPAT_VENV=.venv-compat  its virtualenv
set -euo pipefail
set -m # every background process gets a process group of its own: stopped by its id on exit
cd "$(dirname "$0")/.."
ROOT=$PWD

OMEGAML_VERSION=${OMEGAML_VERSION:-0.18.0}
COMPAT_VENV=${COMPAT_VENV:-.venv-compat}
PYTHON=${PYTHON:-python3.11}
HOST=hub.omegaml.test
EMAIL=compat@example.com
say() { printf 'compat: %s\n' "$*"; }
fail() {
  printf 'compat: FAILED: %s\n' "$*" >&2
  exit 1
}

[ -x .venv/bin/flask ] || fail "no .venv: run scripts/setup.sh run (or make run) first"
command -v redis-server >/dev/null || fail "redis-server is not installed: run scripts/setup.sh run"

# ------------------------------------------------------------------ the dotted name
if ! grep -Eq "^[[:space:]]*127\.0\.0\.1[[:space:]]+([^#]*[[:space:]])?${HOST//./\\.}([[:space:]]|$)" /etc/hosts; then
  if [ "$(id -u)" = 0 ]; then
    say "adding '127.0.0.1 $HOST' to /etc/hosts"
    printf '127.0.0.1 %s\n' "$HOST" >>/etc/hosts
  else
    echo "compat: the client needs a dotted host name for omegaops; add this line to /etc/hosts and run again:" >&2
    echo "    127.0.0.1 $HOST" >&2
    echo "  e.g.  echo '127.0.0.1 $HOST' | sudo tee -a /etc/hosts" >&2
    exit 1
  fi
fi
resolved=$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')
[ "$resolved" = 127.0.0.1 ] || fail "$HOST resolves to '${resolved:-nothing}', not 127.0.0.1 (check /etc/hosts)"

# ------------------------------------------------------------------ the client's virtualenv
if [ ! -x "$COMPAT_VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || PYTHON=python3
  say "creating $COMPAT_VENV"
  "$PYTHON" -m venv "$COMPAT_VENV"
fi
installed=$("$COMPAT_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("omegaml"))' 2>/dev/null || true)
if [ "$installed" != "$OMEGAML_VERSION" ]; then
  say "installing omegaml==$OMEGAML_VERSION into $COMPAT_VENV (was: ${installed:-none})"
  "$COMPAT_VENV/bin/python" -m pip install -q --disable-pip-version-check "omegaml==$OMEGAML_VERSION" ||
    fail "pip could not install omegaml==$OMEGAML_VERSION (see above)"
fi
say "client: omegaml $("$COMPAT_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("omegaml"))')"

# ------------------------------------------------------------------ a throwaway omegaops
tmp=$(mktemp -d /tmp/omegaops-compat-XXXXXX)
pids=()
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

free_port() { .venv/bin/python -c 'from tests.servers import free_port; print(free_port())'; }
wait_port() { .venv/bin/python -c "from tests.servers import wait_for_port; wait_for_port($1, ${2:-30})"; }
show_log() { # a log's last lines, for a failure
  echo "---- $1 (last 40 lines)" >&2
  tail -n 40 "$1" >&2 || true
}

redis_port=$(free_port)
web_port=$(free_port)
export FLASK_APP=wsgi
export OMEGAOPS_ENV=production
OMEGAOPS_SECRET_KEY=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(32))')
export OMEGAOPS_SECRET_KEY
export OMEGAOPS_INSTANCE_DIR=$tmp
export OMEGAOPS_DATABASE_URL="sqlite:///$tmp/omegaops.db"
export OMEGAOPS_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export PATH="$ROOT/.venv/bin:$PATH"

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port" || {
  show_log "$tmp/redis.log"
  fail "redis-server did not start"
}
say "omegaops: SQLite and Redis (port $redis_port) in $tmp"

flask db upgrade >"$tmp/setup.log" 2>&1 || {
  show_log "$tmp/setup.log"
  fail "flask db upgrade"
}
flask createservice --specs services/ >>"$tmp/setup.log" 2>&1 || {
  show_log "$tmp/setup.log"
  fail "flask createservice"
}

flask worker >"$tmp/worker.log" 2>&1 &
pids+=($!)

password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))')
created=$(printf '%s\n' "$password" | flask createuser --email "$EMAIL" --password-stdin --confirmed 2>&1) || {
  echo "$created" >&2
  fail "flask createuser"
}
echo "$created" | sed 's/^/  | /'
keyout=$(flask createapikey --user "$EMAIL" --name compat 2>&1) || {
  echo "$keyout" >&2
  fail "flask createapikey"
}
apikey=$(printf '%s\n' "$keyout" | sed -n 's/^key: \([0-9a-f]\{40\}\)$/\1/p' | head -n 1)
[ -n "$apikey" ] || {
  echo "$keyout" >&2
  fail "no 'key: <40 hex>' line in createapikey's output"
}
userid=$(printf '%s\n' "$created" | sed -n 's/.*(userid \([^),]*\)).*/\1/p' | head -n 1)
[ -n "$userid" ] || fail "no userid in createuser's output"
say "user $EMAIL: userid $userid, API key ${apikey:0:8}… (40 hex)"

if ! printf '%s\n' "$created" | grep -q 'sign-up command'; then
  say "createuser issued no sign-up: flask deployservice --phase install --service signup --user $EMAIL --wait"
  flask deployservice --phase install --service signup --user "$EMAIL" --wait --timeout 120 ||
    fail "the signup command did not complete"
fi

# the sign-up installs omegaml with a second command: wait for that deployment to be COMPLETED
omegaml_status() {
  flask listservices --user "$EMAIL" --json 2>/dev/null | .venv/bin/python -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["deployments"] if r["service"] == "omegaml"]
print(rows[-1]["status"] if rows else "NONE")'
}
status=NONE
for _ in $(seq 120); do
  status=$(omegaml_status || echo ERROR)
  case $status in COMPLETED | FAILED | REMOVED) break ;; esac
  sleep 1
done
if [ "$status" != COMPLETED ]; then
  show_log "$tmp/worker.log"
  flask listservices --user "$EMAIL" >&2 || true
  fail "the omegaml deployment of $userid is $status, not COMPLETED"
fi
say "omegaml deployment of $userid: COMPLETED"

gunicorn -w 2 -b "127.0.0.1:$web_port" 'wsgi:app' >"$tmp/web.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do
  code=$(.venv/bin/python -c "
import urllib.request
try:
    print(urllib.request.urlopen('http://127.0.0.1:$web_port/healthz', timeout=2).status)
except Exception as e:
    print(getattr(e, 'code', 0))" 2>/dev/null || echo 0)
  [ "$code" = 200 ] && break
  sleep 0.2
done
[ "$code" = 200 ] || {
  show_log "$tmp/web.log"
  fail "gunicorn does not answer /healthz (last status $code)"
}
URL="http://$HOST:$web_port"
say "omegaops: $URL (gunicorn -w 2, OMEGAOPS_ENV=production)"

# ------------------------------------------------------------------ the client
client=$tmp/client
mkdir -p "$client/home"
# a clean environment for the client: no OMEGA_* settings (never OMEGA_TEST_MODE), no proxy, its own HOME
client_env=(env -i "PATH=$ROOT/$COMPAT_VENV/bin:/usr/local/bin:/usr/bin:/bin" "HOME=$client/home" "LANG=C.UTF-8"
  "no_proxy=$HOST,127.0.0.1,localhost" "NO_PROXY=$HOST,127.0.0.1,localhost")

echo
say "1. om cloud login $userid <apikey> --apiurl $URL"
login_ok=0
if (cd "$client" && "${client_env[@]}" om cloud login "$userid" "$apikey" --apiurl "$URL") >"$tmp/login.log" 2>&1 &&
  grep -q "OMEGA_USERID: $userid" "$client/config.yml" 2>/dev/null; then
  login_ok=1
fi
sed "s/$apikey/<apikey>/g" "$tmp/login.log" | sed 's/^/  | /'
if [ -f "$client/config.yml" ]; then
  echo "  config.yml:"
  sed "s/$apikey/<apikey>/g" "$client/config.yml" | sed 's/^/  | /'
fi

echo
say "2. AuthenticationEnv.secure().get_userconfig_from_api(api_url=URL, userid=U, apikey=K, qualifier='default')"
raw_ok=0
cat >"$tmp/raw.py" <<'EOF'
import sys

from omegaml.client.auth import AuthenticationEnv

url, userid, apikey = sys.argv[1:4]
env = AuthenticationEnv.secure()
raw = env.get_userconfig_from_api(api_url=url, userid=userid, apikey=apikey, qualifier="default")
data = raw["objects"][0]["data"]
print("auth env:", getattr(env, "__name__", type(env).__name__))
print("objects[0].resource_uri:", raw["objects"][0].get("resource_uri"))
print("objects[0].data keys:", ", ".join(sorted(data)))
print("OMEGA_CELERY_CONFIG keys:", ", ".join(sorted(data.get("OMEGA_CELERY_CONFIG") or {})))
problems = []
if not str(data.get("OMEGA_MONGO_URL", "")).startswith("mongodb://"):
    problems.append("no OMEGA_MONGO_URL")
elif not data["OMEGA_MONGO_URL"].rsplit("/", 1)[-1]:
    problems.append("OMEGA_MONGO_URL without a database")
if not str((data.get("OMEGA_CELERY_CONFIG") or {}).get("BROKER_URL", "")).startswith("amqp://"):
    problems.append("no OMEGA_CELERY_CONFIG.BROKER_URL")
if data.get("OMEGA_USERID") != userid:
    problems.append(f"OMEGA_USERID is {data.get('OMEGA_USERID')!r}")
print("shape:", "; ".join(problems) or "OMEGA_MONGO_URL (with database), OMEGA_CELERY_CONFIG.BROKER_URL, OMEGA_USERID ok")
sys.exit(1 if problems else 0)
EOF
if (cd "$client" && "${client_env[@]}" python "$tmp/raw.py" "$URL" "$userid" "$apikey") >"$tmp/raw.log" 2>&1; then
  raw_ok=1
fi
sed "s/$apikey/<apikey>/g" "$tmp/raw.log" | sed 's/^/  | /'

echo
say "3. om cloud config --services (informational; passwords masked)"
config_rc=0
(cd "$client" && "${client_env[@]}" om cloud config --services) >"$tmp/config.log" 2>&1 || config_rc=$?
sed -e "s/$apikey/<apikey>/g" -e 's#\(://[^:/@]*:\)[^@]*@#\1***@#g' "$tmp/config.log" | tail -n 20 | sed 's/^/  | /'

echo
say "4. om cloud add worker --specs size=1; om cloud update worker --specs size=0; om cloud remove worker"
cloud_ok=1
for step in "add worker --specs size=1" "update worker --specs size=0" "remove worker"; do
  # shellcheck disable=SC2086 # the words of $step are the command's arguments
  if ! (cd "$client" && "${client_env[@]}" timeout 120 om cloud $step) >"$tmp/cloud.log" 2>&1; then
    cloud_ok=0
  fi
  sed "s/$apikey/<apikey>/g" "$tmp/cloud.log" | grep -v '^\s*$' | tail -n 5 | sed "s/^/  | om cloud $step: /"
  if grep -q -e Traceback -e "Error [0-9] occurred" "$tmp/cloud.log" || ! grep -q "Ok, done." "$tmp/cloud.log"; then
    cloud_ok=0
  fi
done
worker_status=$(flask listservices --user "$EMAIL" --json 2>/dev/null | .venv/bin/python -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["deployments"] if r["service"] == "worker"]
print(rows[-1]["status"] if rows else "NONE")' || echo ERROR)
echo "  worker deployment: $worker_status"
[ "$worker_status" = REMOVED ] || cloud_ok=0

echo
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
say "summary (omegaml $OMEGAML_VERSION against $URL):"
echo "  $(verdict $login_ok)  om cloud login: config.yml written for $userid"
echo "  $(verdict $raw_ok)  get_userconfig_from_api: objects[0].data with OMEGA_MONGO_URL and OMEGA_CELERY_CONFIG.BROKER_URL"
echo "  INFO  om cloud config --services: exit $config_rc"
echo "  $(verdict $cloud_ok)  om cloud add|update|remove worker: each command polled to status 5, worker REMOVED"
if [ "$login_ok$raw_ok$cloud_ok" != 111 ]; then
  show_log "$tmp/web.log"
  exit 1
fi
say "OK"
