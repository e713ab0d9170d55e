import json
import struct
import threading
import unittest

import numpy as np
import zmq

from rein_worker import wire
from rein_worker.task import EOS
from rein_worker.worker import (MAX_PACE, TARGETS, Connection, LearnerLost, Refused, RemoteError, WeightSubscription, Worker,
                                reachable)

LEARNER = 0xAA


class FakeLearner(threading.Thread):
    """A ROUTER that answers hello with welcome and a join call with a value, as the spec says."""

    def __init__(self, context, endpoint, version=wire.PROTOCOL_VERSION):
        super().__init__(daemon=True)
        self.router = context.socket(zmq.ROUTER)
        self.router.bind(endpoint)
        self.version, self.seen = version, []

    def send(self, routing, kind, payload):
        frames = wire.message(kind, LEARNER, 1, payload)
        head = wire.Header.decode(frames[0])
        head.version = self.version
        self.router.send_multipart([routing, head.encode()] + frames[1:])

    def run(self):
        while self.router.poll(5000):
            routing, *frames = self.router.recv_multipart()
            if struct.unpack_from("<H", frames[0], 4)[0] != wire.PROTOCOL_VERSION:
                continue
            header, payload = wire.parse_message(frames)
            self.seen.append((routing, header.kind))
            if header.kind == wire.HELLO:
                self.send(routing, wire.WELCOME, [wire.hello_payload("learner")])
                if self.version != wire.PROTOCOL_VERSION:
                    break
            elif header.kind == wire.CALL:
                call = wire.parse_call_envelope(payload[0])
                self.seen.append(call)
                # Junk first: a reply without its envelope, one with a torn envelope; neither may
                # stop the worker's connection.
                self.send(routing, wire.REPLY, [])
                self.send(routing, wire.REPLY, [b"\x01\x02"])
                self.send(routing, wire.REPLY, [struct.pack("<QB", call["call_id"], 0), wire.enc_int(42)])
            elif header.kind == wire.LEAVE:
                break
        self.router.close(0)


class ConnectionTests(unittest.TestCase):
    def test_handshake_call_heartbeats_and_goodbye(self):
        context = zmq.Context()
        learner = FakeLearner(context, "inproc://learner")
        learner.start()
        node = 0x0102030405060708
        connection = Connection(context, "inproc://learner", "py-test", node, heartbeat_timeout=5)
        self.assertEqual(connection.learner, LEARNER)
        reply = connection.call("join", [wire.enc_node(node)], 5)
        self.assertEqual(wire.dec_int(wire.decode_value(reply)), 42)
        connection.close()
        learner.join(5)
        kinds = [k for r, k in (x for x in learner.seen if isinstance(x, tuple))]
        self.assertEqual(kinds[0], wire.HELLO)
        self.assertEqual(kinds[-1], wire.LEAVE)
        self.assertTrue(all(r == struct.pack("<Q", node) for r, _ in (x for x in learner.seen if isinstance(x, tuple))),
                        "the routing id is the node id")
        call = next(x for x in learner.seen if isinstance(x, dict))
        self.assertEqual((call["node"], call["name"], call["target"], call["arguments"]),
                         (LEARNER, "learner", TARGETS["join"], 1))
        context.term()

    def test_a_learner_of_another_version_is_refused_by_name(self):
        context = zmq.Context()
        learner = FakeLearner(context, "inproc://old", version=4)
        learner.start()
        with self.assertRaisesRegex(LearnerLost, "peer speaks protocol 4"):
            Connection(context, "inproc://old", "py-test", 7, connect_timeout=5)
        learner.join(5)
        context.term()


