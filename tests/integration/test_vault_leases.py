"""Vault backend, dynamic secrets and leases (database/creds on the fake):
renewable leases renewed at ~2/3 of their duration without new credentials;
non-renewable ones re-fetched at ~85% of their TTL; a renewal capped by
max_ttl makes the broker fetch new credentials before the lease ends; fields
of one lease share it; live leases revoked on SIGTERM, or kept with
revoke_on_shutdown false."""

import calendar
import json
import os
import re
import time

import adminenv
import rstest
import vaultenv


class LeaseBase(vaultenv.VaultTestCase):

    def setUp(self):
        super().setUp()
        self.vault.add_kv_mount("secret", version=2)
        self.pw = rstest.random_value(16, "pw-")
        self.put_secret("secret", "app", {"password": self.pw})
        self.vault.add_database_mount("database")

    def config(self, secrets, **kw):
        # a long refresh: every lease action seen here is driven by the lease
        return self.write_vault_config(
            secrets, defaults={"refresh": "1m", "max_stale": "1h"}, **kw)

    def creds_gets(self, role):
        return self.gets("database/creds/%s" % role)

    def leases_of(self, role):
        return [le for le in self.vault.leases() if le["role"] == role]

    def renewals_of(self, lease_id):
        return [r for r in self.vault.lease_renewals() if r["lease_id"] == lease_id]

    def served_creds(self, prefix="db"):
        """(username, password) as served; the password is registered sensitive."""
        u = self.read(prefix, "user").decode()
        p = self.read(prefix, "pass").decode()
        self.sensitive(p)
        return u, p


