#!/usr/bin/env python3
"""Issue #23, a full disk under a real `optsync run` (docs/reliability.md: "a full
disk is an error, never a crash"). The ledger (state.path) is on a tmpfs of
4 MiB of its own, with state.map_size = 1MiB and state.max_map_size far
above the tmpfs, so the map outgrows the disk. Opt-outs arrive through the
API and one-click links until the disk is full.

What must hold:
- every answer is a 2xx (stored) or a 503 with Retry-After, on the API and
  on the public listener; nothing answered 2xx is missing afterwards (once
  the disk is full, a later write may still fit in pages the ledger freed:
  a 202 then is honest, and it is checked like the others);
- run does not crash (the review saw it die of SIGBUS, exit 135): it stays
  alive and answers suppression checks correctly for what it stored;
- `optsync optout` on the full disk exits 5 and its message names the disk
  (the ledger's path, or disk / space); `sync --once` and `status` exit
  with an error code, never of a signal;
- once the tmpfs is made larger (mount -o remount), the next writes succeed
  within a few seconds by themselves, with the same run;
- the scheduled job (`sync --once` with run stopped) on a full disk fails
  without a crash, and succeeds once there is space; `audit verify` exits 0.

Needs root (mount); otherwise, or when the mount fails, it says why and
counts itself skipped (exit 0).

Usage: test_disk_full.py OPTSYNC FAKE_SF_PY"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_links  # noqa: E402  (the Sidecar harness: run, its API, links, the CLI)
from test_links import FORM, HTTP_ERRORS, signalled  # noqa: E402

SIZE, BIGGER = "4m", "64m"
MAP = 'map_size = "1MiB"\nmax_map_size = "256MiB"'
REASON = "disk full " + "x" * 900       # bigger records: the disk fills sooner
FILL_SECONDS = 90                       # the disk must be full by then
COME_BACK_SECONDS = 10                  # "within a few seconds" after the space returns


def names_the_disk(text, path):
    t = text.lower()
    return path in text or "disk" in t or "space" in t


class DiskFull(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("not root: mounting a tmpfs needs root")
        self.mnt = tempfile.mkdtemp(prefix="optsync-diskfull-")
        try:
            p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + SIZE, "tmpfs", self.mnt],
                               capture_output=True, text=True, timeout=30)
            why = "exit %d: %s" % (p.returncode, p.stderr.strip()) if p.returncode else None
        except (OSError, subprocess.TimeoutExpired) as e:
            why = str(e)
        if why:
            os.rmdir(self.mnt)
            raise unittest.SkipTest("mount -t tmpfs failed (%s)" % why)
        self.addCleanup(self.unmount)
        self.failures = []
        self.stored = []             # (email, how) answered 2xx / 200
        self.lock = threading.Lock()

    def unmount(self):
        for args in (["umount", self.mnt], ["umount", "-l", self.mnt]):
            if subprocess.run(args, capture_output=True, timeout=30).returncode == 0:
                break
        shutil.rmtree(self.mnt, ignore_errors=True)

    def check(self, ok, msg):
        if not ok:
            self.failures.append(msg)
        return ok

    def alive(self, s, pid, when):
        rc = s.proc.poll()
        if rc is None and s.proc.pid == pid:
            return True
        self.failures.append("run (pid %d) died %s: return code %s%s; its log ends: %s" % (
            pid, when, rc, " (SIGBUS)" if rc in (-signal.SIGBUS, 128 + signal.SIGBUS) else "",
            s.log_tail()))
        return False

    def suppressed(self, s, emails):
        """{email: True/False} from run's suppression check, None when it
        did not answer 200."""
        out = {}
        for i in range(0, len(emails), 1000):
            st, doc = s.api("POST", "/v1/suppression/check", {"emails": emails[i:i + 1000]},
                            timeout=30)
            if not self.check(st == 200, "POST /v1/suppression/check: %d %s" % (st, doc)):
                return None
            out.update(doc["results"])
        return out

    def fill(self, s, links):
        """Opt-outs through the API (3 threads) and one-click links until
        both answer 503 again and again: the disk is full."""
        stop = threading.Event()
        state = {"api503": 0, "oc503": 0, "bad": [], "lost": []}
        end = time.monotonic() + FILL_SECONDS

        def answered(how, email, st, headers, body):
            with self.lock:
                if 200 <= st < 300 and (how == "api" or st == 200):
                    self.stored.append((email, how))
                    state["api503" if how == "api" else "oc503"] = 0
                elif st == 503:
                    state["api503" if how == "api" else "oc503"] += 1
                    ra = headers.get("retry-after", "")
                    if not (ra.isdigit() and int(ra) >= 1):
                        state["bad"].append("%s %s: 503 without a Retry-After (%r): %s" % (
                            how, email, ra or None, str(body)[:200]))
                else:
                    state["bad"].append("%s %s: %d %s" % (how, email, st, str(body)[:200]))
                if state["api503"] >= 30 and state["oc503"] >= 5:
                    stop.set()

        def api_writer(k):
            i = 0
            while not stop.is_set() and time.monotonic() < end:
                email = "fill%d-%d@full.example.com" % (k, i)
                i += 1
                try:
                    st, doc, h = s.api_with_headers("POST", "/v1/optouts",
                                                    {"email": email, "reason": REASON},
                                                    timeout=15)
                except HTTP_ERRORS as e:
                    if s.proc.poll() is not None:
                        stop.set()
                    with self.lock:
                        state["lost"].append("api %s: no answer (%s)" % (email, e))
                    continue
                answered("api", email, st, h, doc)

        def one_clicker():
            while not stop.is_set() and time.monotonic() < end and links:
                email, path = links[0]
                try:
                    st, h, body = s.public("POST", path, body=test_links.ONE_CLICK, headers=FORM,
                                           timeout=15)
                except HTTP_ERRORS as e:
                    if s.proc.poll() is not None:
                        stop.set()
                    with self.lock:
                        state["lost"].append("one-click %s: no answer (%s)" % (email, e))
                    continue
                answered("one-click", email, st, h, body)
                if st == 200:
                    links.pop(0)
                else:
                    time.sleep(0.05)  # the same link again, as a sender that was told 503
        threads = [threading.Thread(target=api_writer, args=(k,)) for k in range(3)]
        threads.append(threading.Thread(target=one_clicker))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(FILL_SECONDS + 30)
        return (stop.is_set() and s.proc.poll() is None, time.monotonic() - t0, state["bad"],
                state["lost"])

    def test_a_full_disk_is_an_error_never_a_crash(self):
        state = os.path.join(self.mnt, "state")
        s = test_links.Sidecar(contacts=5, map_size=MAP, state_path=state)
        try:
            self.scenario(s, state)
        except Exception:  # noqa: BLE001  (what was found before it counts too)
            self.failures.append("the scenario stopped: " + traceback.format_exc(limit=4))
        finally:
            s.close()
        if self.failures:
            self.fail("\n  " + "\n  ".join(self.failures))

    def scenario(self, s, state):
        pid = s.proc.pid
        emails = ["link%05d@full.example.com" % i for i in range(3000)]
        links = []
        for i in range(0, len(emails), 1000):
            st, doc = s.api("POST", "/v1/unsubscribe-links", {"emails": emails[i:i + 1000]})
            self.assertEqual(st, 200, doc)
            links += [(e, s.path_of(doc["links"][e])) for e in emails[i:i + 1000]]

        # ---- fill the disk ----
        full, took, bad, lost = self.fill(s, links)
        df = shutil.disk_usage(self.mnt)
        print("filled in %.1f s: %d opt-outs stored (%d by one-click), data.mdb %d bytes, "
              "%d bytes free on the tmpfs" % (
                  took, len(self.stored), sum(1 for _, h in self.stored if h == "one-click"),
                  os.path.getsize(os.path.join(state, "data.mdb")), df.free))
        for b in bad[:8]:
            print("  " + b)
        self.check(not bad, "%d answers were neither a 2xx nor a 503 with Retry-After; "
                   "the first: %s" % (len(bad), bad[:3]))
        if not self.alive(s, pid, "while the disk filled (%d requests got no answer)" % len(lost)):
            self.cli_on_full_disk(s, state, run_alive=False)
            return
        self.check(not lost, "%d requests got no answer from a live run; the first: %s" % (
            len(lost), lost[:3]))
        self.check(full, "the disk did not fill in %d s (%d stored)" % (FILL_SECONDS,
                                                                         len(self.stored)))

        # ---- full: run alive, checks right, the CLI errs without a crash ----
        st, _ = s.api("GET", "/healthz")
        self.check(st == 200, "GET /healthz on a full disk: %d" % st)
        never = ["never%d@full.example.com" % i for i in range(20)]
        got = self.suppressed(s, [e for e, _ in self.stored] + never)
        if got is not None:
            lost = [e for e, _ in self.stored if got.get(e) is not True]
            self.check(not lost, "%d opt-outs answered 2xx are not suppressed on the full disk: "
                       "%s" % (len(lost), lost[:5]))
            self.check(not any(got.get(e) for e in never),
                       "emails never opted out are suppressed: %s" % [e for e in never
                                                                     if got.get(e)])
        st, doc, h = s.api_with_headers("POST", "/v1/optouts", {"email": "still@full.example.com",
                                                                "reason": REASON})
        # A 503 with Retry-After, or a 202 when the write found room after
        # all: pages LMDB frees become reusable once the readers that saw
        # them are gone, so one more small write may fit. A 202 must then be
        # stored; it is checked with the others below.
        print("POST /v1/optouts on the full disk: %d" % st)
        self.check((st == 503 and h.get("retry-after", "").isdigit()) or st == 202,
                   "POST /v1/optouts on the full disk: %d, Retry-After %r: %s" % (
                       st, h.get("retry-after"), doc))
        if st == 202:
            self.stored.append(("still@full.example.com", "api"))
        self.cli_on_full_disk(s, state, run_alive=True)
        if not self.alive(s, pid, "beside the CLI on the full disk"):
            return

        # ---- space returns: the same run writes again, by itself ----
        p = subprocess.run(["mount", "-o", "remount,size=" + BIGGER, self.mnt],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        t0 = time.monotonic()
        first, i = None, 0
        while time.monotonic() - t0 < COME_BACK_SECONDS:
            email = "back%d@full.example.com" % i
            i += 1
            try:
                st, doc = s.api("POST", "/v1/optouts", {"email": email, "reason": REASON},
                                timeout=10)
            except HTTP_ERRORS:
                if s.proc.poll() is not None:
                    break
                continue
            if 200 <= st < 300:
                self.stored.append((email, "api"))
                first = time.monotonic() - t0
                break
            self.check(st == 503, "POST /v1/optouts after the remount: %d %s" % (st, doc))
            time.sleep(0.1)
        if not self.alive(s, pid, "after the space returned"):
            return
        if not self.check(first is not None, "no write succeeded within %d s of the space "
                          "returning (the last answer: %d %s)" % (COME_BACK_SECONDS, st, doc)):
            return
        print("space returned: the first write succeeded %.2f s later" % first)
        for i in range(20):
            email = "after%d@full.example.com" % i
            st, doc = s.api("POST", "/v1/optouts", {"email": email, "reason": REASON})
            if self.check(st == 202, "POST /v1/optouts once space returned: %d %s" % (st, doc)):
                self.stored.append((email, "api"))
        for email, path in links[:5]:
            st, h, body = s.public("POST", path, body=test_links.ONE_CLICK, headers=FORM)
            if self.check(st == 200, "one-click once space returned: %d %s" % (st, body[:200])):
                self.stored.append((email, "one-click"))
        p = s.cli("optout", "cli-after@full.example.com", check=None, timeout=60)
        if self.check(p.returncode == 0, "optsync optout once space returned: exit %d: %s" % (
                p.returncode, p.stderr.strip()[:300])):
            self.stored.append(("cli-after@full.example.com", "cli"))

        # every 2xx is there, by run's check and by the CLI
        got = self.suppressed(s, [e for e, _ in self.stored])
        if got is not None:
            lost = [(e, h) for e, h in self.stored if got.get(e) is not True]
            self.check(not lost, "%d of %d opt-outs answered 2xx are missing: %s" % (
                len(lost), len(self.stored), lost[:5]))
        for email, how in self.stored[::max(1, len(self.stored) // 10)]:
            p = s.cli("contact", "show", email, "--json", check=None, timeout=60)
            self.check(p.returncode == 0 and json.loads(p.stdout).get("opted_out") is True,
                       "contact show %s (%s): exit %d %s" % (email, how, p.returncode,
                                                             p.stderr.strip()[:200]))
        p = s.cli("audit", "verify", check=None, timeout=120)
        self.check(p.returncode == 0, "audit verify beside run: exit %d: %s" % (
            p.returncode, p.stderr.strip()[:300]))
        self.alive(s, pid, "by the end")

        # ---- the scheduled job on a full disk ----
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = "still running 30 s after SIGTERM"
        self.check(rc == 0, "run did not stop cleanly on SIGTERM: %s" % rc)
        s.ctl("POST", "records", {"object": "Contact", "records": [
            {"FirstName": "Job", "LastName": "N%d" % i, "Email": "job%d@full.example.com" % i,
             "HasOptedOutOfEmail": i % 2 == 0} for i in range(200)]})
        ballast = os.path.join(self.mnt, "ballast")
        fill_up(ballast)
        p = s.cli("sync", "--once", check=None, timeout=120)
        print("sync --once on a full disk, run stopped: exit %d: %s" % (
            p.returncode, p.stderr.strip()[-200:]))
        self.check(p.returncode in (0, 1, 5),
                   "sync --once on a full disk (run stopped): exit %d%s: %s" % (
                       p.returncode, " (a signal)" if signalled(p.returncode) else "",
                       p.stderr.strip()[-300:]))
        os.unlink(ballast)
        p = s.cli("sync", "--once", check=None, timeout=120)
        self.check(p.returncode == 0, "sync --once once space returned: exit %d: %s" % (
            p.returncode, p.stderr.strip()[-300:]))
        p = s.cli("contact", "show", "job0@full.example.com", "--json", check=None, timeout=60)
        self.check(p.returncode == 0 and json.loads(p.stdout).get("opted_out") is True,
                   "the pulled opt-out job0@full.example.com: exit %d %s" % (
                       p.returncode, p.stderr.strip()[:200]))
        p = s.cli("audit", "verify", check=None, timeout=120)
        self.check(p.returncode == 0, "audit verify at the end: exit %d: %s" % (
            p.returncode, p.stderr.strip()[:300]))

    def cli_on_full_disk(self, s, state, run_alive):
        """The CLI beside run on the full disk: an error, never a crash."""
        p = s.cli("optout", "cli-full@full.example.com", "--reason", REASON, check=None,
                  timeout=60)
        print("optsync optout on the full disk: exit %d: %s" % (p.returncode,
                                                                p.stderr.strip()[:300]))
        self.check(p.returncode == 5 and names_the_disk(p.stderr, state),
                   "optsync optout on the full disk: exit %d%s (wanted 5, naming the disk): %s"
                   % (p.returncode, " (a signal)" if signalled(p.returncode) else "",
                      p.stderr.strip()[:300]))
        if p.returncode == 0:  # not what the contract says, but then it must be there
            self.stored.append(("cli-full@full.example.com", "cli"))
        # beside run, sync --once refuses (run holds the sync lock) or fails;
        # without it (run crashed), it may find free pages in the ledger
        where = "beside run" if run_alive else "with run dead"
        p = s.cli("sync", "--once", check=None, timeout=120)
        print("sync --once on the full disk %s: exit %d: %s" % (
            where, p.returncode, p.stderr.strip()[-200:]))
        self.check(p.returncode in ((1, 5) if run_alive else (0, 1, 5)),
                   "sync --once on the full disk %s: exit %d%s: %s" % (
                       where, p.returncode, " (a signal)" if signalled(p.returncode) else "",
                       p.stderr.strip()[-300:]))
        p = s.cli("status", "--json", check=None, timeout=60)
        self.check(p.returncode in (0, 5), "status on the full disk: exit %d%s: %s" % (
            p.returncode, " (a signal)" if signalled(p.returncode) else "",
            p.stderr.strip()[-300:]))


def fill_up(path):
    """Write path until the file system has no room left (bounded: the
    tmpfs is 64 MiB, the loop 1 GiB)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 20, 4096, 512):
            block = b"\0" * chunk
            try:
                for _ in range(1024):
                    os.write(fd, block)
            except OSError:
                pass  # ENOSPC: on to smaller writes, for the last bytes
    finally:
        os.close(fd)


def main():
    test_links.OPTSYNC = os.path.abspath(sys.argv[1])
    test_links.FAKE = os.path.abspath(sys.argv[2])
    prog = unittest.main(argv=sys.argv[:1] + sys.argv[3:], verbosity=2, exit=False)
    r = prog.result
    for _, why in r.skipped:
        print("skipped: " + why)
    print("%d passed, %d failed, %d skipped" % (
        r.testsRun - len(r.failures) - len(r.errors) - len(r.skipped),
        len(r.failures) + len(r.errors), len(r.skipped)))
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
