// Validates every manifest in deploy/kubernetes against the Kubernetes object
// schemas of npm's kubernetes-models, and checks that no unknown field slipped
// in (the schemas there do not forbid extra fields).
//
// The unknown-field check watches the compiled validator: every object is
// wrapped in a Proxy that records which properties the validator reads. A
// validator that enumerates an object's keys treats it as a map (labels,
// ConfigMap data), where any key is fine; otherwise a key it never read is
// not in the schema.
//
// With OPTSYNC set to the optsync binary, every ConfigMap's optsync.toml is
// also checked with `optsync config check` (secrets from the environment, as
// the manifests give them).
//
// usage: node validate.mjs DIR...   (each DIR's *.yaml, not its subfolders)
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

const kinds = {
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "v1/Secret": "kubernetes-models/v1/Secret",
  "v1/PersistentVolumeClaim": "kubernetes-models/v1/PersistentVolumeClaim",
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment",
  "batch/v1/CronJob": "kubernetes-models/batch/v1/CronJob",
  "apps/v1/StatefulSet": "kubernetes-models/apps/v1/StatefulSet",
  "v1/Service": "kubernetes-models/v1/Service",
  "networking.k8s.io/v1/NetworkPolicy": "kubernetes-models/networking.k8s.io/v1/NetworkPolicy",
  "networking.k8s.io/v1/Ingress": "kubernetes-models/networking.k8s.io/v1/Ingress",
};

function watch(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const rec = { read: new Set(), enumerated: false, keys: Object.keys(value) };
  seen.set(path, rec);
  const target = Array.isArray(value) ? [] : {};
  for (const k of Object.keys(value)) target[k] = watch(value[k], path + "/" + k, seen);
  return new Proxy(target, {
    get(t, k) { if (typeof k === "string") rec.read.add(k); return t[k]; },
    has(t, k) { if (typeof k === "string") rec.read.add(k); return k in t; },
    ownKeys(t) { rec.enumerated = true; return Reflect.ownKeys(t); },
  });
}

let failures = 0, checked = 0;
for (const dir of process.argv.slice(2))
for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()) {
  for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
    const obj = doc.toJS();
    if (!obj) continue;
    const name = `${file}: ${obj.kind} ${obj.metadata?.name}`;
    const mod = kinds[`${obj.apiVersion}/${obj.kind}`];
    if (!mod) { console.log(`FAIL ${name}: no schema for ${obj.apiVersion} ${obj.kind}`); failures++; continue; }
    const Model = Object.values(await import(mod)).find((v) => typeof v === "function");
    try {
      new Model(obj).validate();
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message}`); failures++; continue;
    }
    const seen = new Map();
    const watched = watch(obj, "", seen);
    const m = new Model({});
    Object.assign(m, watched);
    try { m.validate(); } catch { /* reported above */ }
    const unknown = [];
    for (const [path, rec] of seen) {
      if (rec.enumerated || Array.isArray(obj)) continue;
      for (const k of rec.keys) if (!rec.read.has(k) && !/^\d+$/.test(k)) unknown.push(`${path}/${k}`);
    }
    if (unknown.length) { console.log(`FAIL ${name}: unknown fields ${unknown.join(", ")}`); failures++; continue; }
    const toml = obj.kind === "ConfigMap" ? obj.data?.["optsync.toml"] : undefined;
    if (toml !== undefined && process.env.OPTSYNC) {
      const tmp = mkdtempSync(join(tmpdir(), "optsync-manifest-"));
      writeFileSync(join(tmp, "optsync.toml"), toml);
      const p = spawnSync(process.env.OPTSYNC, ["-c", join(tmp, "optsync.toml"), "config", "check"], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, OPTSYNC_SALESFORCE_PRIVATE_KEY: "k", OPTSYNC_API_TOKEN: "t",
               OPTSYNC_WEBHOOK_SECRET: "w" },
      });
      rmSync(tmp, { recursive: true });
      if (p.status !== 0) { console.log(`FAIL ${name}: optsync config check: ${p.stderr.trim()}`); failures++; continue; }
    }
    console.log(`ok   ${name}`);
    checked++;
  }
}
console.log(`${checked} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
