"""The browser page through the real relay (docs/web.md): a web directory
written by the test and served from memory at / and /static/, the node
counter at /relay/diagnostics and the model list from live API v1 nodes
(tests/fixtures/tp_peers_v1.py), the routing rule between the model list
and the forwarded API (tests/fixtures/upstream_server.py), and the
start-up refusal above RELAY_WEB_MAX_BYTES. With TP_STATE_TOPOLOGY=redis
each relay keeps its state on a redis-server of its own, so the counter
and the model list come from the Redis stores' listings.

Waits poll with deadlines stretched by TP_TIMEOUT_SCALE."""

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from redistest import RelayOnState as Relay
from relaytest import RELAY_BIN, WRAPPER, main, metric_value, scaled, \
    wait_for

import tp_peers as tp
import tp_peers_v1 as v1
from test_forward import Upstream, relay_env

HTTP_TIMEOUT = scaled(30)
BASE_ENV = {
    "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "1",
    "TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": str(int(scaled(30))),
    "ENVIRONMENT": "staging",
}
PAGE = ("<!DOCTYPE html><html><head>"
        "<script src=\"__TOKENPLACE_VUE_SCRIPT_SRC__\"></script>"
        "<script id=\"release\" type=\"application/json\">"
        "{\"environment\":\"dev\",\"label\":\"dev dev\",\"version\":\"dev\"}"
        "</script></head><body><span id=\"badge\">dev dev</span>"
        "<script src=\"/static/chat.js?v=__TOKENPLACE_ASSET_VERSION__\">"
        "</script></body></html>\n")
MODELS = ["tp-test-model-b", "tp-test-model-a"]


def url(relay):
    return "http://127.0.0.1:%d" % relay.port


def raw_get(relay, path, headers=None, method="GET"):
    """A request whose path goes on the wire exactly as written."""
    conn = http.client.HTTPConnection("127.0.0.1", relay.port,
                                      timeout=HTTP_TIMEOUT)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


