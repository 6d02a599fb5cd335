"""API v1 on two relay processes sharing one redis-server (RELAY_STATE_URL),
with the token.place-compatible peers of tests/fixtures/tp_peers_v1.py:

* a node long-polling relay A is answered when a client enqueues through
  relay B (the cross-replica wake-up), and the reverse;
* 64 clients x 8 nodes spread over both relays: every answer reaches the
  client that asked, from the node it asked, once: 0 lost, 0 duplicated,
  0 mis-delivered;
* max_concurrency holds with clients racing on both relays;
* relay A SIGKILLed mid-load while clients enqueue through it and the
  node works through relay B: every job A accepted is delivered through
  B, none twice;
* redis-server SIGKILLed mid-load and started again (AOF): 503 JSON with
  Retry-After meanwhile, /livez 200, service back within 5 s without a
  relay restart, no job handed out twice;
* past maxmemory: admissions answer 503 and store nothing while nodes
  still claim.

Each test has its own key prefix on the one server. Waits poll with
deadlines stretched by TP_TIMEOUT_SCALE; nothing here is timed except the
long poll's own bound (the 50 ms p99 is a `make bench` figure).
"""

import contextlib
import itertools
import json
import secrets
import shutil
import threading
import time
import traceback
import unittest

from redistest import REDIS_SERVER, RedisServer
from relaytest import SCALE, Relay, main, metric_value, scaled, wait_for

import tp_peers as tp
import tp_peers_v1 as v1

HTTP_TIMEOUT = scaled(30)
ANSWER_TIMEOUT = scaled(90)
CLIENT_POLL = min(0.05 * SCALE, 0.5)
POLL_WAIT = 20          # long enough that only a wake-up answers a poll
BASE_ENV = {
    "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": str(POLL_WAIT),
    "TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": str(int(scaled(60))),
    "RELAY_THREADS": "96",
}
V1 = v1.V1
_prefixes = itertools.count()


def url(relay):
    return "http://127.0.0.1:%d" % relay.port


def user(text):
    return [{"role": "user", "content": text}]