class RenewableLeaseTest(LeaseBase):

    def test_renewed_at_two_thirds_same_credentials(self):
        ttl = 6
        self.vault.add_database_role("app", ttl=ttl, max_ttl=3600, renewable=True)
        self.config({"db/user": "vault:database/creds/app#username",
                     "db/pass": "vault:database/creds/app#password",
                     "db/all": "vault:database/creds/app"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        user, pw = self.served_creds()
        self.assertEqual(json.loads(self.read("db", "all")), {"username": user, "password": pw})
        # the three fields of one path share one lease
        self.assertEqual(len(self.creds_gets("app")), 1, "one read per field: inconsistent creds")
        [lease] = self.leases_of("app")
        self.assertEqual(lease["username"], user)
        t_issue = self.creds_gets("app")[0]["mono"]
        mark = b.mark()
        # first renewal at ~2/3 of 6 s
        r1 = rstest.wait_until(lambda: self.renewals_of(lease["lease_id"]), ttl + 2,
                               "a lease renewal")[0]
        dt = r1["mono"] - t_issue
        self.assertGreaterEqual(dt, ttl * 0.55, "renewed %.2fs after issue, lease %ds" % (dt, ttl))
        self.assertLessEqual(dt, ttl * 0.8, "renewed %.2fs after issue, lease %ds" % (dt, ttl))
        self.assertEqual(r1["via"], "/v1/sys/leases/renew")
        # a second renewal ~2/3 of the granted duration later
        if r1["granted"] <= 20:
            r2 = rstest.wait_until(lambda: self.renewals_of(lease["lease_id"])[1:],
                                   r1["granted"] + 2, "a second lease renewal")[0]
            dt2 = r2["mono"] - r1["mono"]
            self.assertGreaterEqual(dt2, r1["granted"] * 0.55, "second renewal after %.2fs" % dt2)
            self.assertLessEqual(dt2, r1["granted"] * 0.8, "second renewal after %.2fs" % dt2)
        # through all of it: the same credentials, no new lease, nothing revoked
        self.assertEqual(self.served_creds(), (user, pw))
        self.assertEqual(len(self.creds_gets("app")), 1, "new credentials fetched")
        self.assertIsNotNone(self.vault.lease_info(lease["lease_id"]), "lease ended")
        self.assertEqual(self.vault.revocations(), [])
        self.assertNoLog(b, "secret rotated", since=mark)
        for e in self.vault.requests(prefix="sys/leases/renew"):
            self.assertIn(e["method"], ("PUT", "POST"))
            lid = (e["json"] or {}).get("lease_id") or e["rel"][len("sys/leases/renew/"):]
            self.assertEqual(lid, lease["lease_id"])

    def test_short_refresh_does_not_reissue_credentials(self):
        # a dynamic secret is governed by its lease, not by `refresh`
        self.vault.add_database_role("app", ttl=60, max_ttl=3600, renewable=True)
        self.write_vault_config({"db/user": "vault:database/creds/app#username",
                                 "db/pass": "vault:database/creds/app#password"},
                                defaults={"refresh": "1s", "max_stale": "1h"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        creds = self.served_creds()
        time.sleep(2.5)
        self.assertEqual(self.served_creds(), creds)
        self.assertEqual(len(self.creds_gets("app")), 1,
                         "new credentials issued on each refresh (%d leases)"
                         % len(self.leases_of("app")))
        self.assertEqual(len(self.leases_of("app")), 1)


class ExpiringLeaseTest(LeaseBase):

    def test_non_renewable_refetched_at_85_percent(self):
        ttl = 6
        self.vault.add_database_role("fixed", ttl=ttl, max_ttl=ttl, renewable=False)
        self.config({"db/user": "vault:database/creds/fixed#username",
                     "db/pass": "vault:database/creds/fixed#password"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        user, pw = self.served_creds()
        g = rstest.wait_until(lambda: self.creds_gets("fixed")[1:], ttl + 1,
                              "new credentials before the lease ends")
        first = self.creds_gets("fixed")[0]
        dt = g[0]["mono"] - first["mono"]
        self.assertGreaterEqual(dt, ttl * 0.75, "re-fetched %.2fs into a %ds lease" % (dt, ttl))
        self.assertLessEqual(dt, ttl * 0.95, "re-fetched %.2fs into a %ds lease" % (dt, ttl))
        # the new credentials replace the old ones, both fields from the new lease
        u2 = rstest.wait_until(lambda: self.read("db", "user").decode() != user
                               and self.read("db", "user").decode(), 2,
                               "the new username to be served")
        self.assertLess(time.monotonic() - first["mono"], ttl + 0.5)
        self.assertIn(u2, [le["username"] for le in self.leases_of("fixed")])
        self.assertNotEqual(self.served_creds()[1], pw)
        # never tried to renew a non-renewable lease
        self.assertEqual(self.vault.requests(prefix="sys/leases/renew"), [])

    def test_capped_renewal_gets_new_credentials_before_expiry(self):
        # renewable, but max_ttl 8 s: the renewal at ~4 s grants only ~4 s
        self.vault.add_database_role("capped", ttl=6, max_ttl=8, renewable=True)
        self.config({"db/user": "vault:database/creds/capped#username",
                     "db/pass": "vault:database/creds/capped#password"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        user, _ = self.served_creds()
        [lease] = self.leases_of("capped")
        first = self.creds_gets("capped")[0]
        # new credentials before the first lease ends (8 s after issue)
        g = rstest.wait_until(lambda: self.creds_gets("capped")[1:], 9,
                              "new credentials before max_ttl")
        dt = g[0]["mono"] - first["mono"]
        self.assertLess(dt, 8 - 0.2, "new credentials fetched %.2fs after issue; the lease "
                        "ended at 8 s" % dt)
        ren = self.renewals_of(lease["lease_id"])
        self.assertTrue(ren, "the lease was never renewed")
        self.assertLess(ren[0]["granted"], 6, ren)
        self.assertGreater(g[0]["mono"], ren[0]["mono"], "re-fetched before even renewing")
        rstest.wait_until(lambda: self.read("db", "user").decode() != user, 2,
                          "the new username to be served")
        self.assertLess(time.monotonic() - first["mono"], 8.0,
                        "old credentials served past the end of their lease")
        # no renewal storm on the capped lease
        self.assertLessEqual(len(self.renewals_of(lease["lease_id"])), 3)


class AdminViewTest(LeaseBase):
    """What the admin endpoint shows of Vault (issue 14): the KV version served, a
    dynamic secret's lease end, the token's method and end (TTL 1h)."""

    def test_status_and_metrics(self):
        self.vault.add_database_role("app", ttl=60, max_ttl=3600, renewable=False)
        self.config({"db/pass": "vault:database/creds/app#password",
                     "app": {"from": "vault:secret/app#password", "refresh": "300ms"}})
        addr = "unix:" + os.path.join(self.dir, "admin.sock")
        t0 = time.time()
        b = self.start_broker(args=["--admin", addr])
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.sensitive(self.read("db", "pass"))
        st, j = adminenv.get_json(addr, "/status")
        self.assertEqual(st, 200)
        self.assertTrue(j["healthy"])
        sec = {s["name"]: s for s in j["secrets"]}
        self.assertEqual(sec["app"]["version"], "1")
        self.assertIsNone(sec["db/pass"]["version"])      # a lease, not a KV version
        self.assertIsNone(sec["app"]["lease_expiry"])
        lease_end = rfc3339(sec["db/pass"]["lease_expiry"])
        self.assertAlmostEqual(lease_end, t0 + 60, delta=10)
        [vb] = j["backends"]
        self.assertEqual((vb["name"], vb["type"], vb["up"], vb["auth"], vb["auth_method"]),
                         (vaultenv.BACKEND, "vault", True, "ok", "token"))
        self.assertAlmostEqual(rfc3339(vb["token_expiry"]), t0 + 3600, delta=60)
        # A new KV version: /status follows it.
        self.put_secret("secret", "app", {"password": rstest.random_value(16, "pw2-")})
        rstest.wait_until(lambda: [s for s in adminenv.get_json(addr, "/status")[1]["secrets"]
                                   if s["name"] == "app"][0]["version"] == "2", 10,
                          "version 2 in /status")
        _, _, text = adminenv.request(addr, "/metrics")
        text = text.decode()
        m = re.search(r'(?m)^runsecrets_lease_expiry_timestamp_seconds\{secret="db/pass"\} '
                      r'([0-9.]+)$', text)
        self.assertIsNotNone(m, text)
        self.assertAlmostEqual(float(m.group(1)), lease_end, delta=1)
        m = re.search(r'(?m)^runsecrets_token_expiry_timestamp_seconds\{backend="%s"\} ([0-9.]+)$'
                      % vaultenv.BACKEND, text)
        self.assertIsNotNone(m, text)
        self.assertRegex(text, r'(?m)^runsecrets_backend_up\{backend="%s"\} 1$' % vaultenv.BACKEND)
        self.assertRegex(text, r'(?m)^runsecrets_fetches_total\{backend="%s",result="ok"\} [1-9]'
                         % vaultenv.BACKEND)
        for v in self.sensitive_values:
            self.assertNotIn(v.decode(errors="replace"), text)
        b.stop()


def rfc3339(s):
    """Seconds since the epoch of "2026-12-02T12:00:00.000Z"."""
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float(s[19:-1] or 0)


class ShutdownTest(LeaseBase):

    def setUp(self):
        super().setUp()
        self.vault.add_database_role("app", ttl=300, max_ttl=3600, renewable=True)
        self.vault.add_database_role("ro", ttl=300, max_ttl=3600, renewable=True)
        self.secrets = {"db/user": "vault:database/creds/app#username",
                        "db/pass": "vault:database/creds/app#password",
                        "ro/user": "vault:database/creds/ro#username",
                        "kv": "vault:secret/app#password"}

    def test_revoke_on_sigterm(self):
        self.config(self.secrets)
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        live = {le["lease_id"] for le in self.vault.leases()}
        self.assertEqual(len(live), 2, live)
        self.assertEqual(b.stop(), 0, b.describe())
        revoked = {r["lease_id"]: r for r in self.vault.revocations()}
        self.assertEqual(set(revoked), live, "not every live lease was revoked")
        for r in revoked.values():
            self.assertEqual(r["reason"], "revoked", r)
        self.assertEqual(self.vault.leases(), [])
        reqs = self.vault.requests(prefix="sys/leases/revoke") + self.vault.requests(prefix="sys/revoke")
        self.assertEqual(len(reqs), 2, [e["rel"] for e in reqs])
        for e in reqs:
            self.assertIn(e["method"], ("PUT", "POST"))
            self.assertEqual(e["status"], 204)

    def test_no_revoke_when_disabled(self):
        self.config(self.secrets, revoke_on_shutdown=False)
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        live = {le["lease_id"] for le in self.vault.leases()}
        self.assertEqual(len(live), 2, live)
        self.assertEqual(b.stop(), 0, b.describe())
        self.assertEqual(self.vault.revocations(), [])
        self.assertEqual({le["lease_id"] for le in self.vault.leases()}, live)
        self.assertEqual(self.vault.requests(prefix="sys/leases/revoke"), [])
        self.assertIsNotNone(self.vault.token_info(self.token), "token revoked at shutdown")


if __name__ == "__main__":
    rstest.main()
