"""API v1 relay routes against the real binary (PROTOCOL.md section 4.3):
every route and error path, the request lifecycle with short timers set
through settings (lease expiry and eviction, long-poll wake-up, deadline
mid-flight, cancel before and after a claim, tombstones, unregistration,
re-registration, duplicate and late responses, pending retrieval with
progress, response TTL), owner-fenced responses, counts-only health, the
long-poll cap with 200 pollers, draining, and a concurrency run of 16
nodes (max_concurrency 1-4) and 128 clients.

The relay is blind, so these peers send opaque strings; real cryptography
is in test_v1_e2e.py. Every wait polls with a deadline (TP_TIMEOUT_SCALE
stretches them for valgrind); no fixed sleep decides an outcome. With
TP_STATE_TOPOLOGY=redis every relay keeps its state on a redis-server of
its own (redistest.RelayOnState), so the same tests cover the Redis store."""

import http.client
import json
import random
import signal
import socket
import threading
import time
import unittest

from redistest import RelayOnState as Relay
from relaytest import SCALE, main, metric_value, scaled, wait_for

V1 = "/api/v1/relay"
PROTO = "tokenplace_api_v1_relay_e2ee"
MODEL = "qwen3-8b-instruct"
PLAINTEXT_400 = ("Plaintext relay payload fields are forbidden; "
                 "send ciphertext envelope only")
UNEXPECTED_400 = ("Unexpected relay payload fields are forbidden; "
                  "send ciphertext envelope only")
BAD_CRED = {"error": {"code": 403, "message":
                      "Missing or invalid relay server control credential"}}
# Nodes driven by hand must not be evicted in a slow (valgrind) run.
SLOW_LEASE = {"TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS":
              str(int(scaled(60)))}


def caps(conc=1, models=(MODEL,), tier="8k-fast"):
    return {"api_version": "v1", "active_context_tier": tier,
            "supported_model_ids": list(models), "max_concurrency": conc}


def register(r, key, conc=1, **kw):
    st, body = r.post_json(V1 + "/servers/register",
                           {"server_public_key": key,
                            "capabilities": caps(conc, **kw)})
    assert st == 200, (st, body)
    return body.get("control_credential")


def request_body(node, client, rid, cancel="tok", **extra):
    b = {"server_public_key": node, "client_public_key": client,
         "ciphertext": "CT-" + rid, "cipherkey": "CK", "iv": "IV",
         "request_id": rid, "protocol": PROTO, "version": 1}
    if cancel is not None:
        b["cancel_token"] = cancel
    b.update(extra)
    return b


def response_body(client, rid, **extra):
    b = {"client_public_key": client, "request_id": rid,
         "chat_history": "RC-" + rid, "cipherkey": "RK", "iv": "RI",
         "protocol": PROTO, "version": 1}
    b.update(extra)
    return b


def poll(r, key, timeout=30):
    return r.post_json(V1 + "/servers/poll", {"server_public_key": key},
                       timeout=scaled(timeout))


def control(r, key, cred, rid, ack=False):
    b = {"server_public_key": key, "request_id": rid,
         "control_credential": cred}
    if ack:
        b["acknowledge"] = True
    return r.post_json(V1 + "/servers/control", b)


def retrieve(r, client, rid):
    return r.post_json(V1 + "/responses/retrieve",
                       {"client_public_key": client, "request_id": rid})


def progress_body(node, cred, client, rid):
    return {"server_public_key": node, "client_public_key": client,
            "request_id": rid, "control_credential": cred,
            "protocol": PROTO, "version": 1, "ciphertext": "PC",
            "cipherkey": "PK", "iv": "PI"}


def raw_post(port, path, length):
    """POSTs `length` bytes of body; returns the status and JSON body of
    the answer. The relay may answer before the body is read (413 from
    Content-Length), so a failed send is not an error here."""
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (path, length))
                  .encode("ascii"))
        try:
            s.sendall(b"{" + b" " * (length - 2) + b"}")
        except OSError:
            pass
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        clen = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v)
        while len(rest) < clen:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(head.split()[1]), json.loads(rest[:clen])
    finally:
        s.close()


