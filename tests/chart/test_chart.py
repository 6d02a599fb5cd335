#!/usr/bin/python3
"""Chart tests for charts/tokenplace-relay.

Runs `helm lint --strict`, renders every scenario in tests/chart/scenarios
with `helm template`, parses the YAML and checks the objects field by field,
validates every rendered object against the Kubernetes API schemas
(kubernetes-models, through validate.mjs), and checks that bad values fail
with their messages. Prints one line per check and ends with
`N passed, N failed`.

Environment: HELM (helm binary), NODE_TOOLS (node_modules with
kubernetes-models), both provided by tests/chart/run.sh.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

import chart_ha

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CHART_REL = "charts/tokenplace-relay"
CHART = os.path.join(ROOT, CHART_REL)
SCENARIOS = os.path.join(HERE, "scenarios")
HELM = os.environ["HELM"]
NODE_TOOLS = os.environ["NODE_TOOLS"]
RELEASE = "relay"
GPU_SVC = f"{RELEASE}-gpu-server"     # one GPU Service per release
NAMESPACE = "tokenplace"
COMMAND_TIMEOUT = 120

with open(os.path.join(CHART, "Chart.yaml"), encoding="utf-8") as f:
    CHART_META = yaml.safe_load(f)
with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
    DEFAULTS = yaml.safe_load(f)


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return ok


R = Results()
_tmp = tempfile.TemporaryDirectory(prefix="tp-chart-")
TMP = _tmp.name
HELM_ENV = dict(os.environ,
                HELM_CONFIG_HOME=os.path.join(TMP, "config"),
                HELM_CACHE_HOME=os.path.join(TMP, "cache"),
                HELM_DATA_HOME=os.path.join(TMP, "data"),
                KUBECONFIG=os.path.join(TMP, "no-kubeconfig"))


def helm(*args):
    return subprocess.run([HELM, *args], cwd=ROOT, env=HELM_ENV,
                          capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)


def scenario_file(name):
    return os.path.join(SCENARIOS, name + ".yaml")


def render(*value_args, release=RELEASE, namespace=NAMESPACE):
    """helm template with the given -f/--set arguments -> (rc, objects, err)."""
    p = helm("template", release, CHART_REL, "--namespace", namespace,
             *value_args)
    if p.returncode != 0:
        return p.returncode, [], p.stderr.strip()
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    return 0, docs, ""


def find(objs, kind, name=None):
    for o in objs:
        if o.get("kind") == kind and (name is None
                                      or o["metadata"]["name"] == name):
            return o
    return None


def kinds(objs):
    return sorted(f'{o["kind"]}/{o["metadata"]["name"]}' for o in objs)


def relay_container(objs):
    dep = find(objs, "Deployment", RELEASE)
    return next(c for c in dep["spec"]["template"]["spec"]["containers"]
                if c["name"] == "relay")


def env_map(container):
    """Plain env values as a dict; valueFrom entries map to their source."""
    out = {}
    for e in container.get("env", []):
        out[e["name"]] = e["value"] if "value" in e else e["valueFrom"]
    return out


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|k|M|G)?$")
FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9,
           "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3}


def quantity(q):
    m = QUANTITY.match(str(q))
    if not m:
        raise ValueError(f"unparsed quantity {q!r}")
    return float(m.group(1)) * FACTORS[m.group(2)]


def relay_settings():
    """{env var: default} from the relay's settings table (settings.c)."""
    path = os.path.join(ROOT, "relay", "src", "settings.c")
    with open(path, encoding="utf-8") as f:
        src = f.read()
    rows = re.findall(
        r'\{\s*"(\w+)",\s*"([A-Z0-9_]+)",\s*(?:NULL|"[A-Z0-9_]+"),\s*'
        r'TP_SETTING_(\w+),\s*"([^"]*)"', src)
    return {env: (kind, default) for _name, env, kind, default in rows}


# ---------------------------------------------------------------- checks

def check_common(name, objs):
    """What every good scenario must satisfy."""
    dep = find(objs, "Deployment", RELEASE)
    if not R.check(f"{name}: Deployment {RELEASE} rendered", dep is not None,
                   kinds(objs)):
        return
    for o in objs:
        R.check(f"{name}: {o['kind']}/{o['metadata']['name']} in namespace "
                f"{NAMESPACE}", o["metadata"].get("namespace") == NAMESPACE,
                str(o["metadata"].get("namespace")))
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    c = relay_container(objs)
    env = env_map(c)

    R.check(f"{name}: Deployment selector matches its pods",
            selects(dep["spec"]["selector"]["matchLabels"], pod_labels))
    svc = find(objs, "Service", RELEASE)
    R.check(f"{name}: Service {RELEASE} selects the relay pods",
            svc is not None and selects(svc["spec"]["selector"], pod_labels))
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    R.check(f"{name}: Service targets the container's http port",
            svc is not None and svc["spec"]["ports"][0]["targetPort"] == "http"
            and "http" in port_names)
    R.check(f"{name}: RELAY_HOST is 0.0.0.0", env.get("RELAY_HOST") == "0.0.0.0",
            str(env.get("RELAY_HOST")))
    R.check(f"{name}: RELAY_PORT matches the containerPort",
            env.get("RELAY_PORT") == str(port_names.get("http")),
            f'{env.get("RELAY_PORT")} vs {port_names.get("http")}')
    R.check(f"{name}: every env value is a string",
            all(isinstance(v, (str, dict)) for v in env.values()),
            str({k: type(v).__name__ for k, v in env.items()}))

    live = c.get("livenessProbe", {}).get("httpGet", {})
    ready = c.get("readinessProbe", {}).get("httpGet", {})
    start = c.get("startupProbe", {}).get("httpGet", {})
    R.check(f"{name}: liveness probe GET /livez on http",
            live.get("path") == "/livez" and live.get("port") == "http", str(live))
    R.check(f"{name}: readiness probe GET /healthz on http",
            ready.get("path") == "/healthz" and ready.get("port") == "http",
            str(ready))
    R.check(f"{name}: startup probe GET /livez", start.get("path") == "/livez",
            str(start))

    grace = spec.get("terminationGracePeriodSeconds")
    graceful = int(env.get("RELAY_GRACEFUL_TIMEOUT", "30"))
    pre_stop = (c.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
                .get("seconds", 0))
    R.check(f"{name}: terminationGracePeriodSeconds ({grace}) > "
            f"RELAY_GRACEFUL_TIMEOUT ({graceful}) + preStop ({pre_stop})",
            isinstance(grace, int) and grace > graceful + pre_stop)

    psc = spec.get("securityContext", {})
    csc = c.get("securityContext", {})
    R.check(f"{name}: pod runs as non-root numeric user",
            psc.get("runAsNonRoot") is True
            and isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0,
            str(psc))
    R.check(f"{name}: seccomp RuntimeDefault",
            psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
            str(psc))
    R.check(f"{name}: container hardened (read-only root, no escalation, "
            "caps dropped)",
            csc.get("readOnlyRootFilesystem") is True
            and csc.get("allowPrivilegeEscalation") is False
            and csc.get("privileged") is not True
            and csc.get("capabilities", {}).get("drop") == ["ALL"]
            and not csc.get("capabilities", {}).get("add"), str(csc))
    R.check(f"{name}: no service account token mounted",
            spec.get("automountServiceAccountToken") is False)

    res = c.get("resources", {})
    try:
        fits = (quantity(res["limits"]["memory"]) <= 512 * 1024 ** 2
                and quantity(res["limits"]["cpu"]) <= 2
                and quantity(res["requests"]["memory"])
                <= quantity(res["limits"]["memory"])
                and quantity(res["requests"]["cpu"])
                <= quantity(res["limits"]["cpu"]))
    except (KeyError, ValueError) as e:
        fits = False
        res = f"{res} ({e})"
    R.check(f"{name}: requests/limits set and fit a Raspberry Pi 5 node",
            fits, str(res))

    gpu = find(objs, "Service", GPU_SVC)
    R.check(f"{name}: gpu-server Service exists", gpu is not None)
    if gpu is not None and svc is not None:
        R.check(f"{name}: relay Service does not select gpu-server's labels",
                not selects(svc["spec"]["selector"], gpu["metadata"]["labels"]))
    pdb = find(objs, "PodDisruptionBudget", RELEASE)
    if pdb is not None:
        R.check(f"{name}: PDB selects the relay pods",
                selects(pdb["spec"]["selector"]["matchLabels"], pod_labels))
    test_pod = next((o for o in objs if o["kind"] == "Pod"), None)
    if R.check(f"{name}: helm test pod rendered", test_pod is not None):
        ann = test_pod["metadata"].get("annotations", {})
        script = " ".join(test_pod["spec"]["containers"][0]["command"])
        R.check(f"{name}: test pod is a helm test hook",
                ann.get("helm.sh/hook") == "test", str(ann))
        R.check(f"{name}: test pod checks /livez, /healthz and /metrics via "
                "the Service",
                "/livez" in script and "/healthz" in script
                and "/metrics" in script
                and f"{RELEASE}.{NAMESPACE}.svc" in script, script)
        R.check(f"{name}: relay Service does not select the test pod",
                svc is not None and not selects(
                    svc["spec"]["selector"], test_pod["metadata"]["labels"]))
        R.check(f"{name}: test pod runs as non-root",
                test_pod["spec"]["securityContext"].get("runAsNonRoot") is True)


