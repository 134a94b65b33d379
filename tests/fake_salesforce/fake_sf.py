#!/usr/bin/env python3
"""A fake Salesforce for optsync's tests and demo (Python 3 standard library).

It behaves like the real REST API on the routes optsync uses, as Salesforce's
REST API documentation describes them (status codes, error bodies, paging):

  POST /services/oauth2/token                 jwt-bearer (RS256 verified with
                                              --jwt-public-key), client_credentials
                                              (only on --mydomain-host), refresh_token
  GET  /services/data/vNN.N/query?q=SOQL      and /queryAll; pages with nextRecordsUrl
  GET  /services/data/vNN.N/query/<id>-<n>    the following pages
  PATCH /services/data/vNN.N/composite/sobjects   sObject Collections update
  POST  /services/data/vNN.N/composite/sobjects   sObject Collections create
  GET  /services/data/vNN.N/limits
  GET  /services/data/vNN.N/sobjects/OBJECT/describe   the fields the user sees

Contact and Lead, and with --dpp (or control config {"dpp": true}) the consent
objects Individual, DataUsePurpose and ContactPointTypeConsent as Salesforce
has them: required fields on create, restricted picklists, references that
must name a live record (each failing for its record only), and INVALID_TYPE
for all three while Data Protection and Privacy is off. Answers carry
Sforce-Limit-Info on every data response, sessions that expire, and a
SOQL subset: SELECT fields FROM object [WHERE conditions joined by AND/OR,
with = != < <= > >= IN NOT IN, parentheses] [ORDER BY f [ASC|DESC], ...]
[LIMIT n]. Unknown fields give 400 INVALID_FIELD, bad syntax MALFORMED_QUERY.

A control API under /__control/ (no auth) lets tests act as a Salesforce
user and inject faults (records, delete, merge, convert, faults, config,
calls, requests, seed; reset and dump for the simulation in tests/sim,
which reuses one fake for many histories). Start it with:

  fake_sf.py --port 0 --port-file F [--contacts N --leads M --seed S]
             [--jwt-public-key PEM] [--client-id ID] [--username U]
             [--client-secret S] [--refresh-token T] [--mydomain-host H]
"""
import argparse
import base64
import datetime as dt
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AUTH_VALUES = ["Consent", "Legitimate Interest", "Performance of a Contract", "Legal Obligation",
               "Vital Interests", "Public Interest", "Other"]
SOURCE_VALUES = ["CRM Sync", "Import", "Manual Upload", "Browser Extension", "Other"]
COMMON_FIELDS = {
    "Id": "id", "FirstName": "string", "LastName": "string", "Email": "email",
    "Title": "string", "Phone": "string", "HasOptedOutOfEmail": "boolean",
    "Authorization_Type__c": "picklist", "Authorization_Other__c": "string",
    "Consent_Date__c": "datetime", "Processing_Purpose__c": "string",
    "Source_Type__c": "picklist", "Source_Other__c": "string",
    "CreatedDate": "datetime", "LastModifiedDate": "datetime", "SystemModstamp": "datetime",
    "IsDeleted": "boolean", "MasterRecordId": "id",
    # checkboxes of purposes mapped to fields (optsync's example metadata):
    # opt-out boxes (true = out), and an opt-in box with its consent date
    "Newsletter_Opt_Out__c": "boolean", "Events_Opt_Out__c": "boolean",
    "Newsletter_Opt_In__c": "boolean", "Newsletter_Consent_Date__c": "datetime",
}
SYSTEM_FIELDS = {"Id": "id", "CreatedDate": "datetime", "LastModifiedDate": "datetime",
                 "SystemModstamp": "datetime", "IsDeleted": "boolean"}
CONTACT_POINT_TYPES = ["Email", "MailingAddress", "Phone", "Social", "Web"]
FIELDS = {
    "Contact": dict(COMMON_FIELDS, IndividualId="id"),
    "Lead": dict(COMMON_FIELDS, Company="string", IsConverted="boolean", Status="string",
                 IndividualId="id"),
    # the consent objects, there only with Data Protection and Privacy on (--dpp)
    "Individual": dict(SYSTEM_FIELDS, FirstName="string", LastName="string",
                       HasOptedOutSolicit="boolean"),
    "DataUsePurpose": dict(SYSTEM_FIELDS, Name="string", CanDataSubjectOptOut="boolean"),
    "ContactPointTypeConsent": dict(
        SYSTEM_FIELDS, Name="string", PartyId="id", ContactPointType="picklist",
        DataUsePurposeId="id", PrivacyConsentStatus="picklist", CaptureDate="datetime",
        CaptureSource="string", CaptureContactPointType="picklist", EffectiveFrom="datetime",
        EffectiveTo="datetime"),
}
DPP_OBJECTS = ("Individual", "DataUsePurpose", "ContactPointTypeConsent")
# what a create must name (Salesforce: REQUIRED_FIELD_MISSING)
REQUIRED = {"Individual": ["LastName"], "DataUsePurpose": ["Name"],
            "ContactPointTypeConsent": ["Name", "PartyId", "ContactPointType", "CaptureDate",
                                        "CaptureSource", "CaptureContactPointType"]}