class Routes(unittest.TestCase):
    """Each route's replies and error paths on one relay (poll wait 1 s)."""

    @classmethod
    def setUpClass(cls):
        env = {"TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "1"}
        env.update(SLOW_LEASE)
        cls.r = Relay(env=env).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.r.stop() == 0

    def test_register(self):
        r = self.r
        st, body = r.post_json(V1 + "/servers/register",
                               {"server_public_key": "REG",
                                "capabilities": caps(2)})
        self.assertEqual(st, 200)
        cred = body.pop("control_credential")
        self.assertEqual(len(cred), 43)
        self.assertEqual(body, {"next_ping_in_x_seconds": int(scaled(60)),
                                "poll_wait_seconds": 1,
                                "relay_capabilities":
                                {"encrypted_progress_v1": True}})
        # returned once: a renewal does not reveal or rotate it
        st, body = r.post_json(V1 + "/servers/register",
                               {"server_public_key": "REG"})
        self.assertEqual(st, 200)
        self.assertNotIn("control_credential", body)
        self.assertNotIn("error", body)
        st, body = r.post_json(V1 + "/servers/register", {"capabilities": {}})
        self.assertEqual((st, body), (400, {"error": {
            "code": 400, "message": "Missing server public key"}}))
        st, body = r.post_json(V1 + "/servers/register",
                               {"server_public_key": "BAD",
                                "capabilities": {"max_concurrency": True}})
        self.assertEqual(st, 400)
        self.assertEqual(body["error"]["code"], "invalid_capabilities")
        st, body = r.post_json(V1 + "/servers/register", [1])
        self.assertEqual(st, 400)

    def test_poll_empty_unknown_and_work(self):
        r = self.r
        st, body = poll(r, "NOBODY")
        self.assertEqual((st, body), (404, {"error": {
            "code": 404,
            "message": "Server with the specified public key not found"}}))
        register(r, "P1")
        t0 = time.monotonic()
        st, body = poll(r, "P1")
        self.assertEqual((st, body), (200, {
            "message": "No requests available", "next_ping_in_x_seconds": 0,
            "poll_wait_seconds": 1}))
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        st, _ = r.post_json(V1 + "/requests", request_body(
            "P1", "CLI-P", "p-1", cancel="secret-token", version="1"))
        self.assertEqual(st, 200)
        st, work = poll(r, "P1")
        self.assertEqual(st, 200)
        rem = work.pop("request_deadline_remaining_seconds")
        self.assertEqual(work.pop("request_ttl_seconds"), rem)
        self.assertTrue(470 < rem <= 480, rem)
        # protocol/version echoed exactly; no cancel_token; poll again now
        self.assertEqual(work, {
            "client_public_key": "CLI-P", "chat_history": "CT-p-1",
            "ciphertext": "CT-p-1", "cipherkey": "CK", "iv": "IV",
            "request_id": "p-1", "protocol": PROTO, "version": "1",
            "e2ee_v1": True, "next_ping_in_x_seconds": 0,
            "poll_wait_seconds": 1})

    def test_long_poll_woken_by_enqueue(self):
        with Relay(env=SLOW_LEASE) as r:       # the default 10 s wait
            register(r, "W")
            out = {}

            def waiter():
                t0 = time.monotonic()
                out["reply"] = poll(r, "W")
                out["took"] = time.monotonic() - t0

            t = threading.Thread(target=waiter)
            t.start()
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_api_v1_long_polls") == 1,
                10, what="the poll to wait")
            st, _ = r.post_json(V1 + "/requests", request_body("W", "C", "w"))
            self.assertEqual(st, 200)
            t.join(scaled(30))
            st, work = out["reply"]
            self.assertEqual(st, 200)
            self.assertEqual(work["request_id"], "w")
            self.assertLess(out["took"], scaled(5))

    def test_next_server_and_cors(self):
        r = self.r
        st, headers, raw = r.request(
            "GET", V1 + "/servers/next?model=no-such-model&context_tier=8k-fast")
        body = json.loads(raw)
        self.assertEqual(st, 503)
        self.assertEqual(body["error"]["code"], "no_matching_compute_node")
        self.assertEqual(headers["access-control-allow-origin"], "*")
        st, body = r.get_json(V1 + "/servers/next?context_tier=1m")
        self.assertEqual((st, body), (400, {"error": {
            "code": "invalid_context_tier",
            "message": "Unsupported context_tier"}}))
        register(r, "N-BIG", 4, tier="64k-full", models=("x-model",))
        st, body = r.get_json(V1 + "/servers/next?model=X-Model")
        self.assertEqual(st, 200)
        self.assertEqual(body["server_public_key"], "N-BIG")
        self.assertEqual(body["selected_context_tier"], "64k-full")
        self.assertEqual(body["requested_context_tier"], "8k-fast")
        self.assertTrue(body["spillover"])
        self.assertEqual(body["spillover_reason"],
                         "no_smaller_eligible_node_available")
        self.assertEqual(body["selection_policy"],
                         "best_fit_smallest_capable_least_loaded_v1")
        self.assertEqual(body["selected_model_support"], ["x-model"])
        self.assertEqual(body["eligible_tier_counts"], {"64k-full": 1})
        st, headers, raw = r.request("OPTIONS", V1 + "/servers/next")
        self.assertEqual(st, 204)
        self.assertEqual(headers["access-control-allow-origin"], "*")
        self.assertIn("GET", headers["access-control-allow-methods"])
        # node routes get no CORS
        st, headers, _ = r.request("OPTIONS", V1 + "/servers/poll")
        self.assertNotIn("access-control-allow-origin", headers)

    def test_requests_guardrail_and_errors(self):
        r = self.r
        register(r, "G", 1)
        for bad, msg in (({"messages": []}, PLAINTEXT_400),
                         (dict(request_body("G", "C", "g"), prompt="hi"),
                          PLAINTEXT_400),
                         (dict(request_body("G", "C", "g"), model="m"),
                          UNEXPECTED_400),
                         ({"server_public_key": "G", "client_public_key": "C",
                           "request_id": "g"}, "Invalid request data"),
                         (dict(request_body("G", "", "g")),
                          "Missing client public key"),
                         (dict(request_body("G", "C", "g"), request_id=None),
                          "Missing request_id")):
            st, body = r.post_json(V1 + "/requests", bad)
            self.assertEqual((st, body), (400, {"error": {
                "code": 400, "message": msg}}), bad)
        st, body = r.post_json(V1 + "/requests", request_body("NOPE", "C", "g"))
        self.assertEqual(st, 404)
        self.assertEqual(r.post_json(V1 + "/requests",
                                     request_body("G", "C", "g1"))[0], 200)
        # a retry is the same request, not a second one
        st, body = r.post_json(V1 + "/requests", request_body("G", "C", "g1"))
        self.assertEqual(st, 200)
        self.assertEqual(body["message"], "Request received")
        # max_concurrency 1 is taken: admission refuses, atomically
        st, headers, raw = r.request("POST", V1 + "/requests",
                                     json_body=request_body("G", "C", "g2"))
        self.assertEqual(st, 503)
        self.assertEqual(json.loads(raw)["error"]["code"],
                         "no_available_capacity")
        self.assertIn("retry-after", headers)
        st, body = r.get_json(V1 + "/servers/next")
        self.assertNotEqual(body.get("server_public_key"), "G")
        st, body = r.post_json(V1 + "/requests", request_body(
            "N-OTHER-404", "C", "g1"))
        self.assertEqual(st, 404)
        st, _, raw = r.request("POST", V1 + "/requests", body=b"{",
                               headers={"Content-Type": "application/json"})
        self.assertEqual(st, 400)
        st, _, raw = r.request("POST", V1 + "/requests", body=b"{}",
                               headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 415)

    def test_cancel_before_and_after_claim(self):
        r = self.r
        cred = register(r, "K", 2)
        r.post_json(V1 + "/requests", request_body("K", "CK1", "k1"))
        st, body = r.post_json(V1 + "/requests/cancel", {
            "client_public_key": "CK1", "request_id": "k1",
            "cancel_token": "wrong"})
        self.assertEqual((st, body), (403, {"error": {
            "code": 403, "message": "Missing or invalid cancel proof"}}))
        st, body = r.post_json(V1 + "/requests/cancel", {
            "client_public_key": "CK1", "request_id": "k1",
            "cancel_token": "tok", "reason": "client_timeout"})
        self.assertEqual((st, body), (200, {
            "removed_from_queue": 1, "request_id": "k1",
            "status": "cancelled"}))
        st, body = retrieve(r, "CK1", "k1")
        self.assertEqual((st, body), (410, {"error": {
            "code": "cancelled", "message": "Request cancelled",
            "reason": "client_timeout", "status": "cancelled"}}))
        # after a claim: the owner learns it through control, then acks
        r.post_json(V1 + "/requests", request_body("K", "CK2", "k2"))
        st, work = poll(r, "K")
        self.assertEqual(work["request_id"], "k2")
        st, body = control(r, "K", cred, "k2")
        self.assertEqual(body["status"], "active")
        self.assertEqual(body["next_poll_seconds"], 1)
        st, body = r.post_json(V1 + "/requests/cancel", {
            "client_public_key": "CK2", "request_id": "k2",
            "cancel_token": "tok"})
        self.assertEqual(body["removed_from_queue"], 0)
        st, body = control(r, "K", "forged", "k2")
        self.assertEqual((st, body), (403, BAD_CRED))
        st, body = control(r, "K", cred, "k2")
        self.assertEqual(body["status"], "cancelled")
        st, body = control(r, "K", cred, "k2", ack=True)
        self.assertEqual(body["status"], "cancelled")
        st, body = control(r, "K", cred, "k2")
        self.assertEqual(body, {"status": "completed/unavailable",
                                "next_poll_seconds": 1})
        st, body = r.post_json(V1 + "/responses", response_body("CK2", "k2"))
        self.assertEqual((st, body), (410, {"error": {
            "code": "cancelled",
            "message": "Request is no longer waiting for a response",
            "status": "cancelled"}}))

    def test_responses_duplicate_late_and_proof(self):
        r = self.r
        cred = register(r, "R", 2)
        cred_x = register(r, "RX", 1)
        r.post_json(V1 + "/requests", request_body("R", "CR", "r1"))
        poll(r, "R")
        # another node's valid credential does not complete R's request
        st, body = r.post_json(V1 + "/responses", response_body(
            "CR", "r1", server_public_key="RX", control_credential=cred_x))
        self.assertEqual((st, body), (403, BAD_CRED))
        st, body = r.post_json(V1 + "/responses", response_body(
            "CR", "r1", server_public_key="R"))
        self.assertEqual(st, 403)
        st, body = r.post_json(V1 + "/responses", response_body(
            "CR", "r1", server_public_key="R", control_credential=cred))
        self.assertEqual((st, body), (200, {
            "message": "Response received and queued for client"}))
        st, body = r.post_json(V1 + "/responses", response_body("CR", "r1"))
        self.assertEqual((st, body), (200, {
            "message": "Response already queued for client"}))
        answer = {
            "chat_history": "RC-r1", "cipherkey": "RK", "ciphertext": "RC-r1",
            "client_public_key": "CR", "iv": "RI", "protocol": PROTO,
            "request_id": "r1", "version": 1}
        st, body = retrieve(r, "CR", "r1")
        self.assertEqual((st, body), (200, answer))
        # a retry (the first reply lost on the way) gets the same answer
        # within RELAY_RESPONSE_REDELIVERY_SECONDS (30 s by default)
        st, body = retrieve(r, "CR", "r1")
        self.assertEqual((st, body), (200, answer))
        self.assertEqual(metric_value(
            r.metrics(), "tokenplace_relay_api_v1_responses_redelivered_total"),
            1)
        self.assertEqual(retrieve(r, "OTHER", "r1")[0], 404)
        st, body = r.post_json(V1 + "/responses", response_body("CR", "r1"))
        self.assertEqual(st, 410)
        self.assertEqual(body["error"]["status"], "completed")
        st, body = r.post_json(V1 + "/responses", response_body("CR", "never"))
        self.assertEqual(st, 410)
        self.assertEqual(body["error"]["code"], "gone")
        st, body = r.post_json(V1 + "/responses", dict(
            response_body("CR", "r1"), text="plain"))
        self.assertEqual((st, body["error"]["message"]), (400, PLAINTEXT_400))
        st, body = r.post_json(V1 + "/responses/retrieve",
                               {"client_public_key": "CR"})
        self.assertEqual((st, body), (404, {"error": {
            "code": 404,
            "message": "No response available for the given public key"}}))
        st, body = r.post_json(V1 + "/responses/retrieve", {})
        self.assertEqual(st, 400)

    def test_progress_and_pending_retrieval(self):
        r = self.r
        cred = register(r, "PR", 1)
        r.post_json(V1 + "/requests", request_body("PR", "CP", "pr"))
        st, body = retrieve(r, "CP", "pr")
        self.assertEqual(st, 202)
        self.assertEqual(body["status"], "pending")
        self.assertNotIn("encrypted_progress", body)
        st, body = r.post_json(V1 + "/progress",
                               progress_body("PR", cred, "CP", "pr"))
        self.assertEqual((st, body), (410, {"error": {
            "code": 410,
            "message": "Progress request is not active for this owner"}}))
        poll(r, "PR")
        st, body = r.post_json(V1 + "/progress",
                               progress_body("PR", "forged", "CP", "pr"))
        self.assertEqual((st, body), (403, BAD_CRED))
        st, body = r.post_json(V1 + "/progress", dict(
            progress_body("PR", cred, "CP", "pr"), extra=1))
        self.assertEqual((st, body), (400, {"error": {
            "code": 400, "message": "Invalid encrypted progress schema"}}))
        st, body = r.post_json(V1 + "/progress", dict(
            progress_body("PR", cred, "CP", "pr"), version=2))
        self.assertEqual(body["error"]["message"],
                         "Invalid encrypted progress protocol")
        # refused from Content-Length alone, before the body is read
        st, body = raw_post(r.port, V1 + "/progress", 16385)
        self.assertEqual(st, 413)
        self.assertEqual(body["error"]["code"], 413)
        st, body = r.post_json(V1 + "/progress",
                               progress_body("PR", cred, "CP", "pr"))
        self.assertEqual((st, body), (202, {
            "message": "Encrypted progress accepted"}))
        st, body = retrieve(r, "CP", "pr")
        self.assertEqual(st, 202)
        self.assertEqual(body["encrypted_progress"], {
            "client_public_key": "CP", "request_id": "pr", "protocol": PROTO,
            "version": 1, "ciphertext": "PC", "cipherkey": "PK", "iv": "PI"})
        st, body = retrieve(r, "CP", "pr")
        self.assertNotIn("encrypted_progress", body)

    def test_unregister_with_queued_and_in_flight(self):
        r = self.r
        cred = register(r, "U", 2)
        r.post_json(V1 + "/requests", request_body("U", "CU", "u1"))
        r.post_json(V1 + "/requests", request_body("U", "CU", "u2"))
        st, work = poll(r, "U")
        self.assertEqual(work["request_id"], "u1")
        st, body = r.post_json(V1 + "/servers/unregister",
                               {"server_public_key": "U",
                                "control_credential": "forged"})
        self.assertEqual((st, body), (403, BAD_CRED))
        st, body = r.post_json(V1 + "/servers/unregister",
                               {"server_public_key": "U",
                                "control_credential": cred})
        self.assertEqual((st, body), (200, {"message": "Server unregistered",
                                            "removed": True}))
        for rid in ("u1", "u2"):
            st, body = retrieve(r, "CU", rid)
            self.assertEqual(st, 410)
            self.assertEqual(body["error"]["reason"], "server_unregistered")
        # the in-flight owner still reads its tombstone with its credential
        st, body = control(r, "U", cred, "u1", ack=True)
        self.assertEqual(body["status"], "cancelled")
        st, body = poll(r, "U")
        self.assertEqual(st, 404)
        st, body = r.post_json(V1 + "/servers/unregister",
                               {"server_public_key": "U",
                                "control_credential": cred})
        self.assertEqual(body["removed"], False)
        # registering again is a new node with a new credential
        cred2 = register(r, "U", 1)
        self.assertTrue(cred2)
        self.assertNotEqual(cred, cred2)
        st, body = r.post_json(V1 + "/servers/unregister", {})
        self.assertEqual(st, 400)

    def test_health_and_diagnostics_publish_counts_only(self):
        r = self.r
        register(r, "SECRET-NODE-KEY", 3, models=("secret-model",))
        st, _, raw_h = r.request("GET", "/healthz")
        health = json.loads(raw_h)
        self.assertEqual(st, 200)
        self.assertGreaterEqual(health["apiV1"]["registeredNodes"], 1)
        text = r.metrics()
        for blob in (raw_h.decode(), text):
            self.assertNotIn("SECRET-NODE-KEY", blob)
            self.assertNotIn("secret-model", blob)
        self.assertGreaterEqual(metric_value(
            text, "tokenplace_relay_api_v1_nodes"), 1)

    def test_meta(self):
        for path in ("/api/v1/meta", "/api/v1/version"):
            st, headers, raw = self.r.request("GET", path)
            body = json.loads(raw)
            self.assertEqual(st, 200)
            self.assertEqual(body["environment"], "dev")
            self.assertEqual(body["label"], "dev " + body["version"])
            self.assertEqual(headers["cache-control"], "no-store")


    def test_unknown_long_request_id_is_cut_at_a_character(self):
        """The 404 quotes at most 200 bytes of the id; a cut inside a
        multi-byte character made the answer invalid JSON text (found by
        make fuzz-long, seed 411102607)."""
        for pad in range(4):
            rid = "x" * pad + "\u043a\U0001F600" * 60
            st, _, data = self.r.request(
                "POST", V1 + "/responses/retrieve",
                json={"client_public_key": "C-cut", "request_id": rid})
            self.assertEqual(st, 404)
            msg = json.loads(data.decode("utf-8"))["error"]["message"]
            quoted = msg[len("Unknown request_id: "):]
            self.assertTrue(rid.startswith(quoted), msg)
            self.assertGreater(len(quoted.encode("utf-8")), 196)
            self.assertLessEqual(len(quoted.encode("utf-8")), 200)

