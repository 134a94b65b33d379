#!/usr/bin/env python3
"""Issue #23, the ledger file under chaos: a real `optsync run` whose map
starts at 1 MiB (state.max_map_size far above, so the map grows several
times) serves opt-outs and suppression checks on its API and one-click
unsubscribes on its public listener, while 56 CLI processes at once
(`status`, `optout`, `contact export`, `backup`, `link`) open the same
ledger, and `run` is SIGKILLed at random moments and started again.

What must hold (docs/reliability.md, "the ledger file is never damaged by
optsync"; sections 5 and 6, "acknowledged once durable"):
- every acknowledged opt-out (a 2xx from POST /v1/optouts, a 200 one-click,
  an `optsync optout` that exited 0) is suppressed afterwards, and every
  suppression check during the run already says so;
- data.mdb never shrinks (its size is sampled every few milliseconds from a
  thread): a command that opens the ledger with the config's map_size must
  not cut the file of a run that grew it;
- no process dies of a signal but the test's own SIGKILLs of `run` (a run
  dying of SIGBUS, exit 135 in a shell, fails the test), every CLI command
  exits 0, `optsync audit verify` exits 0, and `run` stops cleanly at the end.

Bounded: the chaos lasts OPTSYNC_CHAOS_SECONDS (default 60), every request,
command and wait has a deadline. The seed is printed; OPTSYNC_CHAOS_SEED
replays the same kill times and command choices.

Usage: test_storage_chaos.py OPTSYNC FAKE_SF_PY"""
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_links  # noqa: E402  (the Sidecar harness: run, its API, links, the CLI)
from test_links import FORM, HTTP_ERRORS, signalled  # noqa: E402

SEED = int(os.environ.get("OPTSYNC_CHAOS_SEED") or random.SystemRandom().randrange(1 << 31))
SECONDS = float(os.environ.get("OPTSYNC_CHAOS_SECONDS") or 60)
CLI_PROCS = 56            # CLI processes open at once
MIN_CONCURRENT = 50       # the least the test accepts to have reached
MAP = 'map_size = "1MiB"\nmax_map_size = "512MiB"'
MIN_GROWN = 4 << 20       # the map must have doubled at least twice
REASON = "storage chaos " + "x" * 980   # bigger records: the map grows sooner