class WebDir:
    """A web directory for one test, with a link out and hidden files."""

    def __init__(self, files=None):
        self.root = tempfile.mkdtemp(prefix="tp-web-")
        self.dir = os.path.join(self.root, "static")
        os.mkdir(self.dir)
        secret = os.path.join(self.root, "secret.txt")
        with open(secret, "w") as f:
            f.write("do not serve\n")
        files = files if files is not None else {
            "index.html": PAGE,
            "chat.js": "console.log('chat');\n",
            "chat_typing.js": "console.log('typing');\n",
            "favicon.svg": "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            ".env": "SECRET=1\n",
        }
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        os.symlink(secret, os.path.join(self.dir, "leak.txt"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.root)
        return False


class Page(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = WebDir()
        env = dict(BASE_ENV, RELAY_WEB_DIR=cls.web.dir)
        cls.relay = Relay(env=env).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.relay.stop()
        cls.web.__exit__(None, None, None)
        assert code == 0, code

    def asset_version(self):
        return self.relay.find_log("relay.web_loaded")["asset_version"]

    def test_index_is_rendered(self):
        status, headers, data = self.relay.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(headers["cache-control"], "no-store")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        html = data.decode("utf-8")
        self.assertNotIn("__TOKENPLACE_", html)
        self.assertIn("https://cdn.jsdelivr.net/npm/vue@2.6.14/dist/vue.min.js",
                      html)
        # The release block and the badge are what /api/v1/meta reports.
        _, meta = self.relay.get_json("/api/v1/meta")
        self.assertEqual(meta["environment"], "staging")
        block = html.split('type="application/json">')[1].split("</script>")[0]
        self.assertEqual(json.loads(block), meta)
        self.assertIn('<span id="badge">%s</span>' % meta["label"], html)
        self.assertIn("/static/chat.js?v=%s" % self.asset_version(), html)
        # HEAD: the same headers, no body.
        status, hhead, body = self.relay.request("HEAD", "/")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(hhead["content-length"], str(len(data)))
        self.assertEqual(hhead["etag"], headers["etag"])

    def test_static_files_and_caching(self):
        version = self.asset_version()
        status, headers, data = self.relay.request(
            "GET", "/static/chat.js?v=%s" % version)
        self.assertEqual((status, data), (200, b"console.log('chat');\n"))
        self.assertEqual(headers["content-type"],
                         "text/javascript; charset=utf-8")
        self.assertEqual(headers["cache-control"],
                         "public, max-age=31536000, immutable")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        etag, modified = headers["etag"], headers["last-modified"]
        for path in ("/static/chat.js", "/static/chat.js?v=stale"):
            _, h, _ = self.relay.request("GET", path)
            self.assertEqual(h["cache-control"], "no-cache", path)
        _, h, _ = self.relay.request("GET", "/static/favicon.svg?v=%s" % version)
        self.assertEqual(h["cache-control"], "no-cache")
        self.assertEqual(h["content-type"], "image/svg+xml")
        # Conditional requests.
        status, h, data = self.relay.request(
            "GET", "/static/chat.js", headers={"If-None-Match": etag})
        self.assertEqual((status, data), (304, b""))
        self.assertEqual(h["etag"], etag)
        status, _, data = self.relay.request(
            "GET", "/static/chat.js", headers={"If-Modified-Since": modified})
        self.assertEqual((status, data), (304, b""))
        status, _, _ = self.relay.request(
            "GET", "/static/chat.js", headers={"If-None-Match": '"nope"',
                                               "If-Modified-Since": modified})
        self.assertEqual(status, 200)
        status, _, _ = self.relay.request(
            "GET", "/", headers={"If-None-Match": etag})
        self.assertEqual(status, 200)

    def test_traversal_and_hidden_files_are_refused(self):
        refused = ["/static/../secret.txt", "/static/%2e%2e/secret.txt",
                   "/static/%2E%2e/secret.txt", "/static/.%2e/secret.txt",
                   "/static/..%2fsecret.txt", "/static/..%2Fsecret.txt",
                   "/static/..\\secret.txt", "/static/%5c..%5csecret.txt",
                   "/static/.env",
                   "/static/%2eenv", "/static/./chat.js",
                   "/static//chat.js", "/static/%zz", "/static/"]
        for path in refused:
            status, headers, data = raw_get(self.relay, path)
            self.assertEqual(status, 400, path)
            self.assertEqual(json.loads(data)["error"]["code"], 400, path)
            self.assertNotIn(b"do not serve", data)
        for path in ("/static/leak.txt", "/static/missing.js"):
            status, _, data = raw_get(self.relay, path)
            self.assertEqual(status, 404, path)
            self.assertNotIn(b"do not serve", data)
        status, headers, _ = self.relay.request("POST", "/", body=b"{}",
                                                headers={"Content-Type":
                                                         "application/json"})
        self.assertEqual(status, 405)
        self.assertIn("GET", headers["allow"])

    def test_metrics_count_the_page(self):
        self.assertEqual(self.relay.request("GET", "/static/chat.js")[0], 200)
        text = self.relay.metrics()
        self.assertEqual(metric_value(text, "tokenplace_relay_web_files"), 4.0)
        size = sum(os.path.getsize(os.path.join(self.web.dir, n))
                   for n in ("index.html", "chat.js", "chat_typing.js",
                             "favicon.svg"))
        self.assertEqual(metric_value(text, "tokenplace_relay_web_bytes"),
                         float(size))
        # The access log and its counter follow the answer the client
        # already has (slower under valgrind): poll, never read once.
        wait_for(lambda: metric_value(
            self.relay.metrics(), "tokenplace_relay_requests_total",
            method="GET", endpoint="static", status="200") is not None,
            10, what="the static request counted")


class WithoutPage(unittest.TestCase):
    def test_unset_dir_keeps_root_a_json_404(self):
        with Relay(env=BASE_ENV) as r:
            for path in ("/", "/static/chat.js"):
                status, obj = r.get_json(path)
                self.assertEqual(status, 404, path)
                self.assertEqual(obj, {"error": {"code": 404,
                                                 "message": "Not Found"}})

    def test_development_mode_loads_vue_js(self):
        with WebDir() as web, Relay(env=dict(
                BASE_ENV, RELAY_WEB_DIR=web.dir,
                TOKENPLACE_FRONTEND_MODE="development")) as r:
            _, _, data = r.request("GET", "/")
            self.assertIn(b"/dist/vue.js\"", data)
            self.assertNotIn(b"vue.min.js", data)

    def test_page_without_placeholders_is_served_as_is(self):
        old = ("<html><body>October 2025 page <script src=\"https://cdn."
               "jsdelivr.net/npm/vue@2.6.14/dist/vue.js\"></script>"
               "</body></html>\n")
        with WebDir({"index.html": old}) as web, Relay(
                env=dict(BASE_ENV, RELAY_WEB_DIR=web.dir)) as r:
            status, _, data = r.request("GET", "/")
            self.assertEqual((status, data.decode()), (200, old))

    def refused_start(self, env, expect):
        cmd = WRAPPER + [RELAY_BIN]
        full = Relay(env=env).build_env()
        proc = subprocess.run(cmd, env=full, capture_output=True,
                              timeout=scaled(60))
        self.assertEqual(proc.returncode, 78, proc.stderr)
        self.assertIn(expect, proc.stderr.decode())
        logs = [json.loads(l) for l in proc.stdout.decode().splitlines()
                if l.startswith("{")]
        failed = [l for l in logs if l["message"] == "relay.web_load_failed"]
        self.assertEqual(len(failed), 1, logs)
        self.assertIn(expect, failed[0]["reason"])
        self.assertFalse([l for l in logs if l["message"] == "relay.startup"])

    def test_start_is_refused_above_the_size_cap(self):
        with WebDir({"index.html": "x" * 2048, "chat.js": "y"}) as web:
            self.refused_start(dict(BASE_ENV, RELAY_WEB_DIR=web.dir,
                                    RELAY_WEB_MAX_BYTES="1024"),
                               "RELAY_WEB_MAX_BYTES=1024")
            self.refused_start(dict(BASE_ENV, RELAY_WEB_DIR=web.dir,
                                    RELAY_WEB_MAX_FILES="1"),
                               "RELAY_WEB_MAX_FILES=1")

    def test_start_is_refused_without_index_html(self):
        with WebDir({"chat.js": "x"}) as web:
            self.refused_start(dict(BASE_ENV, RELAY_WEB_DIR=web.dir),
                               "no index.html")
        self.refused_start(dict(BASE_ENV, RELAY_WEB_DIR="/nonexistent/web"),
                           "/nonexistent/web")


def diagnostics(r):
    status, headers, data = r.request("GET", "/relay/diagnostics")
    assert status == 200, (status, data)
    assert headers["cache-control"] == "no-store", headers
    return json.loads(data)


def model_ids(r, path="/api/v1/models"):
    status, obj = r.get_json(path)
    assert status == 200, (status, obj)
    assert obj["object"] == "list", obj
    return [m["id"] for m in obj["data"]]


def model_status(r, model):
    return r.get_json("/api/v1/models/" + model)[0]


class Nodes(unittest.TestCase):
    def check_follow(self, detail, cache_ms=None):
        """With cache_ms "0" the model list follows at once (asserted
        right away); with the default period it follows within it (polled
        with a deadline, never a fixed sleep)."""
        keys = tp.key_pool(1)
        env = dict(BASE_ENV, RELAY_DIAGNOSTICS_DETAIL=detail)
        if cache_ms is not None:
            env["RELAY_MODELS_CACHE_MS"] = cache_ms

        def follows(get, want, what):
            if cache_ms == "0":
                self.assertEqual(get(), want, what)
            else:
                wait_for(lambda: get() == want, 20, what=what)

        with Relay(env=env) as r:
            d = diagnostics(r)
            for k in ("relay_only", "upstream_health_required",
                      "active_upstream_servers", "required_upstream_servers",
                      "configured_upstream_servers"):
                self.assertIn(k, d)
            self.assertEqual(d["total_api_v1_registered_compute_nodes"], 0)
            self.assertEqual(d["total_registered_compute_nodes"], 0)
            self.assertEqual(model_ids(r), [])
            node = v1.ApiV1Node(url(r), name="gpu-1", keypair=keys[0],
                                capabilities=v1.default_capabilities(
                                    max_concurrency=2, models=MODELS),
                                timeout=HTTP_TIMEOUT)
            with node:
                wait_for(lambda: diagnostics(r)[
                    "total_api_v1_registered_compute_nodes"] == 1, 20,
                    what="the node in /relay/diagnostics")
                # A legacy node too: counted in the total only.
                status, _ = r.post_json("/sink",
                                        {"server_public_key": "legacy-node"})
                self.assertEqual(status, 200)
                d = diagnostics(r)
                self.assertEqual(d["total_registered_compute_nodes"], 2)
                self.assertEqual(d["total_api_v1_registered_compute_nodes"], 1)
                if detail == "full":
                    listed = d["api_v1_registered_compute_nodes"]
                    self.assertEqual(len(listed), 1)
                    n = listed[0]
                    self.assertEqual(n["server_public_key"], node.public_wire)
                    self.assertEqual(n["max_concurrency"], 2)
                    self.assertEqual(n["capabilities"]["supported_model_ids"],
                                     MODELS)
                    self.assertEqual(
                        sorted(x["server_public_key"]
                               for x in d["registered_compute_nodes"]),
                        sorted(["legacy-node", node.public_wire]))
                else:
                    self.assertEqual(d["api_v1_registered_compute_nodes"], [])
                    self.assertEqual(d["registered_compute_nodes"], [])
                    self.assertNotIn(node.public_wire, json.dumps(d))
                follows(lambda: model_ids(r), sorted(MODELS),
                        "the node's models in /api/v1/models")
                self.assertEqual(model_ids(r, "/v1/models"), sorted(MODELS))
                status, headers, data = r.request(
                    "GET", "/api/v1/models/TP-Test-Model-A")
                self.assertEqual(status, 200)
                one = json.loads(data)
                self.assertEqual(one["id"], "tp-test-model-a")
                self.assertEqual(one["object"], "model")
                self.assertEqual(one["owned_by"], "token.place")
                self.assertEqual(one["permission"][0]["id"],
                                 "modelperm-tp-test-model-a")
                self.assertEqual(headers["access-control-allow-origin"], "*")
                status, obj = r.get_json("/v1/models/nope")
                self.assertEqual(status, 404)
                self.assertEqual(obj["error"]["code"], "model_not_found")
                self.assertEqual(obj["error"]["message"],
                                 "Model 'nope' not found")
                status, obj = r.get_json("/api/v1/models/bad%zz")
                self.assertEqual(status, 400)
            # The node leaves: both follow.
            status, _ = node.unregister()
            self.assertEqual(status, 200)
            d = diagnostics(r)
            self.assertEqual(d["total_api_v1_registered_compute_nodes"], 0)
            self.assertEqual(d["api_v1_registered_compute_nodes"], [])
            self.assertEqual(d["total_registered_compute_nodes"], 1)
            follows(lambda: model_ids(r), [], "the models to leave the list")
            follows(lambda: model_status(r, "tp-test-model-a"), 404,
                    "the model to leave .../models/<id>")
            _, errors, violations = node.snapshot()
            self.assertEqual(violations, [])

    def test_counts_only_by_default(self):
        # Without the model list's cache: every answer is the state's.
        self.check_follow("counts", cache_ms="0")

    def test_full_detail_lists_keys_and_capabilities(self):
        self.check_follow("full")

    def test_lapsed_node_leaves_both(self):
        # A node that stops polling without unregistering leaves when its
        # lease lapses; nothing else has to happen for both to follow.
        keys = tp.key_pool(1)
        env = dict(BASE_ENV, RELAY_DIAGNOSTICS_DETAIL="full",
                   TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS="2")
        with Relay(env=env) as r:
            node = v1.ApiV1Node(url(r), name="gpu-1", keypair=keys[0],
                                capabilities=v1.default_capabilities(
                                    models=["tp-lapsing-model"]),
                                timeout=HTTP_TIMEOUT)
            with node:
                wait_for(lambda: model_ids(r) == ["tp-lapsing-model"], 20,
                         what="the node's model")
            wait_for(lambda: diagnostics(r)[
                "total_api_v1_registered_compute_nodes"] == 0, 30,
                what="the lapsed node to leave /relay/diagnostics")
            self.assertEqual(diagnostics(r)["api_v1_registered_compute_nodes"],
                             [])
            wait_for(lambda: model_ids(r) == [], 20,
                     what="the lapsed node's model to leave the list")

    def test_full_detail_listing_is_capped(self):
        env = dict(BASE_ENV, RELAY_DIAGNOSTICS_DETAIL="full",
                   RELAY_DIAGNOSTICS_MAX_NODES="1")
        with Relay(env=env) as r:
            for k in ("a", "b", "c"):
                self.assertEqual(r.post_json(
                    "/sink", {"server_public_key": "legacy-" + k})[0], 200)
            d = diagnostics(r)
            self.assertEqual(d["total_registered_compute_nodes"], 3)
            self.assertEqual(len(d["registered_compute_nodes"]), 1)
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_limit_rejections_total",
                limit="diagnostics_max_nodes"), 1.0)


