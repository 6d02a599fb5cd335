"""Chart checks for running several relays on Valkey (issue 23, part 2):
the cutover off memory://, secrets from valueFrom, spreading pods, the
readiness setting, replicas kept when the HPA is enabled, the Grafana
dashboard, the store alerts, and the smaller items (unix:// URLs, one GPU
Service per release, preStopSleepSeconds against the cluster version, the
registration-token warning). The Valkey recipe's chart is chart_valkey.py's.

Called by test_chart.py's main() with that module (`t`), whose helpers
(render, find, R, ...) these checks use. Upgrade-time decisions that read
the live cluster through Helm's `lookup` are rendered against
fake_apiserver.FakeAPIServer holding the previous revision's objects.
"""
import json
import os
import re

import yaml

import chart_valkey
from fake_apiserver import FakeAPIServer

HOST = ["--set", "gpuExternalName.host=gpu-box.example.com"]
REDIS = ["--set", "state.url=redis://valkey.tokenplace.svc:6379/0"]


def check_schema_strict(t):
    """Every object in the values schema (its definitions too) refuses
    unknown keys; only string maps (labels, annotations) are open."""
    with open(os.path.join(t.CHART, "values.schema.json"),
              encoding="utf-8") as f:
        schema = json.load(f)
    loose = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        if "properties" in node:
            if node.get("additionalProperties") is not False:
                loose.append(path or "/")
            for k, v in node["properties"].items():
                if path == "" and k == "global":
                    continue            # Helm's own key for subcharts
                walk(v, f"{path}/{k}")
        ap = node.get("additionalProperties")
        if isinstance(ap, dict):
            if ap.get("type") != "string":
                loose.append(path + "/*")
        elif node.get("type") == "object" and "properties" not in node \
                and path not in ("/global",):
            loose.append(path + " (open object)")
        for key in ("items", "anyOf", "oneOf", "allOf"):
            sub = node.get(key)
            for i, s in enumerate(sub if isinstance(sub, list) else [sub]):
                walk(s, f"{path}[{key}{i}]")

    walk(schema, "")
    for name, node in schema.get("definitions", {}).items():
        walk(node, f"#/definitions/{name}")
    refs = re.findall(r'"\$ref":\s*"([^"]+)"', json.dumps(schema))
    missing = sorted({r for r in refs if r.split("/")[-1]
                      not in schema.get("definitions", {})})
    t.R.check("schema: additionalProperties false on every object "
              "(string maps excepted), definitions included", not loose,
              ", ".join(loose))
    t.R.check("schema: every $ref resolves", bool(refs) and not missing,
              str(missing))
    # That every values.yaml key is in the schema (and in the guide) is
    # tests/chart/test_values_drift.py's job (ctest chart_values_drift).


def deployment(t, objs):
    return t.find(objs, "Deployment", t.RELEASE)


def render_live(t, live_objects, *args, minor=33):
    """helm template against a fake cluster holding live_objects (what the
    previous revision installed) -> (rc, objects, err)."""
    with FakeAPIServer(live_objects, minor=minor) as api:
        p = t.subprocess.run(
            [t.HELM, "template", t.RELEASE, t.CHART_REL, "--namespace",
             t.NAMESPACE, "--dry-run=server", "--disable-openapi-validation",
             *args], cwd=t.ROOT, env=dict(t.HELM_ENV,
                                           KUBECONFIG=api.kubeconfig),
            capture_output=True, text=True, timeout=t.COMMAND_TIMEOUT)
        looked_up = any(r.endswith(f"/deployments/{t.RELEASE}")
                        for r in api.requests)
    if p.returncode != 0:
        return p.returncode, [], p.stderr.strip(), looked_up
    return 0, [d for d in yaml.safe_load_all(p.stdout) if d], "", looked_up


def strategy(dep):
    return dep["spec"]["strategy"]["type"] if dep else None


# ------------------------------------------------------------ the cutover

