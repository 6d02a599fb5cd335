"""A read-only stand-in for a Kubernetes API server, enough for
`helm template --dry-run=server --disable-openapi-validation`: discovery
(/version, /api, /apis and each group version's resource list) and GET of
the objects it is given. Helm's `lookup` then sees those objects, so the
chart's upgrade-time decisions (the cutover off memory://, replicas kept
when the HPA is enabled) are rendered exactly as on a cluster, offline.

    with FakeAPIServer(objects, minor=33) as api:
        api.kubeconfig      # path of a kubeconfig pointing at it

Every other path answers 404 (a Status object), as the real server does
for a missing object. Bound to 127.0.0.1 on an ephemeral port.
"""
import json
import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (group/version, kind, plural, namespaced): what the charts render.
RESOURCES = [
    ("v1", "Service", "services", True),
    ("v1", "ServiceAccount", "serviceaccounts", True),
    ("v1", "Secret", "secrets", True),
    ("v1", "ConfigMap", "configmaps", True),
    ("v1", "Pod", "pods", True),
    ("v1", "Endpoints", "endpoints", True),
    ("apps/v1", "Deployment", "deployments", True),
    ("apps/v1", "StatefulSet", "statefulsets", True),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers",
     True),
    ("networking.k8s.io/v1", "Ingress", "ingresses", True),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
    ("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True),
    ("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", True),
    ("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules", True),
]


def _object_path(obj):
    gv = obj["apiVersion"]
    plural = next(r[2] for r in RESOURCES
                  if r[0] == gv and r[1] == obj["kind"])
    base = "/api/v1" if gv == "v1" else "/apis/" + gv
    return "%s/namespaces/%s/%s/%s" % (base, obj["metadata"]["namespace"],
                                       plural, obj["metadata"]["name"])


def _helm_owned(obj, release):
    obj = json.loads(json.dumps(obj))
    meta = obj["metadata"]
    meta.setdefault("annotations", {}).update({
        "meta.helm.sh/release-name": release,
        "meta.helm.sh/release-namespace": meta["namespace"]})
    meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
    return obj


class FakeAPIServer:
    def __init__(self, objects=(), minor=33, release="relay"):
        """objects: what the release installed before; each is marked as
        Helm marks what it owns, so Helm adopts it as its own."""
        self.minor = minor
        self.objects = {_object_path(o): _helm_owned(o, release)
                        for o in objects}
        self.requests = []
        self._server = None
        self._thread = None
        self._dir = None
        self.kubeconfig = None

    def _routes(self):
        groups = {}
        for gv, kind, plural, namespaced in RESOURCES:
            groups.setdefault(gv, []).append({
                "name": plural, "singularName": kind.lower(),
                "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list"]})
        routes = {
            "/version": {"major": "1", "minor": str(self.minor),
                         "gitVersion": "v1.%d.0" % self.minor},
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": gv.split("/")[0], "versions": [{
                    "groupVersion": gv, "version": gv.split("/")[1]}],
                 "preferredVersion": {"groupVersion": gv,
                                      "version": gv.split("/")[1]}}
                for gv in groups if gv != "v1"]},
        }
        for gv, resources in groups.items():
            path = "/api/v1" if gv == "v1" else "/apis/" + gv
            routes[path] = {"kind": "APIResourceList", "groupVersion": gv,
                            "resources": resources}
        routes.update(self.objects)
        return routes

    def __enter__(self):
        routes = self._routes()
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                seen.append(path)
                body = routes.get(path)
                code = 200
                if body is None:
                    code = 404
                    body = {"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": "NotFound",
                            "code": 404}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True)
        self._thread.start()
        self._dir = tempfile.TemporaryDirectory(prefix="tp-fake-api-")
        self.kubeconfig = os.path.join(self._dir.name, "kubeconfig")
        port = self._server.server_address[1]
        with open(self.kubeconfig, "w", encoding="utf-8") as f:
            json.dump({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {
                    "server": "http://127.0.0.1:%d" % port}}],
                "contexts": [{"name": "fake", "context": {
                    "cluster": "fake", "user": "fake"}}],
                "users": [{"name": "fake", "user": {}}],
                "current-context": "fake"}, f)
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self._dir.cleanup()
        return False
