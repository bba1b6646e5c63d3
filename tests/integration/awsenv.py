"""awsenv - shared setup of the AWS Secrets Manager integration tests (test_aws*.py).

One moto server per test file (tests/fakes/aws_proxy.py's Moto: a subprocess on a free loopback port,
IAM authentication ON, so every request the broker signs is checked), started on first use and
stopped at exit. Every test gets its own fault-injecting recording proxy in front of it (AwsProxy),
which is what the broker's "endpoint" and "sts_endpoint" point at, and its own secret-name prefix, so
tests never see each other's secrets or requests.

The broker's environment is controlled per test: every AWS_* variable of the test process is dropped,
HOME is an empty directory of the test (no ~/.aws), instance metadata is disabled unless a test asks
for it, and the credentials are a dedicated IAM user's keys in AWS_ACCESS_KEY_ID/SECRET unless a test
passes its own env (a value None removes a variable).

What every provider's setup has is cloudenv's (CloudTestCase); this file holds AWS's part.

Standard library only, plus boto3 (which moto itself needs) for setting up secrets.
"""

import atexit
import base64
import os
import secrets as _random
import sys

import cloudenv
import rstest
from cloudenv import compact, patched_environ  # noqa: F401  (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, os.pardir, "fakes")))
import aws_proxy  # noqa: E402
from aws_proxy import AwsProxy, Moto, ROLE_ARN, REGION  # noqa: E402,F401  (re-exported)
from aws_creds_server import FakeCredsServer  # noqa: E402,F401  (re-exported)

BACKEND = "aws"            # the backend's name in every test configuration
CRED_MSG = "aws credentials from "

_MOTO = None
_BROKER_KEYS = None


def moto():
    """The file's moto server (started on first use) and the broker's IAM user keys."""
    global _MOTO, _BROKER_KEYS
    if _MOTO is None:
        log = os.path.join("/tmp", "rstest-moto-%d.log" % os.getpid())
        m = Moto(log_path=log)
        m.start()
        atexit.register(_stop_moto, m, log)
        _BROKER_KEYS = m.create_user("rs-broker")
        _MOTO = m
    return _MOTO


def broker_keys():
    moto()
    return dict(_BROKER_KEYS)


def _stop_moto(m, log):
    m.stop()
    try:
        os.unlink(log)
    except OSError:
        pass