def check_minimal(objs):
    n = "minimal"
    R.check(f"{n}: object set", kinds(objs) == sorted([
        f"Deployment/{RELEASE}", f"Service/{RELEASE}", f"Service/{GPU_SVC}",
        f"ServiceAccount/{RELEASE}", f"PodDisruptionBudget/{RELEASE}",
        f"Pod/{RELEASE}-test"]), str(kinds(objs)))
    dep = find(objs, "Deployment", RELEASE)
    R.check(f"{n}: one replica", dep["spec"].get("replicas") == 1)
    R.check(f"{n}: Recreate strategy with in-memory state",
            dep["spec"]["strategy"]["type"] == "Recreate")
    c = relay_container(objs)
    env = env_map(c)
    R.check(f"{n}: image defaults to the chart appVersion",
            c["image"] == f'{DEFAULTS["image"]["repository"]}:'
                          f'{CHART_META["appVersion"]}', c["image"])
    R.check(f"{n}: upstream URL default http://gpu-server:8000",
            env.get("TOKENPLACE_RELAY_UPSTREAM_URL") == f"http://{GPU_SVC}:8000")
    R.check(f"{n}: state memory://", env.get("RELAY_STATE_URL") == "memory://")
    R.check(f"{n}: no token variables without a token",
            "TOKEN_PLACE_RELAY_SERVER_TOKEN" not in env
            and "TOKEN_PLACE_RELAY_SERVER_TOKENS" not in env)
    gpu = find(objs, "Service", GPU_SVC)
    R.check(f"{n}: gpu-server is ExternalName to gpuExternalName.host",
            gpu["spec"]["type"] == "ExternalName"
            and gpu["spec"]["externalName"] == "gpu-box.example.com",
            str(gpu["spec"]))
    R.check(f"{n}: gpu-server port 8000",
            [p["port"] for p in gpu["spec"]["ports"]] == [8000])
    R.check(f"{n}: no Endpoints in ExternalName mode",
            find(objs, "Endpoints") is None)
    pdb = find(objs, "PodDisruptionBudget", RELEASE)
    R.check(f"{n}: PDB maxUnavailable 1 (never blocks a drain with 1 replica)",
            pdb["spec"].get("maxUnavailable") == 1
            and "minAvailable" not in pdb["spec"], str(pdb["spec"]))

    # The chart's env defaults are the relay's own defaults.
    table = relay_settings()
    R.check(f"{n}: settings.c table parsed", len(table) >= 20, str(len(table)))
    # Behind the ingress every connection comes from the ingress pods, so
    # the chart turns the relay's per-address limit off (docs/hardening.md).
    # It also keeps a relay that has been ready in the Service while only
    # the store is down (RELAY_STATE_OUTAGE_READY, docs/configuration.md),
    # and names the GPU Service per release.
    chart_specific = {"RELAY_HOST", "TOKENPLACE_RELAY_UPSTREAM_URL",
                      "RELAY_MAX_CONNECTIONS_PER_CLIENT",
                      "RELAY_STATE_OUTAGE_READY", "TOKENPLACE_GPU_HOST"}
    R.check(f"{n}: per-address connection limit off behind the ingress",
            env.get("RELAY_MAX_CONNECTIONS_PER_CLIENT") == "0",
            str(env.get("RELAY_MAX_CONNECTIONS_PER_CLIENT")))
    for var, value in sorted(env.items()):
        if not isinstance(value, str) or var in chart_specific:
            continue
        if var not in table:
            R.check(f"{n}: {var} is a relay setting", False,
                    "not in relay/src/settings.c")
            continue
        kind, default = table[var]
        R.check(f"{n}: {var}={value!r} equals the relay default {default!r}",
                value == default)
    unmapped = sorted(set(table) - set(env) - {
        "RELAY_WORKERS",                     # the relay is always one process
        "TOKEN_PLACE_RELAY_SERVER_TOKEN",    # from a Secret, see token-*
        "TOKEN_PLACE_RELAY_SERVER_TOKENS"})
    if unmapped:
        print(f"info minimal: relay settings without a chart value (settable "
              f"through env.extra): {', '.join(unmapped)}")


