"""Integration fixtures: real RabbitMQ, Redis and the emulator."""

from sfsync.testing.fixtures import (  # noqa: F401
    broker_uri,
    emulator,
    platform,
    redis_uri,
    sales,
    service_config,
    start_sync_services,
)