class Chaos:
    """The shared record of one chaos run."""

    def __init__(self, s):
        self.s = s
        self.lock = threading.Lock()
        self.stop = threading.Event()       # the load stops
        self.done = threading.Event()       # the sampler stops
        self.acked = collections.OrderedDict()  # email -> how it was acknowledged
        self.acked_list = []                # the same, for sampling
        self.problems = collections.defaultdict(list)
        self.counts = collections.Counter()
        self.links = collections.deque()    # (email, path) not yet one-clicked
        self.kills = 0
        self.deaths = []                    # (seconds, return code) of deaths not ours
        self.running = 0
        self.peak = 0
        self.sizes = []                     # (seconds, size) at each change
        self.shrinks = []                   # (seconds, size before, size): the file got smaller
        self.below_peak = 0                 # samples smaller than the largest size seen
        self.samples = 0
        self.t0 = time.monotonic()

    def at(self):
        return time.monotonic() - self.t0

    def ack(self, email, how):
        with self.lock:
            if email not in self.acked:
                self.acked[email] = how
                self.acked_list.append(email)
            self.counts["acked " + how] += 1

    def problem(self, kind, text):
        with self.lock:
            self.problems[kind].append("%.2fs %s" % (self.at(), text))

    def count(self, key):
        with self.lock:
            self.counts[key] += 1

    # ---- the threads ----

    def sampler(self, data):
        peak = last = 0
        while not self.done.is_set():
            try:
                size = os.stat(data).st_size
            except FileNotFoundError:
                self.problem("file", "data.mdb is missing")
                size = 0
            with self.lock:
                self.samples += 1
                if size < last:
                    self.shrinks.append((self.at(), last, size))
                if size < peak:
                    self.below_peak += 1
                if size != last:
                    self.sizes.append((self.at(), size))
            peak, last = max(peak, size), size
            time.sleep(0.002)

    def api_writer(self, k):
        i = 0
        while not self.stop.is_set():
            email = "api%d-%d@chaos.example.com" % (k, i)
            i += 1
            try:
                st, doc = self.s.api("POST", "/v1/optouts", {"email": email, "reason": REASON},
                                     timeout=15)
            except HTTP_ERRORS:
                self.count("api down")
                self.stop.wait(0.05)
                continue
            self.count("api %d" % st)
            if 200 <= st < 300:
                self.ack(email, "api")
            elif st != 503:
                self.problem("api", "POST /v1/optouts %s: %d %s" % (email, st, doc))

    def checker(self):
        rng = random.Random(SEED + 1)
        while not self.stop.is_set():
            with self.lock:
                n = len(self.acked_list)
                sample = [self.acked_list[rng.randrange(n)] for _ in range(min(n, 200))]
            if not sample:
                self.stop.wait(0.1)
                continue
            try:
                st, doc = self.s.api("POST", "/v1/suppression/check", {"emails": sample},
                                     timeout=15)
            except HTTP_ERRORS:
                self.count("check down")
                self.stop.wait(0.05)
                continue
            self.count("check %d" % st)
            if st == 200:
                lost = sorted(set(e for e in sample if doc["results"].get(e) is not True))
                if lost:
                    self.problem("lost", "a suppression check says %d acknowledged opt-outs "
                                 "are not suppressed: %s" % (len(lost), lost[:5]))
            elif st != 503:
                self.problem("api", "POST /v1/suppression/check: %d %s" % (st, doc))

    def mint(self, first, n):
        emails = ["link%d@chaos.example.com" % i for i in range(first, first + n)]
        st, doc = self.s.api("POST", "/v1/unsubscribe-links", {"emails": emails}, timeout=30)
        if st != 200:
            return False
        with self.lock:
            self.links.extend((e, self.s.path_of(doc["links"][e])) for e in emails)
        return True

    def one_clicker(self, k):
        minted = 0
        while not self.stop.is_set():
            with self.lock:
                item = self.links.popleft() if self.links else None
            if item is None:
                try:
                    if self.mint(1000000 * (k + 1) + minted, 500):
                        minted += 500
                except HTTP_ERRORS:
                    self.stop.wait(0.05)
                continue
            email, path = item
            try:
                st, h, body = self.s.public("POST", path, body=test_links.ONE_CLICK, headers=FORM,
                                            timeout=15)
            except HTTP_ERRORS:
                self.count("one-click down")
                with self.lock:
                    self.links.append(item)  # the sender tries again later
                self.stop.wait(0.05)
                continue
            self.count("one-click %d" % st)
            if st == 200:
                self.ack(email, "one-click")
            else:
                with self.lock:
                    self.links.append(item)
                if st != 503 or "retry-after" not in h:
                    self.problem("one-click", "POST %s (%s): %d %s %s" % (
                        path[:24], email, st, h.get("retry-after"), body[:200]))

    def cli_worker(self, k):
        rng = random.Random(SEED * 1000 + k)
        backups = os.path.join(self.s.tmp.name, "backups")
        j = 0
        while not self.stop.is_set():
            j += 1
            kind = rng.choices(["status", "optout", "export", "backup", "link"],
                               weights=[30, 35, 20, 10, 5])[0]
            email = None
            with self.lock:
                known = self.acked_list[rng.randrange(len(self.acked_list))] \
                    if self.acked_list else None
            if kind == "export" and known is None:
                kind = "status"
            if kind == "status":
                args = ["status", "--json"]
            elif kind == "optout":
                email = "cli%d-%d@chaos.example.com" % (k, j)
                args = ["optout", email, "--reason", REASON]
            elif kind == "export":
                args = ["contact", "export", known]
            elif kind == "backup":
                args = ["backup", os.path.join(backups, "b%d-%d.backup" % (k, j))]
            else:
                email = "clilink%d-%d@chaos.example.com" % (k, j)
                args = ["link", email, "--json"]
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                p = self.s.cli(*args, check=None, timeout=60)
            except subprocess.TimeoutExpired:
                self.problem("cli", "optsync %s: still running after 60 s" % " ".join(args[:2]))
                continue
            finally:
                with self.lock:
                    self.running -= 1
            self.count("cli %s %d" % (kind, p.returncode))
            if p.returncode != 0:
                self.problem("signal" if signalled(p.returncode) else "cli",
                             "optsync %s: exit %d: %s" % (" ".join(args[:2]), p.returncode,
                                                          p.stderr.strip()[:300]))
                continue
            if kind == "optout":
                self.ack(email, "cli")
            elif kind == "backup":
                os.unlink(args[1])
            elif kind == "link":
                with self.lock:
                    self.links.append((email, self.s.path_of(json.loads(p.stdout))))

    def wait_up(self, secs=30):
        """True once the run started last answers /healthz, False when it
        died or the deadline passed."""
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if self.s.proc.poll() is not None:
                return False
            try:
                if self.s.api("GET", "/healthz", timeout=5)[0] == 200:
                    return True
            except HTTP_ERRORS:
                pass
            time.sleep(0.05)
        return False

    def restart(self):
        self.s.start_run()
        if not self.wait_up():
            rc = self.s.proc.poll()
            self.problem("restart", "run did not come back within 30 s (%s); its log ends: %s"
                         % ("exit %d" % rc if rc is not None else "still starting",
                            self.s.log_tail()))
            self.stop.wait(1)  # a run that cannot start is not started 20 times a second

    def killer(self):
        rng = random.Random(SEED)
        next_kill = time.monotonic() + rng.uniform(2.0, 5.0)
        while not self.stop.is_set():
            rc = self.s.proc.poll()
            if rc is not None:
                # died, and not of our SIGKILL
                with self.lock:
                    self.deaths.append((self.at(), rc))
                self.problem("signal" if signalled(rc) else "run",
                             "run (pid %d) died by itself: return code %d; its log ends: %s"
                             % (self.s.proc.pid, rc, self.s.log_tail()))
                self.restart()
                next_kill = time.monotonic() + rng.uniform(2.0, 5.0)
            elif time.monotonic() >= next_kill:
                self.s.proc.send_signal(signal.SIGKILL)
                rc = self.s.proc.wait(10)
                self.kills += 1
                if rc != -signal.SIGKILL:
                    self.problem("run", "run killed with SIGKILL returned %d" % rc)
                self.restart()
                next_kill = time.monotonic() + rng.uniform(2.0, 5.0)
            self.stop.wait(0.05)