def check_headless(objs, n="headless-ip"):
    gpu = find(objs, "Service", GPU_SVC)
    R.check(f"{n}: gpu-server is headless (clusterIP None, no selector)",
            gpu["spec"].get("clusterIP") == "None"
            and "selector" not in gpu["spec"]
            and "externalName" not in gpu["spec"], str(gpu["spec"]))
    svc_ports = [(p["name"], p["port"]) for p in gpu["spec"]["ports"]]
    env = env_map(relay_container(objs))
    R.check(f"{n}: relay still calls http://gpu-server:8000",
            env.get("TOKENPLACE_RELAY_UPSTREAM_URL") == f"http://{GPU_SVC}:8000")
    return gpu, svc_ports


def check_headless_slice(objs):
    """Kubernetes >= 1.33 (Helm's default): a manual EndpointSlice."""
    n = "headless-ip"
    _gpu, svc_ports = check_headless(objs, n)
    R.check(f"{n}: no deprecated v1 Endpoints on Kubernetes >= 1.33",
            find(objs, "Endpoints") is None)
    es = find(objs, "EndpointSlice")
    if not R.check(f"{n}: EndpointSlice rendered", es is not None,
                   str(kinds(objs))):
        return
    labels = es["metadata"]["labels"]
    R.check(f"{n}: EndpointSlice belongs to gpu-server",
            labels.get("kubernetes.io/service-name") == GPU_SVC)
    R.check(f"{n}: EndpointSlice not claimed by the endpoint controller",
            labels.get("endpointslice.kubernetes.io/managed-by", "")
            not in ("", "endpointslice-controller.k8s.io"), str(labels))
    R.check(f"{n}: EndpointSlice points at headless.ip",
            es["addressType"] == "IPv4"
            and [a for e in es["endpoints"] for a in e["addresses"]]
            == ["192.0.2.40"], str(es["endpoints"]))
    R.check(f"{n}: EndpointSlice port matches the Service port",
            [(p["name"], p["port"]) for p in es["ports"]] == svc_ports)


def check_headless_ip_only(objs):
    """Headless mode needs no gpuExternalName.host (workstation by IP)."""
    n = "headless-ip-only"
    gpu, svc_ports = check_headless(objs, n)
    R.check(f"{n}: no gpu-host annotation without a host",
            "tokenplace.io/gpu-host" not in
            (gpu["metadata"].get("annotations") or {}), str(gpu["metadata"]))
    es = find(objs, "EndpointSlice")
    R.check(f"{n}: EndpointSlice points at headless.ip",
            es is not None and [a for e in es["endpoints"]
                                for a in e["addresses"]] == ["192.0.2.40"]
            and [(p["name"], p["port"]) for p in es["ports"]] == svc_ports,
            str(es))


def check_headless_endpoints(objs):
    """Kubernetes < 1.33: classic manual Endpoints."""
    n = "headless-ip@1.32"
    _gpu, svc_ports = check_headless(objs, n)
    ep = find(objs, "Endpoints", GPU_SVC)
    if R.check(f"{n}: Endpoints gpu-server rendered", ep is not None):
        sub = ep["subsets"][0]
        R.check(f"{n}: Endpoints point at headless.ip",
                [a["ip"] for a in sub["addresses"]] == ["192.0.2.40"])
        R.check(f"{n}: Endpoints port matches the Service port (name and "
                "number)", [(p["name"], p["port"]) for p in sub["ports"]]
                == svc_ports)


def check_tls_ingress(objs):
    n = "tls-ingress"
    ing = find(objs, "Ingress", RELEASE)
    if not R.check(f"{n}: Ingress {RELEASE} rendered", ing is not None,
                   str(kinds(objs))):
        return
    spec = ing["spec"]
    ann = ing["metadata"].get("annotations", {})
    R.check(f"{n}: Traefik ingress class", spec.get("ingressClassName") == "traefik")
    R.check(f"{n}: host relay.mycluster.dev routed",
            [r["host"] for r in spec["rules"]] == ["relay.mycluster.dev"])
    backend = spec["rules"][0]["http"]["paths"][0]["backend"]["service"]
    svc = find(objs, "Service", RELEASE)
    R.check(f"{n}: backend is the relay Service's http port",
            backend["name"] == RELEASE and backend["port"].get("name")
            in [p["name"] for p in svc["spec"]["ports"]], str(backend))
    R.check(f"{n}: TLS secret and hosts",
            spec.get("tls") == [{"secretName": f"{RELEASE}-tls",
                                 "hosts": ["relay.mycluster.dev"]}],
            str(spec.get("tls")))
    R.check(f"{n}: cert-manager cluster issuer annotation",
            ann.get("cert-manager.io/cluster-issuer") == "letsencrypt-staging",
            str(ann))
    R.check(f"{n}: Traefik websecure entrypoint with TLS",
            ann.get("traefik.ingress.kubernetes.io/router.entrypoints")
            == "websecure"
            and ann.get("traefik.ingress.kubernetes.io/router.tls") == "true")


def check_tls_list(objs):
    """The list form of ingress.tls renders what the object form renders."""
    n = "tls-list"
    ing = find(objs, "Ingress", RELEASE)
    if not R.check(f"{n}: Ingress {RELEASE} rendered", ing is not None,
                   str(kinds(objs))):
        return
    rc, ref_objs, err = render("-f", scenario_file("tls-ingress"))
    ref = find(ref_objs, "Ingress", RELEASE) if rc == 0 else None
    R.check(f"{n}: same Ingress as the object form (tls-ingress)",
            ref is not None and ing == ref,
            err or f"list form: {ing}\nobject form: {ref}")
    # An entry without hosts covers every ingress host, as the object form.
    rc, objs2, err = render("-f", scenario_file("tls-list"),
                            "--set", "ingress.hosts[1].host=relay2.mycluster.dev",
                            "--set-json",
                            'ingress.tls=[{"secretName": "relay-tls"}]')
    ing2 = find(objs2, "Ingress", RELEASE) if rc == 0 else None
    R.check(f"{n}: an entry without hosts covers every ingress host",
            ing2 is not None and ing2["spec"]["tls"] == [
                {"secretName": "relay-tls",
                 "hosts": ["relay.mycluster.dev", "relay2.mycluster.dev"]}],
            err or str(ing2 and ing2["spec"].get("tls")))
    # An empty list is TLS off, like enabled: false.
    rc, objs3, err = render("-f", scenario_file("tls-list"),
                            "--set-json", "ingress.tls=[]")
    ing3 = find(objs3, "Ingress", RELEASE) if rc == 0 else None
    R.check(f"{n}: an empty list means no TLS (web entry point)",
            ing3 is not None and "tls" not in ing3["spec"]
            and ing3["metadata"]["annotations"].get(
                "traefik.ingress.kubernetes.io/router.entrypoints") == "web",
            err or str(ing3))