class Lifecycle(unittest.TestCase):
    """Timers shortened through settings."""

    def test_lease_expiry_evicts_and_cancels_queue(self):
        env = {"TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": "1",
               "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0"}
        with Relay(env=env) as r:
            register(r, "E", 2)
            st, _ = r.post_json(V1 + "/requests", request_body("E", "CE", "e1"))
            self.assertEqual(st, 200)
            wait_for(lambda: retrieve(r, "CE", "e1")[0] == 410, 10,
                     what="eviction to cancel the queued request")
            st, body = retrieve(r, "CE", "e1")
            self.assertEqual(body["error"]["reason"], "server_unregistered")
            self.assertEqual(poll(r, "E")[0], 404)
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_api_v1_node_removals_total",
                reason="stale_lease"), 1)
            # poll wait 0: the empty answer says come back after the lease
            register(r, "E", 1)
            st, body = poll(r, "E")
            self.assertEqual(body["next_ping_in_x_seconds"], 1)

    def test_deadline_passes_mid_flight(self):
        env = {"TOKEN_PLACE_API_V1_REQUEST_DEADLINE_SECONDS": "2",
               "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0"}
        env.update(SLOW_LEASE)
        with Relay(env=env) as r:
            cred = register(r, "D", 1)
            st, body = r.post_json(V1 + "/requests", request_body("D", "CD", "d"))
            self.assertLessEqual(body["request_deadline_remaining_seconds"], 2)
            st, work = poll(r, "D")
            self.assertEqual(work["request_id"], "d")
            wait_for(lambda: control(r, "D", cred, "d")[1]["status"]
                     == "expired", 10, what="the deadline to pass")
            st, body = retrieve(r, "CD", "d")
            self.assertEqual((st, body["error"]["code"],
                              body["error"]["reason"]),
                             (410, "expired", "provider_timeout"))
            st, body = r.post_json(V1 + "/responses", response_body("CD", "d"))
            self.assertEqual((st, body["error"]["code"]), (410, "expired"))
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_request_outcomes_total",
                outcome="expired"), 1)

    def test_redelivery_window_then_unknown(self):
        env = {"RELAY_RESPONSE_REDELIVERY_SECONDS": "1",
               "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0"}
        env.update(SLOW_LEASE)
        with Relay(env=env) as r:
            register(r, "W", 1)
            r.post_json(V1 + "/requests", request_body("W", "CW", "w"))
            poll(r, "W")
            self.assertEqual(r.post_json(V1 + "/responses",
                                         response_body("CW", "w"))[0], 200)
            self.assertEqual(retrieve(r, "CW", "w")[0], 200)
            wait_for(lambda: retrieve(r, "CW", "w")[0] == 404, 10,
                     what="the redelivery window to close")
            st, body = retrieve(r, "CW", "w")
            self.assertEqual((st, body), (404, {"error": {
                "code": 404, "message": "Unknown request_id: w"}}))
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_request_outcomes_total",
                outcome="completed"), 1)

    def test_node_dead_with_a_claim_ends_the_request_at_eviction(self):
        """A node that claimed a request and died: the client gets a
        terminal 410 (cancelled, server_unregistered) once the claim's
        lease and the node's have lapsed, long before the deadline."""
        env = {"TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": "1",
               "TOKEN_PLACE_API_V1_IN_FLIGHT_TTL_SECONDS": "1",
               "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0",
               "TOKEN_PLACE_API_V1_REQUEST_DEADLINE_SECONDS": "480"}
        with Relay(env=env) as r:
            register(r, "X", 1)
            st, body = r.post_json(V1 + "/requests",
                                   request_body("X", "CX", "x"))
            self.assertEqual(st, 200, body)
            st, work = poll(r, "X")
            self.assertEqual(work["request_id"], "x")
            self.assertEqual(retrieve(r, "CX", "x")[0], 202)
            wait_for(lambda: retrieve(r, "CX", "x")[0] == 410, scaled(60),
                     what="eviction to end the claimed request")
            st, body = retrieve(r, "CX", "x")
            self.assertEqual((body["error"]["status"],
                              body["error"]["reason"]),
                             ("cancelled", "server_unregistered"))

    def test_undelivered_response_expires(self):
        env = {"TOKENPLACE_API_V1_RESPONSE_TTL_SECONDS": "1",
               "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0"}
        env.update(SLOW_LEASE)
        with Relay(env=env) as r:
            register(r, "T", 1)
            r.post_json(V1 + "/requests", request_body("T", "CT", "t"))
            poll(r, "T")
            self.assertEqual(r.post_json(V1 + "/responses",
                                         response_body("CT", "t"))[0], 200)
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_api_v1_responses_expired_total")
                == 1, 10, what="the response TTL")
            st, body = retrieve(r, "CT", "t")
            self.assertEqual((st, body["error"]["reason"]),
                             (410, "response_ttl_exceeded"))
            # and the node's slot is free again
            self.assertEqual(r.post_json(V1 + "/requests",
                                         request_body("T", "CT", "t2"))[0], 200)

    def test_require_response_proof(self):
        env = {"TOKENPLACE_REQUIRE_RESPONSE_PROOF": "true",
               "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0"}
        env.update(SLOW_LEASE)
        with Relay(env=env) as r:
            cred = register(r, "Q", 1)
            r.post_json(V1 + "/requests", request_body("Q", "CQ", "q"))
            poll(r, "Q")
            st, body = r.post_json(V1 + "/responses", response_body("CQ", "q"))
            self.assertEqual((st, body), (403, BAD_CRED))
            st, body = r.post_json(V1 + "/responses", response_body(
                "CQ", "q", server_public_key="Q", control_credential=cred))
            self.assertEqual(st, 200)

    def test_registration_token(self):
        env = {"TOKEN_PLACE_RELAY_SERVER_TOKEN": "s3cret"}
        with Relay(env=env) as r:
            for path in ("/servers/register", "/servers/poll",
                         "/servers/control", "/servers/unregister",
                         "/responses", "/progress"):
                st, body = r.post_json(V1 + path, {"server_public_key": "X"})
                self.assertEqual((st, body), (401, {"error": {
                    "code": 401,
                    "message": "Missing or invalid relay server token"}}), path)
            st, body = r.post_json(V1 + "/servers/register",
                                   {"server_public_key": "X"},
                                   headers={"X-Relay-Server-Token": "s3cret"})
            self.assertEqual(st, 200)
            # client routes need no token
            st, _ = r.post_json(V1 + "/responses/retrieve",
                                {"client_public_key": "C", "request_id": "x"})
            self.assertEqual(st, 404)

    def test_drain_answers_waiting_polls(self):
        with Relay(env=SLOW_LEASE) as r:
            register(r, "DR")
            out = {}

            def waiter():
                t0 = time.monotonic()
                out["reply"] = poll(r, "DR")
                out["took"] = time.monotonic() - t0

            t = threading.Thread(target=waiter)
            t.start()
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_api_v1_long_polls") == 1,
                10, what="the poll to wait")
            r.signal(signal.SIGTERM)
            t.join(scaled(30))
            st, body = out["reply"]
            self.assertEqual(st, 200)
            self.assertEqual(body["next_ping_in_x_seconds"], 2)
            self.assertLess(out["took"], scaled(5))
            self.assertEqual(r.wait_exit(30), 0)


