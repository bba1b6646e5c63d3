"""GCP Secret Manager backend, serving: every reference form (SECRET, ?version=N, projects/P/secrets/S with the
project id or number, /versions/V, regional projects/P/locations/L/...), #field and #/pointer, binary values
byte for byte; latest refreshed without change (no rotation, the file untouched), rotation, version pins;
deletion (the file disappears, and comes back); a disabled version (stale until max_stale, then EIO, one clear
error line; enabled again: recovered); a parallel cold start with one token; references the configuration
check refuses. Runs against tests/fakes/gcp_fake.py over TLS."""

import errno
import os
import time

import gcpenv
import rstest
from gcpenv import PROJECT_ID, PROJECT_NUMBER, compact

REGION = "europe-west1"


def sm_path(secret, version, project=PROJECT_ID, location=None):
    loc = "/locations/%s" % location if location else ""
    return "/v1/projects/%s%s/secrets/%s/versions/%s:access" % (project, loc, secret, version)


class ServeTest(gcpenv.GcpTestCase):

    def test_reference_forms_fields_and_requests(self):
        plain = rstest.random_value(16, "db-pw-")
        user, pw = rstest.random_value(8, "user-"), rstest.random_value(16, "pw-")
        doc = {"user": user, "password": pw, "port": 5432, "opts": {"tls": True, "hosts": ["h-a", "h-b"]}}
        binary = b"\x00\x01\xff\xfe" + os.urandom(32) + b"\x00"
        regional = rstest.random_value(16, "reg-")
        v1 = self.add_version("db-password", plain)
        self.add_version("app-config", compact(doc))
        self.add_version("blob", binary)
        self.add_version("reg", regional, location=REGION)
        self.write_gcp_config({
            "db/password": "gcp:db-password",
            "pinned": "gcp:db-password?version=%d" % v1,
            "full": "gcp:projects/%s/secrets/db-password" % PROJECT_ID,
            "full-num": "gcp:projects/%d/secrets/db-password/versions/%d" % (PROJECT_NUMBER, v1),
            "full-latest": "gcp:projects/%s/secrets/db-password/versions/latest" % PROJECT_ID,
            "app/user": {"from": "gcp:app-config#user", "mode": "0440"},
            "app/port": "gcp:app-config#port",
            "app/host1": "gcp:app-config#/opts/hosts/1",
            "app/all": "gcp:app-config",
            "blob": "gcp:blob",
            "regional": "gcp:projects/%s/locations/%s/secrets/reg" % (PROJECT_ID, REGION),
        })
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (11, 0), rec)
        for name in ("db/password", "pinned", "full", "full-num", "full-latest"):
            self.assertEqual(self.read(*name.split("/")), plain.encode(), name)
        self.assertEqual(self.read("app", "user"), user.encode())
        self.assertEqual(self.read("app", "port"), b"5432")
        self.assertEqual(self.read("app", "host1"), b"h-b")
        self.assertEqual(self.read("app", "all"), compact(doc).encode())
        self.assertEqual(self.read("blob"), binary)
        self.assertEqual(os.stat(self.mpath("blob")).st_size, len(binary))
        self.assertEqual(self.read("regional"), regional.encode())
        self.assertEqual(os.stat(self.mpath("app", "user")).st_mode & 0o777, 0o440)

        # the credential source, named without a secret
        line = self.wait_cred_log(b, self.email)["msg"]
        for part in ("service account", self.email, "from credentials_file", self.sa_file):
            self.assertIn(part, line)
        # one jwt-bearer token request, then every access with that token
        [login] = self.token_requests()
        self.assertEqual((login["method"], login["status"], login["grant_type"]),
                         ("POST", 200, "urn:ietf:params:oauth:grant-type:jwt-bearer"))
        self.assertEqual(login["identity"], self.email)
        [tok] = self.gcp.tokens()
        self.assertEqual((tok["identity"], tok["scopes"]), (self.email, [gcpenv.CLOUD_PLATFORM]))
        gets = self.sm_gets()
        paths = set()
        for e in gets:
            self.assertEqual((e["method"], e["status"], e["token"]), ("GET", 200, tok["value"]), e["path"])
            paths.add(e["path"])
        self.assertEqual(paths, {
            sm_path("db-password", "latest"), sm_path("db-password", v1),
            sm_path("db-password", v1, project=PROJECT_NUMBER),
            sm_path("app-config", "latest"), sm_path("blob", "latest"),
            sm_path("reg", "latest", location=REGION)})
        self.assertEqual(len(self.token_logs(b)), 1, self.token_logs(b))
        self.assertNotIn(b"Bearer", b.stderr())
        self.assertNotIn(b"ya29.", b.stderr())

    def test_latest_unchanged_then_rotation_pin_stays(self):
        v1 = rstest.random_value(16, "rot1-")
        n1 = self.add_version("rot", v1)
        self.write_gcp_config({"rot": "gcp:rot", "pinned": "gcp:rot?version=%d" % n1})
        b = self.start_broker(log_level="debug")
        self.assertEqual(self.cold_start(b)["failed"], 0)
        path = self.mpath("rot")
        ino, mtime = os.stat(path).st_ino, os.stat(path).st_mtime_ns
        # the refreshes of latest answer the same version name: unchanged, nothing re-sealed
        n = len(self.sm_gets("rot"))
        rstest.wait_until(lambda: len(b.find_logs("secret unchanged", secret="rot")) >= 2, 5,
                          "two unchanged refreshes of latest")
        self.assertGreaterEqual(len(self.sm_gets("rot")), n + 2)
        self.assertEqual(os.stat(path).st_mtime_ns, mtime)
        self.assertNoLog(b, "secret rotated")
        self.assertEqual(self.read("rot"), v1.encode())
        # a new version: served at the next refresh, in the same inode; the pin stays
        for i in range(2):
            new = rstest.random_value(16, "rot%d-" % (i + 2))
            mark = b.mark()
            t0 = time.monotonic()
            self.add_version("rot", new)
            b.wait_log("secret rotated", since=mark, secret="rot", timeout=5)
            self.assertLess(time.monotonic() - t0, 3.5, "rotation took more than ~3 refreshes")
            self.assertEqual(self.read("rot"), new.encode())
            self.assertEqual(os.stat(path).st_ino, ino)
        rstest.wait_until(lambda: b.find_logs("secret unchanged", since=mark, secret="rot"), 4,
                          "unchanged again after the rotation")
        self.assertEqual(self.read("pinned"), v1.encode())
        self.assertNoLog(b, "secret rotated", secret="pinned")
        self.assertTrue(all(e["path"] == sm_path("rot", n1) for e in self.sm_gets("rot")
                            if e["version"] == n1 and "latest" not in e["path"]))
        self.assertNoLog(b, "refresh failed, serving stale value")

    def test_version_pin_and_missing_version(self):
        a, bv = rstest.random_value(16, "pin-a-"), rstest.random_value(16, "pin-b-")
        n1 = self.add_version("pin", a)
        self.add_version("pin", bv)
        self.write_gcp_config({"pinned": "gcp:pin?version=%d" % n1, "latest": "gcp:pin",
                               "nosuch": "gcp:pin?version=99", "nosecret": "gcp:no-such-secret"})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (2, 2), rec)
        self.assertEqual(self.read("pinned"), a.encode())
        self.assertEqual(self.read("latest"), bv.encode())
        f = b.wait_log("fetch failed", secret="nosuch")
        self.assertIn("secret 'pin' version 99: not found (HTTP 404 NOT_FOUND", f.get("error", ""), f)
        f = b.wait_log("fetch failed", secret="nosecret")
        self.assertIn("secret 'no-such-secret': not found (HTTP 404 NOT_FOUND", f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("nosuch"))
        self.assertEqual(sorted(os.listdir(self.mnt)), ["latest", "pinned"])
        pinned = [e for e in self.sm_gets("pin") if e["path"] == sm_path("pin", n1)]
        self.assertTrue(pinned and all(e["status"] == 200 for e in pinned), pinned)

    def test_deletion_removes_and_return_restores(self):
        gone, stay = rstest.random_value(16, "gone-"), rstest.random_value(16, "stay-")
        self.add_version("gone", compact({"k": gone}))
        self.add_version("stay", stay)
        self.write_gcp_config({"gone": "gcp:gone", "gone-field": "gcp:gone#k", "stay": "gcp:stay"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("gone-field"), gone.encode())
        mark = b.mark()
        t0 = time.monotonic()
        self.gcp.delete_secret("gone")
        b.wait_log("secret removed", since=mark, secret="gone")
        b.wait_log("secret removed", since=mark, secret="gone-field")
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("gone"))
        self.assertErrno(errno.ENOENT, os.open, self.mpath("gone-field"), os.O_RDONLY)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["stay"])
        self.assertEqual(self.read("stay"), stay.encode())
        nf = [e for e in self.sm_gets("gone") if e["mono"] > t0]
        self.assertTrue(nf and all((e["status"], e["error"]) == (404, "NOT_FOUND") for e in nf), nf)
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark, secret="gone")
        back = rstest.random_value(16, "back-")
        self.add_version("gone", compact({"k": back}))
        self.wait_value(back, "gone-field")
        self.assertEqual(sorted(os.listdir(self.mnt)), ["gone", "gone-field", "stay"])


