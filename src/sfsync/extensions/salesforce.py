"""A Salesforce REST client as a nameko dependency, configured from YAML.

Config (the password and token come from the environment through
``${SALESFORCE_PASSWORD}`` substitution, never from a file)::

    SALESFORCE:
      LOGIN_URL: https://login.salesforce.com
      USERNAME: sync@example.com
      PASSWORD: ${SALESFORCE_PASSWORD}
      SECURITY_TOKEN: ${SALESFORCE_SECURITY_TOKEN:}
      API_VERSION: "59.0"
      CA_FILE: ""            # a CA bundle to trust, e.g. the emulator's

One client serves every worker of the container, so a session expiry causes
one new login, not one per worker.
"""

from __future__ import annotations

from typing import Any

from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

from sfsync.salesforce.client import DEFAULT_API_VERSION, Credentials, SalesforceClient

__all__ = ["SALESFORCE_CONFIG_KEY", "SalesforceAPI", "client_from_config"]

SALESFORCE_CONFIG_KEY = "SALESFORCE"


def client_from_config(config: dict[str, Any]) -> SalesforceClient:
    """Build a client from the ``SALESFORCE`` section of a nameko config."""
    section = config[SALESFORCE_CONFIG_KEY]
    credentials = Credentials(
        login_url=section["LOGIN_URL"],
        username=section["USERNAME"],
        password=str(section.get("PASSWORD") or ""),
        security_token=str(section.get("SECURITY_TOKEN") or ""),
        consumer_key=str(section.get("CONSUMER_KEY") or ""),
        consumer_secret=str(section.get("CONSUMER_SECRET") or ""),
    )
    return SalesforceClient(
        credentials,
        api_version=str(section.get("API_VERSION") or DEFAULT_API_VERSION),
        ca_file=section.get("CA_FILE") or None,
        client_name=str(section.get("CLIENT_NAME") or "sfsync"),
    )


class SalesforceAPI(DependencyProvider):
    """Hands workers the container's shared ``SalesforceClient``."""

    client: SalesforceClient | None = None

    def setup(self) -> None:
        self.client = client_from_config(self.container.config)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx: WorkerContext) -> SalesforceClient:
        assert self.client is not None
        return self.client