class ModelListLimits(unittest.TestCase):
    """The model list's cache period and bound (RELAY_MODELS_CACHE_MS,
    RELAY_MODELS_MAX)."""

    def test_list_is_kept_for_its_period(self):
        # A period far longer than the test: what the first answer read is
        # what every answer says, and the state is read once.
        keys = tp.key_pool(1)
        env = dict(BASE_ENV, RELAY_MODELS_CACHE_MS="60000")
        with Relay(env=env) as r:
            node = v1.ApiV1Node(url(r), name="gpu-1", keypair=keys[0],
                                capabilities=v1.default_capabilities(
                                    models=MODELS),
                                timeout=HTTP_TIMEOUT)
            with node:
                # The first read only once the node is in the state.
                wait_for(lambda: diagnostics(r)[
                    "total_api_v1_registered_compute_nodes"] == 1, 20,
                    what="the node in /relay/diagnostics")
                for _ in range(20):
                    self.assertEqual(model_ids(r), sorted(MODELS))
            status, _ = node.unregister()
            self.assertEqual(status, 200)
            self.assertEqual(
                diagnostics(r)["total_api_v1_registered_compute_nodes"], 0)
            # gone from the state, still in the list kept by this relay
            self.assertEqual(model_ids(r, "/v1/models"), sorted(MODELS))
            self.assertEqual(model_status(r, "tp-test-model-a"), 200)
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_models_list_reads_total"), 1.0)

    def test_list_is_bounded(self):
        keys = tp.key_pool(1)
        env = dict(BASE_ENV, RELAY_MODELS_CACHE_MS="0", RELAY_MODELS_MAX="1")
        with Relay(env=env) as r:
            node = v1.ApiV1Node(url(r), name="gpu-1", keypair=keys[0],
                                capabilities=v1.default_capabilities(
                                    models=MODELS),
                                timeout=HTTP_TIMEOUT)
            with node:
                wait_for(lambda: model_ids(r) != [], 20,
                         what="the node's models")
                status, obj = r.get_json("/api/v1/models")
                self.assertEqual(status, 200)
                # the first in byte order, and word that more exist
                self.assertEqual([m["id"] for m in obj["data"]],
                                 ["tp-test-model-a"])
                self.assertIs(obj["has_more"], True)
                # one past the bound is still found by its id
                self.assertEqual(model_status(r, "tp-test-model-b"), 200)
                self.assertEqual(model_status(r, "tp-test-model-c"), 404)
                self.assertGreaterEqual(metric_value(
                    r.metrics(), "tokenplace_relay_limit_rejections_total",
                    limit="models_max"), 2.0)
            node.unregister()
            status, obj = r.get_json("/api/v1/models")
            self.assertEqual(obj, {"object": "list", "data": []})


