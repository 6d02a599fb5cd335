"""Offline checks of the test peers (tests/fixtures/tp_peers.py): key wire
form, the hybrid scheme of PROTOCOL.md 2.2 in both paddings, interop with
an independent implementation (the cryptography primitives used directly,
and the openssl command line), and the legacy node and client logic against
a scripted fake relay. No relay process, no network."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import tp_peers as tp

OAEP_SHA256 = rsa_padding.OAEP(mgf=rsa_padding.MGF1(algorithm=hashes.SHA256()),
                               algorithm=hashes.SHA256(), label=None)


def hand_seal(plaintext, public_key, pad):
    """PROTOCOL.md 2.2 written out with the primitives, independent of
    tp_peers: AES-256-CBC, PKCS#7, the base64 text of the key RSA-wrapped."""
    key = os.urandom(32)
    iv = os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ct = enc.update(data) + enc.finalize()
    wrapped = public_key.encrypt(base64.b64encode(key), pad)
    return {"chat_history": base64.b64encode(ct).decode(),
            "cipherkey": base64.b64encode(wrapped).decode(),
            "iv": base64.b64encode(iv).decode()}


def hand_open(envelope, private_key, pad):
    key_text = private_key.decrypt(base64.b64decode(envelope["cipherkey"]), pad)
    key = base64.b64decode(key_text)
    dec = Cipher(algorithms.AES(key),
                 modes.CBC(base64.b64decode(envelope["iv"]))).decryptor()
    data = dec.update(base64.b64decode(envelope["chat_history"])) + \
        dec.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(data) + unpadder.finalize(), key_text


class Keys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = tp.key_pool(2)

    def test_wire_form_is_base64_of_spki_pem(self):
        wire = self.a.public_wire
        self.assertTrue(wire.startswith(tp.WIRE_KEY_PREFIX))
        pem = base64.b64decode(wire, validate=True).decode("ascii")
        lines = pem.split("\n")
        self.assertEqual(lines[0], "-----BEGIN PUBLIC KEY-----")
        self.assertEqual(lines[-2], "-----END PUBLIC KEY-----")
        self.assertEqual(lines[-1], "")
        self.assertTrue(all(len(x) == 64 for x in lines[1:-3]))
        key = tp.public_key_from_wire(wire)
        self.assertEqual(key.key_size, 2048)
        self.assertEqual(key.public_numbers(),
                         self.a.public_key.public_numbers())

    def test_raw_pem_and_wrapped_base64_are_accepted(self):
        pem = tp.public_key_pem(self.a.public_key).decode("ascii")
        self.assertEqual(tp.public_key_from_wire(pem).public_numbers(),
                         self.a.public_key.public_numbers())
        wire = self.a.public_wire
        folded = "\n".join(wire[i:i + 76] for i in range(0, len(wire), 76))
        self.assertEqual(tp.public_key_from_wire(folded).public_numbers(),
                         self.a.public_key.public_numbers())

    def test_bad_wire_keys_are_refused(self):
        der_body = "".join(tp.public_key_pem(self.a.public_key).decode()
                           .split("\n")[1:-2])
        # the c42e76c0 browser's PEM body (b64 of DER) is not a wire key
        for bad in ("", "not base64!", der_body, None, 42):
            with self.assertRaises(tp.CryptoError, msg=repr(bad)):
                tp.public_key_from_wire(bad)

    def test_generation(self):
        for bits in (1024, 2047, 2100):
            with self.assertRaises(ValueError):
                tp.KeyPair.generate(bits)
        fresh = tp.KeyPair.generate()
        self.assertEqual(fresh.private_key.key_size, 2048)
        self.assertEqual(fresh.public_key.public_numbers().e, 65537)
        again = tp.KeyPair.from_pem(fresh.private_pem())
        self.assertEqual(again.public_wire, fresh.public_wire)
        self.assertTrue(fresh.private_pem().startswith(
            b"-----BEGIN PRIVATE KEY-----\n"))

    def test_pool_is_stable_and_distinct(self):
        first = tp.key_pool(3)
        self.assertEqual([k.public_wire for k in first[:2]],
                         [self.a.public_wire, self.b.public_wire])
        self.assertEqual(len({k.public_wire for k in first}), 3)


