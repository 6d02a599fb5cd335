"""End to end through the real relay with the legacy protocol (PROTOCOL.md
sections 1.4, 2 and 3): compute nodes and clients from
tests/fixtures/tp_peers.py with real cryptography, a round trip in each RSA
padding, streaming, a batch of four, the registration token, and many nodes
and clients at once.

TP_STATE_TOPOLOGY (redistest.Deployment) runs the same tests on one relay
(memory://) or on two relays sharing one redis-server, nodes on one and
clients on the other (redis-ab, redis-ba).

Every wait polls with a deadline stretched by TP_TIMEOUT_SCALE; nodes poll
again at once after work and every few tens of milliseconds when idle
(the relay's 10 s hint is for real nodes, not for tests)."""

import json
import secrets
import threading
import time
import traceback
import unittest

from redistest import Deployment
from relaytest import SCALE, main, scaled, wait_for

import tp_peers as tp

SLOW = SCALE > 1                    # valgrind or another slow wrapper
CLIENT_POLL = min(0.05 * SCALE, 0.5)
NODE_IDLE_POLL = min(0.02 * SCALE, 0.2)
HTTP_TIMEOUT = scaled(30)
ANSWER_TIMEOUT = scaled(30)
# Nodes that tests drive by hand poll rarely; keep them from being evicted
# as stale in the middle of a slow (valgrind) run.
NODE_TTL = {"RELAY_SERVER_TTL_SECONDS": str(int(scaled(60)))}

TOKEN_401 = {"error": {"code": 401,
                       "message": "Missing or invalid relay server token"}}


def base_url(relay):
    return "http://127.0.0.1:%d" % relay.port


def make_node(relay, keys, name, **kwargs):
    kwargs.setdefault("poll_interval", NODE_IDLE_POLL)
    kwargs.setdefault("busy_interval", 0)
    kwargs.setdefault("error_interval", NODE_IDLE_POLL)
    return tp.LegacyNode(base_url(relay.node_relay), name=name, keypair=keys,
                         timeout=HTTP_TIMEOUT, **kwargs)


def make_client(relay, keys, name, **kwargs):
    return tp.LegacyClient(base_url(relay.client_relay), keypair=keys,
                           name=name,
                           poll_interval=CLIENT_POLL, timeout=HTTP_TIMEOUT,
                           **kwargs)


def user(text):
    return {"role": "user", "content": text}


def envelope_of(body):
    return {k: body[k] for k in ("chat_history", "cipherkey", "iv")}


class PeersTestCase(unittest.TestCase):
    def assert_node_clean(self, node):
        _, errors, violations = node.snapshot()
        self.assertEqual(errors, [], "node %s saw errors" % node.name)
        self.assertEqual(violations, [],
                         "relay broke the protocol for node %s" % node.name)

    def assert_client_clean(self, client):
        self.assertEqual(client.unexpected, [],
                         "client %s got unexpected replies" % client.name)


