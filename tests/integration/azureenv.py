"""azureenv - shared setup of the Azure Key Vault integration tests (test_azure*.py).

Every test gets its own strict fake Azure (tests/fakes/azure_fake.py: Key Vault, the Entra token endpoint and
IMDS on one TLS port of 127.0.0.1) with a PKI generated into the test's temporary directory; the fake is
stopped after the test's brokers. The fake is at an IP address, which has no parent domain for Key Vault's
challenge rule, so every backend names the resource the fake's challenge names in "challenge_resource"
(docs/config.md, azure: "The challenge").

The broker's environment is controlled per test: every AZURE_* variable of the test process is dropped and a
test adds only the ones it means (env={...}; a value None removes a variable).

One client-secret application is registered for every test (self.client_id, its secret in
self.secret_file); helpers register workload-identity applications and managed identities. At tearDown
every value, client secret, federated assertion and token the fake holds, issued or saw is registered as
sensitive, so rstest fails the test if any of them shows in a broker's stderr.

What every provider's setup has is cloudenv's (CloudTestCase); this file holds Azure's part.

Standard library only (plus `cryptography`, which the fake needs for its certificates).
"""

import os
import sys
import uuid

import cloudenv
import rstest
from cloudenv import compact, overlap, patched_environ  # noqa: F401  (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, os.pardir, "fakes")))
from azure_fake import FakeAzure, IMDS_PATH, VAULT_RESOURCE, make_ca_and_cert  # noqa: E402,F401

BACKEND = "kv"             # the backend's name in every test configuration
VAULT_SCOPE = VAULT_RESOURCE + "/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AZURE_VARS = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
              "AZURE_AUTHORITY_HOST")
DEFAULT_MSG = "azure default credential: "


def new_client_id():
    return str(uuid.uuid4())


class AzureTestCase(cloudenv.CloudTestCase):
    """A BrokerTestCase with a started FakeAzure in self.azure and one client-secret application.

    self.pki          {file name: path} of the generated PKI (ca.pem, other-ca.pem, ...)
    self.tenant       the fake's (the vault's) tenant id
    self.client_id    a client-secret application, its secret self.client_secret in self.secret_file
    """

    FAKE_KW = {}
    ENV_PREFIXES = ("AZURE_",)
    BACKEND = BACKEND

    def setUp(self):
        super().setUp()
        self.pki_dir = os.path.join(self.dir, "pki")
        self.pki = make_ca_and_cert(self.pki_dir)
        self.azure = FakeAzure(tls_dir=self.pki_dir, **self.FAKE_KW)
        self.azure.start()
        self.fakes = [self.azure]
        # Cleanups run after tearDown, i.e. after the brokers were stopped.
        self.addCleanup(self.azure.stop)
        self.tenant = self.azure.tenant_id
        self.client_id = new_client_id()
        self.client_secret = rstest.random_value(20, "cs~")
        self.azure.add_client_secret_app(None, self.client_id, self.client_secret)
        self.secret_file = self.write_private("client-secret", self.client_secret + "\n")

    def tearDown(self):
        # every value, credential and token the fakes know is as secret as a value
        try:
            for f in self.fakes:
                for v in f.sensitive_values():
                    self.sensitive(v)
                for e in f.requests():
                    for k in ("client_secret", "client_assertion"):
                        if e["form"] and e["form"].get(k):
                            self.sensitive(e["form"][k])
        finally:
            super().tearDown()

    def second_fake(self, name="pki-b"):
        """Another FakeAzure with its own PKI (an unrelated CA), stopped after the brokers."""
        d = os.path.join(self.dir, name)
        pki = make_ca_and_cert(d)
        f = FakeAzure(tls_dir=d, tenant_id=self.tenant).start()
        self.fakes.append(f)
        self.addCleanup(f.stop)
        return f, pki

    # -- identities and secrets in the fake

    def set_secret(self, name, value, **kw):
        """A new version of secret name (its id returned); the value is registered as sensitive."""
        self.sensitive(value)
        return self.azure.set_secret(name, value, **kw)

    def add_federated(self, client_id=None, assertion=None, name="federated-token"):
        """A workload-identity application accepting `assertion` (random when None), written to a
        file under the test directory. Returns (client_id, assertion, path)."""
        client_id = client_id or new_client_id()
        assertion = assertion or self.new_assertion()
        self.azure.add_federated_app(None, client_id, assertion)
        return client_id, assertion, self.write_private(name, assertion)

    def new_assertion(self):
        """A JWT-shaped federated token (the fake compares it as an opaque string)."""
        a = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzdGVzdCJ9." + rstest.random_value(24, "") + "." + \
            rstest.random_value(32, "")
        self.sensitive(a)
        return a

    @staticmethod
    def replace_file(path, content):
        cloudenv.replace_file(path, content)

    # -- configuration

    def client_secret_auth(self, **kw):
        a = {"method": "client_secret", "tenant_id": self.tenant, "client_id": self.client_id,
             "client_secret_file": self.secret_file, "authority_host": self.azure.authority_host}
        return self._drop_none(a, kw)

    def workload_auth(self, client_id, token_file, **kw):
        a = {"method": "workload_identity", "tenant_id": self.tenant, "client_id": client_id,
             "federated_token_file": token_file, "authority_host": self.azure.authority_host}
        return self._drop_none(a, kw)

    def managed_auth(self, client_id=None, **kw):
        a = {"method": "managed_identity", "imds_endpoint": self.azure.imds_endpoint}
        if client_id:
            a["client_id"] = client_id
        return self._drop_none(a, kw)

    def default_auth(self, **kw):
        return self._drop_none({"method": "default", "imds_endpoint": self.azure.imds_endpoint}, kw)

    _drop_none = staticmethod(cloudenv.overlay)

    def kv_backend(self, auth=None, **kw):
        """The backend object: the fake's vault, its CA, the challenge resource it names; client-secret
        auth unless told."""
        b = {"type": "azure", "vault_url": self.azure.vault_url, "ca_file": self.pki["ca.pem"],
             "challenge_resource": VAULT_RESOURCE,
             "auth": auth if auth is not None else self.client_secret_auth()}
        return self._drop_none(b, kw)

    def write_azure_config(self, secrets, backend=None, defaults=None, extra_backends=None, path=None,
                           **backend_kw):
        return self.write_backend_config(secrets, backend if backend is not None else self.kv_backend(**backend_kw),
                                         defaults=defaults, extra_backends=extra_backends, path=path)

    # -- the fake's log

    def vault_gets(self, name=None, fake=None):
        """Authenticated (a bearer token sent) Key Vault requests, of secret `name` if given."""
        return [e for e in (fake or self.azure).requests("vault")
                if e["token"] and (name is None or (e["secret"] or "").lower() == name.lower())]

    def challenges(self, fake=None):
        """Key Vault requests sent without a token (the challenge requests)."""
        return [e for e in (fake or self.azure).requests("vault") if not e["token"]]

    def token_requests(self, fake=None):
        return (fake or self.azure).requests("token")

    def imds_requests(self, fake=None):
        return (fake or self.azure).requests("imds")

    def describe_requests(self, since_mono=0.0, fake=None):
        """A redacted one-line-per-request summary, for failure messages."""
        return ["%.2f %s %s %s %s %s" % (e["mono"] - since_mono, e["endpoint"], e["method"], e["path"],
                                         e["status"], e["error"] or "")
                for e in (fake or self.azure).requests(redact=True) if e["mono"] >= since_mono]

    # -- the broker's log

    def default_logs(self, broker, since=0):
        return self.prefixed_logs(broker, DEFAULT_MSG, since)