class Hybrid(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = tp.key_pool(2)

    def test_oaep_round_trip_and_sizes(self):
        text = "h\u00e9llo \u2603 " * 50
        env = tp.seal(text, self.a.public_wire)
        self.assertEqual(set(env), {"chat_history", "cipherkey", "iv"})
        self.assertEqual(len(env["cipherkey"]), 344)
        self.assertEqual(len(env["iv"]), 24)
        self.assertEqual(len(base64.b64decode(env["iv"])), 16)
        data, used = tp.open_envelope(self.a, env)
        self.assertEqual(data.decode("utf-8"), text)
        self.assertEqual(used, tp.OAEP)
        # what is wrapped is the 44-byte base64 text of the AES-256 key
        key_text = self.a.private_key.decrypt(
            base64.b64decode(env["cipherkey"]), OAEP_SHA256)
        self.assertEqual(len(key_text), 44)
        self.assertEqual(len(base64.b64decode(key_text, validate=True)), 32)

    def test_pkcs1v15_round_trip_falls_back(self):
        env = tp.seal_json([{"role": "user", "content": "x"}], self.a,
                           tp.PKCS1V15)
        obj, used = tp.open_json(self.a, env)
        self.assertEqual(obj, [{"role": "user", "content": "x"}])
        self.assertEqual(used, tp.PKCS1V15)
        wrapped = base64.b64decode(env["cipherkey"])
        self.assertEqual(len(wrapped), 256)
        key_text = self.a.private_key.decrypt(wrapped,
                                              rsa_padding.PKCS1v15())
        self.assertEqual(len(key_text), 44)
        with self.assertRaises(ValueError):
            self.a.private_key.decrypt(wrapped, OAEP_SHA256)

    def test_api_v1_field_name(self):
        env = tp.seal("{}", self.a, field="ciphertext")
        self.assertIn("ciphertext", env)
        self.assertEqual(tp.open_envelope(self.a, env)[0], b"{}")
        env["chat_history"] = env["ciphertext"]
        self.assertEqual(tp.open_envelope(self.a, env)[0], b"{}")

    def test_pkcs7_block_boundaries(self):
        for n, blocks in ((0, 1), (15, 1), (16, 2), (17, 2), (32, 3)):
            env = tp.seal(b"a" * n, self.a)
            self.assertEqual(len(base64.b64decode(env["chat_history"])),
                             16 * blocks, n)
            self.assertEqual(tp.open_envelope(self.a, env)[0], b"a" * n)

    def test_fresh_key_and_iv_every_time(self):
        e1 = tp.seal("same", self.a)
        e2 = tp.seal("same", self.a)
        self.assertNotEqual(e1["iv"], e2["iv"])
        self.assertNotEqual(e1["chat_history"], e2["chat_history"])
        self.assertNotEqual(e1["cipherkey"], e2["cipherkey"])

    def test_interop_with_hand_written_scheme(self):
        msg = json.dumps([{"role": "user", "content": "interop"}]).encode()
        for pad, name in ((OAEP_SHA256, tp.OAEP),
                          (rsa_padding.PKCS1v15(), tp.PKCS1V15)):
            env = hand_seal(msg, self.a.public_key, pad)
            self.assertEqual(tp.open_envelope(self.a, env), (msg, name))
            env = tp.seal(msg, self.a, name)
            data, key_text = hand_open(env, self.a.private_key, pad)
            self.assertEqual(data, msg)
            self.assertEqual(len(key_text), 44)

    def test_failures_raise_crypto_error(self):
        env = tp.seal("secret", self.a)
        with self.assertRaises(tp.CryptoError):
            tp.open_envelope(self.b, env)           # wrong private key
        env_p = tp.seal("secret", self.a, tp.PKCS1V15)
        with self.assertRaises(tp.CryptoError):
            tp.open_envelope(self.b, env_p)
        bad = dict(env, chat_history=env["chat_history"][:-4])
        with self.assertRaises(tp.CryptoError):
            tp.open_envelope(self.a, bad)           # not whole blocks
        with self.assertRaises(tp.CryptoError):
            tp.open_envelope(self.a, dict(env, iv="AAAA"))
        with self.assertRaises(tp.CryptoError):
            tp.open_envelope(self.a, dict(env, cipherkey="%%%"))
        with self.assertRaises(tp.CryptoError):
            tp.open_envelope(self.a, {"cipherkey": env["cipherkey"]})
        # a flipped byte in the last block breaks PKCS#7 or the JSON
        ct = bytearray(base64.b64decode(env["chat_history"]))
        ct[-1] ^= 0x5a
        flipped = dict(env, chat_history=base64.b64encode(bytes(ct)).decode())
        with self.assertRaises(tp.CryptoError):
            tp.open_json(self.a, flipped)


@unittest.skipUnless(shutil.which("openssl"), "openssl command not found")
class OpenSSLInterop(unittest.TestCase):
    """The openssl command line as the independent peer."""

    @classmethod
    def setUpClass(cls):
        cls.key = tp.key_pool(1)[0]
        cls.dir = tempfile.mkdtemp(prefix="tp-peers-")
        cls.priv = os.path.join(cls.dir, "key.pem")
        cls.pub = os.path.join(cls.dir, "pub.pem")
        with open(cls.priv, "wb") as f:
            f.write(cls.key.private_pem())
        with open(cls.pub, "wb") as f:
            f.write(tp.public_key_pem(cls.key.public_key))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    OPTS = {tp.OAEP: ["-pkeyopt", "rsa_padding_mode:oaep",
                      "-pkeyopt", "rsa_oaep_md:sha256",
                      "-pkeyopt", "rsa_mgf1_md:sha256"],
            tp.PKCS1V15: ["-pkeyopt", "rsa_padding_mode:pkcs1"]}

    def run_openssl(self, args, data):
        out = subprocess.run(["openssl"] + args, input=data,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             check=False, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        return out.stdout

    def test_openssl_opens_what_we_seal(self):
        msg = b'[{"role":"user","content":"to openssl"}]'
        for name in tp.PADDINGS:
            env = tp.seal(msg, self.key.public_wire, name)
            key_text = self.run_openssl(
                ["pkeyutl", "-decrypt", "-inkey", self.priv] +
                self.OPTS[name], base64.b64decode(env["cipherkey"]))
            key = base64.b64decode(key_text, validate=True)
            plain = self.run_openssl(
                ["enc", "-d", "-aes-256-cbc", "-K", key.hex(), "-iv",
                 base64.b64decode(env["iv"]).hex()],
                base64.b64decode(env["chat_history"]))
            self.assertEqual(plain, msg, name)

    def test_we_open_what_openssl_seals(self):
        msg = b'[{"role":"assistant","content":"from openssl"}]'
        for name in tp.PADDINGS:
            key = os.urandom(32)
            iv = os.urandom(16)
            ct = self.run_openssl(["enc", "-aes-256-cbc", "-K", key.hex(),
                                   "-iv", iv.hex()], msg)
            wrapped = self.run_openssl(
                ["pkeyutl", "-encrypt", "-pubin", "-inkey", self.pub] +
                self.OPTS[name], base64.b64encode(key))
            env = {"chat_history": base64.b64encode(ct).decode(),
                   "cipherkey": base64.b64encode(wrapped).decode(),
                   "iv": base64.b64encode(iv).decode()}
            self.assertEqual(tp.open_envelope(self.key, env), (msg, name))


class SinkSchema(unittest.TestCase):
    def test_valid_replies(self):
        for obj in ({"next_ping_in_x_seconds": 10},
                    {"next_ping_in_x_seconds": 0.5},
                    {"next_ping_in_x_seconds": 10, "client_public_key": "C",
                     "chat_history": "c", "cipherkey": "k", "iv": "i",
                     "batch": [], "stream": True}):
            self.assertIsNone(tp.validate_sink_reply(obj), obj)

    def test_invalid_replies(self):
        for obj in (None, [], "x", {}, {"next_ping_in_x_seconds": "10"},
                    {"next_ping_in_x_seconds": True},
                    {"next_ping_in_x_seconds": None},
                    {"next_ping_in_x_seconds": 10, "client_public_key": None},
                    {"next_ping_in_x_seconds": 10, "iv": 5},
                    {"next_ping_in_x_seconds": 10, "error": {"code": 1}}):
            self.assertIsNotNone(tp.validate_sink_reply(obj), obj)


class FakeRelay:
    """A scripted transport: answer(path, body, headers) -> (status, obj);
    every call is logged."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def post_json(self, path, obj, headers=None):
        self.calls.append((path, obj, dict(headers or {})))
        result = self.answer(path, obj, headers or {})
        if isinstance(result, Exception):
            raise result
        return result

    def get_json(self, path, headers=None):
        return self.post_json(path, None, headers)


def sink_item(faucet_body):
    return {k: faucet_body[k] for k in tp.LEGACY_ENVELOPE_FIELDS}


class LegacyPeersOffline(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node_keys, cls.c1_keys, cls.c2_keys = tp.key_pool(3)

    def client(self, keys, padding=tp.OAEP):
        return tp.LegacyClient(FakeRelay(lambda *a: (500, None)),
                               keypair=keys, padding=padding, name="c")

    def test_node_answers_and_client_opens(self):
        for cpad, npad in ((tp.OAEP, tp.OAEP), (tp.PKCS1V15, tp.PKCS1V15),
                           (tp.PKCS1V15, tp.OAEP)):
            client = self.client(self.c1_keys, cpad)
            msgs = [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi \u00fc"}]
            faucet = client.faucet_body(msgs, self.node_keys.public_wire)
            self.assertEqual(faucet["server_public_key"],
                             self.node_keys.public_wire)
            reply = dict(sink_item(faucet), next_ping_in_x_seconds=10)
            relay = FakeRelay(lambda p, b, h: (200, reply) if p == "/sink"
                              else (200, {"message": "ok"}))
            node = tp.LegacyNode(relay, name="n1", keypair=self.node_keys,
                                 padding=npad, token="tok")
            self.assertEqual(node.run_once(), 10)
            jobs, errors, violations = node.snapshot()
            self.assertEqual((errors, violations), ([], []))
            self.assertEqual(len(jobs), 1)
            self.assertEqual(jobs[0].padding, cpad)
            self.assertEqual(jobs[0].messages, msgs)
            self.assertEqual([c[0] for c in relay.calls], ["/sink", "/source"])
            self.assertEqual(relay.calls[0][1],
                             {"server_public_key": self.node_keys.public_wire})
            self.assertEqual(relay.calls[0][2], {"X-Relay-Server-Token": "tok"})
            source = relay.calls[1][1]
            self.assertEqual(set(source), set(tp.LEGACY_ENVELOPE_FIELDS))
            self.assertEqual(source["client_public_key"], client.public_wire)
            client.sent = msgs
            conv, used = tp.open_json(client.keys, source)
            self.assertEqual(used, npad)
            self.assertEqual(client.check_answer(conv)[-1],
                             {"role": "assistant",
                              "content": "n1 echoes: hi \u00fc"})

    def test_batch_and_stream_items(self):
        c1 = self.client(self.c1_keys)
        c2 = self.client(self.c2_keys)
        m1 = [{"role": "user", "content": "one"}]
        m2 = [{"role": "user", "content": "two two two two"}]
        i1 = sink_item(c1.faucet_body(m1, self.node_keys.public_wire))
        i2 = sink_item(c2.faucet_body(m2, self.node_keys.public_wire,
                                      stream=True))
        i2.update(stream=True, stream_session_id="S" * 22)
        i1["stream"] = False
        reply = dict(i1, next_ping_in_x_seconds=10, batch=[i1, i2])
        streamed = []

        def answer(path, body, headers):
            if path == "/sink":
                return 200, reply
            if path == "/stream/source":
                streamed.append(body)
                return 200, {"final": bool(body.get("final")),
                             "message": "Chunk stored"}
            return 200, {"message": "ok"}
        relay = FakeRelay(answer)
        node = tp.LegacyNode(relay, name="n2", keypair=self.node_keys,
                             max_batch_size=4, stream_pieces=3)
        node.run_once()
        jobs, errors, violations = node.snapshot()
        self.assertEqual((errors, violations), ([], []))
        self.assertEqual([j.messages for j in jobs], [m1, m2])
        self.assertEqual(relay.calls[0][1]["max_batch_size"], 4)
        self.assertEqual([c[0] for c in relay.calls],
                         ["/sink", "/source"] + ["/stream/source"] * 4)
        self.assertTrue(all(b["session_id"] == "S" * 22 for b in streamed))
        self.assertEqual([b.get("final", False) for b in streamed],
                         [False, False, False, True])
        # the client drains those chunks over two /stream/retrieve calls
        drains = [{"chunks": [b["chunk"] for b in streamed[:2]],
                   "session_id": "S" * 22, "stream": True},
                  {"chunks": [b["chunk"] for b in streamed[2:]],
                   "final": True, "session_id": "S" * 22, "stream": True}]
        c2.transport = FakeRelay(lambda *a: (200, drains.pop(0)))
        c2.sent = m2
        result = c2.stream_retrieve_once()
        self.assertFalse(result.final)
        result = c2.stream_retrieve_once(result)
        self.assertTrue(result.final)
        self.assertEqual(result.text, "n2 echoes: two two two two")
        self.assertEqual(c2.check_answer(result.conversation)[-1]["content"],
                         result.text)

    def test_strict_mode_records_violations(self):
        item = {"client_public_key": "C", "chat_history": "c",
                "cipherkey": "k", "iv": "i"}
        cases = [
            (None, dict(item, next_ping_in_x_seconds=10.0), "not an integer"),
            (None, dict(item, next_ping_in_x_seconds=10, batch=[item]),
             "batch present"),
            (4, dict(item, next_ping_in_x_seconds=10), "no batch"),
            (2, dict(item, next_ping_in_x_seconds=10,
                     batch=[item, item, item]), "batch of 3"),
            (2, dict(item, next_ping_in_x_seconds=10,
                     batch=[dict(item, iv="j")]), "does not repeat"),
            (None, dict(item, next_ping_in_x_seconds=10, stream=True),
             "without stream_session_id"),
        ]
        for size, reply, text in cases:
            node = tp.LegacyNode(FakeRelay(lambda *a: (200, reply)),
                                 keypair=self.node_keys, max_batch_size=size,
                                 streaming=False)
            node.jobs_from_reply(reply, size)
            _, _, violations = node.snapshot()
            self.assertTrue(any(text in v for v in violations),
                            (text, violations))
        # what PROTOCOL.md 1.4 shows is fine: batch items carry their
        # stream boolean, the top level only when the first one streams
        reply = dict(item, next_ping_in_x_seconds=10,
                     batch=[dict(item, stream=False)])
        node = tp.LegacyNode(FakeRelay(lambda *a: (200, reply)),
                             keypair=self.node_keys, max_batch_size=2)
        node.jobs_from_reply(reply, 2)
        self.assertEqual(node.snapshot()[2], [])

    def test_error_key_and_bad_schema_are_failures(self):
        node = tp.LegacyNode(FakeRelay(lambda *a: (
            200, {"next_ping_in_x_seconds": 10, "error": "busy"})),
            keypair=self.node_keys, error_interval=7)
        self.assertEqual(node.run_once(), 10)
        self.assertEqual(len(node.errors), 1)
        node = tp.LegacyNode(FakeRelay(lambda *a: (
            200, {"next_ping_in_x_seconds": 10, "client_public_key": None,
                  "chat_history": "c", "cipherkey": "k", "iv": "i"})),
            keypair=self.node_keys, error_interval=7)
        self.assertEqual(node.run_once(), 7)
        self.assertIn("schema", node.errors[0])

    def test_target_rotation(self):
        ok = {"next_ping_in_x_seconds": 10}
        down = FakeRelay(lambda *a: tp.TransportError("refused"))
        up_a = FakeRelay(lambda *a: (200, ok))
        up_b = FakeRelay(lambda *a: (200, ok))
        node = tp.LegacyNode([down, up_a, up_b], keypair=self.node_keys,
                             poll_interval=0)
        # start at 0: down fails, up_a works after a failure -> stay on it
        node.run_once()
        self.assertIs(node.active, up_a)
        node.run_once()                 # clean success on up_a -> move on
        self.assertIs(node.active, up_a)
        node.run_once()
        self.assertIs(node.active, up_b)
        node.run_once()                 # wraps to down, then up_a
        self.assertIs(node.active, up_a)
        self.assertEqual((len(down.calls), len(up_a.calls), len(up_b.calls)),
                         (2, 3, 1))
        self.assertEqual(node.errors, [])
        dead = tp.LegacyNode([down], keypair=self.node_keys,
                             error_interval=3)
        self.assertEqual(dead.run_once(), 3)
        self.assertIn("refused", dead.errors[0])

    def test_client_retrieve_replies(self):
        client = self.client(self.c1_keys)
        replies = [(200, {"error": "No response available for the given "
                                   "public key"}),
                   (500, {"error": "boom"})]
        client.transport = FakeRelay(lambda *a: replies.pop(0))
        self.assertIsNone(client.retrieve_once())
        self.assertEqual(client.unexpected, [])
        self.assertIsNone(client.retrieve_once())
        self.assertEqual(client.unexpected[0][1], 500)
        client.transport = FakeRelay(lambda *a: (200, {"error": {
            "code": 503, "message": "No servers available"}}))
        self.assertIsNone(client.next_server())
        client.transport = FakeRelay(lambda *a: (503, {"error": {
            "code": 503, "message": "No servers available"}}))
        self.assertIsNone(client.next_server())

    def test_client_rejects_foreign_answer(self):
        client = self.client(self.c1_keys)
        client.sent = [{"role": "user", "content": "mine"}]
        for bad in ([{"role": "user", "content": "other"},
                     {"role": "assistant", "content": "x"}],
                    [{"role": "user", "content": "mine"}],
                    [{"role": "user", "content": "mine"},
                     {"role": "user", "content": "x"}]):
            with self.assertRaises(tp.ProtocolError):
                client.check_answer(bad)

    def test_split_text(self):
        self.assertEqual(tp.split_text("abcdefg", 3), ["abc", "def", "g"])
        self.assertEqual(tp.split_text("ab", 5), ["a", "b"])
        self.assertEqual(tp.split_text("", 3), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