def check_network_policy(objs):
    n = "network-policy"
    np = find(objs, "NetworkPolicy", RELEASE)
    if not R.check(f"{n}: NetworkPolicy rendered", np is not None):
        return
    spec = np["spec"]
    pod_labels = find(objs, "Deployment", RELEASE)["spec"]["template"][
        "metadata"]["labels"]
    R.check(f"{n}: selects the relay pods",
            selects(spec["podSelector"]["matchLabels"], pod_labels))
    R.check(f"{n}: restricts ingress and egress",
            sorted(spec["policyTypes"]) == ["Egress", "Ingress"])
    egress = spec["egress"]
    dns = [r for r in egress if any(
        t.get("namespaceSelector", {}).get("matchLabels", {}).get(
            "kubernetes.io/metadata.name") == "kube-system" for t in r["to"])]
    R.check(f"{n}: DNS to kube-system allowed (UDP and TCP 53)",
            len(dns) == 1 and sorted((p["protocol"], p["port"])
                                     for p in dns[0]["ports"])
            == [("TCP", 53), ("UDP", 53)], str(dns))
    gpu = [r for r in egress if any("ipBlock" in t for t in r["to"])]
    R.check(f"{n}: egress to the GPU CIDR on port 8000",
            len(gpu) == 1
            and [t["ipBlock"]["cidr"] for t in gpu[0]["to"]] == ["203.0.113.10/32"]
            and gpu[0]["ports"] == [{"port": 8000, "protocol": "TCP"}], str(gpu))
    extra = [r for r in egress if any(
        t.get("podSelector", {}).get("matchLabels", {}).get(
            "app.kubernetes.io/name") == "valkey" for t in r["to"])]
    R.check(f"{n}: extraEgress appended", len(extra) == 1, str(egress))
    R.check(f"{n}: nothing else may leave the pod", len(egress) == 3,
            str(len(egress)))
    ingress = spec["ingress"]
    traefik = [r for r in ingress if any(
        f.get("namespaceSelector", {}).get("matchLabels", {}).get(
            "kubernetes.io/metadata.name") == "kube-system"
        and f.get("podSelector", {}).get("matchLabels", {}).get(
            "app.kubernetes.io/name") == "traefik" for f in r["from"])]
    R.check(f"{n}: ingress from Traefik to the http port",
            len(traefik) == 1 and traefik[0]["ports"][0]["port"] == "http",
            str(ingress))
    mon = [r for r in ingress if any(
        f.get("namespaceSelector", {}).get("matchLabels", {}).get(
            "kubernetes.io/metadata.name") == "monitoring" for f in r["from"])]
    R.check(f"{n}: ingress from the metrics namespace", len(mon) == 1)
    test_pod = next(o for o in objs if o["kind"] == "Pod")
    tests = [r for r in ingress if any(
        "podSelector" in f and "namespaceSelector" not in f
        and selects(f["podSelector"]["matchLabels"],
                    test_pod["metadata"]["labels"]) for f in r["from"])]
    R.check(f"{n}: the helm test pod may reach the relay", len(tests) == 1)


def check_service_monitor(objs):
    n = "service-monitor"
    sm = find(objs, "ServiceMonitor", RELEASE)
    if not R.check(f"{n}: ServiceMonitor rendered", sm is not None):
        return
    svc = find(objs, "Service", RELEASE)
    gpu = find(objs, "Service", GPU_SVC)
    sel = sm["spec"]["selector"]["matchLabels"]
    R.check(f"{n}: selects the relay Service",
            selects(sel, svc["metadata"]["labels"]))
    R.check(f"{n}: does not select gpu-server (never scrapes the GPU host)",
            not selects(sel, gpu["metadata"]["labels"]))
    ep = sm["spec"]["endpoints"]
    R.check(f"{n}: scrapes /metrics on the http port every 15s",
            ep == [{"port": "http", "path": "/metrics", "interval": "15s",
                    "scrapeTimeout": "10s"}], str(ep))
    R.check(f"{n}: Prometheus selector label",
            sm["metadata"]["labels"].get("release") == "kube-prometheus-stack")
    R.check(f"{n}: namespaceSelector is the release namespace",
            sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]})
    rule = find(objs, "PrometheusRule", RELEASE)
    if not R.check(f"{n}: PrometheusRule rendered", rule is not None):
        return
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    R.check(f"{n}: alerts", sorted(alerts) == sorted([
        "TokenplaceRelayDown", "TokenplaceRelayHighErrorRatio",
        "TokenplaceRelayLimitRejections", "TokenplaceRelayNotReady",
        "TokenplaceRelayStateStoreDown", "TokenplaceRelayStateStoreErrors",
        "TokenplaceRelayStateStoreOutOfMemory"]),
        str(sorted(alerts)))
    for a, r in sorted(alerts.items()):
        R.check(f"{n}: {a} has severity, for and summary",
                r["labels"].get("severity") in ("warning", "critical")
                and re.fullmatch(r"[0-9]+m", r.get("for", ""))
                and r["annotations"].get("summary"))
    # Every relay metric an alert uses must exist in the relay's source.
    src = ""
    for d in ("relay/src", "shared/src"):
        for dirpath, _dirs, files in sorted(os.walk(os.path.join(ROOT, d))):
            for fn in sorted(files):
                if fn.endswith(".c"):
                    with open(os.path.join(dirpath, fn),
                              encoding="utf-8") as f:
                        src += f.read()
    used = sorted({m for r in alerts.values()
                   for m in re.findall(r"\btokenplace_[a-z_]+", r["expr"])})
    R.check(f"{n}: alerts use relay metrics", bool(used), str(used))
    for m in used:
        R.check(f"{n}: metric {m} is exported by the relay",
                f'"{m}"' in src)


def check_digest(objs):
    n = "digest-pin"
    img = relay_container(objs)["image"]
    R.check(f"{n}: image pulled by digest, tag ignored",
            img == "ghcr.io/example-owner/tokenplace-relay@sha256:"
                   "3f1c1f1d2b6a8e5c9d4b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
            img)


def check_token_secret(objs):
    n = "token-secret"
    sec = find(objs, "Secret", f"{RELEASE}-token")
    if not R.check(f"{n}: Secret {RELEASE}-token rendered", sec is not None,
                   str(kinds(objs))):
        return
    data = {k: base64.b64decode(v).decode() for k, v in sec["data"].items()}
    R.check(f"{n}: Secret holds the tokens",
            data == {"token": "s3cret-current",
                     "tokens": "s3cret-next,s3cret-previous"}, str(data))
    env = env_map(relay_container(objs))
    R.check(f"{n}: TOKEN_PLACE_RELAY_SERVER_TOKEN from the Secret",
            env.get("TOKEN_PLACE_RELAY_SERVER_TOKEN") == {
                "secretKeyRef": {"name": f"{RELEASE}-token", "key": "token"}},
            str(env.get("TOKEN_PLACE_RELAY_SERVER_TOKEN")))
    R.check(f"{n}: TOKEN_PLACE_RELAY_SERVER_TOKENS from the Secret",
            env.get("TOKEN_PLACE_RELAY_SERVER_TOKENS") == {
                "secretKeyRef": {"name": f"{RELEASE}-token", "key": "tokens"}})
    pod_ann = find(objs, "Deployment", RELEASE)["spec"]["template"][
        "metadata"].get("annotations", {})
    R.check(f"{n}: pods roll when the token changes",
            re.fullmatch(r"[0-9a-f]{64}", pod_ann.get("checksum/token", "")))
    flat = json.dumps(find(objs, "Deployment", RELEASE))
    R.check(f"{n}: token value not in the Deployment", "s3cret" not in flat)


