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

PURPOSE = ('[[purposes]]\nname = "newsletter"\nbasis = "consent"\n'
           'salesforce = { field = "Newsletter_Opt_Out__c" }\n')


def conforms(value, schema, path, errors):
    """value against an OpenAPI schema (the subset docs/openapi.yaml uses),
    strictly: a property the schema does not name is an error too, so that
    what optsync sends is documented."""
    if value is None:
        if not schema.get("nullable"):
            errors.append("%s: null, and the schema does not allow it" % path)
        return
    types = {"object": dict, "array": list, "string": str, "boolean": bool,
             "integer": int, "number": (int, float)}
    t = schema.get("type")
    if t and (not isinstance(value, types[t]) or (t in ("integer", "number")
                                                  and isinstance(value, bool))):
        errors.append("%s: %r is not of type %s" % (path, value, t))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r is not one of %s" % (path, value, schema["enum"]))
    if t == "object":
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                conforms(v, props[k], path + "." + k, errors)
            elif not schema.get("additionalProperties"):
                errors.append("%s.%s: sent, but not in the schema" % (path, k))
        for k in schema.get("required", []):
            if k not in value:
                errors.append("%s.%s: required, and missing" % (path, k))
    if t == "array":
        for i, v in enumerate(value):
            conforms(v, schema.get("items", {}), "%s[%d]" % (path, i), errors)


def npm_ci(deploy):
    if not os.path.isdir(os.path.join(deploy, "node_modules", "@apidevtools")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=deploy, check=True, capture_output=True)


class OpenApi(unittest.TestCase):
    def test_change_feed_matches_its_schema(self):
        """Every kind of change /v1/changes sends (an opt-out, a purpose's,
        compliance facts, an erasure) is what the Change schema says."""
        deploy = os.path.join(SRC, "tests", "deploy")
        npm_ci(deploy)
        p = subprocess.run(["node", os.path.join(deploy, "openapi.mjs"),
                            os.path.join(SRC, "docs", "openapi.yaml"), "--schemas"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        change = json.loads(p.stdout)["Change"]
        s = test_api.Sidecar(extra=PURPOSE, contacts=3)
        try:
            admin = "alice:" + test_api.ADMIN_TOKEN
            for method, path, body in [
                    ("POST", "/v1/optouts", {"email": "feed-a@example.com"}),
                    ("POST", "/v1/optouts", {"email": "feed-b@example.com",
                                             "purpose": "newsletter"}),
                    ("PUT", "/v1/contacts/feed-c%40example.com/authorization",
                     {"type": "consent", "consent_date": "2026-01-02T03:04:05Z",
                      "purpose": "the newsletter"}),
                    ("PUT", "/v1/contacts/feed-c%40example.com/source",
                     {"type": "other", "other": "a fair"}),
                    ("DELETE", "/v1/contacts/feed-a%40example.com", None)]:
                st, doc = s.request(method, path, body=body, admin=admin)
                self.assertLess(st, 300, "%s %s: %s" % (method, path, doc))
            st, feed = s.get("/v1/changes?after=0&limit=1000")
            self.assertEqual(st, 200)
            kinds = {c["kind"] for c in feed["changes"]}
            self.assertTrue({"optout", "authorization", "source", "erasure"} <= kinds, kinds)
            self.assertTrue([c for c in feed["changes"] if "purpose" in c])
            errors = []
            for i, c in enumerate(feed["changes"]):
                conforms(c, change, "changes[%d]" % i, errors)
            self.assertEqual(errors, [])
        finally:
            s.close()

    def test_every_documented_route_exists(self):
        deploy = os.path.join(SRC, "tests", "deploy")
        npm_ci(deploy)
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
