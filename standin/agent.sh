#!/bin/sh
# Stand-in for the ECS agent: serves /v1/metadata on 127.0.0.1:${STANDIN_PORT:-51678},
# logs to $ECS_LOGFILE, echoes the ECS_* environment it got, and exits with a
# code chosen by the test:
#   STANDIN_EXIT_CODE   code used on SIGTERM and on a timed exit (default 0)
#   STANDIN_EXIT_AFTER  exit by itself after this many seconds (unset: wait)
#   /data/standin-exit       holds a code: exit with it at once, every run
#   /data/standin-exit-once  holds a code: exit with it once (file removed)
# and, to play a hung agent (it stays up, its port stays open, nothing answers:
# the HTTP server is frozen with SIGSTOP):
#   /data/standin-hang-once  stop answering until the container restarts (file removed)
#   /data/standin-hang       never answer, every run while the file is there
# The "health" variant has a Docker health check that fails while
# /data/standin-unhealthy exists.
LOG="${ECS_LOGFILE:-/log/ecs-agent.log}"
mkdir -p "$(dirname "$LOG")" 2>/dev/null
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) [standin] $*" >> "$LOG"; echo "[standin] $*"; }
CODE="${STANDIN_EXIT_CODE:-0}"
PORT="${STANDIN_PORT:-51678}"
log "starting stand-in agent ${STANDIN_VERSION} pid $$"
env | grep -E '^(ECS_|STANDIN_|SSL_CERT_DIR|CREDENTIALS_FETCHER)' | sort | while read -r line; do log "env $line"; done
CLUSTER="${ECS_CLUSTER:-default}"
mkdir -p /tmp/www/v1
cat > /tmp/www/v1/metadata <<JSON
{"Cluster":"${CLUSTER}","ContainerInstanceArn":"arn:aws:ecs:us-east-1:000000000000:container-instance/${CLUSTER}/standin","Version":"Amazon ECS Agent - ${STANDIN_VERSION} (standin)"}
JSON
finish() { log "exiting with $1"; kill -CONT "$HTTPD" 2>/dev/null; kill "$HTTPD" 2>/dev/null; exit "$1"; }
HUNG=""
hang() { if [ -z "$HUNG" ]; then kill -STOP "$HTTPD"; HUNG=1; log "hanging: not answering any more (staying up)"; fi; }
trap 'finish $CODE' TERM INT
if [ -f /data/standin-exit-once ]; then c=$(cat /data/standin-exit-once); rm -f /data/standin-exit-once; finish "$c"; fi
if [ -f /data/standin-exit ]; then finish "$(cat /data/standin-exit)"; fi
httpd -f -p "127.0.0.1:${PORT}" -h /tmp/www &
HTTPD=$!
if [ -f /data/standin-hang ]; then hang; else log "serving /v1/metadata on 127.0.0.1:${PORT}"; fi
START=$(date +%s)
while true; do
  if [ -f /data/standin-hang-once ]; then rm -f /data/standin-hang-once; hang; fi
  if [ -f /data/standin-hang ]; then hang; fi
  if [ -f /data/standin-exit-once ]; then c=$(cat /data/standin-exit-once); rm -f /data/standin-exit-once; finish "$c"; fi
  if [ -f /data/standin-exit ]; then finish "$(cat /data/standin-exit)"; fi
  if [ -n "${STANDIN_EXIT_AFTER}" ] && [ $(( $(date +%s) - START )) -ge "${STANDIN_EXIT_AFTER}" ]; then finish "$CODE"; fi
  sleep 0.2 &
  wait $!
done