class LegacyRoundTrip(PeersTestCase):
    def test_oaep_round_trip(self):
        """c42e76c0 Python node and client.py: OAEP both ways, two turns of
        one conversation, envelopes carried byte for byte."""
        node_keys, client_keys = tp.key_pool(2)
        with Deployment(env=NODE_TTL) as r:
            node = make_node(r, node_keys, "node-a")
            client = make_client(r, client_keys, "alice")
            self.assertIsNone(client.next_server())
            with node:
                server = wait_for(client.next_server, 10,
                                  what="node registered by /sink")
                self.assertEqual(server, node.public_wire)
                turn1 = client.chat([user("Hello, relay")],
                                    timeout=ANSWER_TIMEOUT, server_key=server)
                self.assertEqual(turn1, [
                    user("Hello, relay"),
                    {"role": "assistant",
                     "content": "node-a echoes: Hello, relay"}])
                turn2 = client.chat(turn1 + [user("second turn")],
                                    timeout=ANSWER_TIMEOUT)
                self.assertEqual(turn2[:3], turn1 + [user("second turn")])
                self.assertEqual(turn2[3]["content"],
                                 "node-a echoes: second turn")
                # the answer slot is handed out once
                self.assertIsNone(client.retrieve_once())
            jobs, _, _ = node.snapshot()
            self.assert_node_clean(node)
            self.assert_client_clean(client)
            self.assertEqual([j.padding for j in jobs], [tp.OAEP, tp.OAEP])
            self.assertEqual(client.paddings_seen, [tp.OAEP, tp.OAEP])
            for job, body in zip(jobs, client.faucet_bodies):
                self.assertEqual(job.fields, {
                    k: body[k] for k in tp.LEGACY_ENVELOPE_FIELDS})
            self.assertEqual(client.retrieved,
                             [envelope_of(j.source_body) for j in jobs])
            for reply in node.work_replies:
                self.assertEqual(set(reply), set(tp.LEGACY_ENVELOPE_FIELDS) |
                                 {"next_ping_in_x_seconds"}, reply)
                self.assertEqual(reply["next_ping_in_x_seconds"], 10)

    def test_pkcs1v15_browser_style(self):
        """JSEncrypt-style clients wrap with PKCS#1 v1.5 and the HEAD node
        answers in kind; the node unwraps by falling back from OAEP. An
        OAEP client of the same node still works."""
        node_keys, browser_keys, cli_keys = tp.key_pool(3)
        with Deployment(env=NODE_TTL) as r:
            node = make_node(r, node_keys, "node-p", padding=tp.PKCS1V15)
            browser = make_client(r, browser_keys, "browser",
                                  padding=tp.PKCS1V15)
            cli = make_client(r, cli_keys, "cli")
            with node:
                wait_for(browser.next_server, 10, what="node registered")
                answer = browser.chat([user("from a browser")],
                                      timeout=ANSWER_TIMEOUT)
                self.assertEqual(answer[-1]["content"],
                                 "node-p echoes: from a browser")
                answer = cli.chat([user("from the CLI")],
                                  timeout=ANSWER_TIMEOUT)
                self.assertEqual(answer[-1]["content"],
                                 "node-p echoes: from the CLI")
            jobs, _, _ = node.snapshot()
            self.assert_node_clean(node)
            self.assert_client_clean(browser)
            self.assert_client_clean(cli)
            self.assertEqual([j.padding for j in jobs],
                             [tp.PKCS1V15, tp.OAEP])
            self.assertEqual(browser.paddings_seen, [tp.PKCS1V15])
            self.assertEqual(cli.paddings_seen, [tp.PKCS1V15])


