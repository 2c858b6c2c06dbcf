#!/usr/bin/env bash
# Installs (Debian packages) and starts RabbitMQ and Redis on loopback only.
# Usage: scripts/infra.sh install | start | stop | status
set -euo pipefail

RABBIT_PORT=${RABBIT_PORT:-5672}
REDIS_PORT=${REDIS_PORT:-6379}
VAR_DIR=${VAR_DIR:-$(pwd)/var/infra}

install() {
    if command -v rabbitmq-server >/dev/null && command -v redis-server >/dev/null; then
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq rabbitmq-server redis-server >/dev/null
}

configure_rabbit() {
    mkdir -p /etc/rabbitmq
    cat > /etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.default = 127.0.0.1:${RABBIT_PORT}
management.tcp.ip = 127.0.0.1
distribution.listener.interface = 127.0.0.1
loopback_users.guest = true
CONF
    grep -q '^NODE_IP_ADDRESS=127.0.0.1' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null \
        || echo 'NODE_IP_ADDRESS=127.0.0.1' >> /etc/rabbitmq/rabbitmq-env.conf
}

rabbit_ready() {
    rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1
}

redis_ready() {
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

wait_for() {
    local what=$1 check=$2 tries=${3:-60}
    for _ in $(seq "$tries"); do
        if $check; then
            echo "$what is ready"
            return 0
        fi
        sleep 1
    done
    echo "Error: $what did not become ready" >&2
    return 1
}

start() {
    install
    mkdir -p "$VAR_DIR"
    if ! redis_ready; then
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
            --appendonly no --daemonize yes --logfile "$VAR_DIR/redis.log"
    fi
    wait_for Redis redis_ready 30
    if ! rabbit_ready; then
        configure_rabbit
        epmd -address 127.0.0.1 -daemon
        nohup rabbitmq-server >"$VAR_DIR/rabbitmq.log" 2>&1 &
    fi
    wait_for RabbitMQ rabbit_ready 90
}

stop() {
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

status() {
    redis_ready && echo "Redis: up" || echo "Redis: down"
    rabbit_ready && echo "RabbitMQ: up" || echo "RabbitMQ: down"
}

"${1:-start}"