def check_cutover(t, items):
    """The path memory:// x1 -> Valkey x3, revision by revision."""
    n = "cutover"
    R = t.R
    rc, rev1, err = t.render(*HOST)
    dep1 = deployment(t, rev1) if rc == 0 else None
    R.check(f"{n}: revision 1 (memory://, 1 replica): Recreate, marked "
            "not shared", strategy(dep1) == "Recreate" and dep1["metadata"][
                "annotations"]["tokenplace.io/shared-state"] == "false",
            err or str(dep1 and dep1["metadata"]))
    step2 = HOST + REDIS + ["--set", "replicaCount=3"]
    # The unsafe one-step upgrade, on the live cluster: the chart renders
    # Recreate for this revision, so no in-memory pod serves beside the
    # shared ones.
    rc, rev2, err, looked = render_live(t, [dep1], *step2)
    dep2 = deployment(t, rev2) if rc == 0 else None
    R.check(f"{n}: the chart reads the live Deployment (lookup)", looked)
    R.check(f"{n}: revision 2 (redis://, 3 replicas) over a memory:// "
            "release: Recreate", strategy(dep2) == "Recreate"
            and dep2["spec"]["replicas"] == 3, err or str(dep2 and dep2[
                "spec"]["strategy"]))
    R.check(f"{n}: revision 2 marks the release shared",
            dep2 is not None and dep2["metadata"]["annotations"][
                "tokenplace.io/shared-state"] == "true")
    # An explicit RollingUpdate in that revision does not win either.
    rc, rev2b, err, _ = render_live(t, [dep1], *step2, "--set",
                                    "updateStrategy=RollingUpdate")
    R.check(f"{n}: revision 2 with updateStrategy=RollingUpdate: still "
            "Recreate", strategy(deployment(t, rev2b)) == "Recreate", err)
    # Revision 3 (anything after): shared on both sides, RollingUpdate.
    rc, rev3, err, _ = render_live(t, [dep2], *step2)
    dep3 = deployment(t, rev3) if rc == 0 else None
    R.check(f"{n}: revision 3 over a shared release: RollingUpdate, "
            "surge 1, none unavailable", dep3 is not None and dep3["spec"][
                "strategy"] == {"type": "RollingUpdate", "rollingUpdate": {
                    "maxSurge": 1, "maxUnavailable": 0}}, err)
    # A release made by a chart before the annotation: its env decides.
    legacy = json.loads(json.dumps(dep1))
    del legacy["metadata"]["annotations"]
    rc, rev2c, err, _ = render_live(t, [legacy], *step2)
    R.check(f"{n}: over a pre-annotation memory:// Deployment: Recreate",
            strategy(deployment(t, rev2c)) == "Recreate", err)
    # A fresh install straight onto Valkey rolls as usual.
    rc, fresh, err, _ = render_live(t, [], *step2)
    R.check(f"{n}: fresh install on redis://: RollingUpdate",
            strategy(deployment(t, fresh)) == "RollingUpdate", err)
    items.extend({"scenario": f"{n} rev{i}", "object": o}
                 for i, objs in ((2, rev2), (3, rev3)) for o in objs)


# -------------------------------------------------------------- secrets

def check_secrets(t, items):
    n = "secrets"
    R = t.R
    rc, objs, err = t.render(
        *HOST, *REDIS,
        "--set", "state.passwordSecret.name=valkey-auth",
        "--set", "env.extra[0].name=RELAY_STATE_PREFIX",
        "--set", "env.extra[0].value=tokenplace-b:",
        "--set", "env.extra[1].name=TOKENPLACE_LOG_LEVEL_FROM_CM",
        "--set", "env.extra[1].valueFrom.configMapKeyRef.name=relay-conf",
        "--set", "env.extra[1].valueFrom.configMapKeyRef.key=level",
        "--set", "env.extra[2].name=RELAY_TRUSTED_PROXIES_SECRET",
        "--set", "env.extra[2].valueFrom.secretKeyRef.name=proxies",
        "--set", "env.extra[2].valueFrom.secretKeyRef.key=cidrs",
        "--set", "env.extra[2].valueFrom.secretKeyRef.optional=true")
    if not R.check(f"{n}: renders", rc == 0, err):
        return
    env = t.env_map(t.relay_container(objs))
    R.check(f"{n}: RELAY_STATE_PASSWORD from state.passwordSecret",
            env.get("RELAY_STATE_PASSWORD") == {"secretKeyRef": {
                "name": "valkey-auth", "key": "password"}},
            str(env.get("RELAY_STATE_PASSWORD")))
    R.check(f"{n}: env.extra name/value", env.get("RELAY_STATE_PREFIX")
            == "tokenplace-b:")
    R.check(f"{n}: env.extra configMapKeyRef",
            env.get("TOKENPLACE_LOG_LEVEL_FROM_CM") == {"configMapKeyRef": {
                "name": "relay-conf", "key": "level"}})
    R.check(f"{n}: env.extra secretKeyRef", env.get(
        "RELAY_TRUSTED_PROXIES_SECRET") == {"secretKeyRef": {
            "name": "proxies", "key": "cidrs", "optional": True}})
    flat = json.dumps(t.find(objs, "Deployment", t.RELEASE))
    R.check(f"{n}: the URL carries no password", '"redis://valkey.'
            'tokenplace.svc:6379/0"' in flat)
    items.extend({"scenario": n, "object": o} for o in objs)