class StorageChaos(unittest.TestCase):
    def test_acknowledged_writes_survive_and_the_file_never_shrinks(self):
        print("seed %d (OPTSYNC_CHAOS_SEED=%d replays it), %.0f s of chaos" % (SEED, SEED, SECONDS))
        s = test_links.Sidecar(contacts=20, map_size=MAP)
        c = Chaos(s)
        threads = []
        try:
            data = os.path.join(s.state_path, "data.mdb")
            os.mkdir(os.path.join(s.tmp.name, "backups"))
            sampler = threading.Thread(target=c.sampler, args=(data,), daemon=True)
            sampler.start()
            self.assertTrue(c.mint(0, 1000))
            self.assertTrue(c.mint(1000, 1000))
            work = [(c.api_writer, (k,)) for k in range(3)] + [(c.checker, ())] + \
                   [(c.one_clicker, (k,)) for k in range(2)] + \
                   [(c.cli_worker, (k,)) for k in range(CLI_PROCS)] + [(c.killer, ())]
            threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in work]
            for t in threads:
                t.start()
            c.stop.wait(SECONDS)
            c.stop.set()
            end = time.monotonic() + 90  # a CLI command has at most 60 s
            for t in threads:
                t.join(max(0.1, end - time.monotonic()))
            stuck = [t.name for t in threads if t.is_alive()]
            self.assertEqual(stuck, [], "threads still running 90 s after the chaos ended")

            # the last run serves again (the killer may just have restarted it)
            if s.proc.poll() is not None:
                rc = s.proc.returncode
                c.problem("signal" if signalled(rc) else "run",
                          "run (pid %d) died by itself: return code %d; its log ends: %s"
                          % (s.proc.pid, rc, s.log_tail()))
                c.restart()
            up = c.wait_up()
            failures = []
            if not up:
                failures.append("run does not answer after the chaos: " + s.log_tail())

            # every acknowledged opt-out is suppressed
            acked = list(c.acked)
            if up:
                missing = []
                for i in range(0, len(acked), 1000):
                    chunk = acked[i:i + 1000]
                    st, doc = s.api("POST", "/v1/suppression/check", {"emails": chunk},
                                    timeout=60)
                    if st != 200:
                        failures.append("the final suppression check: %d %s" % (st, doc))
                        break
                    missing += [e for e in chunk if doc["results"].get(e) is not True]
                if missing:
                    failures.append("%d of %d acknowledged opt-outs are not suppressed: %s" % (
                        len(missing), len(acked),
                        ["%s (%s)" % (e, c.acked[e]) for e in missing[:10]]))
            # and the CLI sees them too, a sample of each kind
            rng = random.Random(SEED + 2)
            for how in ("api", "one-click", "cli"):
                mine = [e for e in acked if c.acked[e] == how]
                for e in rng.sample(mine, min(10, len(mine))):
                    p = s.cli("contact", "show", e, "--json", check=None, timeout=60)
                    if p.returncode != 0 or not json.loads(p.stdout).get("opted_out"):
                        failures.append("contact show %s (%s): exit %d %s%s" % (
                            e, how, p.returncode, p.stdout[:200], p.stderr.strip()[:300]))
                        break  # one says it; the suppression check above counts them
            p = s.cli("audit", "verify", check=None, timeout=120)
            if p.returncode != 0:
                failures.append("audit verify beside run: exit %d: %s%s" % (
                    p.returncode, p.stdout[-300:], p.stderr[-300:]))
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
                try:
                    rc = s.proc.wait(30)
                except subprocess.TimeoutExpired:
                    rc = None
                    s.proc.kill()
                    s.proc.wait(10)
                if rc != 0:
                    failures.append("run did not stop cleanly on SIGTERM: %s" % rc)
            p = s.cli("audit", "verify", check=None, timeout=120)
            if p.returncode != 0:
                failures.append("audit verify after run stopped: exit %d: %s%s" % (
                    p.returncode, p.stdout[-300:], p.stderr[-300:]))
            c.done.set()
            sampler.join(5)

            # the report
            sizes = [z for _, z in c.sizes]
            print("%d kills of run; %d acknowledged opt-outs (%s); peak %d CLI processes at once"
                  % (c.kills, len(acked), ", ".join(
                      "%s %d" % (h, sum(1 for e in acked if c.acked[e] == h))
                      for h in ("api", "one-click", "cli")), c.peak))
            print("answers and exits: " + ", ".join(
                "%s: %d" % kv for kv in sorted(c.counts.items()) if not kv[0].startswith("acked")))
            print("data.mdb: %d samples, %d sizes from %d to %d bytes; it shrank %d times, "
                  "%d samples below the largest size seen" % (
                      c.samples, len(sizes), min(sizes or [0]), max(sizes or [0]),
                      len(c.shrinks), c.below_peak))
            for t, before, after in c.shrinks[:5]:
                print("  shrank at %.2fs: %d -> %d bytes" % (t, before, after))
            if c.shrinks:
                failures.append("data.mdb shrank %d times (first at %.2fs: %d -> %d bytes)" % (
                    len(c.shrinks), c.shrinks[0][0], c.shrinks[0][1], c.shrinks[0][2]))
            for kind, items in sorted(c.problems.items()):
                failures.append("%d %s problems, the first:\n    %s" % (
                    len(items), kind, "\n    ".join(items[:5])))
            # the test did what it says, or it proves nothing
            if c.kills < 3:
                failures.append("only %d kills of run in %.0f s" % (c.kills, SECONDS))
            if c.peak < MIN_CONCURRENT:
                failures.append("at most %d CLI processes ran at once (wanted %d)" % (
                    c.peak, MIN_CONCURRENT))
            if max(sizes or [0]) < MIN_GROWN:
                failures.append("the map never grew to %d bytes (largest file %d)" % (
                    MIN_GROWN, max(sizes or [0])))
            for how in ("api", "one-click", "cli"):
                if not any(v == how for v in c.acked.values()):
                    failures.append("no %s opt-out was ever acknowledged" % how)
            if failures:
                self.fail("seed %d:\n  %s" % (SEED, "\n  ".join(failures)))
        finally:
            c.stop.set()
            c.done.set()
            for t in threads:
                t.join(0.1)
            s.close()


def main():
    test_links.OPTSYNC = os.path.abspath(sys.argv[1])
    test_links.FAKE = os.path.abspath(sys.argv[2])
    prog = unittest.main(argv=sys.argv[:1] + sys.argv[3:], verbosity=2, exit=False)
    r = prog.result
    print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                    len(r.failures) + len(r.errors)))
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