def check_token_existing(objs):
    n = "token-existing"
    R.check(f"{n}: no Secret made", find(objs, "Secret") is None)
    env = env_map(relay_container(objs))
    R.check(f"{n}: token from the existing Secret",
            env.get("TOKEN_PLACE_RELAY_SERVER_TOKEN") == {
                "secretKeyRef": {"name": "relay-registration", "key": "primary"}})
    R.check(f"{n}: more tokens from the existing Secret",
            env.get("TOKEN_PLACE_RELAY_SERVER_TOKENS") == {
                "secretKeyRef": {"name": "relay-registration", "key": "rotation"}})


def check_redis_hpa(objs):
    n = "redis-hpa"
    hpa = find(objs, "HorizontalPodAutoscaler", RELEASE)
    dep = find(objs, "Deployment", RELEASE)
    if not R.check(f"{n}: HPA rendered", hpa is not None):
        return
    R.check(f"{n}: HPA scales the relay Deployment",
            hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1",
                                              "kind": "Deployment",
                                              "name": RELEASE})
    R.check(f"{n}: 2..5 replicas at 60% CPU",
            (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
            and hpa["spec"]["metrics"][0]["resource"]["target"]
            ["averageUtilization"] == 60)
    # Never dropped (Helm would patch it to 1 before the HPA acts):
    # replicaCount raised to minReplicas offline, the live count on a
    # cluster (chart_ha.check_autoscaling).
    R.check(f"{n}: Deployment keeps replicas (minReplicas 2) for the HPA",
            dep["spec"].get("replicas") == 2, str(dep["spec"].get("replicas")))
    R.check(f"{n}: RollingUpdate with a shared store",
            dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate":
                                        {"maxSurge": 1, "maxUnavailable": 0}})
    env = env_map(relay_container(objs))
    R.check(f"{n}: RELAY_STATE_URL is the redis URL",
            env.get("RELAY_STATE_URL") == "redis://valkey.tokenplace.svc:6379/0")
    pdb = find(objs, "PodDisruptionBudget", RELEASE)
    R.check(f"{n}: PDB minAvailable 1", pdb["spec"].get("minAvailable") == 1
            and "maxUnavailable" not in pdb["spec"], str(pdb["spec"]))


def web_parts(objs):
    """(pod spec, relay container, its env, the `web` volume) of a render."""
    dep = find(objs, "Deployment", RELEASE)
    spec = dep["spec"]["template"]["spec"]
    c = relay_container(objs)
    vol = next((v for v in spec.get("volumes", []) if v["name"] == "web"),
               None)
    return dep, spec, c, env_map(c), vol


def check_web_mount(n, c, env):
    mount = next((m for m in c.get("volumeMounts", []) if m["name"] == "web"),
                 None)
    R.check(f"{n}: page mounted read-only where RELAY_WEB_DIR points",
            mount is not None and mount.get("readOnly") is True
            and env.get("RELAY_WEB_DIR") == mount["mountPath"]
            == DEFAULTS["web"]["mountPath"], f"{mount} {env.get('RELAY_WEB_DIR')}")
    table = relay_settings()
    for var in ("RELAY_WEB_DIR", "RELAY_WEB_MAX_BYTES", "RELAY_WEB_MAX_FILES",
                "TOKENPLACE_FRONTEND_MODE", "RELAY_DIAGNOSTICS_DETAIL",
                "RELAY_DIAGNOSTICS_MAX_NODES", "RELAY_MODELS_SOURCE"):
        R.check(f"{n}: {var} set and a relay setting",
                var in env and var in table, str(env.get(var)))


def check_web_configmap(objs):
    n = "web-configmap"
    dep, spec, c, env, vol = web_parts(objs)
    cm = find(objs, "ConfigMap", f"{RELEASE}-web")
    R.check(f"{n}: chart-made ConfigMap holds the files",
            cm is not None and set(cm.get("data", {})) == {"index.html",
                                                             "chat.js"}
            and set(cm.get("binaryData", {})) == {"icon.ico"},
            str(cm and (list(cm.get("data", {})), list(cm.get("binaryData",
                                                                {})))))
    R.check(f"{n}: volume web is that ConfigMap",
            vol is not None and vol.get("configMap", {}).get("name")
            == f"{RELEASE}-web", str(vol))
    check_web_mount(n, c, env)
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    R.check(f"{n}: pods roll when the page changes (checksum/web)",
            re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/web", ""))),
            str(ann))
    R.check(f"{n}: no init container", not spec.get("initContainers"))
    ing = find(objs, "Ingress", RELEASE)
    paths = [p["path"] for r in ing["spec"]["rules"] for p in
             r["http"]["paths"]] if ing else []
    R.check(f"{n}: one host serves the page and the API (path /)",
            paths == ["/"], str(paths))


def check_web_existing(objs):
    n = "web-existing-configmap"
    dep, spec, c, env, vol = web_parts(objs)
    R.check(f"{n}: no chart-made ConfigMap",
            find(objs, "ConfigMap", f"{RELEASE}-web") is None)
    R.check(f"{n}: volume web is the named ConfigMap",
            vol is not None and vol.get("configMap", {}).get("name")
            == "tokenplace-web", str(vol))
    check_web_mount(n, c, env)
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    R.check(f"{n}: no checksum of a ConfigMap the chart does not own",
            "checksum/web" not in ann, str(ann))


def check_web_image(objs):
    n = "web-image"
    dep, spec, c, env, vol = web_parts(objs)
    R.check(f"{n}: no ConfigMap", find(objs, "ConfigMap") is None)
    R.check(f"{n}: volume web is an emptyDir with a size cap",
            vol is not None and vol.get("emptyDir", {}).get("sizeLimit")
            == "32Mi", str(vol))
    inits = spec.get("initContainers", [])
    init = inits[0] if len(inits) == 1 else {}
    R.check(f"{n}: init container runs the page's image",
            init.get("image") == "ghcr.io/futuroptimist/token.place:0.1.1",
            str(init.get("image")))
    R.check(f"{n}: it copies the image's directory into the volume",
            init.get("command") == ["cp", "-R", "/app/static/.", "/web/"]
            and init.get("volumeMounts") == [{"name": "web",
                                              "mountPath": "/web"}],
            str(init.get("command")))
    isc = init.get("securityContext", {})
    R.check(f"{n}: init container hardened like the relay",
            isc.get("readOnlyRootFilesystem") is True
            and isc.get("allowPrivilegeEscalation") is False
            and isc.get("capabilities", {}).get("drop") == ["ALL"], str(isc))
    R.check(f"{n}: init container has requests and limits",
            init.get("resources", {}).get("limits", {}).get("memory")
            is not None, str(init.get("resources")))
    check_web_mount(n, c, env)
    R.check(f"{n}: page settings passed on",
            env.get("TOKENPLACE_FRONTEND_MODE") == "development"
            and env.get("RELAY_DIAGNOSTICS_DETAIL") == "full"
            and env.get("RELAY_DIAGNOSTICS_MAX_NODES") == "10"
            and env.get("RELAY_MODELS_SOURCE") == "upstream", str(env))
