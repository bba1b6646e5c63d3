"""Vault backend, KV engines: KV v2 and v1 through the mount, #field, whole-object
JSON, ?version pinning, kv_versions overrides, nested mount paths, rotation,
removal (404 and soft-deleted versions), request headers, namespaces, and
`check --fetch`. Runs against tests/fakes/vault.py over TLS."""

import errno
import json
import os
import time

import rstest
import vaultenv
from vaultenv import compact


class KVTest(vaultenv.VaultTestCase):

    def setUp(self):
        super().setUp()
        v = self.vault
        v.add_kv_mount("secret", version=2)
        v.add_kv_mount("kv", version=1)
        v.add_kv_mount("team/kv", version=2)
        self.user = rstest.random_value(8, "user-")
        self.pw = rstest.random_value(16, "pw-")
        self.app = {"user": self.user, "password": self.pw, "port": 5432,
                    "opts": {"tls": True, "hosts": ["a", "b"]}}
        self.put_secret("secret", "app", self.app)
        self.legacy_pw = rstest.random_value(16, "legacy-")
        self.put_secret("kv", "legacy", {"password": self.legacy_pw, "n": 1})
        self.deep = rstest.random_value(16, "deep-")
        self.put_secret("team/kv", "deep/x", {"k": self.deep})

    def test_kv2_field_whole_object_and_listing(self):
        self.write_vault_config({
            "app/password": "vault:secret/app#password",
            "app/user": {"from": "vault:secret/app#user", "mode": "0440"},
            "app/port": "vault:secret/app#port",
            "app/opts": "vault:secret/app#opts",
            "app/hosts0": "vault:secret/app#/opts/hosts/0",
            "app/all": "vault:secret/app",
        })
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (6, 0), rec)
        self.assertEqual(self.read("app", "password"), self.pw.encode())
        self.assertEqual(self.read("app", "user"), self.user.encode())
        self.assertEqual(os.stat(self.mpath("app", "user")).st_mode & 0o777, 0o440)
        self.assertEqual(self.read("app", "port"), b"5432")
        self.assertEqual(json.loads(self.read("app", "opts")), self.app["opts"])
        self.assertEqual(self.read("app", "hosts0"), b"a")
        whole = self.read("app", "all")
        # KV v2: the whole object is data.data (not the envelope, not metadata), compact
        self.assertEqual(json.loads(whole), self.app)
        self.assertNotIn(b"metadata", whole)
        self.assertNotIn(b"\n", whole)
        self.assertEqual(len(whole), len(compact(self.app)), "not compact JSON: %r" % whole[:60])
        self.assertEqual(sorted(os.listdir(self.mpath("app"))),
                         ["all", "hosts0", "opts", "password", "port", "user"])
        # all six secrets of one path: the fake saw KV v2 reads only
        for e in self.gets("secret/"):
            self.assertEqual(e["rel"], "secret/data/app", e["rel"])
            self.assertEqual(e["status"], 200)
        self.assertEqual(self.gets("secret/app"), [], "read the KV v1 path of a v2 mount")
        # the mount's version was detected through sys/internal/ui/mounts
        self.assertTrue(self.gets("sys/internal/ui/mounts/secret"),
                        "no GET sys/internal/ui/mounts/secret...: %r"
                        % [e["rel"] for e in self.vault_requests()])

    def test_kv1_mount(self):
        self.write_vault_config({"legacy": "vault:kv/legacy#password",
                                 "legacy_all": "vault:kv/legacy"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("legacy"), self.legacy_pw.encode())
        self.assertEqual(json.loads(self.read("legacy_all")),
                         {"password": self.legacy_pw, "n": 1})
        rels = {e["rel"] for e in self.gets("kv/")}
        self.assertEqual(rels, {"kv/legacy"}, "KV v1 read at the wrong path")
        # rotation on v1 (overwrite)
        new = rstest.random_value(16, "legacy2-")
        self.sensitive(new)
        mark = b.mark()
        self.vault.put_kv("kv", "legacy", {"password": new, "n": 2})
        b.wait_log("secret rotated", since=mark, secret="legacy")
        self.assertEqual(self.read("legacy"), new.encode())

    def test_nested_mount_path(self):
        self.write_vault_config({"deep": "vault:team/kv/deep/x#k"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("deep"), self.deep.encode())
        self.assertEqual({e["rel"] for e in self.gets("team/")}, {"team/kv/data/deep/x"})

    def test_version_pinned(self):
        v1 = self.pw
        v2 = rstest.random_value(16, "pw2-")
        self.assertEqual(self.put_secret("secret", "app", dict(self.app, password=v2)), 2)
        self.write_vault_config({"pinned": "vault:secret/app?version=1#password",
                                 "latest": "vault:secret/app#password"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pinned"), v1.encode())
        self.assertEqual(self.read("latest"), v2.encode())
        pinned = [e for e in self.gets("secret/data/app") if e["query"].get("version")]
        self.assertTrue(pinned, "no request carried ?version=")
        self.assertEqual({tuple(e["query"]["version"]) for e in pinned}, {("1",)})
        # a rotation moves "latest" only
        v3 = rstest.random_value(16, "pw3-")
        mark = b.mark()
        self.put_secret("secret", "app", dict(self.app, password=v3))
        b.wait_log("secret rotated", since=mark, secret="latest")
        self.assertEqual(self.read("latest"), v3.encode())
        time.sleep(1.2)
        self.assertEqual(self.read("pinned"), v1.encode())
        self.assertNoLog(b, "secret rotated", since=mark, secret="pinned")

    def test_kv_versions_override_skips_detection(self):
        # the token may not read sys/internal/ui/mounts: detection would fail
        self.vault.force_status("sys/internal/ui/mounts", 403,
                                body={"errors": ["permission denied"]})
        self.write_vault_config({"pw": "vault:secret/app#password",
                                 "legacy": "vault:kv/legacy#password",
                                 "deep": "vault:team/kv/deep/x#k"},
                                kv_versions={"secret": 2, "kv": 1, "team/kv": 2})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertEqual(self.read("legacy"), self.legacy_pw.encode())
        self.assertEqual(self.read("deep"), self.deep.encode())
        self.assertEqual(self.gets("sys/internal/ui/mounts"), [],
                         "mount version detected although kv_versions gives it")

    def test_rotation_visible_within_a_few_refreshes(self):
        self.write_vault_config({"pw": "vault:secret/app#password", "all": "vault:secret/app"})
        b = self.start_broker()
        path = self.mpath("pw")
        ino = os.stat(path).st_ino
        for i in range(2):
            new = rstest.random_value(16, "rot%d-" % i)
            newdoc = dict(self.app, password=new)
            mark = b.mark()
            t0 = time.monotonic()
            self.put_secret("secret", "app", newdoc)
            b.wait_log("secret rotated", since=mark, secret="pw", timeout=5)
            self.assertLess(time.monotonic() - t0, 3.5, "rotation took more than ~3 refreshes")
            self.assertEqual(self.read("pw"), new.encode())
            self.wait_value(compact(newdoc), "all", timeout=3)
            self.assertEqual(os.stat(path).st_ino, ino)
            self.assertEqual(os.stat(path).st_size, len(new))

    def test_404_removes_and_return_restores(self):
        self.put_secret("secret", "gone", {"v": rstest.random_value(16, "gone-")})
        self.write_vault_config({"gone": "vault:secret/gone#v", "pw": "vault:secret/app#password"})
        b = self.start_broker()
        self.assertTrue(self.read("gone"))
        mark = b.mark()
        self.vault.delete_kv_metadata("secret", "gone")
        b.wait_log("secret removed", since=mark, secret="gone")
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("gone"))
        self.assertErrno(errno.ENOENT, os.open, self.mpath("gone"), os.O_RDONLY)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["pw"])
        self.assertEqual(self.read("pw"), self.pw.encode())
        back = rstest.random_value(16, "back-")
        self.put_secret("secret", "gone", {"v": back})
        self.wait_value(back, "gone")
        self.assertIn("gone", os.listdir(self.mnt))

    def test_soft_deleted_and_destroyed_versions_remove(self):
        self.put_secret("secret", "soft", {"v": rstest.random_value(16, "soft-")})
        self.put_secret("secret", "hard", {"v": rstest.random_value(16, "hard-")})
        self.write_vault_config({"soft": "vault:secret/soft#v", "hard": "vault:secret/hard#v"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        self.vault.delete_kv("secret", "soft")        # 404 with data null, metadata
        self.vault.destroy_kv("secret", "hard")
        b.wait_log("secret removed", since=mark, secret="soft")
        b.wait_log("secret removed", since=mark, secret="hard")
        self.assertEqual(os.listdir(self.mnt), [])
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)

    def test_missing_at_start_not_listed(self):
        self.write_vault_config({"pw": "vault:secret/app#password",
                                 "nope": "vault:secret/nope#x",
                                 "nofield": "vault:secret/app#nofield"})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 2), rec)
        for name in ("nope", "nofield"):
            r = b.wait_log("fetch failed", secret=name)
            self.assertEqual(r.get("backend"), vaultenv.BACKEND, r)
            self.assertTrue(r.get("error"), r)
            self.assertErrno(errno.ENOENT, os.stat, self.mpath(name))
        self.assertEqual(os.listdir(self.mnt), ["pw"])
        later = rstest.random_value(16, "later-")
        self.put_secret("secret", "nope", {"x": later})
        self.wait_value(later, "nope")

    def test_request_headers(self):
        self.write_vault_config({"pw": "vault:secret/app#password", "old": "vault:kv/legacy"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        reqs = self.vault_requests()
        self.assertTrue(reqs)
        for e in reqs:
            self.assertEqual(e["x_vault_request"], "true",
                             "%s %s without X-Vault-Request: true" % (e["method"], e["rel"]))
            self.assertIsNone(e["namespace"], "namespace header sent although none configured")
            if not e["rel"].startswith(("sys/health", "sys/seal-status")):
                self.assertEqual(e["headers"].get("x-vault-token"), self.token,
                                 "%s %s without the token" % (e["method"], e["rel"]))
        # a Vault Proxy with require_request_header answers 412 without it
        self.vault.set_require_request_header(True)
        mark = b.mark()
        new = rstest.random_value(16, "hdr-")
        self.put_secret("secret", "app", dict(self.app, password=new))
        b.wait_log("secret rotated", since=mark, secret="pw")

    def test_token_file_wins_over_env(self):
        bogus = "hvs." + "x" * 24
        self.write_vault_config({"pw": "vault:secret/app#password"})
        os.environ["VAULT_TOKEN"] = bogus
        try:
            b = self.start_broker()
        finally:
            del os.environ["VAULT_TOKEN"]
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertNotIn(bogus, {e["token"] for e in self.vault_requests()})

    def test_token_from_env_without_token_file(self):
        self.write_vault_config({"pw": "vault:secret/app#password"}, auth={"method": "token"})
        os.environ["VAULT_TOKEN"] = self.token
        try:
            b = self.start_broker()
        finally:
            del os.environ["VAULT_TOKEN"]
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_check_fetch(self):
        self.write_vault_config({"pw": "vault:secret/app#password", "old": "vault:kv/legacy"})
        r = rstest.run_cli("check", "--config", self.config_path, "--fetch")
        out, err = r.stdout.decode(), r.stderr.decode()
        self.assertEqual(r.returncode, 0, out + err)
        rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.strip()}
        self.assertEqual(rows["pw"][1:], [vaultenv.BACKEND, "ok"], out)
        self.assertEqual(rows["old"][1:], [vaultenv.BACKEND, "ok"], out)
        for v in (self.pw, self.legacy_pw, self.token):
            self.assertNotIn(v, out + err)
        # one missing secret: exit 1 with an error line for it only
        self.write_vault_config({"pw": "vault:secret/app#password", "nope": "vault:secret/nope"})
        r = rstest.run_cli("check", "--config", self.config_path, "--fetch")
        out, err = r.stdout.decode(), r.stderr.decode()
        self.assertEqual(r.returncode, 1, out + err)
        rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
        self.assertIn("error: ", rows["nope"], out)
        self.assertTrue(rows["pw"].rstrip().endswith("ok"), out)


class NamespaceTest(vaultenv.VaultTestCase):

    def setUp(self):
        super().setUp()
        v = self.vault
        v.add_namespace("team-a")
        v.add_kv_mount("secret", version=2)
        v.add_kv_mount("secret", version=2, namespace="team-a")
        self.root_value = rstest.random_value(16, "rootns-")
        self.ns_value = rstest.random_value(16, "team-a-")
        self.put_secret("secret", "app", {"pw": self.root_value})
        self.put_secret("secret", "app", {"pw": self.ns_value}, namespace="team-a")

    def _check_ns_requests(self):
        reqs = self.vault_requests()
        self.assertTrue(reqs)
        for e in reqs:
            self.assertIsNotNone(e["namespace"], "%s %s without X-Vault-Namespace"
                                 % (e["method"], e["rel"]))
            self.assertEqual(e["namespace"].strip("/"), "team-a", e["namespace"])
            self.assertFalse(e["rel"].startswith("team-a/"),
                             "namespace both in the header and the path: %s" % e["rel"])

    def test_namespace_header_selects_the_namespace(self):
        self.write_vault_config({"pw": "vault:secret/app#pw"}, namespace="team-a")
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pw"), self.ns_value.encode(),
                         "served the root namespace's secret")
        self._check_ns_requests()

    def test_namespaced_approle_login(self):
        sid = rstest.random_value(16, "sid-")
        self.sensitive(sid)
        self.vault.add_approle("app", "rid-team-a", sid, namespace="team-a")
        self.write_vault_config(
            {"pw": "vault:secret/app#pw"}, namespace="team-a",
            auth={"method": "approle", "role_id": "rid-team-a",
                  "secret_id_file": self.write_private("sid", sid)})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pw"), self.ns_value.encode())
        self.assertEqual(len(self.logins("approle")), 1)
        self._check_ns_requests()


if __name__ == "__main__":
    rstest.main()