class LongPollCap(unittest.TestCase):
    def test_200_pollers_leave_probes_and_clients_prompt(self):
        """200 nodes long-polling at once with the default 64 threads: 48
        wait, the rest are answered at once (next_ping 2, connection
        closed); /livez and a client round trip stay prompt."""
        nodes = ["LP-%03d" % i for i in range(200)]
        stop = threading.Event()
        with Relay(env=SLOW_LEASE) as r:
            for n in nodes:
                register(r, n)
            busy_seen = []

            def node_loop(key):
                while not stop.is_set():
                    try:
                        st, body = poll(r, key, timeout=60)
                    except OSError:
                        if stop.is_set():
                            return
                        raise
                    if st == 200 and body["next_ping_in_x_seconds"] == 2:
                        busy_seen.append(key)
                        stop.wait(2)

            threads = [threading.Thread(target=node_loop, args=(n,),
                                        daemon=True) for n in nodes]
            for t in threads:
                t.start()
            cap = r.get_json("/healthz")[1]["apiV1"]["maxLongPolls"]
            self.assertEqual(cap, 48)      # 3/4 of the default 64 threads
            try:
                wait_for(lambda: metric_value(
                    r.metrics(), "tokenplace_relay_api_v1_long_polls") == cap,
                    30, interval=0.1, what="%d waiting polls" % cap)
                wait_for(lambda: len(busy_seen) > 100, 30, interval=0.1,
                         what="polls over the cap answered")
                worst = 0.0
                for _ in range(20):
                    t0 = time.monotonic()
                    self.assertEqual(r.request("GET", "/livez", timeout=10)[0],
                                     200)
                    worst = max(worst, time.monotonic() - t0)
                self.assertLess(worst, scaled(1.0))
                # a client round trip to a polling node
                t0 = time.monotonic()
                st, sel = r.get_json(V1 + "/servers/next")
                self.assertEqual(st, 200)
                key = sel["server_public_key"]
                st, _ = r.post_json(V1 + "/requests",
                                    request_body(key, "CL", "lp"))
                self.assertEqual(st, 200)
                wait_for(lambda: retrieve(r, "CL", "lp")[0] == 202, 5)
                self.assertLess(time.monotonic() - t0, scaled(3.0))
                self.assertGreater(metric_value(
                    r.metrics(),
                    "tokenplace_relay_api_v1_long_polls_refused_total"), 0)
            finally:
                stop.set()
                r.signal(signal.SIGTERM)   # drain: waiting polls answer now
                for t in threads:
                    t.join(scaled(30))
            self.assertEqual(r.wait_exit(30), 0)