def check_state_secret_shared(objs):
    n = "state-secret-shared"
    dep = find(objs, "Deployment", RELEASE)
    R.check(f"{n}: two replicas", dep["spec"].get("replicas") == 2)
    R.check(f"{n}: RollingUpdate with a store the operator calls shared",
            dep["spec"]["strategy"]["type"] == "RollingUpdate",
            str(dep["spec"]["strategy"]))
    env = env_map(relay_container(objs))
    R.check(f"{n}: RELAY_STATE_URL from the Secret",
            env.get("RELAY_STATE_URL") == {"secretKeyRef": {
                "name": "relay-state", "key": "redis-url"}},
            str(env.get("RELAY_STATE_URL")))
    # Without state.shared the same Secret counts as not shared: one
    # replica, Recreate (a Secret may hold memory://).
    rc, objs1, err = render("-f", scenario_file("state-secret-shared"),
                            "--set", "state.shared=null",
                            "--set", "replicaCount=1")
    dep1 = find(objs1, "Deployment", RELEASE) if rc == 0 else None
    R.check(f"{n}: without state.shared: Recreate",
            dep1 is not None
            and dep1["spec"]["strategy"] == {"type": "Recreate"},
            err or str(dep1 and dep1["spec"]["strategy"]))
def state_egress(objs):
    np = find(objs, "NetworkPolicy", RELEASE)
    return [r for r in np["spec"]["egress"]
            if not any("ipBlock" in t or t.get("namespaceSelector", {}).get(
                "matchLabels", {}).get("kubernetes.io/metadata.name")
                == "kube-system" for t in r.get("to", []))]