# reference fields: the object each must name a live record of
REFERENCES = {"PartyId": "Individual", "DataUsePurposeId": "DataUsePurpose",
              "IndividualId": "Individual"}
PREFIX = {"Contact": "003", "Lead": "00Q", "Individual": "0PK", "DataUsePurpose": "0ZW",
          "ContactPointTypeConsent": "0ZY"}
READONLY = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted", "IsConverted",
            "MasterRecordId"}
PICKLISTS = {"Authorization_Type__c": AUTH_VALUES, "Source_Type__c": SOURCE_VALUES,
             "ContactPointType": CONTACT_POINT_TYPES,
             "CaptureContactPointType": CONTACT_POINT_TYPES,
             "PrivacyConsentStatus": ["OptIn", "OptOut", "NotSeen", "Seen"]}


def sf_time(t):
    """Salesforce's response form: 2013-05-20T20:49:32.000+0000."""
    return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def parse_time(s):
    s = s.strip()
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)(?:[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|z|[+-]\d\d:?\d\d)?)?$", s)
    if not m:
        raise ValueError("bad datetime " + s)
    y, mo, d, h, mi, se, frac, off = m.groups()
    t = dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(se or 0),
                    tzinfo=dt.timezone.utc).timestamp()
    if frac:
        t += float(frac)
    if off and off not in ("Z", "z"):
        sign = -1 if off[0] == "-" else 1
        off = off[1:].replace(":", "")
        t -= sign * (int(off[:2]) * 3600 + int(off[2:]) * 60)
    return t


class SoqlError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


TOKEN_RE = re.compile(r"""\s*(?:
    (?P<dt>\d{4}-\d\d-\d\d(?:T\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))?)
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
  | (?P<id>[A-Za-z_][A-Za-z0-9_.]*)
)""", re.X)


def tokenize(q):
    pos, out = 0, []
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        m = TOKEN_RE.match(q, pos)
        if not m or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", "unexpected token at position %d" % pos)
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "str":
            body = val[1:-1]
            val = re.sub(r"\\(.)", lambda mm: {"n": "\n", "r": "\r", "t": "\t", "b": "\b",
                                               "f": "\f"}.get(mm.group(1), mm.group(1)), body)
        out.append((kind, val))
    return out


class Parser:
    def __init__(self, q, fields_of):
        self.t = tokenize(q)
        self.i = 0
        self.fields_of = fields_of
        self.q = q

    def peek(self, upper=True):
        if self.i >= len(self.t):
            return (None, None)
        k, v = self.t[self.i]
        return (k, v.upper() if (upper and k == "id") else v)

    def take(self):
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect_kw(self, kw):
        k, v = self.peek()
        if k != "id" or v != kw:
            raise SoqlError("MALFORMED_QUERY", "expecting '%s'" % kw)
        self.i += 1

    def parse(self):
        self.expect_kw("SELECT")
        names = []
        while True:
            k, v = self.take()
            if k != "id":
                raise SoqlError("MALFORMED_QUERY", "expecting a field name")
            names.append(v)
            if self.peek()[1] == ",":
                self.i += 1
                continue
            break
        self.expect_kw("FROM")
        k, obj = self.take()
        if obj not in self.fields_of:
            raise SoqlError("INVALID_TYPE", "sObject type '%s' is not supported." % obj)
        self.obj = obj
        self.fields = self.fields_of[obj]
        sel = [self.field(n) for n in names]
        where = None
        if self.peek()[1] == "WHERE":
            self.i += 1
            where = self.expr()
        order = []
        if self.peek()[1] == "ORDER":
            self.i += 1
            self.expect_kw("BY")
            while True:
                f = self.field(self.take()[1])
                desc = False
                if self.peek()[1] in ("ASC", "DESC"):
                    desc = self.take()[1].upper() == "DESC"
                order.append((f, desc))
                if self.peek()[1] == ",":
                    self.i += 1
                    continue
                break
        limit = None
        if self.peek()[1] == "LIMIT":
            self.i += 1
            k, v = self.take()
            if k != "num":
                raise SoqlError("MALFORMED_QUERY", "LIMIT needs a number")
            limit = int(v)
        if self.i != len(self.t):
            raise SoqlError("MALFORMED_QUERY", "unexpected '%s'" % self.t[self.i][1])
        return obj, sel, where, order, limit

    def field(self, name):
        for f in self.fields:
            if f.lower() == name.lower():
                return f
        raise SoqlError("INVALID_FIELD",
                        "\n%s\n^\nERROR at Row:1:Column:1\nNo such column '%s' on entity '%s'. "
                        "If you are attempting to use a custom field, be sure to append the "
                        "'__c' after the custom field name." % (self.q[:200], name, self.obj))

    def expr(self):
        left = self.term()
        while self.peek()[1] == "OR":
            self.i += 1
            right = self.term()
            left = ("or", left, right)
        return left

    def term(self):
        left = self.factor()
        while self.peek()[1] == "AND":
            self.i += 1
            right = self.factor()
            left = ("and", left, right)
        return left

    def factor(self):
        if self.peek()[1] == "NOT":
            self.i += 1
            return ("not", self.factor())
        if self.peek()[1] == "(":
            self.i += 1
            e = self.expr()
            if self.take()[1] != ")":
                raise SoqlError("MALFORMED_QUERY", "expecting ')'")
            return e
        k, name = self.take()
        if k != "id":
            raise SoqlError("MALFORMED_QUERY", "expecting a field")
        f = self.field(name)
        k, op = self.peek()
        if op == "NOT":
            self.i += 1
            self.expect_kw("IN")
            return ("not", ("in", f, self.value_list(f)))
        if op == "IN":
            self.i += 1
            return ("in", f, self.value_list(f))
        k, op = self.take()
        if op not in ("=", "!=", "<>", "<", "<=", ">", ">="):
            raise SoqlError("MALFORMED_QUERY", "expecting an operator")
        return ("cmp", f, "!=" if op == "<>" else op, self.value(f))

    def value_list(self, f):
        if self.take()[1] != "(":
            raise SoqlError("MALFORMED_QUERY", "expecting '('")
        vals = []
        while True:
            vals.append(self.value(f))
            k, v = self.take()
            if v == ")":
                return vals
            if v != ",":
                raise SoqlError("MALFORMED_QUERY", "expecting ',' or ')'")

    def value(self, f):
        k, v = self.take()
        ftype = self.fields[f]
        if k == "id" and v.upper() in ("TRUE", "FALSE"):
            return v.upper() == "TRUE"
        if k == "id" and v.upper() == "NULL":
            return None
        if ftype == "datetime":
            if k != "dt":
                raise SoqlError("INVALID_FIELD", "value of filter criterion for field '%s' "
                                "must be of type dateTime and should not be enclosed in quotes" % f)
            return parse_time(v)
        if k == "num":
            return float(v)
        if k == "str":
            return v
        raise SoqlError("MALFORMED_QUERY", "unexpected value '%s'" % v)


