#!/usr/bin/env bash
# Make sure the local services the tests use are running: start any that is installed but down.
# Never fatal: a test needing a missing service skips with its reason, or fails when
# REQUIRE_SERVICES=1 (as .ci/run sets).
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # port, name
  for _ in $(seq 1 60); do up "$1" && return 0; sleep 0.5; done
  echo "$2 did not come up on port $1" >&2
}

if ! up 6379; then
  if command -v redis-server >/dev/null; then
    echo "Starting Redis on 127.0.0.1:6379..." >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
    wait_for 6379 Redis
  else
    echo "Redis is not running and redis-server is not installed: Redis tests will skip." >&2
  fi
fi
if ! up 5672; then
  if command -v rabbitmq-server >/dev/null; then
    echo "Starting RabbitMQ on 127.0.0.1:5672..." >&2
    rabbitmq-server -detached >/dev/null 2>&1
    wait_for 5672 RabbitMQ
  else
    echo "RabbitMQ is not running and rabbitmq-server is not installed: queue tests will skip." >&2
  fi
fi
exit 0
