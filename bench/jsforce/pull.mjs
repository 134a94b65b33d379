// The jsforce side of bench/compare_jsforce.py: log in with the client
// credentials flow, run the query with autoFetch, write each record to a
// file as a JSON line. usage: node pull.mjs LOGIN_URL OUTFILE SOQL
import jsforce from "jsforce";
import { createWriteStream } from "node:fs";

const [loginUrl, out, soql] = process.argv.slice(2);
const res = await fetch(loginUrl + "/services/oauth2/token", {
  method: "POST",
  headers: { "Content-Type": "application/x-www-form-urlencoded" },
  body: "grant_type=client_credentials&client_id=fake-client-id&client_secret=fake-client-secret",
});
const tok = await res.json();
const conn = new jsforce.Connection({ instanceUrl: tok.instance_url, accessToken: tok.access_token, version: "62.0" });
const file = createWriteStream(out);
let n = 0;
await new Promise((resolve, reject) => {
  conn.query(soql)
    .on("record", (r) => { file.write(JSON.stringify(r) + "\n"); n++; })
    .on("end", resolve)
    .on("error", reject)
    .run({ autoFetch: true, maxFetch: 100000000 });
});
await new Promise((resolve) => file.end(resolve));
console.log(n);