class WeightSubscriptionTests(unittest.TestCase):
    def test_keeps_the_newest_versions_and_skips_wrong_sizes(self):
        context = zmq.Context()
        pub = context.socket(zmq.PUB)
        pub.bind("inproc://weights")
        weights = WeightSubscription(context, "inproc://weights", keep=2, count=4)
        for version in (1, 2, 3):
            values = np.full(4, version, dtype="<f4")
            pub.send_multipart(wire.message(wire.BULK, LEARNER, version, [values[:3].tobytes(), values[3:].tobytes()],
                                            policy_version=version))
        pub.send_multipart(wire.message(wire.BULK, LEARNER, 4, [np.zeros(5, "<f4").tobytes()], policy_version=4))
        self.assertEqual(weights.get(3, 5).tolist(), [3, 3, 3, 3])
        self.assertIsNone(weights.get(4, 0.2), "a vector of another size is skipped")
        self.assertEqual(sorted(weights.versions), [2, 3])
        weights.close()
        pub.close(0)
        context.term()

    def test_wildcard_hosts_are_reached_at_the_learners_host(self):
        self.assertEqual(reachable("tcp://0.0.0.0:5001", "tcp://10.0.0.7:7070"), "tcp://10.0.0.7:5001")
        self.assertEqual(reachable("tcp://10.0.0.8:5001", "tcp://10.0.0.7:7070"), "tcp://10.0.0.8:5001")


def weights_value(version, values):
    return wire.enc_keyed([("version", wire.enc_int(version)), ("values", wire.enc_floats(values))])


def order_value(status, index=0, version=0, weights=None):
    token = wire.enc_keyed([("high", wire.enc_u64(0x11)), ("low", wire.enc_u64(0x22))])
    return wire.enc_keyed([("status", wire.enc_string(status)), ("index", wire.enc_int(index)),
                           ("attempt", wire.enc_int(0)), ("version", wire.enc_int(version)), ("weights", weights),
                           ("incarnation", wire.enc_u64(9)), ("token", token)])


CONFIG = {"seed": 3, "task": {"operations": ["add"], "max_digits": 1, "train_size": 20, "held_out_size": 5},
          "model": {"context": 16, "d_model": 8, "layers": 1, "heads": 2},
          "train": {"prompts_per_step": 2, "group_size": 2, "temperature": 1.0, "top_k": 0},
          "runtime": {"call_timeout": 7.0, "heartbeat_timeout": 3.0}}


class FakeEngine:
    """Answers every prompt with the end token at once."""

    def __init__(self, *shape):
        self.loaded = []

    def load(self, version, values):
        self.loaded.append(version)

    def generate(self, prompts, max_new_tokens, temperature, top_k, eos, seed):
        return [([EOS], [-0.5]) for _ in prompts]


class ScriptedConnection:
    """Stands for a Connection: answers each call with the next scripted reply (a value frame, or an
    exception to raise), and records the calls and the goodbye."""

    def __init__(self, replies):
        self.replies, self.calls, self.lost, self.goodbye, self.heartbeat_timeout = list(replies), [], None, None, None

    def use_heartbeat_timeout(self, timeout):
        self.heartbeat_timeout = timeout

    def call(self, method, arguments, timeout):
        self.calls.append((method, arguments, timeout))
        method_expected, reply = self.replies.pop(0)
        assert method == method_expected, "called %s, the script expects %s" % (method, method_expected)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self, goodbye=True):
        self.goodbye = goodbye


