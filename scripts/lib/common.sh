# Shared by the project's scripts: logging, bringing up the machine's backing servers
# (MariaDB, Redis, RabbitMQ) when they are down, and installing nginx and chromium. Every
# function is idempotent. Everything else (the stack, the benchmark, the drill) is
# cargo xtask (crates/xtask).

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: retries COMMAND once a second.
wait_for() {
  local what=$1 seconds=$2; shift 2
  for ((i = 0; i < seconds; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

mariadb_up() { mariadb -h 127.0.0.1 -P "${DB_PORT:-3306}" -u root -e 'select 1'; }

ensure_mariadb() {
  if mariadb_up >/dev/null 2>&1; then return 0; fi
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] \
    || die "MariaDB is not installed (apt-get install -y mariadb-server)"
  log "starting MariaDB"
  install -d -o mysql -g mysql /run/mysqld 2>/dev/null || mkdir -p /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB 60 mariadb_up || die "MariaDB does not accept 'root' with an empty password on 127.0.0.1:3306 \
(check: mariadb -h 127.0.0.1 -uroot -e 'select 1'; on a stock Debian install root uses unix_socket auth: \
ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD(''))"
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return 0; fi
  command -v redis-server >/dev/null || die "Redis is not installed (apt-get install -y redis-server)"
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for Redis 20 sh -c 'redis-cli -h 127.0.0.1 ping | grep -q PONG' || die "Redis did not start on 127.0.0.1:6379"
}

ensure_rabbitmq() {
  if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then return 0; fi
  command -v rabbitmq-server >/dev/null || die "RabbitMQ is not installed (apt-get install -y rabbitmq-server)"
  log "starting RabbitMQ (takes a few seconds)"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for RabbitMQ 90 rabbitmq-diagnostics -q ping || die "RabbitMQ did not start (rabbitmq-diagnostics -q ping fails)"
}

ensure_backing_servers() {
  ensure_mariadb
  ensure_redis
  ensure_rabbitmq
}

# apt-get install -y "$@", quietly; when that fails (a fresh machine's package lists
# may be missing or stale), again after apt-get update, that time with apt's errors
# shown. Returns apt-get's status.
apt_install() {
  apt-get install -y "$@" >/dev/null 2>&1 && return 0
  apt-get update >/dev/null && apt-get install -y "$@" >/dev/null
}

ensure_nginx() {
  command -v nginx >/dev/null && return 0
  log "installing nginx"
  apt_install nginx || die "could not install nginx (apt-get install -y nginx)"
  # The package starts a system nginx on port 80; the project runs its own.
  service nginx stop >/dev/null 2>&1 || nginx -s quit >/dev/null 2>&1 || true
}

# Headless chromium and its WebDriver (crates/e2e/tests/buyer_page.rs drives the
# gateway's buyer page in a real browser). Debian names them chromium and chromedriver.
ensure_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  log "installing chromium and chromium-driver"
  apt_install --no-install-recommends chromium chromium-driver \
    || die "could not install chromium (apt-get install -y chromium chromium-driver)"
}

# A local Redis Cluster on loopback for the cluster-mode tests and `REDIS_MODE=cluster
# scripts/stack up`: 3 masters and 3 replicas on REDIS_CLUSTER_PORTS (7001-7006), node
# timeout 2 s, AOF every second, noeviction; files under REDIS_CLUSTER_DIR. Idempotent:
# nodes already up are left alone, and the cluster is created only from fresh nodes.
REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-"7001 7002 7003 7004 7005 7006"}
REDIS_CLUSTER_DIR=${REDIS_CLUSTER_DIR:-${XDG_RUNTIME_DIR:-/tmp}/flash-sale-redis-cluster}

redis_cluster_node_up() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }
redis_cluster_ok() {
  local port
  for port in $REDIS_CLUSTER_PORTS; do
    redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}

start_redis_cluster_node() {
  local port=$1 dir=$REDIS_CLUSTER_DIR/$1
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$dir" \
    --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 \
    --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
}

