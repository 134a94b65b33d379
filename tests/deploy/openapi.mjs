// Validate docs/openapi.yaml (OpenAPI 3.0, with npm's swagger-parser) and
// print its operations as JSON lines {"method", "path", "public"} for the
// route test; "public" marks the paths served by the public unsubscribe
// listener (a path with its own servers: list).
// usage: node openapi.mjs FILE
import SwaggerParser from "@apidevtools/swagger-parser";

const api = await SwaggerParser.validate(process.argv[2]);
for (const [path, item] of Object.entries(api.paths))
  for (const method of ["get", "put", "post", "delete", "patch"])
    if (item[method])
      console.log(JSON.stringify({ method: method.toUpperCase(), path, public: Boolean(item.servers) }));
