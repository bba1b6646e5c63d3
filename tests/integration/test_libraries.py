"""Libraries loaded on use (lib/dynlib.h): the binary links only libsodium,
jansson, libfuse3 and libc; libcurl with OpenSSL (network backends) and
libmicrohttpd (the admin endpoint) are loaded by the first code that needs
them. A mount of local files never maps them; a missing one is a one-line
error naming it, and costs nothing to what does not need it;
`version --libraries` lists what a minimal image must hold."""

import os
import subprocess

import rstest

OPTIONAL = ("libcurl.so", "libssl.so", "libcrypto.so", "libmicrohttpd.so", "libgnutls.so")


def mapped_objects(pid):
    """Basenames of the files mapped by pid (its /proc/PID/maps)."""
    names = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                names.add(os.path.basename(parts[5].strip()))
    return names


def has(names, prefix):
    return any(n.startswith(prefix) for n in names)


def listed_libraries():
    r = rstest.run_cli("version", "--libraries")
    if r.returncode != 0:
        raise AssertionError("version --libraries exited %d: %s" % (r.returncode, r.stderr))
    return r.stdout.decode().split()


def library_path(prefix):
    for p in listed_libraries():
        if os.path.basename(p).startswith(prefix):
            return os.path.realpath(p)
    raise AssertionError("version --libraries lists no %s" % prefix)


def hiding(path):
    """A wrapper that runs a command in a private mount namespace where the
    file at path is empty (/dev/null bound over it): dlopen fails there."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind /dev/null "$0" && exec "$@"', path]


class LibrariesTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value(24)
        self.write_secret("db", self.value)
        self.write_config({"db": {"from": "local:db"}})

    def vault_config(self):
        return self.write_config({"v": {"from": "vault:secret/app#password"}},
                                 backends={"vault": {"type": "vault",
                                                     "address": "https://127.0.0.1:1",
                                                     "auth": {"method": "token",
                                                              "token_file": "/nonexistent"}}},
                                 path=os.path.join(self.dir, "vault.json"))

    def test_ldd_lists_none_of_the_optional_libraries(self):
        out = subprocess.run(["ldd", rstest.BINARY], stdout=subprocess.PIPE, check=True,
                             timeout=30).stdout.decode()
        for lib in OPTIONAL:
            self.assertNotIn(lib, out, "linked, not loaded on use: %s" % lib)
        for lib in ("libsodium.so", "libjansson.so", "libfuse3.so"):
            self.assertIn(lib, out)

    def test_a_mount_of_local_files_maps_none_of_them(self):
        b = self.start_broker(args=["--admin", "none"])
        self.assertEqual(self.read("db"), self.value.encode())
        names = mapped_objects(b.pid)
        self.assertTrue(has(names, "libsodium.so"), names)   # the check can see a library
        for lib in OPTIONAL:
            self.assertFalse(has(names, lib), "%s mapped by a mount of local files" % lib)

    def test_the_admin_endpoint_loads_libmicrohttpd_alone(self):
        sock = os.path.join(self.dir, "admin.sock")
        b = self.start_broker(args=["--admin", "unix:" + sock])
        b.wait_log("admin endpoint listening")
        names = mapped_objects(b.pid)
        self.assertTrue(has(names, "libmicrohttpd.so"), names)
        for lib in ("libcurl.so", "libssl.so", "libcrypto.so"):
            self.assertFalse(has(names, lib), "%s mapped for the admin endpoint" % lib)

    def test_version_libraries_lists_every_object_a_network_broker_maps(self):
        listed = listed_libraries()
        self.assertTrue(listed)
        for p in listed:
            self.assertTrue(os.path.isabs(p) and os.path.exists(p), p)
        names = {os.path.basename(p) for p in listed}
        for lib in OPTIONAL:
            self.assertTrue(has(names, lib), "version --libraries misses %s" % lib)
        ldd = subprocess.run(["ldd", rstest.BINARY], stdout=subprocess.PIPE, check=True,
                             timeout=30).stdout.decode()
        for word in ldd.split():
            if word.startswith("/"):
                self.assertIn(os.path.basename(word), names, "ldd lists %s" % word)

    def test_missing_libcurl_is_one_line_naming_it_and_files_still_serve(self):
        curl = library_path("libcurl.so")
        cfg = self.vault_config()
        r = subprocess.run(hiding(curl) + [rstest.BINARY, "check", "--config", cfg],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        err = r.stderr.decode()
        self.assertNotEqual(r.returncode, 0, err)
        lines = [ln for ln in err.splitlines() if "libcurl" in ln]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("cannot load libcurl.so.4", lines[0])
        self.assertIn("vault.json", lines[0])          # where: the file and the setting
        self.assertIn("address", lines[0])
        # The same namespace without a network backend: served as ever.
        # (Its mount is in that namespace: reached through /proc/PID/root.)
        b = self.start_broker(wrap=hiding(curl), args=["--admin", "none"], wait=False)
        b.wait_log("cold start done")
        self.assertEqual(rstest.read_all("/proc/%d/root%s" % (b.pid, self.mpath("db"))),
                         self.value.encode())

    def test_missing_libmicrohttpd_fails_the_endpoint_by_name(self):
        mhd = library_path("libmicrohttpd.so")
        sock = os.path.join(self.dir, "admin.sock")
        r = subprocess.run(hiding(mhd) + [rstest.BINARY, "mount", "--config", self.config_path,
                                          "--no-pid-file", "--admin", "unix:" + sock, self.mnt],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        err = r.stderr.decode()
        self.assertNotEqual(r.returncode, 0, err)
        self.assertIn("cannot load libmicrohttpd.so.12", err)
        self.assertFalse(rstest.runsecrets_mounts_at(self.mnt), "left mounted")


if __name__ == "__main__":
    rstest.main()