class LegacyStreaming(PeersTestCase):
    def test_stream_step_by_step(self):
        """/faucet with stream, the session made at dequeue, chunks drained
        in two parts, the final drain closes the session."""
        node_keys, client_keys = tp.key_pool(2)
        with Deployment(env=NODE_TTL) as r:
            node = make_node(r, node_keys, "streamer")
            client = make_client(r, client_keys, "bob")
            node.run_once()                 # registers, nothing queued
            self.assertEqual(node.work_replies, [])
            client.send([user("stream me a story")], node.public_wire,
                        stream=True)
            # no session until the node has taken the request
            self.assertIsNone(client.stream_retrieve_once())
            jobs, _ = node.poll_once()
            self.assertEqual(len(jobs), 1)
            reply = node.work_replies[-1]
            self.assertIs(reply.get("stream"), True, reply)
            session = reply["stream_session_id"]
            self.assertIsInstance(session, str)
            self.assertTrue(session)
            job = jobs[0]
            self.assertEqual(job.stream_session_id, session)
            node.open_job(job)
            job.answer = node.responder(job.messages)
            pieces = tp.split_text(job.answer, 3)
            writer = node.stream_writer(job)

            result = client.stream_retrieve_once()
            self.assertIsNotNone(result, client.unexpected)
            self.assertEqual(result.session_id, session)
            self.assertEqual(result.payloads, [])
            self.assertFalse(result.final)

            writer.send(pieces[0])
            writer.send(pieces[1])
            result = client.stream_retrieve_once(result)
            self.assertEqual([p["delta"] for p in result.payloads],
                             pieces[:2])
            self.assertFalse(result.final)

            writer.send(pieces[2])
            writer.finish()
            result = client.stream_retrieve_once(result)
            self.assertTrue(result.final)
            self.assertEqual(result.text, "streamer echoes: stream me a story")
            conv = client.check_answer(result.conversation)
            self.assertEqual(conv[-1]["content"], result.text)
            # the final drain removed the session; nothing came via /source
            self.assertIsNone(client.stream_retrieve_once())
            self.assertIsNone(client.retrieve_once())
            self.assert_node_clean(node)
            self.assert_client_clean(client)

    def test_stream_with_running_node(self):
        node_keys, client_keys, other_keys = tp.key_pool(3)
        with Deployment(env=NODE_TTL) as r:
            node = make_node(r, node_keys, "streamer", stream_pieces=6)
            client = make_client(r, client_keys, "carol")
            plain = make_client(r, other_keys, "dave")
            with node:
                server = wait_for(client.next_server, 10,
                                  what="node registered")
                client.send([user("a streamed answer, please")], server,
                            stream=True)
                plain.send([user("a plain answer")], server)
                result = client.wait_stream(ANSWER_TIMEOUT)
                answer = plain.wait_response(ANSWER_TIMEOUT)
            self.assertEqual(result.text,
                             "streamer echoes: a streamed answer, please")
            self.assertEqual(len(result.payloads), 7)
            self.assertEqual(answer[-1]["content"],
                             "streamer echoes: a plain answer")
            self.assertIsNone(client.retrieve_once())
            self.assert_node_clean(node)
            self.assert_client_clean(client)
            self.assert_client_clean(plain)


class LegacyBatch(PeersTestCase):
    def test_batch_of_four(self):
        """Six queued requests, max_batch_size 4: a batch of four in FIFO
        order repeating the first at the top level (one of them a stream
        with its own session), then a batch of two, then nothing."""
        keys = tp.key_pool(7)
        with Deployment(env=NODE_TTL) as r:
            node = make_node(r, keys[0], "batcher", max_batch_size=4)
            node.run_once()
            self.assertEqual(node.work_replies, [])
            clients = [make_client(r, keys[i + 1], "c%d" % i)
                       for i in range(6)]
            for i, c in enumerate(clients):
                c.send([user("batch item %d" % i)], node.public_wire,
                       stream=(i == 2))

            first, _ = node.poll_once()
            reply = node.work_replies[-1]
            self.assertEqual(len(reply["batch"]), 4, reply)
            self.assertEqual([j.client_public_key for j in first],
                             [c.public_wire for c in clients[:4]])
            self.assertEqual(reply["client_public_key"],
                             clients[0].public_wire)
            self.assertEqual([item.get("stream") for item in reply["batch"]],
                             [False, False, True, False])
            self.assertNotIn("stream", reply)
            self.assertIsInstance(reply["batch"][2].get("stream_session_id"),
                                  str)
            for job in first:
                node.handle(job)

            second, _ = node.poll_once()
            reply = node.work_replies[-1]
            self.assertEqual(len(reply["batch"]), 2, reply)
            self.assertEqual([j.client_public_key for j in second],
                             [c.public_wire for c in clients[4:]])
            for job in second:
                node.handle(job)

            before = len(node.work_replies)
            third, _ = node.poll_once()
            self.assertEqual(third, [])
            self.assertEqual(len(node.work_replies), before)

            for i, c in enumerate(clients):
                expected = "batcher echoes: batch item %d" % i
                if i == 2:
                    got = c.wait_stream(ANSWER_TIMEOUT).text
                else:
                    got = c.wait_response(ANSWER_TIMEOUT)[-1]["content"]
                self.assertEqual(got, expected)
                self.assert_client_clean(c)
            self.assertEqual([j.messages[0]["content"]
                              for j in node.snapshot()[0]],
                             ["batch item %d" % i for i in range(6)])
            self.assert_node_clean(node)