@unittest.skipUnless(shutil.which(REDIS_SERVER), "redis-server not installed")
class TwoRelays(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.redis.start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        shutil.rmtree(cls.redis.dir, ignore_errors=True)

    def env(self, **extra):
        env = dict(BASE_ENV, RELAY_STATE_URL=self.redis.url,
                   RELAY_STATE_PREFIX="v1r%d:" % next(_prefixes))
        env.update(extra)
        return env

    @contextlib.contextmanager
    def pair(self, **extra):
        env = self.env(**extra)
        with Relay(env=env) as a, Relay(env=env) as b:
            yield a, b

    def assert_clean(self, node):
        _, errors, violations = node.snapshot()
        self.assertEqual(errors, [], node.name)
        self.assertEqual(violations, [], node.name)

    # -- the wake-up across replicas ------------------------------------------
    def test_long_poll_on_one_relay_answered_by_an_enqueue_on_the_other(self):
        node_keys, client_keys = tp.key_pool(2)
        with self.pair() as (a, b):
            for nrelay, crelay in ((a, b), (b, a)):
                node = v1.ApiV1Node(url(nrelay), name="n", keypair=node_keys,
                                    timeout=HTTP_TIMEOUT)
                client = v1.ApiV1Client(url(crelay), keypair=client_keys,
                                        poll_interval=CLIENT_POLL,
                                        timeout=HTTP_TIMEOUT)
                node.register()
                # a raw poll that waits on nrelay, on its own thread
                got = {}

                def poll():
                    started = time.monotonic()
                    got["status"], got["body"] = nrelay.post_json(
                        V1 + "/servers/poll",
                        {"server_public_key": node.public_wire},
                        timeout=POLL_WAIT * 2)
                    got["took"] = time.monotonic() - started

                t = threading.Thread(target=poll)
                t.start()
                wait_for(lambda: _long_polls(nrelay) == 1, 20,
                         what="the poll to wait")
                rid, _ = client.send(node.public_wire, user("wake up"))
                t.join(POLL_WAIT * 2)
                self.assertFalse(t.is_alive())
                self.assertEqual(got["status"], 200)
                self.assertEqual(got["body"]["request_id"], rid)
                # answered by the wake-up, not by the end of the poll wait
                self.assertLess(got["took"], POLL_WAIT / 2)
                self.assertEqual(node.unregister()[0], 200)
            self.assertGreaterEqual(sum(
                _metric(r, "tokenplace_relay_state_wakeups_total")
                for r in (a, b)), 2)

    # -- many peers on both relays ---------------------------------------------
    def test_64_clients_8_nodes_none_lost_duplicated_or_misdelivered(self):
        nnodes, nclients = 8, 64
        keys = tp.key_pool(nnodes + nclients)
        with self.pair() as (a, b):
            relays = (a, b)
            nodes = [v1.ApiV1Node(url(relays[i % 2]), name="node-%d" % i,
                                  keypair=keys[i],
                                  capabilities=v1.default_capabilities(8),
                                  work_seconds=0.02, control_interval=0.2,
                                  progress=False, timeout=HTTP_TIMEOUT)
                     for i in range(nnodes)]
            by_key = {n.public_wire: n for n in nodes}
            clients = [v1.ApiV1Client(url(relays[(i // 2) % 2]),
                                      keypair=keys[nnodes + i],
                                      poll_interval=CLIENT_POLL,
                                      timeout=HTTP_TIMEOUT,
                                      name="client-%d" % i)
                       for i in range(nclients)]
            failures, sent = [], {}
            lock = threading.Lock()

            def run(idx, c):
                try:
                    deadline = time.monotonic() + ANSWER_TIMEOUT
                    while True:
                        try:
                            sel = c.select()
                            content = json.dumps({"client": idx,
                                                  "nonce": secrets.token_hex(8)})
                            rid, _ = c.send(sel["server_public_key"],
                                            user(content))
                            break
                        except tp.RelayError as exc:
                            if exc.status not in (429, 503) or \
                                    time.monotonic() > deadline:
                                raise
                            time.sleep(CLIENT_POLL)
                    node = by_key[sel["server_public_key"]]
                    with lock:
                        sent[rid] = (idx, node.name, content)
                    got = c.wait(rid, ANSWER_TIMEOUT)
                    want = ("done", "%s echoes: %s" % (node.name, content))
                    if got != want:
                        raise AssertionError("%s: got %r, want %r"
                                             % (c.name, got, want))
                except Exception:       # noqa: BLE001 - reported below
                    with lock:
                        failures.append(traceback.format_exc())

            for n in nodes:
                n.start()
            try:
                wait_for(lambda: all(n.credential for n in nodes), 30,
                         what="all nodes registered")
                threads = [threading.Thread(target=run, args=(i, c))
                           for i, c in enumerate(clients)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(ANSWER_TIMEOUT + 30)
                stuck = [c.name for c, t in zip(clients, threads)
                         if t.is_alive()]
            finally:
                # all leave their loop; unregistering wakes each node's
                # waiting poll (across relays too), so none waits it out
                for n in nodes:
                    n._stop.set()
                for n in nodes:
                    if n.credential:
                        n.unregister()
                for n in nodes:
                    n.stop()
            self.assertEqual(stuck, [])
            self.assertEqual(failures, [], "\n".join(failures))
            self.assertEqual(len(sent), nclients)
            # every request reached exactly the node it was sent to, once
            seen = {}
            for n in nodes:
                self.assert_clean(n)
                jobs, _, _ = n.snapshot()
                for job in jobs:
                    rid = job.request["request_id"]
                    self.assertIn(rid, sent)
                    self.assertEqual(sent[rid][1], n.name, "mis-delivered")
                    self.assertEqual(job.outcome, "delivered")
                    seen[rid] = seen.get(rid, 0) + 1
            self.assertEqual(seen, {rid: 1 for rid in sent})

    # -- limits across replicas --------------------------------------------------
    def test_max_concurrency_holds_with_clients_on_both_relays(self):
        keys = tp.key_pool(17)
        with self.pair() as (a, b):
            node = v1.ApiV1Node(url(a), name="n", keypair=keys[0],
                                capabilities=v1.default_capabilities(3),
                                timeout=HTTP_TIMEOUT)
            node.register()     # registered, not polling: work stays queued
            results = []
            lock = threading.Lock()
            go = threading.Event()

            def send(i):
                c = v1.ApiV1Client(url((a, b)[i % 2]), keypair=keys[1 + i],
                                   timeout=HTTP_TIMEOUT)
                go.wait()
                try:
                    c.send(node.public_wire, user("x"))
                    status = 200
                except tp.RelayError as exc:
                    status = exc.status
                with lock:
                    results.append(status)

            threads = [threading.Thread(target=send, args=(i,))
                       for i in range(16)]
            for t in threads:
                t.start()
            go.set()
            for t in threads:
                t.join(HTTP_TIMEOUT)
            self.assertEqual(len(results), 16)
            self.assertEqual(results.count(200), 3, results)
            self.assertEqual(set(results) - {200}, {503}, results)
            for r in (a, b):
                status, body = r.get_json("/healthz")
                self.assertEqual(body["apiV1"]["queuedRequests"], 3)

    # -- a relay dies --------------------------------------------------------------
    def test_relay_killed_mid_load_its_accepted_jobs_are_delivered_by_the_other(self):
        """Clients keep enqueuing through relay A while the node works
        through relay B; A is SIGKILLed mid-load. Every request A accepted
        (200) is answered through B, none twice."""
        keys = tp.key_pool(9)
        env = self.env()
        b = Relay(env=env).start()
        try:
            node = v1.ApiV1Node(url(b), name="survivor-node", keypair=keys[0],
                                capabilities=v1.default_capabilities(8),
                                work_seconds=0.05, progress=False,
                                timeout=HTTP_TIMEOUT)
            a = Relay(env=env, expect_exit=None).start()
            accepted = []
            lock = threading.Lock()
            stop = threading.Event()

            def load(i):
                c = v1.ApiV1Client(url(a), keypair=keys[1 + i],
                                   timeout=HTTP_TIMEOUT)
                n = 0
                while not stop.is_set():
                    text = "job %d.%d" % (i, n)
                    n += 1
                    try:
                        rid, _ = c.send(node.public_wire, user(text))
                    except tp.RelayError as exc:
                        if exc.status in (429, 503):   # full: try again
                            time.sleep(CLIENT_POLL)
                            continue
                        return
                    except OSError:     # A is gone
                        return
                    with lock:
                        accepted.append((keys[1 + i], rid, text))

            with node:
                wait_for(lambda: node.credential, 20, what="registration")
                threads = [threading.Thread(target=load, args=(i,))
                           for i in range(8)]
                for t in threads:
                    t.start()
                try:
                    wait_for(lambda: len(accepted) >= 24, 60,
                             what="load through relay A")
                finally:
                    a.kill()        # SIGKILL: no drain, no goodbye
                    stop.set()
                    for t in threads:
                        t.join(HTTP_TIMEOUT)
                self.assertIsNotNone(a.proc.returncode)
                with lock:
                    done = list(accepted)
                for kp, rid, text in done:
                    c = v1.ApiV1Client(url(b), keypair=kp,
                                       poll_interval=CLIENT_POLL,
                                       timeout=HTTP_TIMEOUT)
                    self.assertEqual(c.wait(rid, ANSWER_TIMEOUT),
                                     ("done", "survivor-node echoes: " + text))
            self.assert_clean(node)
            jobs, _, _ = node.snapshot()
            counts = {}
            for j in jobs:
                rid = j.request["request_id"]
                counts[rid] = counts.get(rid, 0) + 1
            self.assertEqual([r for r, n in counts.items() if n > 1], [])
            self.assertTrue({rid for _, rid, _ in done} <= set(counts))
        finally:
            b.stop()


@unittest.skipUnless(shutil.which(REDIS_SERVER), "redis-server not installed")
class OutOfMemory(unittest.TestCase):
    def test_past_maxmemory_requests_answer_503_and_nodes_still_claim(self):
        """Past maxmemory (noeviction): /requests answers 503 JSON with
        Retry-After and stores nothing; a node still claims what is queued
        (the scripts that take data out run); with memory back, requests
        are admitted again."""
        with RedisServer() as rs:
            env = dict(BASE_ENV, RELAY_STATE_URL=rs.url,
                       TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS="1")
            with Relay(env=env) as r:
                node_key = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K" + "N" * 560
                status, body = r.post_json(V1 + "/servers/register", {
                    "server_public_key": node_key,
                    "capabilities": v1.default_capabilities(16)})
                self.assertEqual(status, 200, body)

                def enqueue(rid, size):
                    return r.request("POST", V1 + "/requests", json_body={
                        "server_public_key": node_key,
                        "client_public_key": "C" * 600, "request_id": rid,
                        "ciphertext": "x" * size, "cipherkey": "K" * 344,
                        "iv": "I" * 22 + "==",
                        "protocol": "tokenplace_api_v1_relay_e2ee",
                        "version": 1})

                for i in range(10):
                    self.assertEqual(enqueue("big-%d" % i, 60000)[0], 200)
                used = int(rs.info("memory")["used_memory"])
                rs.command("CONFIG", "SET", "maxmemory", str(used - 300000))
                try:
                    status, hdrs, data = enqueue("refused", 60000)
                    self.assertEqual(status, 503, data)
                    self.assertEqual(hdrs.get("retry-after"), "1")
                    self.assertIn("error", json.loads(data))
                    self.assertEqual(r.request("GET", "/livez")[0], 200)
                    claimed = []
                    for _ in range(10):
                        status, work = r.post_json(V1 + "/servers/poll", {
                            "server_public_key": node_key})
                        self.assertEqual(status, 200, work)
                        claimed.append(work.get("request_id"))
                    self.assertEqual(claimed,
                                     ["big-%d" % i for i in range(10)])
                    # the refused request was never stored
                    status, body = r.post_json(V1 + "/responses/retrieve", {
                        "client_public_key": "C" * 600,
                        "request_id": "refused"})
                    self.assertEqual(status, 404, body)
                finally:
                    rs.command("CONFIG", "SET", "maxmemory", "0")
                self.assertEqual(enqueue("after", 100)[0], 200)


@unittest.skipUnless(shutil.which(REDIS_SERVER), "redis-server not installed")
class RedisFaults(unittest.TestCase):
    def test_redis_killed_mid_load_and_back_with_aof(self):
        """A node long-polls relay A, a client enqueues through relay B;
        redis-server is SIGKILLed mid-load: API v1 routes answer 503 JSON
        with Retry-After, /livez stays 200, no relay dies; it comes back
        (AOF on): service resumes within 5 s without a relay restart (the
        resubscribed wake-ups reach the node's polls again) and no job is
        handed out twice."""
        node = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K" + "F" * 560
        client = "C" * 600
        with RedisServer(unix=True, aof=True) as rs:
            env = dict(BASE_ENV, RELAY_STATE_URL=rs.url,
                       RELAY_STATE_PREFIX="faults:",
                       RELAY_STATE_TIME_SAMPLE_MS="200",
                       TOKENPLACE_API_V1_MAX_REQUESTS="100000")
            with Relay(env=env) as a, Relay(env=env) as b:
                status, body = a.post_json(V1 + "/servers/register", {
                    "server_public_key": node,
                    "capabilities": v1.default_capabilities(64)})
                self.assertEqual(status, 200, body)
                stop = threading.Event()
                acked, delivered, statuses = [], [], []

                def producer():
                    i = 0
                    while not stop.is_set():
                        rid = "job-%d" % i
                        i += 1
                        st, _, _ = b.request("POST", V1 + "/requests",
                                             json_body={
                            "server_public_key": node,
                            "client_public_key": client, "request_id": rid,
                            "ciphertext": "x" * 64, "cipherkey": "K" * 344,
                            "iv": "I" * 22 + "==",
                            "protocol": "tokenplace_api_v1_relay_e2ee",
                            "version": 1})
                        statuses.append(st)
                        if st == 200:
                            acked.append(rid)
                        else:
                            time.sleep(0.005)

                def consumer():
                    while not stop.is_set():
                        st, work = a.post_json(V1 + "/servers/poll", {
                            "server_public_key": node}, timeout=POLL_WAIT * 2)
                        if st != 200 or "request_id" not in work:
                            if st != 200:
                                time.sleep(0.005)
                            continue
                        delivered.append(work["request_id"])
                        a.post_json(V1 + "/responses", {
                            "client_public_key": client,
                            "request_id": work["request_id"],
                            "chat_history": "A", "cipherkey": "K" * 344,
                            "iv": "I" * 22 + "==",
                            "protocol": "tokenplace_api_v1_relay_e2ee",
                            "version": 1})

                threads = [threading.Thread(target=producer),
                           threading.Thread(target=consumer)]
                for t in threads:
                    t.start()
                try:
                    wait_for(lambda: len(delivered) >= 50, 30, what="load")
                    rs.kill()
                    status, hdrs, data = b.request(
                        "POST", V1 + "/requests", json_body={
                            "server_public_key": node,
                            "client_public_key": client,
                            "request_id": "while-down", "ciphertext": "x",
                            "cipherkey": "K", "iv": "I",
                            "protocol": "tokenplace_api_v1_relay_e2ee",
                            "version": 1})
                    self.assertEqual(status, 503, data)
                    self.assertIn("error", json.loads(data))
                    self.assertEqual(hdrs.get("retry-after"), "1")
                    for r in (a, b):
                        self.assertEqual(r.request("GET", "/livez")[0], 200)
                    before = len(delivered)
                    rs.start()
                    t0 = time.monotonic()
                    wait_for(lambda: len(delivered) > before + 5, 10,
                             what="service resumed")
                    self.assertLess(time.monotonic() - t0, scaled(5.0))
                finally:
                    stop.set()
                    for t in threads:
                        t.join(POLL_WAIT * 2 + 10)
                for r in (a, b):
                    self.assertIsNone(r.proc.poll(), "a relay died")
                self.assertIn(503, statuses)
                self.assertEqual(len(delivered), len(set(delivered)),
                                 "a job was handed out twice")
                self.assertTrue(set(delivered) <= set(acked))


def _metric(relay, name, **labels):
    v = metric_value(relay.metrics(), name, **labels)
    return v or 0


def _long_polls(relay):
    status, body = relay.get_json("/healthz")
    return body.get("apiV1", {}).get("longPolls") if isinstance(body, dict) \
        else None


if __name__ == "__main__":
    main()