class WorkerLoopTests(unittest.TestCase):
    def setUp(self):
        self.context = zmq.Context()
        self.pull = self.context.socket(zmq.PULL)
        self.pull.bind("inproc://samples")

    def tearDown(self):
        self.pull.close(0)
        self.context.term()

    def join_reply(self, broadcast=None):
        return wire.enc_keyed([("weights", weights_value(1, np.zeros(4, "<f4"))), ("broadcast", broadcast),
                               ("keepVersions", wire.enc_int(2)), ("samples", wire.enc_string("inproc://samples")),
                               ("config", wire.enc_string(json.dumps(CONFIG)))])

    def worker(self):
        return Worker("inproc://learner", "py-test", FakeEngine, self.context)

    def test_uses_the_runs_timeouts_and_inline_weights_without_a_broadcast(self):
        connection = ScriptedConnection([("join", self.join_reply()),
                                         ("requestWork", order_value("sample", 0, 2, weights_value(2, np.ones(4)))),
                                         ("requestWork", order_value("finished"))])
        worker = self.worker()
        self.assertEqual(worker.run(connection), 1)
        self.assertEqual(connection.heartbeat_timeout, 3.0, "runtime.heartbeat_timeout of the join reply")
        self.assertEqual([c[2] for c in connection.calls], [30.0, 7.0, 7.0], "30 s for join, then runtime.call_timeout")
        self.assertEqual(connection.calls[1][1][1:], [wire.enc_int(1), wire.enc_bool(True)], "version held, inline")
        self.assertEqual(worker.engine.loaded, [1, 2])
        header, payload = wire.parse_message(self.pull.recv_multipart())
        self.assertEqual((header.kind, header.policy_version), (wire.BULK, 2))
        self.assertTrue(connection.goodbye)

    def test_a_refused_worker_says_goodbye_and_stops(self):
        thrown = RemoteError("requestWork threw ReinRuntime.RuntimeError: worker 1 gets no more work in this run "
                             "(forgedContents)", thrown=True)
        connection = ScriptedConnection([("join", self.join_reply()), ("requestWork", thrown)])
        with self.assertRaisesRegex(Refused, "no more work in this run"):
            self.worker().run(connection)
        self.assertTrue(connection.goodbye, "a leave before stopping")

    def test_a_failed_request_is_not_a_refusal(self):
        failed = RemoteError("requestWork failed (code 10): forbidden")
        connection = ScriptedConnection([("join", self.join_reply()), ("requestWork", failed)])
        with self.assertRaises(RemoteError) as raised:
            self.worker().run(connection)
        self.assertNotIsInstance(raised.exception, Refused)

    def test_asks_for_work_again_when_fetch_weights_throws(self):
        thrown = RemoteError("fetchWeights threw ReinRuntime.RuntimeError: weights of version 5 are no longer kept "
                             "(learner at 9)", thrown=True)
        connection = ScriptedConnection([("join", self.join_reply()), ("requestWork", order_value("sample", 0, 5)),
                                         ("fetchWeights", thrown), ("requestWork", order_value("finished"))])
        worker = self.worker()
        self.assertEqual(worker.run(connection), 0)
        self.assertEqual([c[0] for c in connection.calls], ["join", "requestWork", "fetchWeights", "requestWork"])
        self.assertEqual(connection.calls[2][1], [wire.enc_int(5)])
        self.assertEqual(worker.version, 1, "still the joined version")
        self.assertTrue(connection.goodbye)

    def test_the_heartbeat_follows_the_timeout(self):
        connection = Connection.__new__(Connection)
        connection.use_heartbeat_timeout(3.0)
        self.assertEqual((connection.timeout, connection.interval, connection.deadline), (3.0, 0.25, 3.0))
        connection.use_heartbeat_timeout(0.4)
        self.assertEqual((connection.timeout, connection.interval, connection.deadline), (0.4, 0.1, 0.4))

    def test_the_heartbeat_follows_the_learners_pace(self):
        connection = Connection.__new__(Connection)
        connection.use_heartbeat_timeout(1.5)
        connection.follow_pace(1.0)
        self.assertEqual((connection.interval, connection.deadline), (1.0, 2.25))
        connection.follow_pace(0.1)  # never faster than our own pace
        self.assertEqual((connection.interval, connection.deadline), (0.25, 1.5))
        connection.follow_pace(3600.0)  # an hour is not believed
        self.assertEqual(connection.interval, MAX_PACE)
        connection.use_heartbeat_timeout(3.0)  # the run's timeout keeps the announced pace
        self.assertEqual((connection.interval, connection.deadline), (MAX_PACE, 3.0 + MAX_PACE - 0.25))


if __name__ == "__main__":
    unittest.main()
