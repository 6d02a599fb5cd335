"""The relay on Redis set-ups people really run (issue 20, part 3), each
against Debian's redis-server started by the test:

* an ACL user (made with ACL SETUSER) without the deployment's wake-up
  channels, the Redis 7 default (resetchannels), without PSUBSCRIBE, or
  with a channel rule that covers PUBLISH but not the literal PSUBSCRIBE
  pattern, or without the keys: the start ends with exit 78 naming the
  missing permission; with the grants the relay serves;
* channels revoked while the relay runs: the enqueue script's PUBLISH is
  refused after its writes, and the request is still accepted (never a
  503 for a job that was queued); the subscriber's refused subscription
  is logged and counted;
* a failover that leaves the connection open (FaultProxy): READONLY,
  MASTERDOWN and LOADING answers, and a socket that accepts and then
  closes, are each one loss: down at once, no "up" until the server
  serves again, dials backed off, counted;
* a real replica (REPLICAOF) answers READONLY to every call the relay
  makes, TIME included: down until it is a primary again;
* a server at maxclients at start: the relay starts unready and retries
  (exit 78 only for a real authentication error).

Waits poll with deadlines (TP_TIMEOUT_SCALE stretches them under
valgrind); the one bound on a count (dials while the server refuses) is
computed from the time the test actually took, so a slow machine cannot
break it.
"""

import time
import unittest

from redistest import FaultProxy, RedisServer
from relaytest import Relay, main, metric_value, scaled, wait_for
from test_state_redis import (healthz, redis_env, register, start_expecting_exit,
                              wire_key, faucet)

V1 = "/api/v1/relay"
SECRET = "acl-secret-31337"
NODE_KEY = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K" + "N" * 560


def acl_url(rs, user="app"):
    return "redis://%s:%s@127.0.0.1:%d/0" % (user, SECRET, rs.port)


def setuser(rs, *rules, user="app"):
    rs.command("ACL", "DELUSER", user)
    rs.command("ACL", "SETUSER", user, "on", ">" + SECRET, *rules)


def lines(relay, message):
    return [l for l in relay.logs() if l.get("message") == message]


def transitions(relay, downs, ups):
    """Waits until the relay's log shows `downs` down and `ups` up lines
    (the harness reads its stdout on a thread of its own, which may lag
    behind an HTTP answer), then returns the counts it has: a flap would
    show as more."""
    def counts():
        return (len(lines(relay, "relay.state_store_down")),
                len(lines(relay, "relay.state_store_up")))
    wait_for(lambda: counts()[0] >= downs and counts()[1] >= ups, 10,
             what="%d down and %d up lines" % (downs, ups))
    return counts()


def metric(relay, name, **labels):
    return metric_value(relay.metrics(), name, **labels) or 0


def v1_register(relay):
    status, body = relay.post_json(V1 + "/servers/register", {
        "server_public_key": NODE_KEY,
        "capabilities": __import__("tp_peers_v1").default_capabilities(4)})
    assert status == 200, (status, body)


def v1_enqueue(relay, rid):
    return relay.request("POST", V1 + "/requests", json_body={
        "server_public_key": NODE_KEY, "client_public_key": "C" * 600,
        "request_id": rid, "ciphertext": "x" * 64, "cipherkey": "K" * 344,
        "iv": "I" * 22 + "==", "protocol": "tokenplace_api_v1_relay_e2ee",
        "version": 1})


