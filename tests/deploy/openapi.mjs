// Validate docs/openapi.yaml (OpenAPI 3.0, with npm's swagger-parser) and
// print its operations as JSON lines {"method", "path", "public"} for the
// route test; "public" marks the paths served by the public unsubscribe
// listener (a path with its own servers: list).
// With --schemas, print instead the document's components.schemas as one
// JSON object, every $ref resolved, for the tests that check responses.
// usage: node openapi.mjs FILE [--schemas]
import SwaggerParser from "@apidevtools/swagger-parser";

const api = await SwaggerParser.validate(process.argv[2]);
if (process.argv[3] === "--schemas") {
  console.log(JSON.stringify(api.components.schemas));
  process.exit(0);
}
for (const [path, item] of Object.entries(api.paths))
  for (const method of ["get", "put", "post", "delete", "patch"])
    if (item[method])
      console.log(JSON.stringify({ method: method.toUpperCase(), path, public: Boolean(item.servers) }));