class DisabledTest(gcpenv.GcpTestCase):
    MAX_STALE = 4

    def test_disabled_version_stale_then_eio_then_enabled(self):
        v = rstest.random_value(16, "dis-")
        n = self.add_version("dis", v)
        self.add_version("dis-start", rstest.random_value(16, "dis-start-"))
        self.gcp.disable_version("dis-start", 1)
        self.write_gcp_config({"dis": "gcp:dis", "dis-start": "gcp:dis-start"},
                              defaults={"refresh": "1s", "max_stale": "%ds" % self.MAX_STALE})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 1), rec)
        # disabled from the start: never served, the error says why in Google's words
        f = b.wait_log("fetch failed", secret="dis-start")
        self.assertIn("secret 'dis-start' is not accessible (HTTP 400 FAILED_PRECONDITION: Secret Version "
                      "[projects/%d/secrets/dis-start/versions/1] is in DISABLED state.)" % PROJECT_NUMBER,
                      f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("dis-start"))
        # disabled while served: stale until max_stale after the last good answer, then EIO
        mark = b.mark()
        self.gcp.disable_version("dis", n)
        t_disable = time.monotonic()
        last_ok = max(e["mono"] + e["duration_ms"] / 1000.0 for e in self.sm_gets("dis") if e["status"] == 200)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="dis")
        err = f.get("error", "")
        self.assertIn("secret 'dis' is not accessible (HTTP 400 FAILED_PRECONDITION", err, f)
        self.assertIn("is in DISABLED state.", err, f)
        self.assertNotIn("\n", err)
        self.assertEqual(f.get("backend"), gcpenv.BACKEND)
        self.assertFailsClosed("dis", v.encode(), last_ok, self.MAX_STALE)
        b.wait_log("secret expired, failing closed", since=mark, secret="dis")
        refused = [e for e in self.sm_gets("dis") if e["mono"] > t_disable]
        self.assertTrue(refused)
        self.assertTrue(all((e["status"], e["error"]) == (400, "FAILED_PRECONDITION") for e in refused))
        # not a token problem: one token for all of it
        self.assertEqual(len(self.token_requests()), 1)
        # enabled again: served again
        self.gcp.enable_version("dis", n)
        b.wait_log("secret recovered", since=mark, secret="dis", timeout=5)
        self.assertEqual(self.read("dis"), v.encode())
        self.assertNoLog(b, "secret removed")


