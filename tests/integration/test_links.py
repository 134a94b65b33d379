#!/usr/bin/env python3
"""Unsubscribe links end to end, against a real `optsync run` and the fake
Salesforce: minting (CLI and API), the public listener as a mailbox
provider (RFC 8058 one-click, both content types) and as a person (the page,
its form), what a GET must not do, abuse (forged, truncated and re-keyed
tokens, rate limits, X-Forwarded-For), the log, and the Salesforce record
opted out within 2 s of the one-click POST.

Usage: test_links.py OPTSYNC FAKE_SF_PY"""
import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

OPTSYNC = FAKE = None
TOKEN = "api-token-for-tests-0123456789"
ORG = "Example & Söhne <B.V.>"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sidecar:
    def __init__(self, contacts=5, unsub_extra="", key=None, map_size='map_size = "64MiB"',
                 token_env=True, state_path=None):
        """state_path: the ledger's folder (default: state in the temporary
        folder), for a ledger on a file system of its own."""
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        portfile = os.path.join(d, "port")
        self.fake_log = open(os.path.join(d, "fake.log"), "w")
        self.fake = subprocess.Popen([sys.executable, FAKE, "--port-file", portfile,
                                      "--contacts", str(contacts)],
                                     stdout=self.fake_log, stderr=self.fake_log)
        while not os.path.exists(portfile):
            time.sleep(0.05)
        with open(portfile) as f:
            self.sf_port = int(f.read())
        self.port, self.pub = free_port(), free_port()
        self.keyfile = os.path.join(d, "link.key")
        with open(self.keyfile, "wb") as f:
            f.write(key or os.urandom(32))
        self.state_path = state_path or os.path.join(d, "state")
        os.chmod(self.keyfile, 0o600)  # a secret: refused when others may read it
        self.config = os.path.join(d, "optsync.toml")
        with open(self.config, "w") as f:
            f.write('[salesforce]\nlogin_url = "http://localhost:%d"\nauth = "client_credentials"\n'
                    'client_id = "fake-client-id"\n[sync]\ninterval = "60s"\n'
                    '[state]\npath = "%s"\n%s\n'
                    '[api]\nlisten = "127.0.0.1:%d"\n'
                    '[unsubscribe]\nlisten = "127.0.0.1:%d"\nbase_url = "http://localhost:%d"\n'
                    'key_file = "%s"\norganization = "%s"\n'
                    'privacy_url = "https://example.com/privacy?a=1&b=2"\n%s'
                    '[log]\nformat = "text"\nlevel = "info"\n'
                    % (self.sf_port, self.state_path, map_size, self.port, self.pub, self.pub,
                       self.keyfile, ORG.replace('"', '\\"'), unsub_extra))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
        env.update(OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret")
        if token_env:  # else the config names its [[api.clients]]
            env["OPTSYNC_API_TOKEN"] = TOKEN
        self.env = env
        self.logpath = os.path.join(d, "optsync.log")
        self.log = open(self.logpath, "w")
        self.start_run()
        for _ in range(200):
            try:
                if self.api("GET", "/healthz")[0] == 200 and self.public("GET", "/")[0] == 404:
                    break
            except OSError:
                time.sleep(0.05)
        # the first cycle has pulled the contacts
        if token_env:
            assert self.wait(lambda: self.api("GET", "/v1/status")[1]["last_cycle"] is not None)

    def start_run(self):
        """`optsync run` on this config, into the same log: at start, and
        again after a test killed it."""
        self.proc = subprocess.Popen([OPTSYNC, "-c", self.config, "run"], env=self.env,
                                     stdout=self.log, stderr=self.log)

    def api(self, method, path, body=None, headers=None, timeout=60, full=False):
        """headers replace the default one (the sidecar's token). full: also
        the response's headers (names in lower case), in the middle."""
        st, doc, h = self.api_with_headers(method, path, body, headers, timeout)
        return (st, h, doc) if full else (st, doc)

    def api_with_headers(self, method, path, body=None, headers=None, timeout=60):
        """api(), and the answer's headers (names lower-cased) as well."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = dict(headers) if headers is not None else {"Authorization": "Bearer " + TOKEN}
        data = json.dumps(body).encode() if body is not None else None
        if data:
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read()
        c.close()
        ctype = r.getheader("Content-Type", "")
        return (r.status, json.loads(text) if "json" in ctype and text else text.decode(),
                dict((k.lower(), v) for k, v in r.getheaders()))

    def public(self, method, path, body=None, headers=None, conn=None, timeout=60):
        """One request as a plain HTTP client: no cookies, no redirects."""
        c = conn or http.client.HTTPConnection("127.0.0.1", self.pub, timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        text = r.read()
        if conn is None:
            c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), text.decode("utf-8")

    def cli(self, *args, check=0, timeout=120):
        p = subprocess.run([OPTSYNC, "-c", self.config, *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check is not None and p.returncode != check:
            raise AssertionError("optsync %s: exit %d\n%s%s" % (args, p.returncode, p.stdout,
                                                                 p.stderr))
        return p

    def ctl(self, method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/__control/%s" % (self.sf_port, path),
                                     method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def wait(self, cond, secs=20, step=0.05):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            try:
                if cond():
                    return True
            except OSError:
                pass
            time.sleep(step)
        return False

    def mint(self, email, **kw):
        body = dict(emails=[email], **kw)
        st, doc = self.api("POST", "/v1/unsubscribe-links", body)
        assert st == 200, (st, doc)
        return doc["links"][email]

    def path_of(self, link):
        return urllib.parse.urlsplit(link["url"]).path

    def history(self, email):
        """The person's events but the access trail's (each read of the
        history is an access event itself)."""
        st, doc = self.api("GET", "/v1/contacts/%s/history" % urllib.parse.quote(email))
        return [e for e in doc if e["kind"] != "access"] if st == 200 else None

    def changes(self):
        return self.api("GET", "/v1/changes?after=0&limit=1000")[1]

    def metric(self, kind):
        text = self.api("GET", "/metrics")[1]
        m = re.search(r'optsync_unsubscribe_requests_total\{kind="%s"\} (\d+)' % kind, text)
        return int(m.group(1)) if m else None

    def log_tail(self, lines=2):
        """The last lines of run's log, for a message."""
        self.log.flush()
        with open(self.logpath, errors="replace") as f:
            return " | ".join(line[:240] for line in f.read().splitlines()[-lines:])

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.fake.terminate()
        self.fake.wait(timeout=10)
        self.log.close()
        self.fake_log.close()
        self.tmp.cleanup()


ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# what a request to a run that is down (killed, crashed) raises
HTTP_ERRORS = (OSError, http.client.HTTPException)


def signalled(rc):
    """A return code that says the process died of a signal (negative from
    Popen, 128+N through a shell)."""
    return rc < 0 or rc >= 128


def multipart(fields):
    b = "----optsync-test-boundary-7MA4YWxk"
    parts = "".join('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (b, k, v)
                    for k, v in fields)
    return (parts + "--%s--\r\n" % b).encode(), "multipart/form-data; boundary=" + b


class Links(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Sidecar()

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_mint_cli_and_api(self):
        p = self.s.cli("link", "Ada@Example.com", "--campaign", "spring-26", "--json")
        doc = json.loads(p.stdout)
        self.assertTrue(doc["url"].startswith("http://localhost:%d/u/" % self.s.pub))
        self.assertEqual(doc["list_unsubscribe"], "<%s>" % doc["url"])
        self.assertEqual(doc["list_unsubscribe_post"], ONE_CLICK)
        self.assertNotIn("ada", doc["url"].lower())
        p = self.s.cli("link", "ada@example.com")
        self.assertIn("List-Unsubscribe: <http://localhost", p.stdout)
        self.assertIn("List-Unsubscribe-Post: List-Unsubscribe=One-Click", p.stdout)
        # errors name the input
        p = self.s.cli("link", "not an email", check=2)
        self.assertIn("not an email", p.stderr)
        p = self.s.cli("link", "a@b.co", "--purpose", "newsletter", check=2)
        self.assertIn("newsletter", p.stderr)
        p = self.s.cli("link", "a@b.co", "--campaign", "x" * 65, check=2)
        self.assertIn("campaign", p.stderr)
        # the API: per-email results, an invalid email gets an error in its place
        st, doc = self.s.api("POST", "/v1/unsubscribe-links",
                             {"emails": ["a@example.com", "bad address", "B@example.com"],
                              "campaign": "c1"})
        self.assertEqual(st, 200)
        links = doc["links"]
        self.assertEqual(links["a@example.com"]["list_unsubscribe_post"], ONE_CLICK)
        self.assertEqual(links["bad address"]["error"]["code"], "invalid")
        self.assertIn("url", links["B@example.com"])
        st, doc = self.s.api("POST", "/v1/unsubscribe-links",
                             {"emails": ["a%d@example.com" % i for i in range(1000)]})
        self.assertEqual(st, 200)
        self.assertEqual(len(doc["links"]), 1000)
        st, doc = self.s.api("POST", "/v1/unsubscribe-links",
                             {"emails": ["a%d@example.com" % i for i in range(1001)]})
        self.assertEqual(st, 413)
        st, doc = self.s.api("POST", "/v1/unsubscribe-links", {"emails": ["a@b.co"], "x": 1})
        self.assertEqual(st, 400)
        st, doc = self.s.api("POST", "/v1/unsubscribe-links",
                             {"emails": ["a@b.co"], "purpose": "events"})
        self.assertEqual(st, 422)
        # minting writes nothing
        self.assertIsNone(self.s.history("a@example.com"))

    def test_get_changes_nothing(self):
        email = "getter@example.com"
        path = self.s.path_of(self.s.mint(email))
        before = self.s.changes()
        for i in range(100):
            st, h, body = self.s.public("GET" if i % 10 else "HEAD", path)
            self.assertEqual(st, 200)
        self.assertEqual(self.s.changes(), before)
        self.assertIsNone(self.s.history(email))
        st, h, body = self.s.public("GET", path)
        self.assertIn("g***@example.com", body)
        self.assertNotIn(email, body)
        self.assertIn('<html lang="en">', body)
        self.assertIn("<button", body)
        self.assertIn("Example &amp; Söhne &lt;B.V.&gt;", body)
        self.assertIn('href="https://example.com/privacy?a=1&amp;b=2"', body)
        self.assertIn("frame-ancestors 'none'", h["content-security-policy"])
        self.assertIn("form-action 'self'", h["content-security-policy"])
        self.assertIn("default-src 'none'", h["content-security-policy"])
        self.assertEqual(h["referrer-policy"], "no-referrer")
        self.assertEqual(h["cache-control"], "no-store")
        self.assertNotIn("set-cookie", h)
        self.assertNotIn("<script", body.lower())

    def test_languages(self):
        path = self.s.path_of(self.s.mint("lang@example.com"))
        for al, lang, word in [("nl-NL,nl;q=0.9,en;q=0.8", "nl", "Afmelden"),
                               ("sv", "sv", "Avregistrera"),
                               ("de-DE, en;q=0.5, nl;q=0.7", "nl", "Afmelden"),
                               ("fr", "en", "Unsubscribe"), (None, "en", "Unsubscribe")]:
            st, h, body = self.s.public("GET", path,
                                        headers={"Accept-Language": al} if al else {})
            self.assertEqual(st, 200)
            self.assertIn('<html lang="%s">' % lang, body, al)
            self.assertIn(word, body)
            self.assertEqual(h["content-language"], lang)

    def test_escaping(self):
        for email in ['o\'brien&co@example.com', '"a<b>"@example.com', '"<script>"@example.com']:
            link = self.s.mint(email)
            self.assertIn("url", link, email)
            path = self.s.path_of(link)
            st, h, body = self.s.public("GET", path)
            self.assertEqual(st, 200)
            first = email[0]
            masked = {"'": "&#39;", '"': "&quot;", "<": "&lt;", "&": "&amp;"}.get(first, first)
            self.assertIn(masked + "***@example.com", body)
            self.assertNotIn("<script>", body)
            self.assertNotIn('"a<b>"', body)
            body = self.post_form(path)[2]
            self.assertNotIn("<script>", body)
            self.assertTrue(self.s.history(email.lower()))

    def post_form(self, path, lang=None):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if lang:
            headers["Accept-Language"] = lang
        return self.s.public("POST", path, body="action=unsubscribe", headers=headers)

    def test_mailbox_provider_one_click(self):
        """As Gmail does: exactly the one-click body, both content types, no
        cookies, no redirects followed, a 2xx expected."""
        for i, kind in enumerate(["urlencoded", "multipart"]):
            email = "oneclick-%s@example.com" % kind
            link = self.s.mint(email, campaign="camp-%d" % i)
            path = self.s.path_of(link)
            if kind == "urlencoded":
                body, ctype = ONE_CLICK.encode(), "application/x-www-form-urlencoded"
            else:
                body, ctype = multipart([("List-Unsubscribe", "One-Click")])
            st, h, text = self.s.public("POST", path, body=body, headers={"Content-Type": ctype})
            self.assertEqual(st, 200, text)
            self.assertNotIn("set-cookie", h)
            self.assertNotIn("location", h)
            ev = self.s.history(email)
            self.assertEqual(len(ev), 1)
            self.assertEqual(ev[0]["kind"], "optout")
            self.assertEqual(ev[0]["origin"], "link")
            self.assertEqual(ev[0]["campaign"], "camp-%d" % i)
            # a repeat: 200, nothing new
            st, h, text = self.s.public("POST", path, body=body, headers={"Content-Type": ctype})
            self.assertEqual(st, 200)
            self.assertEqual(len(self.s.history(email)), 1)
            # in the change feed with origin link
            feed = [c for c in self.s.changes()["changes"] if c.get("email") == email]
            self.assertEqual([c["origin"] for c in feed], ["link"])
            # the suppression check sees it
            st, doc = self.s.api("POST", "/v1/suppression/check", {"emails": [email]})
            self.assertIs(doc["results"][email], True)

    def test_form_and_confirmation(self):
        email = "form@example.com"
        path = self.s.path_of(self.s.mint(email))
        st, h, body = self.post_form(path, lang="nl")
        self.assertEqual(st, 200)
        self.assertIn("U bent afgemeld", body)
        self.assertIn("f***@example.com", body)
        self.assertEqual(h["cache-control"], "no-store")
        ev = self.s.history(email)
        self.assertEqual([e["origin"] for e in ev], ["link"])
        # a POST that is neither form nor one-click changes nothing
        other = "neither@example.com"
        p2 = self.s.path_of(self.s.mint(other))
        st, h, body = self.s.public("POST", p2, body="x=1",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 400)
        self.assertIsNone(self.s.history(other))

    def test_invalid_tokens(self):
        email = "victim@example.com"
        bystander = "bystander@example.com"
        link = self.s.mint(email)
        token = self.s.path_of(link)[3:]
        forged = [token[:-1] + ("A" if token[-1] != "A" else "B"),  # changed
                  token[:len(token) // 2],  # truncated
                  token + "AAAA",  # extended
                  "A" * len(token),
                  base64.urlsafe_b64encode(os.urandom(80)).decode().rstrip("="),
                  "..", "%00"]
        for t in forged:
            st, h, body = self.s.public("GET", "/u/" + urllib.parse.quote(t))
            self.assertIn(st, (400, 429), t)
            if st == 400:
                self.assertIn("not valid", body)
                self.assertNotIn("victim", body)
                self.assertIn("https://example.com/privacy", body)
        self.assertIsNone(self.s.history(email))
        self.assertIsNone(self.s.history(bystander))
        # the real link opts out its own email and no other
        self.s.mint(bystander)
        st, h, body = self.s.public("POST", "/u/" + token, body=ONE_CLICK,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200)
        self.assertEqual(len(self.s.history(email)), 1)
        self.assertIsNone(self.s.history(bystander))

    def test_rekeyed_and_old_key(self):
        """A token sealed under a key this run does not have is rejected; one
        under an old key still works."""
        old = os.urandom(32)
        a = Sidecar(key=old)
        try:
            link = a.mint("rotate@example.com")
        finally:
            a.close()
        b = Sidecar()
        try:
            path = "/u/" + link["url"].split("/u/", 1)[1]
            st, h, body = b.public("POST", path, body=ONE_CLICK,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(st, 400)
            self.assertIsNone(b.history("rotate@example.com"))
        finally:
            b.close()
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(old)
        c = Sidecar(unsub_extra='old_key_files = ["%s"]\n' % f.name)
        try:
            path = "/u/" + link["url"].split("/u/", 1)[1]
            st, h, body = c.public("POST", path, body=ONE_CLICK,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(st, 200, body)
            self.assertEqual(c.history("rotate@example.com")[0]["origin"], "link")
        finally:
            c.close()
            os.unlink(f.name)

    def test_methods_and_sizes(self):
        path = self.s.path_of(self.s.mint("methods@example.com"))
        for m in ["PUT", "DELETE", "PATCH", "OPTIONS"]:
            st, h, body = self.s.public(m, path)
            self.assertEqual(st, 405, m)
            self.assertEqual(h["allow"], "GET, HEAD, POST")
        st, h, body = self.s.public("POST", path, body=b"x" * (8 * 1024 + 1),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 413)
        self.assertIsNone(self.s.history("methods@example.com"))
        self.assertEqual(self.s.public("GET", "/")[0], 404)
        self.assertEqual(self.s.public("GET", "/v1/status")[0], 404)
        # the public listener needs no token, and the API is not on it
        self.assertEqual(self.s.public("GET", "/metrics")[0], 404)

    def test_no_email_in_log(self):
        email = "private-person@example.com"
        path = self.s.path_of(self.s.mint(email))
        self.s.public("GET", path)
        self.post_form(path)
        time.sleep(0.2)
        with open(self.s.logpath) as f:
            log = f.read()
        self.assertNotIn("private-person", log)
        self.assertIn("link.optout", log)

    def test_metrics(self):
        base = {k: self.s.metric(k) for k in ["one_click", "form", "page", "invalid"]}
        path = self.s.path_of(self.s.mint("metrics@example.com"))
        self.s.public("GET", path)
        self.post_form(path)
        self.s.public("GET", "/u/nonsense")
        self.assertEqual(self.s.metric("page"), base["page"] + 1)
        self.assertEqual(self.s.metric("form"), base["form"] + 1)
        self.assertEqual(self.s.metric("invalid"), base["invalid"] + 1)
        self.assertIsNotNone(self.s.metric("rate_limited"))


class Limits(unittest.TestCase):
    def test_invalid_limited_valid_never(self):
        s = Sidecar(unsub_extra="invalid_per_minute = 20\n")
        try:
            st = [s.public("GET", "/u/bogus%d" % i)[0] for i in range(25)]
            self.assertEqual(st[:20], [400] * 20)
            self.assertEqual(st[20:], [429] * 5)
            st, h, body = s.public("GET", "/u/bogus")
            self.assertTrue(1 <= int(h["retry-after"]) <= 60)
            self.assertGreaterEqual(s.metric("rate_limited"), 6)
            # 1,000 valid one-click POSTs from this same address all succeed
            emails = ["bulk%04d@example.com" % i for i in range(1000)]
            st, doc = s.api("POST", "/v1/unsubscribe-links", {"emails": emails})
            paths = [s.path_of(doc["links"][e]) for e in emails]
            results = [None] * len(paths)

            def worker(k):
                c = http.client.HTTPConnection("127.0.0.1", s.pub, timeout=60)
                for i in range(k, len(paths), 16):
                    results[i] = s.public("POST", paths[i], body=ONE_CLICK, headers={
                        "Content-Type": "application/x-www-form-urlencoded"}, conn=c)[0]
                c.close()
            threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - t0
            self.assertEqual(results, [200] * 1000)
            print("1,000 one-click POSTs from one address in %.2f s" % took)
            st, doc = s.api("POST", "/v1/suppression/check", {"emails": emails})
            self.assertEqual(sum(doc["results"].values()), 1000)
        finally:
            s.close()

    def test_full_ledger_answers_503(self):
        """When an opt-out cannot be recorded the sender is told to come back
        (503 with Retry-After), and every 200 is in the ledger. So is the
        application on the local API, and the person on the page's form."""
        s = Sidecar(contacts=0, map_size='map_size = "1MiB"\nmax_map_size = "1MiB"')
        try:
            emails = ["filler%05d@example.com" % i for i in range(6000)]
            paths = []
            for k in range(0, len(emails), 1000):
                st, doc = s.api("POST", "/v1/unsubscribe-links", {"emails": emails[k:k + 1000]})
                paths += [s.path_of(doc["links"][e]) for e in emails[k:k + 1000]]
            ok, refused = [], None
            for e, p in zip(emails, paths):
                st, h, body = s.public("POST", p, body=ONE_CLICK, headers={
                    "Content-Type": "application/x-www-form-urlencoded"})
                if st == 200:
                    ok.append(e)
                    continue
                refused = (st, h, body, e)
                break
            self.assertIsNotNone(refused, "a 1 MiB ledger took 6,000 opt-outs")
            st, h, body, e = refused
            self.assertEqual(st, 503, body)
            self.assertEqual(h["retry-after"], "5")
            self.assertGreater(len(ok), 100)
            # the page's form: the retry page, with Retry-After (one opt-out
            # alone may still fit the pages a group could not use: the first
            # answer that is not a 200 counts, and it must be the retry page)
            for p in paths[len(ok):len(ok) + 200]:
                st, h, body = s.public("POST", p, body="action=unsubscribe", headers={
                    "Content-Type": "application/x-www-form-urlencoded"})
                if st != 200:
                    break
            self.assertEqual(st, 503, body)
            self.assertEqual(h["retry-after"], "5")
            self.assertIn("text/html", h["content-type"])
            # the local API's opt-out (a smaller write may still fit the
            # pages left: the first 503 counts)
            for i in range(200):
                st, h, doc = s.api("POST", "/v1/optouts", {"email": "api-full%d@example.com" % i},
                                   full=True)
                if st != 202:
                    break
            self.assertEqual(st, 503, doc)
            self.assertEqual(doc["error"]["code"], "unavailable")
            self.assertIn("is full", doc["error"]["message"])
            self.assertEqual(h.get("retry-after"), "5", h)
            # every answered opt-out is in the ledger (the suppression index
            # needs no write; the ledger is full)
            st, doc = s.api("POST", "/v1/suppression/check", {"emails": ok[-1000:]})
            self.assertEqual(st, 200, doc)
            self.assertEqual(sum(doc["results"].values()), len(ok[-1000:]))
            self.assertGreaterEqual(s.metric("unavailable"), 1)
            print("a 1 MiB ledger took %d link opt-outs, then answered 503" % len(ok))
        finally:
            s.close()

    def test_forwarded_for(self):
        # trusted: each forwarded client has its own budget
        s = Sidecar(unsub_extra='invalid_per_minute = 5\ntrusted_proxies = ["127.0.0.0/8"]\n')
        try:
            xa = {"X-Forwarded-For": "203.0.113.7"}
            st = [s.public("GET", "/u/bad%d" % i, headers=xa)[0] for i in range(6)]
            self.assertEqual(st, [400] * 5 + [429])
            # another client behind the same proxy is not limited
            xb = {"X-Forwarded-For": "198.51.100.9, 127.0.0.1"}
            self.assertEqual(s.public("GET", "/u/bad", headers=xb)[0], 400)
            # a client cannot pick its budget by adding addresses on the left
            xc = {"X-Forwarded-For": "192.0.2.1, 203.0.113.7"}
            self.assertEqual(s.public("GET", "/u/bad", headers=xc)[0], 429)
        finally:
            s.close()
        # untrusted peer: the header is ignored, the peer address counts
        s = Sidecar(unsub_extra='invalid_per_minute = 5\ntrusted_proxies = ["10.0.0.0/8"]\n')
        try:
            st = [s.public("GET", "/u/bad%d" % i,
                           headers={"X-Forwarded-For": "203.0.113.%d" % i})[0] for i in range(6)]
            self.assertEqual(st, [400] * 5 + [429])
        finally:
            s.close()


class EndToEnd(unittest.TestCase):
    def test_salesforce_within_two_seconds(self):
        s = Sidecar(contacts=3)
        try:
            rec = [r for r in s.ctl("GET", "records?object=Contact")["records"]
                   if not r["HasOptedOutOfEmail"]][0]
            email = rec["Email"]
            path = s.path_of(s.mint(email))
            # let the first cycle's kick settle
            time.sleep(1.5)
            t0 = time.monotonic()
            st, h, body = s.public("POST", path, body=ONE_CLICK,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(st, 200)

            def flipped():
                return s.ctl("GET", "records?object=Contact&id=" + rec["Id"])[
                    "records"][0]["HasOptedOutOfEmail"]
            self.assertTrue(s.wait(flipped, secs=10, step=0.02))
            took = time.monotonic() - t0
            print("Salesforce record opted out %.2f s after the one-click POST" % took)
            self.assertLess(took, 2.0)
        finally:
            s.close()


if __name__ == "__main__":
    OPTSYNC, FAKE = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