# --------------------------------------------------------------- spread

def spread_of(t, objs):
    return deployment(t, objs)["spec"]["template"]["spec"].get(
        "topologySpreadConstraints")


def check_spread(t, items):
    n = "spread"
    R = t.R
    rc, objs, err = t.render(*HOST, *REDIS, "--set", "replicaCount=3")
    if not R.check(f"{n}: 3 replicas render", rc == 0, err):
        return
    tsc = spread_of(t, objs)
    pod_labels = deployment(t, objs)["spec"]["template"]["metadata"]["labels"]
    R.check(f"{n}: default spreads across nodes, never blocks scheduling",
            tsc is not None and len(tsc) == 1
            and tsc[0]["topologyKey"] == "kubernetes.io/hostname"
            and tsc[0]["maxSkew"] == 1
            and tsc[0]["whenUnsatisfiable"] == "ScheduleAnyway", str(tsc))
    R.check(f"{n}: its selector matches the relay pods only",
            tsc and t.selects(tsc[0]["labelSelector"]["matchLabels"],
                              pod_labels)
            and tsc[0]["labelSelector"]["matchLabels"].get(
                "app.kubernetes.io/component") == "relay", str(tsc))
    items.extend({"scenario": n, "object": o} for o in objs)
    rc, hpa, err = t.render("-f", t.scenario_file("redis-hpa"))
    R.check(f"{n}: default spread with the HPA too",
            rc == 0 and spread_of(t, hpa) is not None, err)
    rc, one, err = t.render(*HOST)
    R.check(f"{n}: none with one replica", rc == 0
            and spread_of(t, one) is None, err)
    rc, off, err = t.render(*HOST, *REDIS, "--set", "replicaCount=3",
                            "--set-json", "topologySpreadConstraints=[]")
    R.check(f"{n}: [] turns it off", rc == 0 and spread_of(t, off) is None,
            err)
    custom = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
               "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {
                   "app.kubernetes.io/name": "tokenplace-relay"}}}]
    affinity = {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchExpressions": [{
                "key": "app.kubernetes.io/component", "operator": "In",
                "values": ["relay"]}]}}]},
        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 50, "preference": {"matchExpressions": [{
                "key": "kubernetes.io/arch", "operator": "In",
                "values": ["arm64"]}]}}]}}
    rc, mine, err = t.render(*HOST, *REDIS, "--set", "replicaCount=3",
                             "--set-json",
                             "topologySpreadConstraints=" + json.dumps(custom),
                             "--set-json", "affinity=" + json.dumps(affinity))
    spec = deployment(t, mine)["spec"]["template"]["spec"] if rc == 0 else {}
    R.check(f"{n}: a list replaces the default", spec.get(
        "topologySpreadConstraints") == custom, err or str(spec.get(
            "topologySpreadConstraints")))
    R.check(f"{n}: affinity passed through", spec.get("affinity") == affinity,
            str(spec.get("affinity")))
    items.extend({"scenario": f"{n} custom", "object": o} for o in mine)


# ------------------------------------------------------------ readiness

def check_readiness(t):
    n = "readiness"
    R = t.R
    table = t.relay_settings()
    R.check(f"{n}: RELAY_STATE_OUTAGE_READY is a relay setting, default "
            "false", table.get("RELAY_STATE_OUTAGE_READY") == ("BOOL",
                                                               "false"),
            str(table.get("RELAY_STATE_OUTAGE_READY")))
    rc, objs, err = t.render(*HOST)
    env = t.env_map(t.relay_container(objs)) if rc == 0 else {}
    R.check(f"{n}: the chart sets it true (stay in the Service while only "
            "the store is down)", env.get("RELAY_STATE_OUTAGE_READY")
            == "true", err or str(env.get("RELAY_STATE_OUTAGE_READY")))
    rc, objs, err = t.render(*HOST, "--set", "env.stateOutageReady=false")
    env = t.env_map(t.relay_container(objs)) if rc == 0 else {}
    R.check(f"{n}: env.stateOutageReady=false passes false",
            env.get("RELAY_STATE_OUTAGE_READY") == "false", err)