class ParallelTest(gcpenv.GcpTestCase):

    def test_cold_start_of_many_secrets_in_parallel_one_token(self):
        self.assertParallelColdStart(
            add=self.add_version,
            delay=lambda s: self.gcp.fault_delay("secretmanager", s) if s else self.gcp.clear_faults(),
            write_config=self.write_gcp_config, ref=lambda name: "gcp:" + name, gets=self.sm_gets)
        self.assertEqual(len(self.token_requests()), 1, "one token request for the whole cold start")


class ConfigTest(gcpenv.GcpTestCase):

    def check(self, secrets, **backend_kw):
        self.write_gcp_config(secrets, **backend_kw)
        r = self.cli("check", "--config", self.config_path)
        return r.returncode, r.stdout.decode() + r.stderr.decode()

    def test_bad_references_and_missing_project_refused(self):
        for ref, needle in (("gcp:bad.name", "bad.name"),
                            ("gcp:" + "x" * 256, "x" * 40),
                            ("gcp:ok?version=0", "version"),
                            ("gcp:ok?version=first", "version"),
                            ("gcp:projects/Bad_Project/secrets/ok", "Bad_Project"),
                            ("gcp:projects/%s/secrets/ok/versions/-1" % PROJECT_ID, "-1")):
            rc, out = self.check({"s": ref})
            self.assertNotEqual(rc, 0, "%s accepted:\n%s" % (ref, out))
            self.assertIn(needle, out, ref)
        # no project anywhere (none configured, a key file without project_id): the secret is named
        sa = dict(self.sa)
        del sa["project_id"]
        path = self.write_cred("sa-noproject.json", sa)
        rc, out = self.check({"s": "gcp:lonely"}, project=None, credentials_file=path)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("gcp secret 'lonely' names no project", out)
        # ... which a full name does not need
        rc, out = self.check({"s": "gcp:projects/%s/secrets/lonely" % PROJECT_ID}, project=None,
                             credentials_file=path)
        self.assertEqual(rc, 0, out)
        # the key file's project_id is the default project
        rc, out = self.check({"s": "gcp:lonely"}, project=None)
        self.assertEqual(rc, 0, out)
        # a plain-http endpoint would carry the bearer token in clear
        rc, out = self.check({"s": "gcp:ok"}, endpoint=self.gcp.url.replace("https:", "http:"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("endpoint", out)


if __name__ == "__main__":
    rstest.main()
