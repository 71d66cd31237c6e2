#!/bin/sh
# The official mysql image's first start, for MariaDB: an empty data directory gets the
# system tables, root@localhost and root@'%' with MYSQL_ROOT_PASSWORD and the database
# MYSQL_DATABASE. Then the server listens on every address (the services are other
# containers) and skips reverse DNS lookups of its clients (each would wait on the
# network's DNS before the login is even checked).
set -eu
datadir=/var/lib/mysql
if [ "${1:-}" != mariadbd ]; then exec "$@"; fi
shift
chown mysql:mysql "$datadir" /run/mysqld
if [ ! -d "$datadir/mysql" ]; then
  : "${MYSQL_ROOT_PASSWORD:?the mysql stand-in needs MYSQL_ROOT_PASSWORD}"
  echo "entrypoint: initialising $datadir"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal >/dev/null
  socket=/run/mysqld/init.sock
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$socket" &
  pid=$!
  i=0
  until mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -ge 60 ]; then echo "entrypoint: mariadbd did not start in 60 s" >&2; exit 1; fi
    sleep 1
  done
  # SQL string literals: backslashes and single quotes escaped.
  password=$(printf '%s' "$MYSQL_ROOT_PASSWORD" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")
  database=$(printf '%s' "${MYSQL_DATABASE:-}" | sed -e 's/`/``/g')
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$password';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$password';"
    echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "$database" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"; fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$socket" -uroot
  MYSQL_PWD=$MYSQL_ROOT_PASSWORD mariadb-admin --socket="$socket" -uroot shutdown
  wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --skip-name-resolve "$@"