ensure_redis_cluster() {
  if redis_cluster_ok && redis_cluster_replicas_synced; then return 0; fi
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install -y redis-server)"
  local port fresh=1 nodes=()
  for port in $REDIS_CLUSTER_PORTS; do
    if redis_cluster_node_up "$port"; then
      [ "$(redis-cli -h 127.0.0.1 -p "$port" cluster info | grep -c '^cluster_known_nodes:1')" = 1 ] || fresh=0
    else
      log "starting Redis Cluster node 127.0.0.1:$port"
      [ -f "$REDIS_CLUSTER_DIR/$port/nodes-$port.conf" ] && fresh=0
      start_redis_cluster_node "$port"
    fi
    nodes+=("127.0.0.1:$port")
  done
  for port in $REDIS_CLUSTER_PORTS; do
    wait_for "Redis node $port" 20 redis_cluster_node_up "$port" || die "Redis node 127.0.0.1:$port did not start (see $REDIS_CLUSTER_DIR/$port/redis.log)"
  done
  if [ $fresh = 1 ]; then
    log "creating the Redis Cluster (3 masters, 3 replicas)"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null \
      || die "redis-cli --cluster create failed"
  fi
  wait_for "Redis Cluster" 30 redis_cluster_ok || die "the Redis Cluster on $REDIS_CLUSTER_PORTS is not ok (redis-cli -p ${REDIS_CLUSTER_PORTS%% *} cluster info)"
  # A replica still in its first sync acknowledges nothing (REDIS_MIN_REPLICAS_ACKED).
  wait_for "Redis Cluster replicas" 30 redis_cluster_replicas_synced || die "the Redis Cluster's replicas are not in sync (redis-cli -p ${REDIS_CLUSTER_PORTS%% *} cluster nodes)"
}

redis_cluster_replicas_synced() {
  local port synced=0 total=0
  for port in $REDIS_CLUSTER_PORTS; do
    total=$((total + 1))
    redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null | grep -q 'master_link_status:up' && synced=$((synced + 1))
  done
  [ "$synced" -ge $((total / 2)) ]
}

# The cluster's nodes as REDIS_CLUSTER_NODES wants them.
redis_cluster_nodes() { local p out=(); for p in $REDIS_CLUSTER_PORTS; do out+=("127.0.0.1:$p"); done; (IFS=,; echo "${out[*]}"); }

# promtool (Debian's `prometheus` package), which `scripts/test` validates deploy/prometheus
# with. The package's post-install would start a Prometheus server on :9090: a
# policy-rc.d that forbids starting services is put in place for the install (unless the
# machine has one), and a server that started all the same is stopped and disabled.
ensure_promtool() {
  command -v promtool >/dev/null && return 0
  log "installing promtool (Debian's prometheus package)"
  local policy=/usr/sbin/policy-rc.d ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# flash-sale scripts/lib/common.sh: no service starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  local installed=0
  apt_install --no-install-recommends prometheus && installed=1
  [ $ours = 1 ] && rm -f "$policy"
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  else
    service prometheus stop >/dev/null 2>&1 || true
  fi
  [ $installed = 1 ] && command -v promtool >/dev/null || die "could not install promtool (apt-get install -y --no-install-recommends prometheus)"
}

# podman, for scripts/compose-test: runs containers as root without a Docker daemon. The
# defaults do not work on these machines: crun refuses the kernel's hybrid cgroups
# ("cgroups in hybrid mode not supported") and raising the default containers' ulimits
# is not permitted, so podman gets its own containers.conf (runc, cgroupfs, no default
# ulimits, k8s-file logs) and storage.conf, both under COMPOSE_STATE_DIR with its own
# image store and networks, through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF: the
# machine's podman configuration is left as it is. Also installs Debian's docker-compose
# (v1, the compose client that talks to `podman system service`) and debootstrap (for
# the local base image). Returns 1 (with a message) when podman cannot be installed.
COMPOSE_STATE_DIR=${COMPOSE_STATE_DIR:-/var/lib/flash-sale-compose}
COMPOSE_RUN_DIR=${COMPOSE_RUN_DIR:-/run/flash-sale-compose}
ensure_podman() {
  local packages=(podman runc netavark aardvark-dns iptables uidmap debootstrap docker-compose)
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # No recommends: docker-compose would bring Docker's own daemon.
    apt_install --no-install-recommends "${missing[@]}" || {
      log "could not install ${missing[*]} with apt-get"
      return 1
    }
  fi
  mkdir -p "$COMPOSE_STATE_DIR" "$COMPOSE_RUN_DIR"
  cat >"$COMPOSE_STATE_DIR/containers.conf" <<CONF
# Written by scripts/lib/common.sh (ensure_podman) for scripts/compose-test.
[containers]
default_ulimits = []
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$COMPOSE_RUN_DIR/libpod"
volume_path = "$COMPOSE_STATE_DIR/volumes"

[network]
network_backend = "netavark"
network_config_dir = "$COMPOSE_STATE_DIR/networks"
CONF
  cat >"$COMPOSE_STATE_DIR/storage.conf" <<CONF
# Written by scripts/lib/common.sh (ensure_podman) for scripts/compose-test.
[storage]
driver = "overlay"
graphroot = "$COMPOSE_STATE_DIR/storage"
runroot = "$COMPOSE_RUN_DIR/storage"
CONF
  export CONTAINERS_CONF=$COMPOSE_STATE_DIR/containers.conf
  export CONTAINERS_STORAGE_CONF=$COMPOSE_STATE_DIR/storage.conf
}
