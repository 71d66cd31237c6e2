# Native stack helpers shared by scripts/stack, scripts/bench and scripts/chaos.
# Everything the stack writes lives under run/ (keys, logs, pids, gateway config).

RUN_DIR=${RUN_DIR:-$PWD/run}
SERVICES=(auth-service catalog-service purchase-service stock-writer)
GATEWAY_PORT=${GATEWAY_PORT:-8080}

service_port() {
  case $1 in
    auth-service) echo 8081 ;;
    catalog-service) echo 8082 ;;
    purchase-service) echo 8083 ;;
    stock-writer) echo 8084 ;;
  esac
}

# Exports deploy/local.env, letting variables already set in the environment win.
load_env() {
  local line name
  while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    name=${line%%=*}
    [ -n "${!name+x}" ] || export "$line"
  done < deploy/local.env
  export JWT_PUBLIC_KEY_PATH=$PWD/${JWT_PUBLIC_KEY_PATH#$PWD/}
  export JWT_PRIVATE_KEY_PATH=$PWD/${JWT_PRIVATE_KEY_PATH#$PWD/}
}

ensure_nginx() {
  command -v nginx >/dev/null && return 0
  log "installing nginx"
  if ! apt-get install -y nginx >/dev/null 2>&1; then
    apt-get update >/dev/null && apt-get install -y nginx >/dev/null || die "could not install nginx (apt-get install -y nginx)"
  fi
  # The package starts a system nginx on port 80; the project runs its own.
  service nginx stop >/dev/null 2>&1 || nginx -s quit >/dev/null 2>&1 || true
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

bin_dir() { echo "${BIN_DIR:-$PWD/target/${PROFILE:-release}}"; }

start_service() {
  local name=$1 port; port=$(service_port "$name")
  local pidfile=$RUN_DIR/pids/$name.pid
  if pid_alive "$pidfile"; then return 0; fi
  mkdir -p "$RUN_DIR/pids" "$RUN_DIR/logs"
  APP_PORT=$port nohup "$(bin_dir)/$name" >>"$RUN_DIR/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
}

stop_service() {
  local pidfile=$RUN_DIR/pids/$1.pid signal=${2:-TERM}
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  local pid; pid=$(cat "$pidfile")
  kill -"$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$pidfile"
}

render_gateway() {
  local dir=$RUN_DIR/nginx
  mkdir -p "$dir/tmp" "$RUN_DIR/logs"
  GATEWAY_RUN_DIR=$dir GATEWAY_PORT=$GATEWAY_PORT GATEWAY_ACCESS_LOG=$RUN_DIR/logs/gateway.log \
  AUTH_UPSTREAM=127.0.0.1:8081 CATALOG_UPSTREAM=127.0.0.1:8082 PURCHASE_UPSTREAM=127.0.0.1:8083 \
    sh -c 'envsubst "\${GATEWAY_PORT} \${GATEWAY_RUN_DIR} \${GATEWAY_ACCESS_LOG} \${AUTH_UPSTREAM} \${CATALOG_UPSTREAM} \${PURCHASE_UPSTREAM}" \
      < deploy/nginx/gateway.conf.template > "$GATEWAY_RUN_DIR/gateway.conf" &&
      envsubst "\${GATEWAY_RUN_DIR}" < deploy/nginx/nginx.conf.template > "$GATEWAY_RUN_DIR/nginx.conf"'
}

start_gateway() {
  render_gateway
  local dir=$RUN_DIR/nginx
  if pid_alive "$dir/nginx.pid"; then
    nginx -p "$dir" -c "$dir/nginx.conf" -s reload
  else
    nginx -p "$dir" -c "$dir/nginx.conf" || die "nginx did not start (see $dir/error.log)"
  fi
}

stop_gateway() {
  local dir=$RUN_DIR/nginx
  pid_alive "$dir/nginx.pid" && nginx -p "$dir" -c "$dir/nginx.conf" -s quit 2>/dev/null
  for _ in $(seq 1 50); do pid_alive "$dir/nginx.pid" || break; sleep 0.1; done
  return 0
}

ready() { curl -fsS -o /dev/null "http://127.0.0.1:$1/readyz"; }

wait_ready() {
  local name port
  for name in "${SERVICES[@]}"; do
    port=$(service_port "$name")
    wait_for "$name" 60 ready "$port" || die "$name is not ready: curl http://127.0.0.1:$port/readyz; logs in $RUN_DIR/logs/$name.log"
  done
  wait_for gateway 20 curl -fsS -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/healthz" \
    || die "the gateway does not answer on $GATEWAY_PORT (see $RUN_DIR/nginx/error.log)"
}