class AclUsers(unittest.TestCase):
    def test_missing_permissions_end_the_start_naming_them(self):
        keys = "~{tokenplace:}*"
        cmds = ["+@all", "-@dangerous"]
        cases = [
            ("no channels (resetchannels)", [keys, "resetchannels"] + cmds,
             "PUBLISH to"),
            ("a channel rule PSUBSCRIBE does not match literally",
             [keys, "resetchannels", "&{tokenplace:}*"] + cmds,
             "PSUBSCRIBE to"),
            ("no PSUBSCRIBE command",
             [keys, "resetchannels", "&{tokenplace:}wake:*"] + cmds +
             ["-psubscribe"], "PSUBSCRIBE to"),
            ("no keys", ["resetkeys", "resetchannels",
                         "&{tokenplace:}wake:*"] + cmds, "~{tokenplace:}*"),
        ]
        with RedisServer() as rs:
            for name, rules, missing in cases:
                with self.subTest(name):
                    setuser(rs, *rules)
                    code, out, raw = start_expecting_exit(
                        {"RELAY_STATE_URL": acl_url(rs)})
                    self.assertEqual(code, 78, raw)
                    bad = [l for l in out if l.get("message") ==
                           "relay.state_config_invalid"]
                    self.assertTrue(bad, raw)
                    self.assertEqual(bad[0]["setting"], "RELAY_STATE_URL")
                    self.assertIn(missing, bad[0]["reason"])
                    self.assertNotIn(SECRET.encode(), raw)
            # the grants the docs give: the relay serves
            setuser(rs, keys, "resetchannels", "&{tokenplace:}wake:*", *cmds)
            with Relay(env=redis_env(rs, RELAY_STATE_URL=acl_url(rs))) as r:
                self.assertEqual(healthz(r)[0], 200)
                v1_register(r)
                self.assertEqual(v1_enqueue(r, "granted")[0], 200)
                status, work = r.post_json(V1 + "/servers/poll", {
                    "server_public_key": NODE_KEY})
                self.assertEqual((status, work.get("request_id")),
                                 (200, "granted"))
                self.assertIsNone(r.find_log("relay.state_subscribe_refused"))

    def test_channels_revoked_at_run_time_never_fail_a_queued_request(self):
        """The enqueue script PUBLISHes after its writes; when the ACL
        refuses that PUBLISH the request is queued all the same, so the
        client gets 200, not 503, and a node claims it. Redis drops the
        subscriber when its channels go; the new subscription is refused:
        logged once, counted (kind="noperm"), retried with back-off."""
        with RedisServer() as rs:
            setuser(rs, "~{tokenplace:}*", "resetchannels",
                    "&{tokenplace:}wake:*", "+@all", "-@dangerous")
            with Relay(env=redis_env(rs, RELAY_STATE_URL=acl_url(rs))) as r:
                v1_register(r)
                rs.command("ACL", "SETUSER", "app", "resetchannels")
                status, _, data = v1_enqueue(r, "after-revoke")
                self.assertEqual(status, 200, data)
                status, work = r.post_json(V1 + "/servers/poll", {
                    "server_public_key": NODE_KEY})
                self.assertEqual((status, work.get("request_id")),
                                 (200, "after-revoke"))
                r.wait_log("relay.state_subscribe_refused", timeout=30)
                wait_for(lambda: metric(
                    r, "tokenplace_relay_state_errors_total",
                    kind="noperm") >= 2, 30, what="refusals retried")
                self.assertEqual(len(lines(
                    r, "relay.state_subscribe_refused")), 1)
                self.assertIsNone(r.find_log("relay.state_script_error"))
                self.assertEqual(healthz(r)[0], 200)