# ----------------------------------------------------------- autoscaling

def check_autoscaling(t, items):
    """Enabling the HPA never drops spec.replicas (Helm would then patch
    the Deployment down to 1 before the HPA acts)."""
    n = "hpa-enable"
    R = t.R
    base = HOST + REDIS + ["--set", "replicaCount=3"]
    rc, rev1, err = t.render(*base)
    dep1 = deployment(t, rev1) if rc == 0 else None
    R.check(f"{n}: revision 1 without the HPA: 3 replicas",
            dep1 is not None and dep1["spec"]["replicas"] == 3, err)
    hpa = base + ["--set", "autoscaling.enabled=true",
                  "--set", "autoscaling.minReplicas=2"]
    rc, rev2, err = t.render(*hpa)
    dep2 = deployment(t, rev2) if rc == 0 else None
    R.check(f"{n}: revision 2 with the HPA keeps replicas: 3 (offline: "
            "replicaCount, at least minReplicas)", dep2 is not None
            and dep2["spec"].get("replicas") == 3, err or str(
                dep2 and dep2["spec"].get("replicas")))
    # On the cluster: whatever the Deployment has now (the HPA's count).
    live = json.loads(json.dumps(dep1))
    live["spec"]["replicas"] = 4
    rc, rev3, err, _ = render_live(t, [live], *hpa)
    R.check(f"{n}: on the cluster: the live count (4), so an upgrade never "
            "undoes the HPA", rc == 0 and deployment(t, rev3)["spec"]
            ["replicas"] == 4, err)
    rc, low, err = t.render(*HOST, *REDIS, "--set", "autoscaling.enabled=true",
                            "--set", "autoscaling.minReplicas=2")
    R.check(f"{n}: replicaCount 1 below minReplicas 2: 2", rc == 0
            and deployment(t, low)["spec"]["replicas"] == 2, err)
    items.extend({"scenario": n, "object": o} for o in rev2)


# ------------------------------------------------------- smaller items