class LegacyToken(PeersTestCase):
    def test_registration_token_end_to_end(self):
        """TOKEN_PLACE_RELAY_SERVER_TOKEN (and the rotation list) guard
        /sink, /source and /stream/source; clients need no token."""
        keys = tp.key_pool(6)
        env = dict(NODE_TTL,
                   TOKEN_PLACE_RELAY_SERVER_TOKEN="  node-secret  ",
                   TOKEN_PLACE_RELAY_SERVER_TOKENS="rotated-a,rotated-b")
        with Deployment(env=env) as r:
            anon = make_node(r, keys[0], "anon")
            wrong = make_node(r, keys[1], "wrong", token="node-secret-2")
            for node in (anon, wrong):
                with self.assertRaises(tp.RelayError) as cm:
                    node.sink()
                self.assertEqual((cm.exception.status, cm.exception.body),
                                 (401, TOKEN_401), node.name)
            client = make_client(r, keys[2], "erin")
            self.assertIsNone(client.next_server(),
                              "a refused node was registered")

            good = make_node(r, keys[3], "good", token="node-secret")
            rotated = make_node(r, keys[4], "rotated", token="rotated-b")
            spaced = make_node(r, keys[5], "spaced", token=" node-secret ")
            for node in (good, rotated, spaced):
                self.assertNotIn("client_public_key", node.sink())
            self.assertIn(client.next_server(),
                          {good.public_wire, rotated.public_wire,
                           spaced.public_wire})

            client.send([user("guarded")], good.public_wire)
            # no token: cannot take the job, cannot forge an answer
            with self.assertRaises(tp.RelayError) as cm:
                anon.sink()
            self.assertEqual(cm.exception.status, 401)
            forged = {"client_public_key": client.public_wire}
            forged.update(tp.seal_json([user("guarded"), {
                "role": "assistant", "content": "forged"}], client.keys))
            status, obj = r.post_json("/source", forged)
            self.assertEqual((status, obj), (401, TOKEN_401))
            self.assertIsNone(client.retrieve_once())

            good.run_once()
            answer = client.wait_response(ANSWER_TIMEOUT)
            self.assertEqual(answer[-1]["content"], "good echoes: guarded")

            client.send([user("guarded stream")], rotated.public_wire,
                        stream=True)
            jobs, _ = rotated.poll_once()
            self.assertEqual(len(jobs), 1)
            status, obj = r.post_json("/stream/source", {
                "session_id": jobs[0].stream_session_id,
                "chunk": "forged", "final": True})
            self.assertEqual((status, obj), (401, TOKEN_401))
            rotated.handle(jobs[0])
            result = client.wait_stream(ANSWER_TIMEOUT)
            self.assertEqual(result.text, "rotated echoes: guarded stream")
            for node in (good, rotated, spaced):
                self.assert_node_clean(node)
            self.assert_client_clean(client)


class Lane:
    """One node as the clients see it: requests to it are numbered under a
    lock held across the /faucet call, so seq order is the order in which
    the relay accepted them, which FIFO delivery must preserve."""

    def __init__(self, node):
        self.node = node
        self.lock = threading.Lock()
        self.next_seq = 0
        self.sent = {}              # seq -> (client index, round, content)