def check_redis_network_policy(objs):
    n = "redis-network-policy"
    rules = state_egress(objs)
    R.check(f"{n}: one egress rule to the state store", len(rules) == 1,
            str(rules))
    if len(rules) != 1:
        return
    rule = rules[0]
    R.check(f"{n}: on the port of state.url (6380)",
            rule["ports"] == [{"port": 6380, "protocol": "TCP"}], str(rule))
    R.check(f"{n}: to Valkey's pods in namespace data",
            rule.get("to") == [{
                "podSelector": {"matchLabels": {
                    "app.kubernetes.io/name": "valkey"}},
                "namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "data"}}}], str(rule))
    R.check(f"{n}: DNS, GPU host and the store only",
            len(find(objs, "NetworkPolicy", RELEASE)["spec"]["egress"]) == 3)


def check_redis_secret_network_policy(objs):
    n = "redis-secret-network-policy"
    rules = state_egress(objs)
    R.check(f"{n}: a URL from a Secret opens the default port 6379 to any "
            "address", len(rules) == 1 and rules[0] == {
                "ports": [{"port": 6379, "protocol": "TCP"}]}, str(rules))
    env = env_map(relay_container(objs))
    R.check(f"{n}: RELAY_STATE_URL from the Secret",
            env.get("RELAY_STATE_URL") == {"secretKeyRef": {
                "name": "relay-state", "key": "url"}}, str(env))


# (name, scenario file, extra helm arguments, checks)
GOOD = [
    ("minimal", "minimal", [], check_minimal),
    ("headless-ip", "headless-ip", [], check_headless_slice),
    ("headless-ip@1.32", "headless-ip", ["--kube-version", "1.32.0"],
     check_headless_endpoints),
    ("headless-ip-only", "headless-ip-only", [], check_headless_ip_only),
    ("tls-ingress", "tls-ingress", [], check_tls_ingress),
    ("tls-list", "tls-list", [], check_tls_list),
    ("state-secret-shared", "state-secret-shared", [],
     check_state_secret_shared),
    ("network-policy", "network-policy", [], check_network_policy),
    ("service-monitor", "service-monitor", [], check_service_monitor),
    ("digest-pin", "digest-pin", [], check_digest),
    ("token-secret", "token-secret", [], check_token_secret),
    ("token-existing", "token-existing", [], check_token_existing),
    ("redis-hpa", "redis-hpa", [], check_redis_hpa),
    ("web-configmap", "web-configmap", [], check_web_configmap),
    ("web-existing-configmap", "minimal",
     ["--set", "web.enabled=true", "--set", "web.configMap.name=tokenplace-web"],
     check_web_existing),
    ("web-image", "web-image", [], check_web_image),
    ("redis-network-policy", "redis-network-policy", [],
     check_redis_network_policy),
    ("redis-secret-network-policy", "network-policy",
     ["--set", "state.existingSecret=relay-state",
      "--set", "state.shared=true",
      "--set", "networkPolicy.extraEgress=null"],
     check_redis_secret_network_policy),
]

# (name, helm arguments, message the failure must carry)
HOST = ["--set", "gpuExternalName.host=gpu-box.example.com"]
BAD = [
    ("missing host", [],
     "gpuExternalName.host is required"),
    ("bad type: port as text", HOST + ["--set", "gpuExternalName.port=abc"],
     "at '/gpuExternalName/port': got string, want integer"),
    ("bad type: replicaCount as text",
     HOST + ["--set-string", "replicaCount=two"],
     "at '/replicaCount': got string, want integer"),
    ("bad type: legacyRoutes as text",
     HOST + ["--set-string", "env.legacyRoutes=yes"],
     "at '/env/legacyRoutes': got string, want boolean"),
    ("unknown top-level key", HOST + ["--set", "replicas=2"],
     "additional properties 'replicas' not allowed"),
    ("unknown nested key (typo)", HOST + ["--set", "image.pulPolicy=Always"],
     "additional properties 'pulPolicy' not allowed"),
    ("HPA without shared state", HOST + ["--set", "autoscaling.enabled=true"],
     "autoscaling.enabled needs a shared state store"),
    ("two replicas without shared state", HOST + ["--set", "replicaCount=2"],
     "replicaCount 2 needs a shared state store"),
    ("headless without ip",
     HOST + ["--set", "gpuExternalName.headless.enabled=true"],
     "gpuExternalName.headless.ip is required"),
    ("headless without ip or host",
     ["--set", "gpuExternalName.headless.enabled=true"],
     "gpuExternalName.headless.ip is required"),
    ("Secret state without state.shared: two replicas",
     HOST + ["--set", "state.existingSecret=relay-state",
             "--set", "replicaCount=2"],
     "replicaCount 2 needs a shared state store: state.existingSecret "
     "relay-state hides the URL from the chart: set state.shared=true"),
    ("Secret state without state.shared: autoscaling",
     HOST + ["--set", "state.existingSecret=relay-state",
             "--set", "autoscaling.enabled=true"],
     "autoscaling.enabled needs a shared state store: state.existingSecret "
     "relay-state hides the URL"),
    ("Secret state with state.shared=false: two replicas",
     HOST + ["--set", "state.existingSecret=relay-state",
             "--set", "state.shared=false", "--set", "replicaCount=2"],
     "replicaCount 2 needs a shared state store"),
    ("state.shared true with memory://",
     HOST + ["--set", "state.shared=true", "--set", "replicaCount=2"],
     "state.shared is true but state.url memory:// is not shared"),
    ("state.shared false with redis://",
     HOST + ["--set", "state.shared=false",
             "--set", "state.url=redis://valkey:6379/0"],
     "state.shared is false but state.url redis://valkey:6379/0 is a "
     "shared store"),
    ("state.shared not a boolean",
     HOST + ["--set-string", "state.shared=yes"], "at '/state/shared'"),
    # Each name pattern is anchored at both ends (issue 16).
    ("state.existingSecret not a Secret name",
     HOST + ["--set", "state.existingSecret=My_Secret!x"],
     "at '/state/existingSecret'"),
    ("registrationToken.existingSecret not a Secret name",
     HOST + ["--set", "registrationToken.existingSecret=My_Secret!x"],
     "at '/registrationToken/existingSecret'"),
    ("ingress.tls.secretName not a Secret name",
     HOST + ["--set", "ingress.tls.secretName=My_Secret!x"],
     "at '/ingress/tls/secretName'"),
    ("ingress.tls[0].secretName not a Secret name (list form)",
     HOST + ["--set", "ingress.tls[0].secretName=My_Secret!x"],
     "at '/ingress/tls/0/secretName'"),
    ("networkPolicy.metricsNamespace not a namespace name",
     HOST + ["--set", "networkPolicy.metricsNamespace=My_Secret!x"],
     "at '/networkPolicy/metricsNamespace'"),
    ("ingress.tls list entry with an unknown key",
     HOST + ["--set", "ingress.tls[0].secret=relay-tls"],
     "at '/ingress/tls/0': additional properties 'secret' not allowed"),
    ("ingress.tls list host not routed by the Ingress",
     HOST + ["--set", "ingress.enabled=true",
             "--set", "ingress.hosts[0].host=relay.mycluster.dev",
             "--set", "ingress.tls[0].hosts[0]=other.mycluster.dev"],
     "ingress.tls[0].hosts names other.mycluster.dev, which is not in "
     "ingress.hosts"),
    ("headless ip not IPv4",
     HOST + ["--set", "gpuExternalName.headless.enabled=true",
             "--set", "gpuExternalName.headless.ip=gpu-box"],
     "/gpuExternalName/headless/ip"),
    ("grace period not above the graceful timeout",
     HOST + ["--set", "terminationGracePeriodSeconds=30"],
     "terminationGracePeriodSeconds (30) must be greater than"),
    ("network policy without GPU CIDRs",
     HOST + ["--set", "networkPolicy.enabled=true"],
     "networkPolicy.enabled needs networkPolicy.gpuServer.cidrs"),
    ("GPU CIDR malformed",
     HOST + ["--set", "networkPolicy.gpuServer.cidrs[0]=203.0.113.10"],
     "/networkPolicy/gpuServer/cidrs/0"),
    ("ingress without hosts", HOST + ["--set", "ingress.enabled=true"],
     "ingress.enabled needs at least one entry in ingress.hosts"),
    ("upstream port differs from gpu-server port",
     HOST + ["--set", "gpuExternalName.port=9000",
             "--set", "env.upstream.url=http://relay-gpu-server:8000"],
     "env.upstream.url uses port 8000 of the relay-gpu-server Service but "
     "gpuExternalName.port is 9000"),
    ("digest malformed", HOST + ["--set", "image.digest=sha256:abc"],
     "at '/image/digest'"),
    ("state URL not memory/redis",
     HOST + ["--set", "state.url=postgres://db"], "at '/state/url'"),
    ("privilege escalation refused",
     HOST + ["--set", "securityContext.allowPrivilegeEscalation=true"],
     "/securityContext/allowPrivilegeEscalation"),
    ("token from both sources",
     HOST + ["--set", "registrationToken.value=a",
             "--set", "registrationToken.existingSecret=s"],
     "set either existingSecret or value/additionalValues, not both"),
    ("web page from an image without one",
     HOST + ["--set", "web.enabled=true", "--set", "web.source=image"],
     "web.source image needs web.image.repository"),
    ("web page from an image without a tag or digest",
     HOST + ["--set", "web.enabled=true", "--set", "web.source=image",
             "--set", "web.image.repository=ghcr.io/example/page"],
     "web.source image needs web.image.tag or web.image.digest"),
    ("web page without files or a ConfigMap",
     HOST + ["--set", "web.enabled=true"],
     "web.source configMap needs web.configMap.name"),
    ("web files without index.html",
     HOST + ["--set", "web.enabled=true",
             "--set", "web.configMap.files.chat\\.js=x"],
     "web.configMap.files with an index.html"),
    ("web source unknown", HOST + ["--set", "web.source=git"],
     "at '/web/source'"),
    ("web frontend mode unknown", HOST + ["--set", "web.frontendMode=debug"],
     "at '/web/frontendMode'"),
    ("web image path relative",
     HOST + ["--set", "web.image.path=static"], "at '/web/image/path'"),
]


def validate_objects(items):
    path = os.path.join(TMP, "objects.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(items, f)
    p = subprocess.run(["node", os.path.join(HERE, "validate.mjs"), NODE_TOOLS,
                        path], capture_output=True, text=True,
                       timeout=COMMAND_TIMEOUT)
    if not R.check("kubernetes-models validator ran", p.returncode == 0,
                   p.stderr.strip()[-2000:]):
        return
    for r in json.loads(p.stdout):
        R.check(f'{r["scenario"]}: {r["kind"]}/{r["name"]} valid against the '
                'Kubernetes schema', r["ok"], r["error"])


# ---------------------------------------------------------------- the guide

GUIDE = os.path.join(ROOT, "docs", "relay-deploy.md")
IMAGE_TESTS = [os.path.join(ROOT, "tests", "image", f)
               for f in ("test_image.py", "test_multiarch.py")]


def guide_blocks(text, lang):
    return re.findall(r"^[ \t]*```" + lang + r"\n(.*?)^[ \t]*```", text,
                      re.S | re.M)


def guide_commands(text):
    cmds = []
    for block in guide_blocks(text, "bash"):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def check_guide():
    if not R.check("docs/relay-deploy.md exists", os.path.exists(GUIDE)):
        return
    with open(GUIDE, encoding="utf-8") as f:
        text = f.read()
    yamls = [b for b in guide_blocks(text, "yaml")
             if b.lstrip().startswith("# relay-values.yaml")]
    if not R.check("guide: has the relay-values.yaml example", len(yamls) == 1):
        return
    values_file = os.path.join(TMP, "relay-values.yaml")
    with open(values_file, "w", encoding="utf-8") as f:
        f.write(yamls[0])
    rc, objs, err = render("-f", values_file)
    if not R.check("guide: its relay-values.yaml renders", rc == 0, err):
        return
    check_common("guide values", objs)

    R.check("guide: never uses the SEED path deploy/charts",
            "deploy/charts" not in text)

    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        targets = set(re.findall(r"^([A-Za-z0-9_-]+):", f.read(), re.M))
    image_src = ""
    for path in IMAGE_TESTS:
        with open(path, encoding="utf-8") as f:
            image_src += f.read()
    with open(os.path.join(ROOT, "tests", "image", "test_tags.py"),
              encoding="utf-8") as f:
        tags_src = f.read()

    chart_ha.chart_valkey.check_guide_recipe(sys.modules[__name__], text)

    cmds = guide_commands(text)
    R.check("guide: has commands", len(cmds) >= 10, str(len(cmds)))
    for cmd in cmds:
        words = cmd.split()
        ok, why = guide_command_ok(words, cmd, values_file, objs, targets,
                                   image_src, tags_src)
        R.check(f"guide command exercised: {cmd}", ok, why)


def guide_command_ok(words, cmd, values_file, objs, targets, image_src,
                     tags_src):
    """(ok, why) for one command line of the guide."""
    handled = chart_ha.guide_command(sys.modules[__name__], words, cmd)
    if handled is not None:
        return handled
    if words[0] == "helm":
        if CHART_REL not in words and words[1] != "test":
            return False, f"helm command without {CHART_REL}"
        args = [values_file if w == "relay-values.yaml" else w
                for w in words[1:]]
        if args[:2] == ["upgrade", "--install"]:
            # Offline equivalent: upgrade needs the cluster's release list.
            args = ["install"] + args[2:] + ["--dry-run=client"]
        if args[0] == "test":
            pod = find(objs, "Pod", f"{args[1]}-test")
            return (pod is not None and pod["metadata"]["annotations"].get(
                "helm.sh/hook") == "test"), "no helm test pod rendered"
        if args[0] not in ("lint", "template", "install", "package"):
            return False, f"helm {args[0]} is not run by the tests"
        p = helm(*args)
        return p.returncode == 0, (p.stdout + p.stderr)[-800:]
    if words[0] == "kubectl":
        ns = words[words.index("-n") + 1] if "-n" in words else "default"
        kinds_by_short = {"deploy": "Deployment", "ingress": "Ingress",
                          "svc": "Service", "pod": "Pod"}
        if words[1] == "get" and len(words) >= 4:
            kind, name = kinds_by_short.get(words[2]), words[3]
        elif words[1] in ("logs", "port-forward"):
            ref = next(w for w in words[2:] if "/" in w)
            short, name = ref.split("/", 1)
            kind = kinds_by_short.get(short)
        else:
            return False, "kubectl verb not checked by the tests"
        obj = find(objs, kind, name) if kind else None
        if obj is None or obj["metadata"].get("namespace") != ns:
            return False, f"{kind}/{name} in {ns} is not rendered"
        if words[1] == "port-forward":
            remote = int(words[-1].split(":")[1])
            if remote not in [p["port"] for p in obj["spec"]["ports"]]:
                return False, f"Service {name} has no port {remote}"
        return True, ""
    if words[0] == "make":
        return words[1] in targets, f"no Makefile target {words[1]}"
    if words[0] == "podman":
        sub = words[1]
        flags = [w.split("=")[0] if w.startswith("--") else w
                 for w in words if w.startswith("-")]
        unknown = [f for f in [f'"{sub}"'] + [f'"{f}' for f in flags]
                   if f not in image_src]
        return not unknown, f"not used by tests/image: {unknown}"
    if words[0] == "curl":
        paths = re.findall(r"/(livez|healthz|metrics)\b", cmd)
        return bool(paths) and all(f'"/{p}' in image_src or f"/{p}" in
                                   image_src for p in paths), \
            "curl of a path the image test does not fetch"
    if words[0] == ".github/scripts/image-tags.sh":
        return "image-tags.sh" in tags_src, "not run by tests/image/test_tags.py"
    return False, "no test runs this command"


def main():
    p = helm("version", "--short")
    print(f"info helm {p.stdout.strip()}")

    p = helm("lint", "--strict", CHART_REL)
    R.check("helm lint --strict (chart defaults)", p.returncode == 0,
            (p.stdout + p.stderr)[-2000:])
    for name, fname, extra, _check in GOOD:
        p = helm("lint", "--strict", CHART_REL, "-f", scenario_file(fname),
                 *extra)
        R.check(f"helm lint --strict -f scenarios/{fname}.yaml {' '.join(extra)}"
                .rstrip(), p.returncode == 0, (p.stdout + p.stderr)[-2000:])

    chart_ha.check_schema_strict(sys.modules[__name__])

    items = []
    for name, fname, extra, check in GOOD:
        rc, objs, err = render("-f", scenario_file(fname), *extra)
        if not R.check(f"{name}: helm template succeeds", rc == 0, err):
            continue
        check_common(name, objs)
        check(objs)
        items.extend({"scenario": name, "object": o} for o in objs)
    validate_objects(items)

    for name, args, message in BAD:
        rc, _objs, err = render(*args)
        R.check(f"refused: {name}", rc != 0 and message in err,
                f"rc={rc}, wanted {message!r} in: {err[-600:]}")

    # The install command of the guide, offline (`upgrade --install` needs a
    # cluster to look up the release; `install --dry-run=client` does not).
    p = helm("install", RELEASE, CHART_REL, "--namespace", NAMESPACE,
             "--create-namespace", "-f", scenario_file("tls-ingress"),
             "--dry-run=client")
    R.check("helm install --dry-run=client prints the NOTES",
            p.returncode == 0 and "NOTES:" in p.stdout
            and f"kubectl get svc {GPU_SVC} -n {NAMESPACE}" in p.stdout
            and "https://relay.mycluster.dev/" in p.stdout, p.stderr[-600:])

    check_guide()
    chart_ha.run(sys.modules[__name__])

    dist = os.path.join(TMP, "dist")
    p = helm("package", CHART_REL, "--destination", dist)
    tgz = f'tokenplace-relay-{CHART_META["version"]}.tgz'
    R.check("helm package", p.returncode == 0
            and os.path.exists(os.path.join(dist, tgz)), p.stderr[-600:])

    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