def check_smaller(t, items):
    R = t.R
    rc, objs, err = t.render(*HOST, "--set",
                             "state.url=unix:///run/valkey/valkey.sock?db=2")
    dep = deployment(t, objs) if rc == 0 else None
    R.check("unix://: accepted, one pod, Recreate (a socket is one pod's)",
            dep is not None and strategy(dep) == "Recreate"
            and t.env_map(t.relay_container(objs))["RELAY_STATE_URL"]
            == "unix:///run/valkey/valkey.sock?db=2", err)
    # Two releases in one namespace: each has its own GPU Service.
    names = []
    for rel in ("relay-a", "relay-b"):
        rc, o, err = t.render(*HOST, release=rel)
        if rc == 0:
            svc = [x for x in o if x["kind"] == "Service"
                   and x["metadata"]["labels"].get(
                       "app.kubernetes.io/component") == "gpu-server"]
            dep = t.find(o, "Deployment", rel)
            env = t.env_map(next(c for c in dep["spec"]["template"]["spec"][
                "containers"] if c["name"] == "relay"))
            names.append((svc[0]["metadata"]["name"] if svc else None,
                          env["TOKENPLACE_RELAY_UPSTREAM_URL"],
                          env["TOKENPLACE_GPU_HOST"]))
    R.check("two releases, two GPU Services, each relay calling its own",
            names == [("relay-a-gpu-server", "http://relay-a-gpu-server:8000",
                       "relay-a-gpu-server"),
                      ("relay-b-gpu-server", "http://relay-b-gpu-server:8000",
                       "relay-b-gpu-server")], str(names))
    rc, o, err = t.render(*HOST, "--set", "gpuExternalName.headless.enabled="
                          "true", "--set", "gpuExternalName.headless.ip="
                          "192.0.2.7", release="relay-b")
    sl = t.find(o, "EndpointSlice") if rc == 0 else None
    R.check("headless: the EndpointSlice is per release too",
            sl is not None and sl["metadata"]["name"] ==
            "relay-b-gpu-server-manual" and sl["metadata"]["labels"][
                "kubernetes.io/service-name"] == "relay-b-gpu-server", err)
    rc, o, err = t.render(*HOST, "--set", "gpuExternalName.serviceName="
                          "gpu-server", "--set",
                          "env.upstream.url=http://gpu-server:8000")
    R.check("gpuExternalName.serviceName keeps the old name",
            rc == 0 and t.find(o, "Service", "gpu-server") is not None, err)
    # preStopSleepSeconds against the cluster's version.
    rc, o, err = t.render(*HOST, "--set", "preStopSleepSeconds=5",
                          "--kube-version", "1.30.0")
    pre = t.relay_container(o).get("lifecycle") if rc == 0 else None
    R.check("preStopSleepSeconds on Kubernetes 1.30: sleep action",
            pre == {"preStop": {"sleep": {"seconds": 5}}}, err or str(pre))
    rc, o, err, _ = render_live(t, [], *HOST, "--set",
                                "preStopSleepSeconds=5", minor=29)
    R.check("preStopSleepSeconds on a live 1.29 cluster: refused",
            rc != 0 and "preStopSleepSeconds needs Kubernetes 1.30" in err,
            err[-400:])
    # NOTES: warn when no registration token is set.
    warn = "WARNING: no registration token is set"
    outs = []
    for extra in ([], ["--set", "registrationToken.value=s3cret"],
                  ["--set", "registrationToken.existingSecret=relay-reg"]):
        p = t.helm("install", t.RELEASE, t.CHART_REL, "--namespace",
                   t.NAMESPACE, *HOST, *extra, "--dry-run=client")
        outs.append(p.returncode == 0 and warn in p.stdout)
    R.check("NOTES warn without a registration token, not with one",
            outs == [True, False, False], str(outs))
    # The comments the issue asks for are in values.yaml.
    with open(os.path.join(t.CHART, "values.yaml"), encoding="utf-8") as f:
        values_text = f.read()
    R.check("values.yaml: faucet limit is per replica",
            re.search(r"counted by each replica on its own", values_text))
    R.check("values.yaml: ingress.tls explains issuer vs clusterIssuer",
            "clusterIssuer names a ClusterIssuer" in values_text
            and "issuer names an Issuer in the release's own" in values_text)


# --------------------------------------------- alerts and the dashboard

def relay_metric_names(t):
    """Metric families the relay exports, from its source: every
    "tokenplace_..." name registered in relay/src and shared/src, plus the
    process_* collectors of shared/src/metrics_process.c."""
    names = set()
    for d in ("relay/src", "shared/src"):
        for dirpath, _dirs, files in sorted(os.walk(os.path.join(t.ROOT, d))):
            for fn in sorted(files):
                if not fn.endswith(".c"):
                    continue
                with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                    src = f.read()
                names |= set(re.findall(r'"(tokenplace_[a-z0-9_]+)"', src))
                if fn == "metrics_process.c":
                    names |= set(re.findall(r'\{\s*"(process_[a-z_]+)"',
                                            src))
    return names


def query_metrics(expr, known):
    """Metric names a PromQL expression reads (histogram suffixes folded)."""
    out = set()
    for m in re.findall(r"\b((?:tokenplace|process)_[a-z0-9_]+)", expr):
        for suffix in ("_bucket", "_sum", "_count"):
            if m.endswith(suffix) and m not in known and \
                    m[:-len(suffix)] in known:
                m = m[:-len(suffix)]
        out.add(m)
    return out


