// Validates rendered Kubernetes objects against the API schemas bundled in
// kubernetes-models (core groups) and @kubernetes-models/prometheus-operator
// (ServiceMonitor, PrometheusRule), offline.
//
//   node validate.mjs NODE_MODULES_DIR OBJECTS.json
//
// OBJECTS.json is an array of {"scenario": ..., "object": {...}}. Prints one
// JSON array of {"scenario", "kind", "name", "ok", "error"} on stdout. These
// schemas allow unknown fields, so typos are the values schema's job.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, input] = process.argv.slice(2);
const items = JSON.parse(readFileSync(input, "utf8"));

function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/")
    ? apiVersion.split("/")
    : ["", apiVersion];
  if (group === "monitoring.coreos.com")
    return join(modules, "@kubernetes-models/prometheus-operator", group, version, `${kind}.js`);
  return join(modules, "kubernetes-models", ...(group ? [group] : []), version, `${kind}.js`);
}

const results = [];
for (const { scenario, object } of items) {
  const kind = object?.kind ?? "?";
  const name = object?.metadata?.name ?? "?";
  const r = { scenario, kind, name, ok: false, error: "" };
  try {
    const mod = await import(pathToFileURL(modulePath(object.apiVersion, kind)).href);
    new mod[kind](object).validate();
    r.ok = true;
  } catch (e) {
    r.error = String(e?.message ?? e).slice(0, 2000);
  }
  results.push(r);
}
process.stdout.write(JSON.stringify(results) + "\n");