class ModelRouting(unittest.TestCase):
    """The table's model routes win over RELAY_FORWARD_PREFIXES; the
    setting RELAY_MODELS_SOURCE=upstream sends them upstream instead."""

    def test_relay_answers_models_and_forwards_the_rest(self):
        keys = tp.key_pool(1)
        with Upstream() as up, Relay(env=relay_env(up, **BASE_ENV)) as r:
            node = v1.ApiV1Node(url(r), name="gpu-1", keypair=keys[0],
                                capabilities=v1.default_capabilities(
                                    models=["tp-routed-model"]),
                                timeout=HTTP_TIMEOUT)
            with node:
                wait_for(lambda: model_ids(r) == ["tp-routed-model"], 20,
                         what="the node's model")
                before = up.stats()["requests"]
                self.assertEqual(model_ids(r, "/v1/models"),
                                 ["tp-routed-model"])
                self.assertEqual(up.stats()["requests"], before)
                # The rest of the API still goes to the GPU host.
                status, obj = r.get_json("/api/v1/health")
                self.assertEqual(status, 200)
                self.assertEqual(obj["path"], "/api/v1/health")
            node.unregister()

    def test_models_source_upstream_forwards(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_MODELS_SOURCE="upstream", **BASE_ENV)) as r:
            for path in ("/api/v1/models", "/v1/models/x"):
                status, obj = r.get_json(path)
                self.assertEqual(status, 200, path)
                self.assertEqual(obj["path"], path)
                self.assertEqual(obj["method"], "GET")
            # Every method, as before the relay had a model list.
            status, obj = r.post_json("/api/v1/models/x", {"k": 1})
            self.assertEqual((status, obj["method"], obj["path"]),
                             (200, "POST", "/api/v1/models/x"))

    def test_models_source_nodes_owns_the_paths(self):
        with Upstream() as up, Relay(env=relay_env(up, **BASE_ENV)) as r:
            before = up.stats()["requests"]
            status, headers, _ = r.request("POST", "/api/v1/models",
                                           body=b"{}", headers={
                                               "Content-Type":
                                               "application/json"})
            self.assertEqual(status, 405)
            self.assertEqual(headers["allow"], "GET, HEAD, OPTIONS")
            status, headers, _ = r.request("OPTIONS", "/api/v1/models")
            self.assertEqual(status, 204)
            self.assertEqual(headers["access-control-allow-origin"], "*")
            self.assertEqual(up.stats()["requests"], before)


if __name__ == "__main__":
    main()