def check_observability(t, items):
    R = t.R
    known = relay_metric_names(t)
    R.check("relay metric list derived from its source", len(known) > 40
            and "process_resident_memory_bytes" in known
            and "tokenplace_relay_state_up" in known, str(len(known)))
    R.check("the metric check catches a name the relay does not export",
            query_metrics('histogram_quantile(0.9, rate(tokenplace_relay_'
                          'nope_seconds_bucket[5m]))', known) - known
            == {"tokenplace_relay_nope_seconds_bucket"})
    rc, objs, err = t.render(*HOST, *REDIS, "--set",
                             "grafanaDashboard.enabled=true",
                             "--set", "prometheusRule.enabled=true",
                             "--set", "grafanaDashboard.annotations."
                             "grafana_folder=tokenplace")
    if not R.check("dashboard and rules render", rc == 0, err):
        return
    items.extend({"scenario": "observability", "object": o} for o in objs)
    cm = t.find(objs, "ConfigMap", f"{t.RELEASE}-dashboard")
    R.check("dashboard ConfigMap labelled grafana_dashboard: \"1\"",
            cm is not None and cm["metadata"]["labels"].get(
                "grafana_dashboard") == "1"
            and cm["metadata"].get("annotations") == {
                "grafana_folder": "tokenplace"}, str(cm and cm["metadata"]))
    if cm is None:
        return
    dash = json.loads(cm["data"]["tokenplace-relay.json"])
    panels = dash.get("panels", [])
    exprs = [tg["expr"] for p in panels for tg in p.get("targets", [])]
    variables = [v["query"] for v in dash.get("templating", {}).get(
        "list", []) if v.get("type") == "query"]
    R.check("dashboard: at least six panels, each with a query",
            len(panels) >= 6 and all(p.get("targets") for p in panels),
            str(len(panels)))
    used = set()
    for e in exprs + variables:
        used |= query_metrics(e, known)
    unknown = sorted(used - known)
    R.check("dashboard: every query's metric (panels and variables) is "
            "exported by the relay", used and not unknown and variables,
            str(unknown))
    want = {
        "requests by route": "tokenplace_relay_requests_total",
        "latency": "tokenplace_relay_request_duration_seconds",
        "legacy queue": "tokenplace_relay_queued_requests",
        "legacy nodes": "tokenplace_relay_known_servers",
        "API v1 queue": "tokenplace_relay_api_v1_queued_requests",
        "API v1 nodes": "tokenplace_relay_api_v1_nodes",
        "store state": "tokenplace_relay_state_up",
        "store latency": "tokenplace_relay_state_command_seconds",
        "store errors": "tokenplace_relay_state_errors_total",
        "store reconnects": "tokenplace_relay_state_reconnects_total",
        "upstream health": "tokenplace_relay_upstream_health_state",
        "upstream circuit": "tokenplace_relay_upstream_circuit_state",
        "process memory": "process_resident_memory_bytes"}
    missing = sorted(k for k, m in want.items() if m not in used)
    R.check("dashboard: covers routes, latency, both generations, the "
            "store, the upstream and memory", not missing, str(missing))
    R.check("dashboard: every query is scoped to $namespace and $service",
            all('namespace="$namespace"' in e and 'service="$service"' in e
                for e in exprs))
    rule = t.find(objs, "PrometheusRule", t.RELEASE)
    alerts = {r["alert"]: r for g in rule["spec"]["groups"]
              for r in g["rules"]}
    for a in ("TokenplaceRelayStateStoreDown",
              "TokenplaceRelayStateStoreErrors",
              "TokenplaceRelayStateStoreOutOfMemory"):
        expr = alerts.get(a, {}).get("expr", "")
        R.check(f"alert {a}: uses exported store metrics",
                expr and query_metrics(expr, known) <= known
                and "tokenplace_relay_state_" in expr, expr)
    R.check("alert StateStoreOutOfMemory counts the oom kind",
            'kind="oom"' in alerts["TokenplaceRelayStateStoreOutOfMemory"]
            ["expr"])
    # HighErrorRatio: which statuses its numerator counts. 503 (no node or
    # GPU box, a store outage, draining) and 429 (limits) must not.
    expr = alerts["TokenplaceRelayHighErrorRatio"]["expr"]
    num = expr.split("/")[0]
    eq = re.findall(r'status=~"([^"]+)"', num)
    ne = re.findall(r'status!="([^"]+)"', num)
    nre = re.findall(r'status!~"([^"]+)"', num)

    def counted(status):
        return (all(re.fullmatch(p, status) for p in eq)
                and all(status != v for v in ne)
                and not any(re.fullmatch(p, status) for p in nre))
    got = {s: counted(s) for s in ("500", "502", "504", "503", "429", "404")}
    R.check("HighErrorRatio counts 500/502/504, not 503 or 429",
            got == {"500": True, "502": True, "504": True, "503": False,
                    "429": False, "404": False}, str(got))