class Failover(unittest.TestCase):
    ANSWERS = [
        "-READONLY You can't write against a read only replica.",
        "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data "
        "is set to 'no'.",
        "-LOADING Redis is loading the dataset in memory",
        "reset",
    ]

    def test_answers_that_say_the_server_cannot_serve_are_a_loss(self):
        """Through a proxy that keeps every connection open: each answer
        (and a socket that accepts, then closes at the first command, as a
        dying server's does) takes the store down at once (one down line),
        the probes it keeps answering keep it down (no up line), dials
        back off (100 ms doubling to 2 s), and one up line follows when
        the server serves again."""
        with RedisServer(unix=True) as rs, FaultProxy(rs) as px, \
                Relay(env=redis_env(rs, RELAY_STATE_URL=px.url)) as r:
            node = wire_key("n")
            register(r, node)
            for i, answer in enumerate(self.ANSWERS):
                with self.subTest(answer[:12]):
                    px.set_mode(answer)
                    started = time.monotonic()
                    dials0 = px.accepted
                    st, _ = faucet(r, node, wire_key("c"), "x%d" % i)
                    self.assertEqual(st, 503)
                    status, obj = wait_for(lambda: (lambda h: h if h[0] == 503
                                                    else None)(healthz(r)),
                                           10, what="/healthz 503")
                    # /healthz is public and says only "unreachable"; the
                    # answer itself is in the down line of the log
                    self.assertIn("unreachable",
                                  obj["checks"]["state"]["reason"])
                    down = wait_for(lambda: (lambda d: d if len(d) > i
                                             else None)(
                        lines(r, "relay.state_store_down")), 10,
                        what="down line")
                    if answer != "reset":
                        self.assertIn(answer[1:9], down[i]["reason"])
                    # probes are answered the same way: still down
                    wait_for(lambda: px.accepted >= dials0 + 3, 30,
                             what="probes")
                    self.assertEqual(len(lines(r, "relay.state_store_up")), i)
                    self.assertEqual(healthz(r)[0], 503)
                    took = time.monotonic() - started
                    # the pool's probes and the subscriber's dials, each
                    # backed off: 5 within the first 3.1 s, then one per 2 s
                    self.assertLessEqual(px.accepted - dials0,
                                         2 * (6 + took / 2), took)
                    px.set_mode("pass")
                    wait_for(lambda: healthz(r)[0] == 200, 30, what="ready")
                    register(r, node)
                    self.assertEqual(faucet(r, node, wire_key("c"),
                                            "y%d" % i)[0], 200)
                    self.assertEqual(transitions(r, i + 1, i + 1),
                                     (i + 1, i + 1))
            m = r.metrics()
            self.assertGreaterEqual(metric_value(
                m, "tokenplace_relay_state_errors_total", kind="failover"), 3)
            self.assertIsNone(r.find_log("relay.state_script_error"))

    def test_a_real_replica_is_down_until_it_is_a_primary_again(self):
        """REPLICAOF on the relay's server (what a failover does to the old
        primary): every call the relay makes is a script that may write,
        TIME included, so the replica answers READONLY and the store stays
        down, though the connections and TIME still work."""
        with RedisServer() as primary, RedisServer() as rs, \
                Relay(env=redis_env(rs)) as r:
            node = wire_key("n")
            register(r, node)
            rs.command("REPLICAOF", "127.0.0.1", str(primary.port))
            wait_for(lambda: faucet(r, node, wire_key("c"), "x")[0] == 503,
                     10, what="503 on the replica")
            wait_for(lambda: healthz(r)[0] == 503, 10, what="/healthz 503")
            down = r.wait_log("relay.state_store_down")
            self.assertIn("READONLY", down["reason"])
            n0 = metric(r, "tokenplace_relay_state_reconnects_total")
            wait_for(lambda: metric(
                r, "tokenplace_relay_state_reconnects_total") >= n0 + 3, 30,
                what="probes on the replica")
            self.assertIsNone(r.find_log("relay.state_store_up"))
            self.assertGreater(metric(r, "tokenplace_relay_state_errors_total",
                                      kind="failover"), 0)
            rs.command("REPLICAOF", "NO", "ONE")
            wait_for(lambda: healthz(r)[0] == 200, 30, what="ready")
            register(r, node)
            self.assertEqual(faucet(r, node, wire_key("c"), "y")[0], 200)
            self.assertEqual(transitions(r, 1, 1), (1, 1))


class BusyAtStart(unittest.TestCase):
    def _fill(self, rs):
        """Connections until the server refuses one; returns them."""
        held = []
        while True:
            s = rs._connect()
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = s.recv(200)
            if b"max number of clients" in reply:
                s.close()
                return held
            held.append(s)
            if len(held) > 64:
                raise AssertionError("maxclients not reached")

    def test_max_clients_at_start_is_unready_and_retried(self):
        """At maxclients the server answers AUTH (or, without a password,
        the first command) with "max number of clients reached": the relay
        starts unready, says why, and becomes ready once connections free
        up; only a real authentication error exits 78."""
        for password in ("pw-busy", None):
            with self.subTest(password=password), RedisServer(
                    password=password, extra=["--maxclients", "8"]) as rs:
                url = rs.url if password is None else \
                    "redis://:%s@127.0.0.1:%d/0" % (password, rs.port)
                held = self._fill(rs)
                try:
                    with Relay(env=redis_env(
                            rs, RELAY_STATE_URL=url,
                            RELAY_STATE_POOL_SIZE="2")) as r:
                        status, obj = healthz(r)
                        self.assertEqual(status, 503, obj)
                        self.assertIn("max number of clients",
                                      r.wait_log("relay.state_store_down")
                                      ["reason"])
                        self.assertIsNone(
                            r.find_log("relay.state_config_invalid"))
                        for s in held:
                            s.close()
                        wait_for(lambda: healthz(r)[0] == 200, 30,
                                 what="ready")
                        node = wire_key("n")
                        register(r, node)
                        self.assertEqual(faucet(r, node, wire_key("c"),
                                                "x")[0], 200)
                finally:
                    for s in held:
                        s.close()
                if password is not None:
                    code, out, raw = start_expecting_exit(
                        {"RELAY_STATE_URL": "redis://:wrong@127.0.0.1:%d/0"
                         % rs.port})
                    self.assertEqual(code, 78, raw)


if __name__ == "__main__":
    main()
