"""The Salesforce client as a dependency: one logged-in client per container.

Run by tests/integration/test_docs_examples.py on the local Salesforce: the
test starts ``SERVICES`` with the ``SALESFORCE`` config and calls ``main``.
"""

from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from sfsync.extensions.salesforce import SalesforceAPI
from sfsync.salesforce.errors import InvalidRequest


class Directory:
    name = "directory"

    salesforce = SalesforceAPI()  # reads the SALESFORCE section of the config

    @rpc(expected_exceptions=InvalidRequest)
    def add(self, last_name, title):
        return self.salesforce.create(
            "Contact", {"LastName": last_name, "Title": title}
        )

    @rpc
    def title_of(self, contact_id):
        contact = self.salesforce.get("Contact", contact_id, ["Title"])
        return contact and contact["Title"]  # None once deleted


SERVICES = (Directory,)


def main(config, sales):
    with ClusterRpcProxy(config) as cluster:
        contact_id = cluster.directory.add("Lovelace", "Analyst")
        sales.update("Contact", contact_id, {"Title": "Countess"})
        return cluster.directory.title_of(contact_id)  # "Countess"
