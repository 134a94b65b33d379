#!/usr/bin/env python3
"""The unsubscribe page in a real browser (Debian's chromium, driven by
playwright-core from npm): opening it changes nothing; clicking Unsubscribe
shows the confirmation, records the opt-out and flips the Salesforce record;
axe-core finds no WCAG 2.1 A/AA violation on the page, the confirmation and
the invalid-link page; nothing scrolls sideways on a 360-px phone.
Screenshots (en and nl, desktop and phone) go to BUILD/browser-shots.

Usage: test_browser.py OPTSYNC FAKE_SF_PY BROWSER_DIR SHOTS_DIR
BROWSER_DIR is tests/browser, with node_modules holding playwright-core and
axe-core (`npm install --no-package-lock` there; scripts/test.sh does)."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_links  # noqa: E402  (the Sidecar harness)

NODE_DIR = SHOTS = None
HERE = os.path.dirname(os.path.abspath(__file__))


def node(*args):
    script = os.path.join(NODE_DIR, "pages.mjs")
    p = subprocess.run(["node", script, *args], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError("pages.mjs %s failed:\n%s%s" % (args[0], p.stdout, p.stderr))
    return json.loads(p.stdout.strip().splitlines()[-1])


class Browser(unittest.TestCase):
    def test_page_click_axe(self):
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "playwright-core")):
            self.fail("no playwright-core in %s: run `npm install --no-package-lock` there with "
                      "tests/browser/package.json (scripts/test.sh does)" % NODE_DIR)
        os.makedirs(SHOTS, exist_ok=True)
        # with purposes: the page offers them as checkboxes, which axe checks too
        s = test_links.Sidecar(contacts=3, unsub_extra=(
            '[[purposes]]\nname = "newsletter"\nlabel = { en = "Newsletter", '
            'nl = "Nieuwsbrief" }\nbasis = "consent"\nsalesforce = { field = "Newsletter_Opt_Out__c" }\n'
            '[[purposes]]\nname = "events"\nlabel = { en = "Event invitations", '
            'nl = "Uitnodigingen" }\nbasis = "soft_opt_in"\n'
            'salesforce = { field = "Events_Opt_Out__c" }\n'))
        try:
            rec = [r for r in s.ctl("GET", "records?object=Contact")["records"]
                   if not r["HasOptedOutOfEmail"]][0]
            email = rec["Email"]
            url = s.mint(email, campaign="browser")["url"]
            invalid = url[:-6] + "AAAAAA"
            before, hist = s.changes(), s.history(email.lower())
            seen = node("view", SHOTS, url, invalid)
            # opening the page (8 loads, scripts allowed) changed nothing
            self.assertEqual(s.changes(), before)
            self.assertEqual(s.history(email.lower()), hist)
            for name, p in seen["pages"].items():
                self.assertFalse(p["sideways"], name)
                if p.get("axe") is not None:
                    self.assertEqual(p["axe"], [], "%s: axe-core found %s" % (name, p["axe"]))
            self.assertEqual(seen["pages"]["page-en-desktop"]["status"], 200)
            self.assertEqual(seen["pages"]["page-nl-phone"]["lang"], "nl")
            self.assertEqual(seen["pages"]["page-nl-phone"]["button"], "Afmelden")
            self.assertEqual(seen["pages"]["page-nl-phone"]["purposes"],
                             ["Nieuwsbrief", "Uitnodigingen"])
            self.assertEqual(seen["pages"]["invalid-en"]["status"], 400)
            self.assertEqual(seen["pages"]["invalid-nl"]["heading"], "Deze link is niet geldig")
            # click
            done = node("click", SHOTS, url)["pages"]["done"]
            self.assertEqual(done["heading"], "You are unsubscribed")
            self.assertEqual(done["axe"], [], done["axe"])
            self.assertEqual(done["url"], url)  # no redirect
            self.assertEqual(done["cookies"], 0)
            self.assertEqual(done["focused"], "BUTTON")
            self.assertNotEqual(done["outline"], "none")
            ev = s.history(email.lower())[len(hist):]
            self.assertEqual([(e["kind"], e["origin"], e["campaign"]) for e in ev],
                             [("optout", "link", "browser")])

            def flipped():
                return s.ctl("GET", "records?object=Contact&id=" + rec["Id"])[
                    "records"][0]["HasOptedOutOfEmail"]
            self.assertTrue(s.wait(flipped, secs=15))
            shots = sorted(os.listdir(SHOTS))
            print("screenshots in %s: %s" % (SHOTS, ", ".join(shots)))
            for want in ["page-en-desktop.png", "page-en-phone.png", "page-nl-desktop.png",
                         "page-nl-phone.png", "done-en-phone.png", "invalid-en-phone.png"]:
                self.assertIn(want, shots)
        finally:
            s.close()


if __name__ == "__main__":
    test_links.OPTSYNC, test_links.FAKE = sys.argv[1], sys.argv[2]
    NODE_DIR, SHOTS = os.path.abspath(sys.argv[3]), os.path.abspath(sys.argv[4])
    unittest.main(argv=sys.argv[:1], verbosity=2)