class AwsTestCase(cloudenv.CloudTestCase):
    """A BrokerTestCase with moto (self.moto), a proxy (self.proxy), an admin Secrets Manager client
    (self.sm, direct to moto: not counted at the proxy) and a unique secret-name prefix."""

    ENV_PREFIXES = ("AWS_",)
    BACKEND = BACKEND

    def setUp(self):
        super().setUp()
        self.moto = moto()
        self.keys = broker_keys()
        self.sensitive(self.keys["SecretAccessKey"])
        self.sensitive(self.moto.admin["SecretAccessKey"])
        self.proxy = AwsProxy(self.moto).start()
        self.addCleanup(self.proxy.stop)
        self.sm = self.moto.sm()
        self.prefix = "t%s/" % _random.token_hex(4)
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home, 0o700)
        self.creds_servers = []

    def tearDown(self):
        # every credential that crossed the proxy or a fake is as secret as a value
        try:
            for e in self.proxy.requests():
                if e.get("security_token"):
                    self.sensitive(e["security_token"])
                if e.get("web_identity_token"):
                    self.sensitive(e["web_identity_token"])
            for s in self.creds_servers:
                for c in s.issued():
                    self.sensitive(c["SecretAccessKey"])
                    self.sensitive(c["SessionToken"])
        finally:
            super().tearDown()

    # -- secrets in moto

    def n(self, name):
        """The test's unique AWS name for a short name."""
        return self.prefix + name

    def create_secret(self, name, string=None, binary=None, region=REGION, sensitive=True):
        """Create self.n(name); returns the CreateSecret answer (ARN, Name, VersionId)."""
        sm = self.sm if region == REGION else self.moto.sm(region)
        kw = {"Name": self.n(name)}
        if binary is not None:
            kw["SecretBinary"] = binary
            if sensitive:
                self.sensitive(binary)
        else:
            kw["SecretString"] = string
            if sensitive:
                self.sensitive(string)
        return sm.create_secret(**kw)

    def put_value(self, name, string=None, binary=None, stages=None):
        kw = {"SecretId": self.n(name)}
        if binary is not None:
            kw["SecretBinary"] = binary
            self.sensitive(binary)
        else:
            kw["SecretString"] = string
            self.sensitive(string)
        if stages:
            kw["VersionStages"] = stages
        return self.sm.put_secret_value(**kw)

    def delete_secret(self, name, force=True):
        if force:
            return self.sm.delete_secret(SecretId=self.n(name), ForceDeleteWithoutRecovery=True)
        return self.sm.delete_secret(SecretId=self.n(name), RecoveryWindowInDays=7)

    # -- configuration and environment

    def aws_backend(self, **kw):
        return cloudenv.overlay({"type": "aws", "region": REGION, "endpoint": self.proxy.url,
                                 "sts_endpoint": self.proxy.url}, kw)

    def write_aws_config(self, secrets, backend=None, defaults=None, extra_backends=None,
                         path=None, **backend_kw):
        return self.write_backend_config(secrets, backend if backend is not None else self.aws_backend(**backend_kw),
                                         defaults=defaults, extra_backends=extra_backends, path=path)

    def key_env(self, keys=None, token=None):
        keys = keys or self.keys
        env = {"AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"]}
        tok = token or keys.get("SessionToken")
        if tok:
            env["AWS_SESSION_TOKEN"] = tok
        return env

    def base_env(self):
        return {"HOME": self.home, "AWS_EC2_METADATA_DISABLED": "true"}

    def broker_env(self, env=None, keys=True):
        """The broker's whole environment: ours minus AWS_*, HOME empty, IMDS disabled, the
        broker user's keys (unless keys=False or env supplies another source), then env."""
        return cloudenv.overlay(super().broker_env(self.key_env() if keys else None), env)

    def start_broker(self, config=None, mountpoint=None, wait=True, env=None, keys=True, **kw):
        return self.start_broker_in(self.broker_env(env, keys), config=config, mountpoint=mountpoint, wait=wait,
                                    **kw)

    def cli(self, *args, env=None, keys=True, timeout=rstest.CLI_TIMEOUT):
        return rstest.run_cli(*args, env=self.broker_env(env, keys), timeout=timeout)

    def creds_server(self, **kw):
        """A started FakeCredsServer handing out fresh moto AssumeRole credentials."""
        s = FakeCredsServer(creds_fn=lambda: self.moto.assume_role(session_name="rs-fake"), **kw)
        s.start()
        self.addCleanup(s.stop)
        self.creds_servers.append(s)
        return s

    # -- the proxy's log

    def sm_requests(self, op=None, **kw):
        """Answered Secrets Manager requests seen by the proxy (op: "GetSecretValue", ... or
        None); one still in flight is left out."""
        return [e for e in self.proxy.requests(target=op, **kw)
                if e["target"] and e["duration_ms"] is not None]

    def count(self, op, **kw):
        return len(self.sm_requests(op, **kw))

    def sts_requests(self, action=None):
        return [e for e in self.proxy.requests(action=action)
                if e["action"] and e["duration_ms"] is not None]

    # -- the broker's log

    def cred_logs(self, broker, since=0):
        return self.prefixed_logs(broker, CRED_MSG, since)

    def wait_cred_log(self, broker, source, since=0, count=1, timeout=rstest.LOG_TIMEOUT):
        """Wait for `count` "aws credentials from ..." lines naming `source` (a substring)."""
        return self.wait_prefixed_log(broker, CRED_MSG, source, since=since, count=count, timeout=timeout)


def b64(data):
    return base64.b64encode(data).decode()
