"""vaultenv - shared setup of the Vault integration tests (test_vault*.py).

Every test gets its own strict fake Vault (tests/fakes/vault.py) on loopback,
over TLS with a PKI generated into the test's temporary directory; the fake is
stopped after the test's brokers (so a broker's shutdown revocations still
reach it). Helpers write token / JWT / secret-id files, build the "vault"
backend object of the configuration, and query the fake's request log.
Standard library only (plus `cryptography`, which the fake needs for its
certificates).
"""

import json
import os
import sys

import rstest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, os.pardir, "fakes")))
from vault import FakeVault, make_ca_and_cert  # noqa: E402,F401  (re-exported)

BACKEND = "vault"          # the backend's name in every test configuration


def compact(obj):
    """The compact JSON text of obj (what a whole-object reference serves)."""
    return json.dumps(obj, separators=(",", ":"))


class VaultTestCase(rstest.BrokerTestCase):
    """A BrokerTestCase with a started FakeVault in self.vault.

    self.pki       {file name: path} of the generated PKI (ca.pem, other-ca.pem, ...)
    self.token     a token (TTL 1h, renewable) also written to self.token_file
    """

    # Subclasses may override: FakeVault constructor arguments.
    FAKE_KW = {}

    def setUp(self):
        super().setUp()
        self.pki_dir = os.path.join(self.dir, "pki")
        self.pki = make_ca_and_cert(self.pki_dir)
        self.vault = FakeVault(tls_dir=self.pki_dir, **self.FAKE_KW)
        self.vault.start()
        # Cleanups run after tearDown, i.e. after the brokers were stopped.
        self.addCleanup(self.vault.stop)
        self.sensitive(self.vault.root_token)
        self.token = self.vault.add_token(ttl=3600, max_ttl=86400, policies=["app"],
                                          display_name="rstest")
        self.sensitive(self.token)
        self.token_file = self.write_private("token", self.token)

    def tearDown(self):
        # every token the fake issued or saw is as secret as a value
        try:
            for t in self.vault.tokens():
                self.sensitive(t["id"])
            for e in self.vault.requests():
                if e["token"]:
                    self.sensitive(e["token"])
        finally:
            super().tearDown()

    # -- configuration

    def token_auth(self, token_file=None):
        return {"method": "token", "token_file": token_file or self.token_file}

    def vault_backend(self, auth=None, **kw):
        """The backend object: TLS with the fake's CA, token auth unless told."""
        b = {"type": "vault", "address": self.vault.url, "ca_file": self.pki["ca.pem"],
             "auth": auth if auth is not None else self.token_auth()}
        b.update(kw)
        return b

    def write_vault_config(self, secrets, backend=None, defaults=None, extra_backends=None,
                           path=None, **backend_kw):
        backends = {BACKEND: backend if backend is not None else self.vault_backend(**backend_kw)}
        backends.update(extra_backends or {})
        return self.write_config(secrets, defaults=defaults, backends=backends, path=path)

    def put_secret(self, mount, path, data, namespace=""):
        """put_kv, registering every string value of data as sensitive."""
        for v in data.values():
            if isinstance(v, str):
                self.sensitive(v)
        return self.vault.put_kv(mount, path, data, namespace=namespace)

    # -- the fake's request log

    def gets(self, rel):
        """Recorded GET requests whose path (after /v1/) starts with rel."""
        return self.vault.requests(method="GET", prefix=rel)

    def logins(self, mount):
        """Recorded login requests to auth/<mount>/login (PUT or POST)."""
        p = "auth/%s/login" % mount
        return [e for e in self.vault.requests(prefix=p) if e["rel"] == p]

    def vault_requests(self):
        """Every recorded /v1 request."""
        return [e for e in self.vault.requests() if e["rel"] is not None]

