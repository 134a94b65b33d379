#!/usr/bin/env python3
"""The optsync command line as a user runs it: --help, --version, config
lookup order, `config check` and its exit codes.

Usage: test_cli_config.py OPTSYNC_BINARY SOURCE_DIR"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

BIN = None
SRC = None

BASE = """[salesforce]
client_id = "cid"
username = "u@example.com"
private_key_file = "/nonexistent/key.pem"
"""


def run(*args, env=None, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, cwd=cwd,
                          timeout=30)


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_help_and_version(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("config check", p.stdout)
        self.assertIn("Exit status", p.stdout)
        p = run("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^optsync \d+\.\d+\.\d+\n$")
        p = run("config", "check", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: optsync [-c FILE] config check", p.stdout)
        self.assertIn("--strict", p.stdout)

    def test_global_options_anywhere_and_typos(self):
        cfg = self.write("c.toml", BASE)
        for args in (("-c", cfg, "config", "check"), ("config", "check", "-c", cfg),
                     ("config", "-c", cfg, "check"), ("config", "check", "--config=" + cfg),
                     ("config", "check", "--config", cfg)):
            p = run(*args)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            self.assertIn(cfg + ": valid", p.stdout, args)
        p = run("config", "check", "-c")
        self.assertEqual(p.returncode, 2)
        self.assertIn("-c needs a file name", p.stderr)
        for typed, meant in ((["stauts"], "status"), (["contact", "shwo", "x"], "contact show"),
                             (["conflicts", "lst"], "conflicts list"), (["sycn"], "sync")):
            p = run(*typed)
            self.assertEqual(p.returncode, 2, typed)
            self.assertIn("did you mean '%s'?" % meant, p.stderr)
        p = run("frobnicate")
        self.assertNotIn("did you mean", p.stderr)  # nothing near: no guess

    def test_group_help(self):
        for group, subs in (("contact", ("contact show", "contact erase", "contact set")),
                            ("conflicts", ("conflicts list", "conflicts resolve")),
                            ("config", ("config check",))):
            p = run(group, "--help")
            self.assertEqual(p.returncode, 0, group)
            for sub in subs:
                self.assertIn(sub, p.stdout)
            p = run(group)  # alone: a usage error that lists what it takes
            self.assertEqual(p.returncode, 2)
            self.assertIn("'%s' needs a subcommand" % group, p.stderr)
            self.assertIn(subs[0], p.stderr)

    def test_shell_completion(self):
        script = run("completion", "bash").stdout
        path = self.write("optsync.bash", script)
        self.assertEqual(subprocess.run(["bash", "-n", path]).returncode, 0)

        def complete(*words):
            """What bash offers for `optsync WORDS...` (the last word being typed)."""
            w = " ".join("'%s'" % x for x in ("optsync",) + words)
            p = subprocess.run(["bash", "-c", 'source %s; COMP_WORDS=(%s); '
                                'COMP_CWORD=%d; _optsync; printf "%%s\\n" "${COMPREPLY[@]}"'
                                % (path, w, len(words))], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            return set(p.stdout.split())
        self.assertEqual(complete("con"), {"contact", "conflicts", "config", "consent"})
        self.assertEqual(complete("contact", "sh"), {"show"})
        self.assertEqual(complete("sync", "--"), {"--once", "--dry-run", "--full", "--json",
                                                  "--help"})
        self.assertIn("--expect", complete("audit", "verify", "--e"))
        self.assertIn("--from", complete("-c", "x.toml", "optout", "a@b.org", "--f"))
        self.assertEqual(complete("conflicts", "list", "--status", "open", "--j"), {"--json"})
        # every command of optsync --help can be completed
        out = run("--help").stdout
        block = out[out.index("Commands:"):].split("\n\n")[0].splitlines()[1:]
        names = [l.split()[0] for l in block]
        self.assertIn("completion", names)
        for first in set(names):
            self.assertIn(first, complete(first[:2]) | complete(first))
        zsh = run("completion", "zsh").stdout
        self.assertTrue(zsh.startswith("#compdef optsync"))
        self.assertIn("bashcompinit", zsh)
        self.assertEqual(run("completion", "fish").returncode, 2)

    def test_usage_errors(self):
        self.assertEqual(run().returncode, 2)
        p = run("frobnicate")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown command 'frobnicate'", p.stderr)
        p = run("config")
        self.assertEqual(p.returncode, 2)
        self.assertIn("config check", p.stderr)
        p = run("-c", self.write("ok.toml", BASE), "config", "check", "--bogus")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown option '--bogus'", p.stderr)
        self.assertEqual(run("-c").returncode, 2)

    def test_example_config(self):
        p = run("-c", os.path.join(SRC, "config.example.toml"), "config", "check")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('login_url = "https://login.salesforce.com"', p.stdout)
        self.assertIn('token_hash = "<redacted>"', p.stdout)
        self.assertNotIn("replace-with-output", p.stdout + p.stderr)
        self.assertIn("warning", p.stderr)  # secrets are not mounted here
        p = run("-c", os.path.join(SRC, "config.example.toml"), "config", "check", "--strict")
        self.assertEqual(p.returncode, 3)

    def test_lookup_order(self):
        cfg = self.write("optsync.toml", BASE)
        other = self.write("env.toml", BASE.replace('"cid"', '"from-env"'))
        p = run("config", "check", cwd=self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('client_id = "cid"', p.stdout)
        p = run("config", "check", cwd=self.dir, env={"OPTSYNC_CONFIG": other})
        self.assertIn('client_id = "from-env"', p.stdout)
        p = run("-c", cfg, "config", "check", env={"OPTSYNC_CONFIG": other})
        self.assertIn('client_id = "cid"', p.stdout)
        p = run("config", "check", cwd="/")
        self.assertEqual(p.returncode, 3)
        self.assertIn("./optsync.toml", p.stderr)

    def check_error(self, text, *fragments):
        path = self.write("bad.toml", text)
        p = run("-c", path, "config", "check")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        for f in fragments:
            self.assertIn(f, p.stderr)
        self.assertEqual(p.stdout, "")
        return p

    def test_config_errors_exit_3(self):
        self.check_error(BASE + "[sync]\nintervall = \"5s\"\n", "bad.toml:6:", "'intervall'")
        self.check_error(BASE + "[sync]\ninterval = 60\n", "bad.toml:6:", "sync.interval",
                         "expected a string")
        self.check_error(BASE + "auth = \"magic\"\n", "bad.toml:5:", "salesforce.auth", "magic")
        self.check_error("[salesforce]\nusername = \"u\"\n", "bad.toml:1:", "client_id")
        self.check_error("[salesforce\n", "bad.toml:1:")
        p = self.check_error(BASE + "[log]\nlevel = \"loud\"\nformat = \"xml\"\n", "log.level",
                             "log.format")
        self.assertEqual(p.stderr.count("bad.toml:"), 2)

    def test_no_secret_in_output(self):
        key = self.write("key.pem", "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n"
                         "-----END PRIVATE KEY-----\n", 0o600)
        tok = self.write("api-token", "api-token-value-123456\n", 0o600)
        text = BASE.replace("/nonexistent/key.pem", key) + \
            "[api]\ntoken_file = \"%s\"\n[[admins]]\nname = \"alice\"\n" \
            "token_hash = \"HASHVALUE-SHOULD-NOT-SHOW\"\n" % tok
        env = {"OPTSYNC_WEBHOOK_SECRET": "webhook-secret-value-9876"}
        path = self.write("secrets.toml", text + "[webhook]\nurl = \"http://127.0.0.1:9/h\"\n")
        for extra in ([], ["--json"], ["--strict"]):
            p = run("-c", path, "config", "check", *extra, env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout + p.stderr
            for secret in ("SECRETKEYMATERIAL", "api-token-value-123456",
                           "HASHVALUE-SHOULD-NOT-SHOW", "webhook-secret-value-9876"):
                self.assertNotIn(secret, out)
        p = run("-c", path, "config", "check", "--json", env=env)
        doc = json.loads(p.stdout)
        self.assertTrue(doc["valid"])
        self.assertEqual(doc["settings"]["salesforce"]["fields"]["opted_out"],
                         "HasOptedOutOfEmail")
        self.assertEqual(doc["settings"]["admins"][0]["token_hash"], "<redacted>")
        sources = {s["key"]: s for s in doc["secrets"]}
        self.assertEqual(sources["webhook.secret_file"]["source"], "env OPTSYNC_WEBHOOK_SECRET")
        self.assertTrue(sources["api.token_file"]["readable"])

    def test_group_readable_secret_refused(self):
        key = self.write("key.pem", "KEYDATA-XYZ\n", 0o644)
        path = self.write("c.toml", BASE.replace("/nonexistent/key.pem", key))
        p = run("-c", path, "config", "check", "--strict")
        self.assertEqual(p.returncode, 3)
        self.assertIn("lets others read it; chmod 600", p.stderr)
        self.assertIn("defaultMode: 0440", p.stderr)
        self.assertNotIn("KEYDATA-XYZ", p.stdout + p.stderr)

    def test_secret_file_modes(self):
        """PostgreSQL's rule: others never, the group may read a root-owned file."""
        token = self.write("api-token", "token-value-0123456789\n", 0o600)
        path = self.write("c.toml", BASE + '[api]\ntoken_file = "%s"\n' % token)

        def check(mode, owner=None):
            os.chmod(token, mode)
            if owner is not None:
                os.chown(token, owner, -1)
            p = run("-c", path, "config", "check", "--strict")
            self.assertNotIn("token-value-0123456789", p.stdout + p.stderr)
            return [l for l in p.stderr.splitlines() if "api-token" in l]
        self.assertEqual(check(0o600), [])
        self.assertEqual(check(0o400), [])
        self.assertIn("lets others read it", check(0o604)[0])
        self.assertIn("lets the group write it", check(0o660)[0])
        if os.geteuid() == 0:
            # a secret volume: root owns it, its group may read it
            self.assertEqual(check(0o440, 0), [])
            self.assertEqual(check(0o640, 0), [])
            # group-readable and not root's: refused
            msg = check(0o640, 65534)
            self.assertIn("root does not own it", msg[0])
            # the message never calls a file name a secret to mask
            self.assertIn("api-token: mode 640", msg[0])

    def test_link_key_modes(self):
        """The unsubscribe link keys are secret files like the others: refused
        when the group or others may read them, by config check and by what
        reads them (optsync link here; optsync run the same way)."""
        key = os.path.join(self.dir, "link.key")
        old = os.path.join(self.dir, "old.key")
        for p in (key, old):
            with open(p, "wb") as f:
                f.write(os.urandom(32))
            os.chmod(p, 0o600)
        path = self.write("c.toml", BASE + '[state]\npath = "%s/state"\n'
                          '[unsubscribe]\nbase_url = "https://u.example.com"\n'
                          'organization = "Ex"\nprivacy_url = "https://example.com/p"\n'
                          'key_file = "%s"\nold_key_files = ["%s"]\n' % (self.dir, key, old))

        def link():
            return run("-c", path, "link", "ann@example.com")

        def check(*extra):
            p = run("-c", path, "config", "check", *extra)
            return p.returncode, "\n".join(l for l in p.stderr.splitlines() if ".key" in l)
        self.assertEqual(link().returncode, 0, link().stderr)
        self.assertEqual(check("--strict"), (3, ""))  # the private key is missing, not these
        for name, p in (("key_file", key), ("old_key_files", old)):
            for mode, says in ((0o644, "mode 644 lets others read it; chmod 600 it"),
                               (0o604, "mode 604 lets others read it; chmod 600 it"),
                               (0o660, "mode 660 lets the group write it")):
                os.chmod(p, mode)
                r = link()
                self.assertEqual(r.returncode, 3, (name, oct(mode), r.stderr))
                self.assertIn("%s: unsubscribe.%s: secret file %s: %s" % (path, name, p, says),
                              r.stderr)
                self.assertEqual(r.stdout, "")  # no link minted
                # config check: a warning, an error with --strict, as for
                # the other secret files
                rc, lines = check()
                self.assertEqual(rc, 0)
                self.assertIn("optsync: warning: %s: unsubscribe.%s: secret file %s: %s"
                              % (path, name, p, says), lines)
                rc, lines = check("--strict")
                self.assertEqual(rc, 3)
                self.assertIn("optsync: error: %s: unsubscribe.%s: secret file %s: %s"
                              % (path, name, p, says), lines)
            os.chmod(p, 0o600)
        if os.geteuid() == 0:
            # a secret volume: root owns it, its group may read it
            os.chmod(key, 0o440)
            self.assertEqual(link().returncode, 0)
            os.chown(key, 65534, -1)
            r = link()
            self.assertEqual(r.returncode, 3)
            self.assertIn("lets the group read it, and root does not own it", r.stderr)


if __name__ == "__main__":
    BIN, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=sys.argv[:1], verbosity=2)