class LegacyConcurrency(PeersTestCase):
    NODES = 8
    CLIENTS = 64
    ROUNDS = 3 if SLOW else 4

    def test_many_nodes_and_clients(self):
        """8 nodes and 64 clients on their own threads. Round 0 is queued
        before any node polls (queues several deep), later rounds overlap
        with everything. Each answer must reach and decrypt for the client
        that asked, come from the node it asked, in per-node FIFO order,
        nothing lost, nothing twice."""
        keys = tp.key_pool(self.NODES + self.CLIENTS)
        with Deployment(env=NODE_TTL) as r:
            nodes = [make_node(r, keys[i], "node-%d" % i)
                     for i in range(self.NODES)]
            for node in nodes:
                node.run_once()
            lanes = {n.public_wire: Lane(n) for n in nodes}
            clients = [make_client(r, keys[self.NODES + i], "client-%d" % i)
                       for i in range(self.CLIENTS)]
            failures = []
            answers = []
            enqueued = [0]
            cond = threading.Condition()

            def run_client(idx, client):
                try:
                    for rnd in range(self.ROUNDS):
                        server = client.next_server()
                        lane = lanes.get(server)
                        if lane is None:
                            raise AssertionError("/next_server gave %r"
                                                 % (server,))
                        with lane.lock:
                            seq = lane.next_seq
                            content = json.dumps({
                                "client": idx, "round": rnd, "seq": seq,
                                "nonce": secrets.token_hex(8)})
                            client.send([user(content)], server)
                            lane.sent[seq] = (idx, rnd, content)
                            lane.next_seq += 1
                        if rnd == 0:
                            with cond:
                                enqueued[0] += 1
                                cond.notify_all()
                        conv = client.wait_response(ANSWER_TIMEOUT)
                        want = "%s echoes: %s" % (lane.node.name, content)
                        if conv[-1]["content"] != want:
                            raise AssertionError("%s round %d: got %r, want "
                                                 "%r" % (client.name, rnd,
                                                         conv[-1], want))
                        with cond:
                            answers.append((idx, rnd))
                except Exception:       # reported by the main thread
                    with cond:
                        failures.append("%s: %s" % (client.name,
                                                    traceback.format_exc()))
                        enqueued[0] += 1
                        cond.notify_all()

            threads = [threading.Thread(target=run_client, args=(i, c),
                                        daemon=True)
                       for i, c in enumerate(clients)]
            started = time.monotonic()
            for t in threads:
                t.start()
            with cond:
                ok = cond.wait_for(lambda: enqueued[0] >= self.CLIENTS,
                                   scaled(60))
            self.assertTrue(ok, "round 0 was not queued in time")
            self.assertEqual(failures, [])
            depth = sum(len(l.sent) for l in lanes.values())
            self.assertEqual(depth, self.CLIENTS)
            for node in nodes:
                node.start()
            deadline = time.monotonic() + ANSWER_TIMEOUT * (self.ROUNDS + 1)
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            stuck = [c.name for c, t in zip(clients, threads) if t.is_alive()]
            stopped = [n.stop(scaled(30)) for n in nodes]
            elapsed = time.monotonic() - started
            node_trouble = {n.name: n.snapshot()[1:] for n in nodes
                            if n.snapshot()[1] or n.snapshot()[2]}
            self.assertEqual(stuck, [], "clients still waiting; failures: "
                             "%s; node errors/violations: %r"
                             % ("\n".join(failures), node_trouble))
            self.assertTrue(all(stopped), "a node thread did not stop")
            self.assertEqual(failures, [], "\n".join(failures))
            self.assertEqual(sorted(answers),
                             [(i, k) for i in range(self.CLIENTS)
                              for k in range(self.ROUNDS)])

            total = 0
            for lane in lanes.values():
                jobs, _, _ = lane.node.snapshot()
                self.assert_node_clean(lane.node)
                seqs = [json.loads(j.messages[0]["content"])["seq"]
                        for j in jobs]
                self.assertEqual(seqs, list(range(lane.next_seq)),
                                 "%s: dequeued out of FIFO order, lost or "
                                 "twice" % lane.node.name)
                for job in jobs:
                    inner = json.loads(job.messages[0]["content"])
                    idx, rnd, content = lane.sent[inner["seq"]]
                    self.assertEqual((inner["client"], inner["round"]),
                                     (idx, rnd))
                    self.assertEqual(job.client_public_key,
                                     clients[idx].public_wire)
                    self.assertEqual(job.padding, tp.OAEP)
                total += len(jobs)
            self.assertEqual(total, self.CLIENTS * self.ROUNDS)

            # nothing left over anywhere: no stray answer, no queued job
            for client in clients:
                self.assert_client_clean(client)
                self.assertIsNone(client.retrieve_once())
            for node in nodes:
                jobs, _ = node.poll_once()
                self.assertEqual(jobs, [])
            print("concurrency: %d nodes, %d clients, %d rounds, %d "
                  "requests in %.1f s" % (self.NODES, self.CLIENTS,
                                          self.ROUNDS, total, elapsed))


if __name__ == "__main__":
    main()
