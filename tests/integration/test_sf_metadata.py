#!/usr/bin/env python3
"""The Salesforce metadata in salesforce/ matches what optsync expects: every
field of the default [salesforce.fields] mapping exists on Contact and Lead,
the picklists hold exactly the default [salesforce.values], the permission
set lets the integration user read and edit each field, and every file is
well-formed XML.

Usage: test_sf_metadata.py SOURCE_DIR OPTSYNC"""
import json
import os
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

NS = {"m": "http://soap.sforce.com/2006/04/metadata"}
SRC = OPTSYNC = None
PURPOSE_BOXES = ["Newsletter_Opt_Out__c", "Events_Opt_Out__c"]
# the example of an opt-in checkbox (true = in) and its consent date
# (salesforce = { opt_in_field = ..., consent_date_field = ... })
PURPOSE_OPT_IN = {"Newsletter_Opt_In__c": "Checkbox", "Newsletter_Consent_Date__c": "DateTime"}


class Metadata(unittest.TestCase):
    def setUp(self):
        cfg = json.loads(subprocess.run([OPTSYNC, "-c", os.path.join(SRC, "config.example.toml"),
                                         "config", "check", "--json"], capture_output=True,
                                        text=True).stdout)
        sf = cfg["settings"]["salesforce"]
        self.fields = {k: v for k, v in sf["fields"].items() if k != "opted_out"}
        v = sf["values"]
        self.auth = [v[k] for k in ("consent", "legitimate_interest", "contract",
                                    "legal_obligation", "vital_interests", "public_interest",
                                    "other")]
        self.source = [v[k] for k in ("crm_sync", "import", "manual_upload",
                                      "browser_extension", "other")]
        self.root = os.path.join(SRC, "salesforce", "force-app", "main", "default")

    def test_fields_and_picklists(self):
        for obj in ("Contact", "Lead"):
            for key, api in self.fields.items():
                path = os.path.join(self.root, "objects", obj, "fields", api + ".field-meta.xml")
                self.assertTrue(os.path.exists(path), path)
                doc = ET.parse(path).getroot()
                self.assertEqual(doc.find("m:fullName", NS).text, api)
                typ = doc.find("m:type", NS).text
                if key in ("authorization_type", "source_type"):
                    self.assertEqual(typ, "Picklist")
                    values = [v.find("m:fullName", NS).text
                              for v in doc.iterfind(".//m:value", NS)]
                    self.assertEqual(values, self.auth if key == "authorization_type" else self.source)
                    self.assertEqual(doc.find(".//m:restricted", NS).text, "true")
                elif key == "consent_date":
                    self.assertEqual(typ, "DateTime")
                else:
                    self.assertEqual(typ, "Text")

    def test_permission_set(self):
        path = os.path.join(self.root, "permissionsets", "Optsync_Integration.permissionset-meta.xml")
        doc = ET.parse(path).getroot()
        granted = {(p.find("m:field", NS).text, p.find("m:editable", NS).text)
                   for p in doc.iterfind("m:fieldPermissions", NS)}
        for obj in ("Contact", "Lead"):
            for api in self.fields.values():
                self.assertIn(("%s.%s" % (obj, api), "true"), granted)
        self.assertIn("ApiEnabled", [u.find("m:name", NS).text
                                     for u in doc.iterfind("m:userPermissions", NS)])
        for api in PURPOSE_BOXES + list(PURPOSE_OPT_IN):
            for obj in ("Contact", "Lead"):
                self.assertIn(("%s.%s" % (obj, api), "true"), granted)
        objects = {p.find("m:object", NS).text: p for p in doc.iterfind("m:objectPermissions", NS)}
        # the consent objects: rows and Individuals are read, created and
        # updated; purposes only read
        for obj, write in (("ContactPointTypeConsent", "true"), ("Individual", "true"),
                           ("DataUsePurpose", "false")):
            self.assertIn(obj, objects)
            self.assertEqual(objects[obj].find("m:allowRead", NS).text, "true")
            self.assertEqual(objects[obj].find("m:allowCreate", NS).text, write)
            self.assertEqual(objects[obj].find("m:allowEdit", NS).text, write)

    def test_purpose_checkboxes(self):
        """The example checkbox of each purpose in config.example.toml's
        commented [[purposes]] exists on Contact and Lead, unticked by default."""
        with open(os.path.join(SRC, "config.example.toml")) as f:
            text = f.read()
        import re
        named = set(re.findall(r'field = "([A-Za-z0-9_]+__c)"', text))
        self.assertTrue(named)
        self.assertLessEqual(named, set(PURPOSE_BOXES) | set(PURPOSE_OPT_IN))
        self.assertLessEqual(set(PURPOSE_OPT_IN), named)  # the opt-in example is shown
        for api in PURPOSE_BOXES:
            for obj in ("Contact", "Lead"):
                path = os.path.join(self.root, "objects", obj, "fields", api + ".field-meta.xml")
                doc = ET.parse(path).getroot()
                self.assertEqual(doc.find("m:fullName", NS).text, api)
                self.assertEqual(doc.find("m:type", NS).text, "Checkbox")
                self.assertEqual(doc.find("m:defaultValue", NS).text, "false")

    def test_purpose_opt_in_fields(self):
        """The example opt-in checkbox (unticked by default) and its consent
        date exist on Contact and Lead."""
        for api, typ in PURPOSE_OPT_IN.items():
            for obj in ("Contact", "Lead"):
                path = os.path.join(self.root, "objects", obj, "fields", api + ".field-meta.xml")
                self.assertTrue(os.path.exists(path), path)
                doc = ET.parse(path).getroot()
                self.assertEqual(doc.find("m:fullName", NS).text, api)
                self.assertEqual(doc.find("m:type", NS).text, typ)
                if typ == "Checkbox":
                    self.assertEqual(doc.find("m:defaultValue", NS).text, "false")


if __name__ == "__main__":
    SRC, OPTSYNC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    prog = unittest.main(argv=sys.argv[:1], verbosity=2, exit=False)
    r = prog.result
    print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                    len(r.failures) + len(r.errors)))
    sys.exit(0 if r.wasSuccessful() else 1)
