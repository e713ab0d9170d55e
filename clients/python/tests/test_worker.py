import struct
import threading
import unittest

import numpy as np
import zmq

from rein_worker import wire
from rein_worker.worker import TARGETS, Connection, LearnerLost, WeightSubscription, reachable

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


if __name__ == "__main__":
    unittest.main()
