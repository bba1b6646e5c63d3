"""gcpenv - shared setup of the GCP Secret Manager integration tests (test_gcp*.py).

Every test gets its own strict fake Google (tests/fakes/gcp_fake.py: Secret Manager, the OAuth token endpoint,
STS, IAM Credentials and the metadata server on one TLS port of 127.0.0.1) with a PKI generated into the test's
temporary directory; the fake is stopped after the test's brokers. The backend's "endpoint" and "metadata_url"
are the fake's URL and "ca_file" its CA, which the backend uses for every request it makes; the credential
files' token_uri / token_url / impersonation URL point at the fake too.

The broker's environment is controlled per test (cloudenv.CloudTestCase): every GOOGLE_*, CLOUDSDK_* and GCE_*
variable of the test process is dropped, HOME is an empty directory of the test (no gcloud well-known file), and
a test adds only what it means (env={...}; a value None removes a variable).

One service account is registered for every test (self.sa: its key file's content, in self.sa_file). At
tearDown every value, private key, client secret, refresh token, subject token, JWT assertion and access token
the fake holds, issued or saw is registered as sensitive, so rstest fails the test if any shows in a broker's
stderr.

Standard library only (plus `cryptography`, which the fake needs for its keys and certificates).
"""

import json
import os
import sys

import cloudenv
import rstest
from cloudenv import compact, overlap  # noqa: F401  (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, os.pardir, "fakes")))
from gcp_fake import (CLOUD_PLATFORM, FakeGCP, SENSITIVE_FORM, crc32c,  # noqa: E402,F401
                      make_ca_and_cert)

BACKEND = "gcp"            # the backend's name in every test configuration
PROJECT_ID = "rs-test-project"
PROJECT_NUMBER = 738412205567
CRED_MSG = "gcp credentials: "
TOKEN_MSG = "gcp token for "
METADATA_IDENTITY = "the metadata server's default service account"


class GcpTestCase(cloudenv.CloudTestCase):
    """A CloudTestCase with a started FakeGCP in self.gcp and one service account.

    self.pki       {file name: path} of the generated PKI (ca.pem, other-ca.pem, ...)
    self.sa        the service account key file's content (a dict), written to self.sa_file
    self.email     its client_email
    self.home      the broker's HOME (empty unless a test writes the well-known file there)
    """

    ENV_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "GCE_")
    BACKEND = BACKEND
    FAKE_KW = {}

    def setUp(self):
        super().setUp()
        self.pki_dir = os.path.join(self.dir, "pki")
        self.pki = make_ca_and_cert(self.pki_dir)
        self.gcp = FakeGCP(tls_dir=self.pki_dir, project_id=PROJECT_ID, project_number=PROJECT_NUMBER,
                           **self.FAKE_KW)
        self.gcp.start()
        # Cleanups run after tearDown, i.e. after the brokers were stopped.
        self.addCleanup(self.gcp.stop)
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home, 0o700)
        self.sa = self.gcp.add_service_account()
        self.email = self.sa["client_email"]
        self.sa_file = self.write_cred("sa.json", self.sa)

    def tearDown(self):
        # every value, credential and token the fake knows or saw is as secret as a value
        try:
            for v in self.gcp.sensitive_values():
                self.sensitive(v)
                # the private key's PEM lines one by one (a log that cut the key at a newline)
                if v.startswith("-----BEGIN"):
                    for line in v.splitlines()[1:-1]:
                        self.sensitive(line)
            for e in self.gcp.requests():
                for k in SENSITIVE_FORM:
                    if e["form"] and e["form"].get(k):
                        self.sensitive(e["form"][k])
        finally:
            super().tearDown()

    # -- secrets and credentials in the fake

    def add_version(self, secret, data, **kw):
        """A new version of secret (its number returned); the value is registered as sensitive."""
        self.sensitive(data)
        return self.gcp.add_version(secret, data, **kw)

    def write_cred(self, name, content):
        """A credentials file (JSON of a dict) under the test directory, mode 0600."""
        return self.write_private(name, json.dumps(content, indent=2) + "\n")

    def external_account(self, name="external.json", impersonate=None, token_name="subject-token"):
        """A workload-identity credential: (file content, its path, the subject token, the token's path)."""
        subject = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzdGVzdCJ9." + rstest.random_value(24, "") + "." + \
            rstest.random_value(32, "")
        self.sensitive(subject)
        token_path = self.write_private(token_name, subject)
        content = self.gcp.add_external_account(subject, impersonate=impersonate, credential_file=token_path)
        return content, self.write_cred(name, content), subject, token_path

    @staticmethod
    def replace_file(path, content):
        cloudenv.replace_file(path, content)

    # -- configuration

    def gcp_backend(self, **kw):
        """The backend object: the fake's endpoint, metadata server and CA, the project, the service account's
        key file (kw overrides; a value None removes a key)."""
        b = {"type": "gcp", "endpoint": self.gcp.url, "ca_file": self.pki["ca.pem"], "project": PROJECT_ID,
             "credentials_file": self.sa_file, "metadata_url": self.gcp.metadata_url}
        return cloudenv.overlay(b, kw)

    def write_gcp_config(self, secrets, backend=None, defaults=None, extra_backends=None, path=None,
                         **backend_kw):
        return self.write_backend_config(secrets, backend if backend is not None else self.gcp_backend(**backend_kw),
                                         defaults=defaults, extra_backends=extra_backends, path=path)

    def base_env(self):
        return {"HOME": self.home}

    # -- the fake's log

    def sm_gets(self, secret=None):
        """Authenticated (a bearer token sent) Secret Manager requests, of `secret` if given."""
        return [e for e in self.gcp.requests("secretmanager")
                if e["token"] and (secret is None or e["secret"] == secret)]

    def token_requests(self, endpoint="token"):
        return self.gcp.requests(endpoint)

    def describe_requests(self, since_mono=0.0):
        """A redacted one-line-per-request summary, for failure messages."""
        return "\n".join("%.2f %s %s %s %s %s %s" % (e["mono"] - since_mono, e["endpoint"], e["method"], e["path"],
                                                     e["status"], e["error"] or "", e["fault"] or "")
                         for e in self.gcp.requests(redact=True) if e["mono"] >= since_mono)

    # -- the broker's log

    def cred_logs(self, broker, since=0):
        return self.prefixed_logs(broker, CRED_MSG, since)

    def wait_cred_log(self, broker, needle, since=0, timeout=rstest.LOG_TIMEOUT):
        """The "gcp credentials: ..." line naming needle (the source, the identity, where it came from)."""
        return self.wait_prefixed_log(broker, CRED_MSG, needle, since=since, timeout=timeout)[0]

    def token_logs(self, broker, since=0):
        return self.prefixed_logs(broker, TOKEN_MSG, since)