class Concurrency(unittest.TestCase):
    def test_16_nodes_128_clients(self):
        """No request delivered twice, none lost, no node over its
        max_concurrency, even though clients ask all at once."""
        rng = random.Random(4)
        env = {"TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "2",
               "RELAY_THREADS": "256"}
        env.update(SLOW_LEASE)
        stop = threading.Event()
        lock = threading.Lock()
        got = {}            # request_id -> node that received it
        dup = []
        over = []
        errors = []
        answers = {}
        with Relay(env=env) as r:
            nodes = []
            for i in range(16):
                conc = 1 + i % 4
                key = "CN-%02d" % i
                cred = register(r, key, conc)
                nodes.append({"key": key, "conc": conc, "cred": cred,
                              "active": 0, "max": 0})

            def work(node, job):
                try:
                    time.sleep(rng.uniform(0.01, 0.08))
                    rid = job["request_id"]
                    body = {"client_public_key": job["client_public_key"],
                            "request_id": rid,
                            "chat_history": "ANS:" + job["ciphertext"],
                            "cipherkey": "k", "iv": "i"}
                    if rid.endswith("p"):
                        body["server_public_key"] = node["key"]
                        body["control_credential"] = node["cred"]
                    with lock:
                        node["active"] -= 1
                    st, b = r.post_json(V1 + "/responses", body)
                    if st != 200:
                        errors.append(("responses", st, b))
                except Exception as exc:    # noqa: BLE001 - keep the reason
                    errors.append(("work", repr(exc)))

            def node_loop(node):
                while not stop.is_set():
                    try:
                        st, job = poll(r, node["key"], timeout=60)
                    except OSError as exc:
                        errors.append(("poll", repr(exc)))
                        return
                    if st != 200:
                        errors.append(("poll", st, job))
                        return
                    if "request_id" not in job:
                        continue
                    with lock:
                        if job["request_id"] in got:
                            dup.append(job["request_id"])
                        got[job["request_id"]] = node["key"]
                        node["active"] += 1
                        node["max"] = max(node["max"], node["active"])
                        if node["active"] > node["conc"]:
                            over.append((node["key"], node["active"]))
                    threading.Thread(target=work, args=(node, job),
                                     daemon=True).start()

            def client(i):
                rid = "cc-%03d%s" % (i, "p" if i % 2 else "")
                deadline = time.monotonic() + scaled(120)
                try:
                    while True:
                        st, sel = r.get_json(V1 + "/servers/next")
                        if st == 200:
                            st, b = r.post_json(V1 + "/requests", request_body(
                                sel["server_public_key"], "CC-%d" % i, rid))
                            if st == 200:
                                break
                        if st != 503 or time.monotonic() > deadline:
                            errors.append(("client", i, st, sel))
                            return
                        time.sleep(rng.uniform(0.01, 0.05))
                    while time.monotonic() < deadline:
                        st, b = retrieve(r, "CC-%d" % i, rid)
                        if st == 200:
                            with lock:
                                answers[rid] = b["chat_history"]
                            return
                        if st != 202:
                            errors.append(("retrieve", i, st, b))
                            return
                        time.sleep(0.02)
                    errors.append(("client timeout", i))
                except Exception as exc:    # noqa: BLE001
                    errors.append(("client", i, repr(exc)))

            nthreads = [threading.Thread(target=node_loop, args=(n,),
                                         daemon=True) for n in nodes]
            for t in nthreads:
                t.start()
            cthreads = [threading.Thread(target=client, args=(i,))
                        for i in range(128)]
            for t in cthreads:
                t.start()
            for t in cthreads:
                t.join(scaled(180))
            stop.set()
            for t in nthreads:
                t.join(scaled(30))
            text = r.metrics()
        self.assertEqual(errors, [])
        self.assertEqual(dup, [])
        self.assertEqual(over, [])
        self.assertEqual(len(answers), 128)
        for i in range(128):
            rid = "cc-%03d%s" % (i, "p" if i % 2 else "")
            self.assertEqual(answers[rid], "ANS:CT-" + rid)
        self.assertEqual(set(got), set(answers))
        self.assertEqual(metric_value(
            text, "tokenplace_relay_request_outcomes_total",
            outcome="completed"), 128)
        # every node got work, and the busiest ran up to its limit
        self.assertTrue(all(n["max"] <= n["conc"] for n in nodes))


if __name__ == "__main__":
    main()
