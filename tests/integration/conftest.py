"""Integration fixtures: real RabbitMQ, Redis and the emulator."""

from sfsync.testing.fixtures import (  # noqa: F401
    broker_uri,
    emulator,
    redis_uri,
    sales,
    service_config,
)
