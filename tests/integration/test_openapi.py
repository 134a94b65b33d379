#!/usr/bin/env python3
"""docs/openapi.yaml is a valid OpenAPI 3 document (checked by npm's
swagger-parser in tests/deploy/openapi.mjs), and every operation in it exists
in a real `optsync run`: the server answers each one with something other
than 405 or its "no such resource" answer for unknown routes.

Usage: test_openapi.py OPTSYNC FAKE_SF_PY SOURCE_DIR"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_api  # noqa: E402  (the Sidecar fixture)
import test_links  # noqa: E402  (the one with the public unsubscribe listener)

SRC = None


class OpenApi(unittest.TestCase):
    def test_every_documented_route_exists(self):
        deploy = os.path.join(SRC, "tests", "deploy")
        if not os.path.isdir(os.path.join(deploy, "node_modules", "@apidevtools")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=deploy, check=True, capture_output=True)
        p = subprocess.run(["node", os.path.join(deploy, "openapi.mjs"),
                            os.path.join(SRC, "docs", "openapi.yaml")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, "invalid OpenAPI document: " + p.stderr)
        ops = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertGreaterEqual(len(ops), 16)
        public = [op for op in ops if op["public"]]
        ops = [op for op in ops if not op["public"]]
        self.assertGreaterEqual(len(public), 2)
        s = test_links.Sidecar()
        try:
            path = s.path_of(s.mint("openapi@example.com"))
            for op in public:
                st, h, body = s.public(op["method"], op["path"].replace("/u/{token}", path),
                                       body="List-Unsubscribe=One-Click" if op["method"] == "POST"
                                       else None,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
                self.assertEqual(st, 200, "%s %s: %s" % (op["method"], op["path"], body))
        finally:
            s.close()
        s = test_api.Sidecar()
        try:
            for op in ops:
                path = op["path"].replace("{email}", "nobody%40example.com").replace("{id}", "999999")
                body = {} if op["method"] in ("POST", "PUT") else None
                st, resp = s.request(op["method"], path, body=body,
                                     admin="alice:" + test_api.ADMIN_TOKEN)
                msg = (resp or {}).get("error", {}).get("message", "") if isinstance(resp, dict) else ""
                self.assertNotEqual(st, 405, "%s %s" % (op["method"], op["path"]))
                self.assertNotEqual(msg, "no such resource", "%s %s" % (op["method"], op["path"]))
                self.assertLess(st, 500, "%s %s: %s" % (op["method"], op["path"], resp))
        finally:
            s.close()


if __name__ == "__main__":
    test_api.OPTSYNC, test_api.FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    test_links.OPTSYNC, test_links.FAKE = test_api.OPTSYNC, test_api.FAKE
    SRC = os.path.abspath(sys.argv[3])
    h = subprocess.run([test_api.OPTSYNC, "admin", "hash-token"],
                       input=test_api.ADMIN_TOKEN + "\n", capture_output=True, text=True, check=True)
    test_api.ADMIN_HASH = h.stdout.split('"')[1]
    prog = unittest.main(argv=sys.argv[:1], verbosity=2, exit=False)
    r = prog.result
    print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                    len(r.failures) + len(r.errors)))
    sys.exit(0 if r.wasSuccessful() else 1)