def norm(v, ftype):
    if v is None:
        return None
    if ftype == "datetime":
        return parse_time(v) if isinstance(v, str) else v
    if ftype in ("string", "email", "picklist", "id") and isinstance(v, str):
        return v.lower()  # SOQL compares text case-insensitively
    return v


def evaluate(e, rec, fields):
    kind = e[0]
    if kind == "and":
        return evaluate(e[1], rec, fields) and evaluate(e[2], rec, fields)
    if kind == "or":
        return evaluate(e[1], rec, fields) or evaluate(e[2], rec, fields)
    if kind == "not":
        return not evaluate(e[1], rec, fields)
    if kind == "in":
        v = norm(rec.get(e[1]), fields[e[1]])
        return v in [norm(x, fields[e[1]]) for x in e[2]]
    _, f, op, want = e
    have = norm(rec.get(f), fields[f])
    want = norm(want, fields[f])
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    if have is None or want is None:
        return False
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[op]


def sort_key(v):
    # nulls first, as Salesforce does by default
    return (0, "") if v is None else (1, v)


class State:
    def __init__(self, args):
        if not hasattr(self, "lock"):
            self.lock = threading.RLock()
        self.args = args
        self.records = {obj: {} for obj in FIELDS}
        self.dpp = bool(getattr(args, "dpp", False))  # Data Protection and Privacy on
        self.counter = 0
        self.tokens = {}  # token -> last use
        self.cursors = {}  # id -> (created, rows, obj_url_version)
        self.faults = []
        self.lock_row = {}  # id -> remaining UNABLE_TO_LOCK_ROW failures
        self.perm_errors = {}  # id -> statusCode
        self.calls = {}
        self.requests = []
        self.api_used = 0
        self.api_max = args.api_max
        self.session_idle_s = 7200
        self.short_pages = False
        self.locator_ttl_s = 900
        self.refresh_token = args.refresh_token
        self.rotate_refresh = False
        self.now_offset = 0.0
        self.last_stamp = 0
        # field-level security of the integration user: fields it cannot see
        # (absent from describe, "No such column" in queries) or not write
        self.hidden_fields = {}    # object -> [field]
        self.readonly_fields = {}  # object -> [field]
        # text -> hex bytes put in its place in data answers: values that are
        # not UTF-8, which JSON text cannot carry otherwise
        self.raw_bytes = {}

    def reset(self):
        """Everything back to how the process started (no seeding): records,
        ids, sessions, faults, counters and knobs."""
        self.__init__(self.args)

    def visible_fields(self):
        return {obj: {f: t for f, t in fields.items()
                      if f not in self.hidden_fields.get(obj, ())
                      and (self.dpp or f != "IndividualId")}
                for obj, fields in FIELDS.items() if self.dpp or obj not in DPP_OBJECTS}

    def now(self):
        return time.time() + self.now_offset

    def new_id(self, obj):
        self.counter += 1
        return "%s5e%010dAAA" % (PREFIX[obj], self.counter)  # 15 + 3 = 18 characters

    def stamp(self):
        """SystemModstamp for a write now: whole seconds, like Salesforce."""
        return int(self.now())

    def put(self, obj, fields, system_stamp=None):
        rid = fields.get("Id")
        now = self.stamp()
        if rid is None or rid not in self.records[obj]:
            rid = rid or self.new_id(obj)
            # checkboxes are never null in Salesforce: false until ticked
            rec = {f: False if t == "boolean" else None for f, t in FIELDS[obj].items()}
            rec.update({"Id": rid, "IsDeleted": False, "CreatedDate": now})
            self.records[obj][rid] = rec
        rec = self.records[obj][rid]
        for k, v in fields.items():
            if FIELDS[obj].get(k) == "datetime" and isinstance(v, str):
                v = parse_time(v)
            rec[k] = v
        if "SystemModstamp" not in fields:
            rec["SystemModstamp"] = system_stamp if system_stamp is not None else now
        if "LastModifiedDate" not in fields and system_stamp is None:
            rec["LastModifiedDate"] = rec["SystemModstamp"]
        return rid

    def seed(self, contacts, leads, seed):
        rng = random.Random(seed)
        base = int(time.time()) - 30 * 86400
        emails = []
        for obj, n in (("Contact", contacts), ("Lead", leads)):
            for i in range(n):
                if obj == "Lead" and emails and i % 10 == 0:
                    email = emails[rng.randrange(len(emails))]  # shares a Contact's email
                else:
                    email = "%s.%s%d@example%d.com" % (
                        rng.choice(["ada", "alan", "grace", "edsger", "barbara", "ken", "linus"]),
                        rng.choice(["lovelace", "turing", "hopper", "dijkstra", "liskov"]),
                        len(emails), rng.randrange(50))
                    emails.append(email)
                rec = {"FirstName": email.split(".")[0].title(), "LastName": "Test%d" % i,
                       "Email": email, "Phone": "+44 20 7946 %04d" % (i % 10000),
                       "Title": "Engineer", "HasOptedOutOfEmail": rng.random() < 0.05}
                if obj == "Lead":
                    rec["Company"] = "Example %d Ltd" % (i % 500)
                    rec["Status"] = "Open - Not Contacted"
                if rng.random() < 0.3:
                    rec["Authorization_Type__c"] = rng.choice(AUTH_VALUES[:6])
                    rec["Source_Type__c"] = rng.choice(SOURCE_VALUES[:4])
                    if rec["Authorization_Type__c"] == "Consent":
                        rec["Consent_Date__c"] = sf_time(base - rng.randrange(86400 * 300))
                        rec["Processing_Purpose__c"] = "Newsletter"
                # many records share a second, across page boundaries
                stamp = base + (i // 7)
                rec["CreatedDate"] = stamp
                rec["SystemModstamp"] = stamp
                rec["LastModifiedDate"] = stamp
                self.put(obj, rec)

    def count(self, route):
        self.calls[route] = self.calls.get(route, 0) + 1

    def take_fault(self, route, soql=""):
        for f in self.faults:
            want = f.get("route", "any")
            if "soql" in f and f["soql"] not in soql:
                continue  # a fault for the queries that hold this text only
            # "any" means any data route: the token endpoint only fails when named
            if (want == route or (want == "any" and route != "token")) and f.get("count", 1) > 0:
                f["count"] = f.get("count", 1) - 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                return f
        return None

    def to_json(self, obj, rec, fields, version):
        out = {"attributes": {"type": obj,
                              "url": "/services/data/v%s/sobjects/%s/%s" % (version, obj, rec["Id"])}}
        for f in fields:
            v = rec.get(f)
            if FIELDS[obj][f] == "datetime" and v is not None:
                v = sf_time(v)
            out[f] = v
        return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeSalesforce/1.0"
    # headers and body go out in two writes: without TCP_NODELAY the second
    # waits for the client's delayed ACK (40 ms a request on Linux)
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            sys.stderr.write("fake_sf: " + (fmt % args) + "\n")

    # ---- plumbing ----
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, obj=None, raw=None, headers=None, limit_info=False):
        data = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
        if limit_info:
            for text, hexed in self.server.state.raw_bytes.items():
                data = data.replace(text.encode(), bytes.fromhex(hexed))
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if limit_info:
            st = self.server.state
            self.send_header("Sforce-Limit-Info", "api-usage=%d/%d" % (st.api_used, st.api_max))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def sf_error(self, status, code, message, headers=None):
        self.send(status, [{"message": message, "errorCode": code}], headers=headers,
                  limit_info=True)

    def record_request(self, route, raw):
        st = self.server.state
        entry = {"method": self.command, "path": self.path.split("?")[0], "route": route,
                 "headers": {k: v for k, v in self.headers.items()
                             if k.lower() in ("content-type", "sforce-query-options",
                                              "accept", "user-agent")}}
        if "?" in self.path:
            entry["query"] = urllib.parse.parse_qs(self.path.split("?", 1)[1])
        if raw:
            try:
                entry["body"] = json.loads(raw)
            except ValueError:
                form = urllib.parse.parse_qs(raw.decode(errors="replace"))
                entry["body"] = {k: ("<secret>" if k in ("client_secret", "assertion",
                                                         "refresh_token") else v[0])
                                 for k, v in form.items()}
        with st.lock:
            st.requests.append(entry)
            if len(st.requests) > 20000:
                del st.requests[:10000]

    def apply_fault(self, f):
        """Returns True when the fault answered the request."""
        kind = f.get("kind")
        if kind == "slow":
            time.sleep(f.get("ms", 1000) / 1000.0)
            return False
        if kind == "status":
            hdrs = {}
            if "retry_after" in f:
                hdrs["Retry-After"] = str(f["retry_after"])
            self.sf_error(f.get("status", 503), f.get("errorCode", "SERVER_UNAVAILABLE"),
                          f.get("message", "Server temporarily unavailable"), hdrs)
            return True
        if kind == "limit":
            self.sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            return True
        if kind == "malformed":
            self.send(200, raw=b'{"totalSize": 3, "done": tr')
            return True
        if kind == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b'{"totalSize": 2000, "done": false, "records": [{"attrib')
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if kind == "reset":
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
            except OSError:
                pass
            return True
        if kind == "expire_session":
            self.sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid",
                          {"WWW-Authenticate": "Token"})
            return True
        return False

    # ---- routing ----
    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_PATCH(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def route(self):
        st = self.server.state
        path = self.path.split("?")[0]
        raw = self.body()
        if len(self.path) + sum(len(k) + len(v) + 4 for k, v in self.headers.items()) > 16384:
            self.send(414 if len(self.path) > 16384 else 431, raw=b"")
            return
        if path.startswith("/__control/"):
            return self.control(path, raw)
        if path == "/services/oauth2/token" and self.command == "POST":
            route = "token"
        elif re.match(r"^/services/data/v\d+\.\d+/(query|queryAll)$", path):
            route = "query"
        elif re.match(r"^/services/data/v\d+\.\d+/(query|queryAll)/[^/]+$", path):
            route = "query_more"
        elif re.match(r"^/services/data/v\d+\.\d+/composite/sobjects$", path):
            route = "collections"
        elif re.match(r"^/services/data/v\d+\.\d+/limits/?$", path):
            route = "limits"
        elif re.match(r"^/services/data/v\d+\.\d+/sobjects/[A-Za-z0-9_]+/describe/?$", path):
            route = "describe"
        else:
            self.send(404, [{"message": "The requested resource does not exist",
                             "errorCode": "NOT_FOUND"}])
            return
        soql = urllib.parse.parse_qs(self.path.split("?", 1)[1]).get("q", [""])[0] \
            if route == "query" and "?" in self.path else ""
        with st.lock:
            st.count(route)
            fault = st.take_fault(route, soql)
        self.record_request(route, raw)
        if fault and self.apply_fault(fault):
            return
        if route == "token":
            return self.token(raw)
        with st.lock:
            if not self.check_session():
                return
            if st.api_used >= st.api_max:
                self.sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                return
            st.api_used += 1
            version = path.split("/")[3][1:]
            if route == "query":
                return self.query(version, path.endswith("queryAll"))
            if route == "query_more":
                return self.query_more(path.rsplit("/", 1)[1])
            if route == "collections":
                return self.collections(raw)
            if route == "describe":
                return self.describe(path.split("/")[5])
            if route == "limits":
                return self.send(200, {"DailyApiRequests": {"Max": st.api_max,
                                                            "Remaining": st.api_max - st.api_used}},
                                 limit_info=True)

    def describe(self, obj):
        """sobjects/OBJECT/describe: the fields the user sees, as Salesforce
        describes them (name, type, updateable, picklistValues)."""
        st = self.server.state
        fields = st.visible_fields().get(obj)
        if fields is None:
            return self.sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        out = []
        for name, ftype in fields.items():
            f = {"name": name, "type": ftype, "label": name.replace("__c", "").replace("_", " "),
                 "custom": name.endswith("__c"), "nillable": name not in READONLY,
                 "updateable": name not in READONLY and
                 name not in st.readonly_fields.get(obj, ()),
                 "picklistValues": [{"value": v, "label": v, "active": True,
                                     "defaultValue": False} for v in PICKLISTS.get(name, [])]}
            out.append(f)
        return self.send(200, {"name": obj, "label": obj, "keyPrefix": PREFIX[obj],
                               "queryable": True, "updateable": True, "custom": False,
                               "fields": out}, limit_info=True)

    def check_session(self):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else auth[6:] if auth.startswith("OAuth ") else ""
        last = st.tokens.get(tok)
        if last is None or st.now() - last > st.session_idle_s:
            st.tokens.pop(tok, None)
            self.sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid",
                          {"WWW-Authenticate": "Token"})
            return False
        st.tokens[tok] = st.now()
        return True

    # ---- OAuth ----
    def token(self, raw):
        st = self.server.state
        a = st.args
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.send(400, {"error": "unsupported_grant_type",
                                   "error_description": "grant type not supported"})
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode(errors="replace")).items()}
        grant = form.get("grant_type")

        def bad(desc, err="invalid_grant"):
            self.send(400, {"error": err, "error_description": desc})

        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            why = verify_jwt(form.get("assertion", ""), a, st.now())
            if why:
                return bad(why)
        elif grant == "client_credentials":
            host = (self.headers.get("Host") or "").split(":")[0]
            if host != a.mydomain_host:
                return bad("request not supported on this domain")
            if form.get("client_id") != a.client_id or form.get("client_secret") != a.client_secret:
                return bad("invalid client credentials", "invalid_client")
        elif grant == "refresh_token":
            if form.get("client_id") != a.client_id:
                return bad("invalid client credentials", "invalid_client")
            if "client_secret" in form and form["client_secret"] != a.client_secret:
                return bad("invalid client credentials", "invalid_client")
            with st.lock:
                if form.get("refresh_token") != st.refresh_token:
                    return bad("expired access/refresh token")
        else:
            return self.send(400, {"error": "unsupported_grant_type",
                                   "error_description": "grant type not supported"})
        tok = "00D5e000000FAKE!" + base64.urlsafe_b64encode(random.randbytes(48)).decode().rstrip("=")
        host = "http://%s:%d" % (self.server.server_address[0], self.server.server_address[1])
        body = {"access_token": tok, "instance_url": host,
                "id": "%s/id/00D5e000000FAKE/0055e000000USER" % host, "token_type": "Bearer",
                "scope": "api", "issued_at": str(int(st.now() * 1000)),
                "signature": base64.b64encode(hashlib.sha256(tok.encode()).digest()).decode()}
        with st.lock:
            st.tokens[tok] = st.now()
            if grant == "refresh_token" and st.rotate_refresh:
                st.refresh_token = "5Aep" + base64.urlsafe_b64encode(random.randbytes(24)).decode()
                body["refresh_token"] = st.refresh_token
        self.send(200, body)

    # ---- query ----
    def query(self, version, query_all):
        st = self.server.state
        qs = urllib.parse.parse_qs(self.path.split("?", 1)[1] if "?" in self.path else "")
        soql = qs.get("q", [""])[0]
        try:
            obj, sel, where, order, limit = Parser(soql, st.visible_fields()).parse()
        except SoqlError as e:
            return self.sf_error(400, e.code, str(e))
        fields = FIELDS[obj]
        rows = [r for r in st.records[obj].values()
                if (query_all or not r.get("IsDeleted")) and (where is None or evaluate(where, r, fields))]
        for f, desc in reversed(order):
            rows.sort(key=lambda r: sort_key(norm(r.get(f), fields[f]) if fields[f] != "id" else r.get(f)),
                      reverse=desc)
        if limit is not None:
            rows = rows[:limit]
        snap = [st.to_json(obj, r, sel, version) for r in rows]
        batch = 2000
        m = re.search(r"batchSize=(\d+)", self.headers.get("Sforce-Query-Options", ""))
        if m:
            batch = max(200, min(2000, int(m.group(1))))
        cid = "01g5e%011d" % random.randrange(10**11)
        st.cursors[cid] = (st.now(), snap, version, batch)
        self.page(cid, 0)

    def page(self, cid, offset):
        st = self.server.state
        created, snap, version, batch = st.cursors[cid]
        size = batch
        if st.short_pages:
            size = random.randrange(max(1, batch // 4), batch + 1)
        chunk = snap[offset:offset + size]
        done = offset + len(chunk) >= len(snap)
        body = {"totalSize": len(snap), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = "/services/data/v%s/query/%s-%d" % (version, cid, offset + len(chunk))
        else:
            st.cursors.pop(cid, None)
        self.send(200, body, limit_info=True)

    def query_more(self, locator):
        st = self.server.state
        m = re.match(r"^([0-9A-Za-z]+)-(\d+)$", locator)
        cur = st.cursors.get(m.group(1)) if m else None
        if not cur or st.now() - cur[0] > st.locator_ttl_s:
            return self.sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.page(m.group(1), int(m.group(2)))

    # ---- writes ----
    def collections(self, raw):
        st = self.server.state
        try:
            req = json.loads(raw)
            recs = req["records"]
            assert isinstance(recs, list)
        except (ValueError, KeyError, AssertionError, TypeError):
            return self.sf_error(400, "JSON_PARSER_ERROR", "Unexpected body")
        if len(recs) > 200:
            return self.sf_error(400, "EXCEEDED_ID_LIMIT",
                                 "record limit reached. cannot submit more than 200 records into this call")
        all_or_none = bool(req.get("allOrNone"))
        create = self.command == "POST"
        results, writes = [], []
        for r in recs:
            obj = (r.get("attributes") or {}).get("type")
            rid = r.get("id") or r.get("Id")
            if create and rid:
                err = ("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call",
                       ["Id"])
            elif create:
                err = self.check_create(obj, r)
                if err is None:
                    rid = st.new_id(obj)
            else:
                err = self.check_write(obj, rid, r)
            if err:
                results.append({"success": False, "errors": [
                    {"statusCode": err[0], "message": err[1], "fields": err[2]}]})
            else:
                results.append({"id": rid, "success": True, "errors": []})
                writes.append((obj, rid, r))
        if all_or_none and any(not x["success"] for x in results):
            results = [x if not x["success"] else {
                "id": x["id"], "success": False, "errors": [{
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the "
                               "request was using AllOrNone header", "fields": []}]}
                for x in results]
            writes = []
        for obj, rid, r in writes:
            st.put(obj, {k: v for k, v in r.items() if k not in ("attributes", "id", "Id")} | {"Id": rid})
        self.send(200, results, limit_info=True)

    def check_values(self, obj, r):
        """Each field of a create or update: known, writable, of its type, in its
        restricted picklist, naming a live record when a reference."""
        st = self.server.state
        for k, v in r.items():
            if k in ("attributes", "id", "Id"):
                continue
            if k not in st.visible_fields()[obj]:
                return ("INVALID_FIELD", "No such column '%s' on sobject of type %s" % (k, obj), [k])
            if k in READONLY or k in st.readonly_fields.get(obj, ()):
                return ("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: %s" % k, [k])
            if k in PICKLISTS and v is not None and v not in PICKLISTS[k]:
                return ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        "bad value for restricted picklist field: %s" % v, [k])
            if FIELDS[obj][k] == "datetime" and v is not None:
                try:
                    parse_time(v)
                except (ValueError, AttributeError):
                    return ("INVALID_TYPE_ON_FIELD_IN_RECORD", "%s: value not of required type: %s" % (k, v), [k])
            if k in REFERENCES and v is not None:
                target = st.records.get(REFERENCES[k], {}).get(v)
                if target is None or target.get("IsDeleted"):
                    return ("INVALID_CROSS_REFERENCE_KEY",
                            "invalid cross reference id", [k])
        return None

    def check_create(self, obj, r):
        st = self.server.state
        if obj not in st.visible_fields():
            return ("INVALID_TYPE", "sObject type '%s' is not supported" % obj, [])
        missing = [f for f in REQUIRED.get(obj, []) if r.get(f) in (None, "")]
        if missing:
            return ("REQUIRED_FIELD_MISSING", "Required fields are missing: [%s]" % ", ".join(missing),
                    missing)
        return self.check_values(obj, r)

    def check_write(self, obj, rid, r):
        st = self.server.state
        if obj not in st.visible_fields():
            return ("INVALID_TYPE", "sObject type '%s' is not supported" % obj, [])
        if not rid or rid not in st.records[obj]:
            return ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        rec = st.records[obj][rid]
        if rid in st.perm_errors:
            code = st.perm_errors[rid]
            return (code, {"FIELD_CUSTOM_VALIDATION_EXCEPTION": "Opt-out changes need approval",
                           "INSUFFICIENT_ACCESS_OR_READONLY": "insufficient access rights on object id"}
                    .get(code, code.replace("_", " ").lower()), [])
        if st.lock_row.get(rid, 0) > 0:
            st.lock_row[rid] -= 1
            return ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", [])
        if rec.get("IsDeleted"):
            return ("ENTITY_IS_DELETED", "entity is deleted", [])
        if obj == "Lead" and rec.get("IsConverted"):
            return ("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        return self.check_values(obj, r)

    # ---- control ----
    def control(self, path, raw):
        st = self.server.state
        try:
            req = json.loads(raw) if raw else {}
        except ValueError:
            return self.send(400, {"error": "bad json"})
        qs = {k: v[0] for k, v in urllib.parse.parse_qs(self.path.split("?", 1)[1]).items()} \
            if "?" in self.path else {}
        with st.lock:
            if path == "/__control/health":
                return self.send(200, {"ok": True})
            if path == "/__control/records" and self.command == "POST":
                obj = req["object"]
                ids = []
                for rec in req["records"]:
                    ids.append(st.put(obj, rec, rec.pop("_system_stamp", None)))
                return self.send(200, {"ids": ids})
            if path == "/__control/records" and self.command == "GET":
                obj = qs.get("object", "Contact")
                out = []
                for r in st.records[obj].values():
                    if "id" in qs and r["Id"] != qs["id"]:
                        continue
                    if "email" in qs and (r.get("Email") or "").lower() != qs["email"].lower():
                        continue
                    out.append(st.to_json(obj, r, list(FIELDS[obj]), "62.0"))
                return self.send(200, {"records": out})
            if path == "/__control/delete":
                for rid in req["ids"]:
                    st.put(req["object"], {"Id": rid, "IsDeleted": True})
                return self.send(200, {"ok": True})
            if path == "/__control/merge":
                # as Salesforce merges: the losers are deleted with MasterRecordId
                # naming the survivor, which is modified
                for rid in req["losers"]:
                    st.put(req["object"], {"Id": rid, "IsDeleted": True,
                                           "MasterRecordId": req["master"]})
                st.put(req["object"], {"Id": req["master"]})
                return self.send(200, {"ok": True})
            if path == "/__control/faults" and self.command == "POST":
                st.faults.extend(req.get("faults", []))
                st.lock_row.update(req.get("lock_row", {}))
                st.perm_errors.update(req.get("errors", {}))
                return self.send(200, {"ok": True})
            if path == "/__control/faults" and self.command == "DELETE":
                # ?only=faults: the armed request faults, keeping the
                # per-record ones (lock_row, errors)
                st.faults = []
                if qs.get("only") != "faults":
                    st.lock_row, st.perm_errors = {}, {}
                return self.send(200, {"ok": True})
            if path == "/__control/faults" and self.command == "GET":
                return self.send(200, {"faults": st.faults, "lock_row": st.lock_row,
                                       "errors": st.perm_errors})
            if path == "/__control/convert":
                # a Lead converted as Salesforce does it: IsConverted set (the
                # Lead can no longer be updated), and, with "contact" (default
                # true), a new Contact with the Lead's email, names, opt-out,
                # checkboxes, compliance fields and Individual
                lead = st.records["Lead"].get(req["id"])
                if lead is None or lead.get("IsDeleted") or lead.get("IsConverted"):
                    return self.send(400, {"error": "no such unconverted Lead"})
                cid = None
                if req.get("contact", True):
                    keep = [f for f in FIELDS["Contact"]
                            if f in FIELDS["Lead"] and f not in READONLY
                            and f not in SYSTEM_FIELDS]
                    cid = st.put("Contact", {f: lead.get(f) for f in keep})
                st.put("Lead", {"Id": req["id"], "IsConverted": True})
                return self.send(200, {"contact": cid})
            if path == "/__control/reset":
                st.reset()
                if "dpp" in req:
                    st.dpp = bool(req["dpp"])
                return self.send(200, {"ok": True})
            if path == "/__control/dump":
                # every record of every object, as records GET shows them
                return self.send(200, {obj: [st.to_json(obj, r, list(FIELDS[obj]), "62.0")
                                             for r in st.records[obj].values()]
                                       for obj in FIELDS})
            if path == "/__control/config":
                for k in ("api_max", "api_used", "session_idle_s", "short_pages", "locator_ttl_s",
                          "rotate_refresh", "now_offset", "hidden_fields", "readonly_fields",
                          "dpp", "raw_bytes"):
                    if k in req:
                        setattr(st, k, req[k])
                if req.get("revoke"):
                    st.tokens.clear()
                return self.send(200, {"ok": True})
            if path == "/__control/calls":
                if self.command == "POST":
                    st.calls = {}
                return self.send(200, dict(st.calls))
            if path == "/__control/requests":
                if self.command == "POST":
                    st.requests = []
                    return self.send(200, {"ok": True})
                return self.send(200, {"requests": st.requests})
            if path == "/__control/seed":
                st.seed(req.get("contacts", 0), req.get("leads", 0), req.get("seed", 1))
                return self.send(200, {"ok": True})
        self.send(404, {"error": "no such control route"})


def der_read(buf, pos):
    tag = buf[pos]
    ln = buf[pos + 1]
    pos += 2
    if ln & 0x80:
        k = ln & 0x7F
        ln = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    return tag, buf[pos:pos + ln], pos + ln


def load_public_key(path):
    """(n, e) from a PEM public key (SubjectPublicKeyInfo or PKCS#1)."""
    text = open(path).read()
    b64 = "".join(l for l in text.splitlines() if l and not l.startswith("-----"))
    der = base64.b64decode(b64)
    tag, body, _ = der_read(der, 0)
    if "BEGIN PUBLIC KEY" in text:  # SPKI: SEQ { SEQ algo, BIT STRING { SEQ { n, e } } }
        _, _, p = der_read(body, 0)
        _, bits, _ = der_read(body, p)
        tag, body, _ = der_read(bits[1:], 0)
    _, n, p = der_read(body, 0)
    _, e, _ = der_read(body, p)
    return int.from_bytes(n, "big"), int.from_bytes(e, "big")


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(assertion, a, now):
    """None when the assertion is valid, else Salesforce's error_description."""
    try:
        h, p, s = assertion.split(".")
        header = json.loads(b64u_dec(h))
        claims = json.loads(b64u_dec(p))
        sig = int.from_bytes(b64u_dec(s), "big")
    except (ValueError, TypeError):
        return "invalid assertion"
    if header.get("alg") != "RS256" or a.jwt_key is None:
        return "invalid assertion"
    n, e = a.jwt_key
    k = (n.bit_length() + 7) // 8
    em = pow(sig, e, n).to_bytes(k, "big")
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420")
    want = b"\x00\x01" + b"\xff" * (k - 3 - len(digest_info) - 32) + b"\x00" + digest_info + \
        hashlib.sha256((h + "." + p).encode()).digest()
    if em != want:
        return "invalid assertion"
    if claims.get("iss") != a.client_id:
        return "invalid client credentials"
    if claims.get("aud") not in a.audience:
        return "audience is invalid"
    if claims.get("sub") != a.username:
        return "user hasn't approved this consumer"
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now - 180:
        return "expired authorization code"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--contacts", type=int, default=0)
    ap.add_argument("--leads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jwt-public-key")
    ap.add_argument("--client-id", default="fake-client-id")
    ap.add_argument("--username", default="sync@example.com")
    ap.add_argument("--audience", action="append", default=[])
    ap.add_argument("--client-secret", default="fake-client-secret")
    ap.add_argument("--refresh-token", default="5Aep861fake-refresh-token")
    ap.add_argument("--mydomain-host", default="localhost")
    ap.add_argument("--api-max", type=int, default=1000000)
    ap.add_argument("--dpp", action="store_true",
                    help="Data Protection and Privacy on: Individual, DataUsePurpose, "
                         "ContactPointTypeConsent and IndividualId exist")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    a.jwt_key = load_public_key(a.jwt_public_key) if a.jwt_public_key else None
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    server.daemon_threads = True
    if not a.audience:
        a.audience = ["https://login.salesforce.com", "https://test.salesforce.com",
                      "http://%s:%d" % (a.host, server.server_address[1]),
                      "http://localhost:%d" % server.server_address[1]]
    server.state = State(a)
    server.state.seed(a.contacts, a.leads, a.seed)
    port = server.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        import os
        os.replace(a.port_file + ".tmp", a.port_file)
    print("fake Salesforce listening on http://%s:%d (%d Contacts, %d Leads)" %
          (a.host, port, a.contacts, a.leads), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
