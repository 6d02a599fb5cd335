"""Readiness while the shared state store is down (RELAY_STATE_OUTAGE_READY).

Default (false): /healthz turns 503 while Redis is unreachable, so a
Kubernetes Service drops every replica at once and clients get the
ingress's plain 503. With the setting on (the chart's default), a relay
that has been ready stays ready (200, status "degraded", the failing
"state" check still shown): store routes answer the relay's own JSON 503
with Retry-After, /api/v1 forwarding keeps working, /livez is untouched,
and each such answer is counted. A relay that has never reached its store
(a wrong URL, a store still down at start) stays unready either way, so a
rollout with a bad store setting stops at the first new pod.

Every redis-server, relay and upstream fixture is started here on ephemeral
ports and stopped at the end; every wait polls with a deadline."""

import json
import unittest

from redistest import RedisServer, free_port
from relaytest import Relay, main, metric_value, wait_for
from test_forward import Upstream
from test_state_redis import (JSON, UNAVAILABLE, faucet, healthz, register,
                              wire_key)

COUNTER = "tokenplace_relay_ready_during_state_outage_total"


def env_for(url, up, **extra):
    env = {"RELAY_STATE_URL": url,
           "RELAY_STATE_TIME_SAMPLE_MS": "200",
           "TOKENPLACE_RELAY_UPSTREAM_URL": up.url,
           "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "600000"}
    env.update(extra)
    return env


def state_failed(relay):
    """(status, body) of /healthz once the state check reads fail."""
    status, obj = healthz(relay)
    if obj.get("checks", {}).get("state", {}).get("status") == "fail":
        return status, obj
    return None


class StoreOutage(unittest.TestCase):
    def _outage(self, ready_setting):
        extra = {} if ready_setting is None else {
            "RELAY_STATE_OUTAGE_READY": ready_setting}
        with Upstream() as up, RedisServer() as rs, \
                Relay(env=env_for(rs.url, up, **extra)) as r:
            wait_for(lambda: healthz(r)[0] == 200, 15, what="ready")
            node = wire_key("n")
            register(r, node)
            rs.kill()
            status, obj = wait_for(lambda: state_failed(r), 15,
                                   what="state check failing")
            # Store routes: the relay's own JSON 503 with Retry-After.
            st, hdrs, data = r.request("POST", "/faucet", body=json.dumps({
                "server_public_key": node, "client_public_key": wire_key(),
                "chat_history": "x", "cipherkey": "K", "iv": "I"}),
                headers=JSON)
            self.assertEqual((st, json.loads(data)), (503, UNAVAILABLE))
            self.assertEqual(hdrs.get("retry-after"), "1")
            # Forwarding does not need the store.
            st, _, data = r.request("GET", "/api/v1/embeddings/x")
            self.assertEqual(st, 200, data)
            self.assertEqual(json.loads(data)["path"], "/api/v1/embeddings/x")
            self.assertEqual(r.request("GET", "/livez")[0], 200)
            held = metric_value(r.metrics(), COUNTER) or 0
            # Back: ready with status ok, the counter no longer moves.
            rs.start()
            wait_for(lambda: healthz(r)[1]["status"] == "ok", 15,
                     what="state back")
            register(r, node)       # the restarted store is empty
            self.assertEqual(faucet(r, node, wire_key(), "y")[0], 200)
            after = metric_value(r.metrics(), COUNTER) or 0
            self.assertEqual(healthz(r)[0], 200)
            self.assertEqual(metric_value(r.metrics(), COUNTER) or 0, after)
            return status, obj, held

    def test_default_unready_during_outage(self):
        status, obj, held = self._outage(None)
        self.assertEqual(status, 503, obj)
        self.assertEqual(obj["status"], "degraded")
        self.assertEqual(obj["details"].get("state"), "failed", obj)
        self.assertNotIn("readyDuringStateOutage", obj)
        self.assertEqual(held, 0)

    def test_outage_ready_keeps_a_ready_relay_ready(self):
        status, obj, held = self._outage("true")
        self.assertEqual(status, 200, obj)
        self.assertEqual(obj["status"], "degraded")
        self.assertIs(obj["readyDuringStateOutage"], True)
        # The truth stays in the body for humans and alerts.
        self.assertEqual(obj["details"].get("state"), "failed", obj)
        self.assertIn("unreachable", obj["checks"]["state"]["reason"])
        self.assertGreaterEqual(held, 1)

    def test_never_ready_relay_stays_unready(self):
        """A store that is down from the start (here: nothing listens on
        the port) never lets the relay in, setting or not."""
        port = free_port()
        with Upstream() as up, Relay(env=env_for(
                "redis://127.0.0.1:%d/0" % port, up,
                RELAY_STATE_OUTAGE_READY="true")) as r:
            status, obj = wait_for(lambda: state_failed(r), 15,
                                   what="state check failing")
            self.assertEqual(status, 503, obj)
            self.assertNotIn("readyDuringStateOutage", obj)
            self.assertEqual(metric_value(r.metrics(), COUNTER) or 0, 0)

    def test_another_failing_check_still_unready(self):
        """Only the store is forgiven: with the GPU host's health required
        and failing too, the relay answers 503."""
        with Upstream() as up, RedisServer() as rs, Relay(env=env_for(
                rs.url, up, RELAY_STATE_OUTAGE_READY="true",
                TOKENPLACE_REQUIRE_UPSTREAM_HEALTH="true",
                RELAY_UPSTREAM_HEALTH_INTERVAL_MS="200")) as r:
            wait_for(lambda: healthz(r)[0] == 200, 15, what="ready")
            up.set_health(503)
            rs.kill()

            def both_failing():
                got = state_failed(r)
                if got and got[1]["checks"].get("upstream", {}).get(
                        "status") == "fail":
                    return got
                return None
            status, obj = wait_for(both_failing, 20,
                                   what="state and upstream failing")
            self.assertEqual(status, 503, obj)
            self.assertNotIn("readyDuringStateOutage", obj)


if __name__ == "__main__":
    main()