BAD = [
    ("updateStrategy RollingUpdate with memory://",
     HOST + ["--set", "updateStrategy=RollingUpdate"],
     "updateStrategy RollingUpdate needs a shared state store"),
    ("updateStrategy RollingUpdate with unix://",
     HOST + ["--set", "updateStrategy=RollingUpdate",
             "--set", "state.url=unix:///run/valkey.sock"],
     "updateStrategy RollingUpdate needs a shared state store"),
    ("two replicas on a unix:// socket",
     HOST + ["--set", "replicaCount=2",
             "--set", "state.url=unix:///run/valkey.sock"],
     "replicaCount 2 needs a shared state store"),
    ("env.extra with value and valueFrom",
     HOST + ["--set", "env.extra[0].name=X", "--set", "env.extra[0].value=1",
             "--set", "env.extra[0].valueFrom.secretKeyRef.name=s",
             "--set", "env.extra[0].valueFrom.secretKeyRef.key=k"],
     "/env/extra/0"),
    ("env.extra with neither value nor valueFrom",
     HOST + ["--set", "env.extra[0].name=X"], "/env/extra/0"),
    ("env.extra valueFrom of an unsupported kind",
     HOST + ["--set", "env.extra[0].name=X",
             "--set", "env.extra[0].valueFrom.fieldRef.fieldPath=spec"],
     "/env/extra/0"),
    ("env.extra secretKeyRef without a key",
     HOST + ["--set", "env.extra[0].name=X",
             "--set", "env.extra[0].valueFrom.secretKeyRef.name=s"],
     "/env/extra/0"),
    ("env.extra setting a variable the chart owns",
     HOST + ["--set", "env.extra[0].name=RELAY_STATE_PASSWORD",
             "--set", "env.extra[0].value=x"],
     "env.extra sets RELAY_STATE_PASSWORD, which the chart sets itself"),
    ("state.passwordSecret beside state.existingSecret",
     HOST + ["--set", "state.passwordSecret.name=valkey-auth",
             "--set", "state.existingSecret=relay-state"],
     "state.passwordSecret and state.existingSecret"),
    ("state.passwordSecret not a Secret name",
     HOST + ["--set", "state.passwordSecret.name=Valkey_Auth"],
     "/state/passwordSecret/name"),
    ("topologySpreadConstraints entry without topologyKey",
     HOST + ["--set-json", 'topologySpreadConstraints=[{"maxSkew":1,'
             '"whenUnsatisfiable":"ScheduleAnyway"}]'],
     "/topologySpreadConstraints/0"),
    ("topologySpreadConstraints with a typo",
     HOST + ["--set-json", 'topologySpreadConstraints=[{"maxSkew":1,'
             '"topologyKey":"k","whenUnsatisfiable":"ScheduleAnyway",'
             '"labelSelecter":{}}]'], "labelSelecter"),
    ("affinity with an unknown key",
     HOST + ["--set-json", 'affinity={"podAntiAfinity":{}}'],
     "podAntiAfinity"),
    ("affinity operator unknown",
     HOST + ["--set-json", 'affinity={"podAntiAffinity":{"requiredDuring'
             'SchedulingIgnoredDuringExecution":[{"topologyKey":"h",'
             '"labelSelector":{"matchExpressions":[{"key":"a",'
             '"operator":"Is"}]}}]}}'], "operator"),
    ("state URL of another scheme",
     HOST + ["--set", "state.url=rediss://valkey:6379"], "at '/state/url'"),
    ("preStopSleepSeconds on Kubernetes 1.29",
     HOST + ["--set", "preStopSleepSeconds=5", "--kube-version", "1.29.4"],
     "preStopSleepSeconds needs Kubernetes 1.30 or later"),
    ("upstream URL naming the old gpu-server Service",
     HOST + ["--set", "env.upstream.url=http://gpu-server:8000"],
     "env.upstream.url names the Service gpu-server, which this chart no "
     "longer makes"),
    ("grafanaDashboard with an unknown key",
     HOST + ["--set", "grafanaDashboard.folder=x"],
     "additional properties 'folder' not allowed"),
]


def guide_command(t, words, cmd):
    """(ok, why) for guide commands about the Valkey recipe, None for the
    others (test_chart.guide_command_ok handles those)."""
    return chart_valkey.guide_command(t, words, cmd)


def run(t):
    items = []
    check_cutover(t, items)
    check_secrets(t, items)
    check_spread(t, items)
    check_readiness(t)
    check_autoscaling(t, items)
    check_smaller(t, items)
    check_observability(t, items)
    for name, args, message in BAD:
        rc, _objs, err = t.render(*args)
        t.R.check(f"refused: {name}", rc != 0 and message in err,
                  f"rc={rc}, wanted {message!r} in: {err[-600:]}")
    items.extend(chart_valkey.run(t))
    t.validate_objects(items)
