#!/bin/sh
# The official rabbitmq image's user setup: RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS
# become the broker's first user, allowed from other hosts (the services).
set -eu
if [ "${1:-}" = rabbitmq-server ]; then
  {
    echo "loopback_users = none"
    echo "listeners.tcp.default = 5672"
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  } >/etc/rabbitmq/rabbitmq.conf
  chmod 640 /etc/rabbitmq/rabbitmq.conf
  chown rabbitmq:rabbitmq /etc/rabbitmq/rabbitmq.conf /var/lib/rabbitmq
fi
exec "$@"
