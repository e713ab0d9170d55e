import os
import struct
import unittest

import numpy as np

from rein_worker import wire

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def golden_frames(name):
    frames = []
    with open(os.path.join(GOLDEN, name)) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                frames.append(bytes.fromhex(line.split()[1]))
    return frames


class SampleBatchTests(unittest.TestCase):
    def test_decodes_the_swift_golden_batch(self):
        batch = wire.SampleBatch.decode(golden_frames("sample_batch.hex"))
        self.assertEqual((batch.worker, batch.index, batch.attempt, batch.incarnation), (0x0102030405060708, 2, 1, 9))
        self.assertEqual((batch.token_high, batch.token_low, batch.group_size), (0x11, 0x22, 1))
        self.assertEqual((batch.temperature, batch.top_k, batch.reference_width), (0.5, 5, 2))
        c = batch.columns
        self.assertEqual(c["ids"].tolist(), [5])
        self.assertEqual(c["prompts"].tolist(), [7])
        self.assertEqual(c["completions"].tolist(), [9, 2])
        self.assertEqual(c["behaviour_logprobs"].tolist(), [-0.5, -0.25])
        self.assertEqual(c["versions"].tolist(), [3, 3])
        self.assertEqual(c["rewards"].tolist(), [1.0])
        self.assertEqual(c["outcomes"].tolist(), [0])
        self.assertEqual(c["reference_rows"].tolist(), [0.5, 1, 1.5, 2])

    def test_encodes_the_swift_golden_batch_byte_for_byte(self):
        golden = golden_frames("sample_batch.hex")
        batch = wire.SampleBatch.decode(golden)
        self.assertEqual(batch.frames(), golden)

    def test_refuses_corrupt_batches(self):
        golden = golden_frames("sample_batch.hex")
        cases = []
        bad = list(golden)
        bad[0] = b"JUNK" + bad[0][4:]
        cases.append(("badMagic", bad))
        bad = list(golden)
        bad[0] = bad[0][:4] + b"\x01" + bad[0][5:]
        cases.append(("unsupportedVersion", bad))
        cases.append(("lengthMismatch", golden[:-1]))
        bad = list(golden)
        bad[4] = bad[4][:-4]
        cases.append(("lengthMismatch", bad))
        bad = list(golden)
        bad[10] = b"\x09"
        cases.append(("malformed", bad))
        bad = list(golden)
        bad[0] = bad[0][:88] + struct.pack("<d", -1.0) + bad[0][96:]
        cases.append(("malformed", bad))
        for reason, frames in cases:
            with self.assertRaises(wire.WireError) as caught:
                wire.SampleBatch.decode(frames)
            self.assertTrue(str(caught.exception).startswith(reason), str(caught.exception))


class HeaderAndEnvelopeTests(unittest.TestCase):
    def test_header_round_trips_and_checks_the_version(self):
        frames = wire.message(wire.BULK, 0x0102030405060708, 3, [b"abc", b"de"], policy_version=7)
        self.assertEqual(len(frames[0]), 48)
        self.assertEqual(frames[0][:12].hex(), "5245494e0500070000000200")
        header, payload = wire.parse_message(frames)
        self.assertEqual((header.kind, header.sender, header.sequence, header.policy_version, header.payload_bytes),
                         (wire.BULK, 0x0102030405060708, 3, 7, 5))
        old = bytearray(frames[0])
        old[4] = 4
        with self.assertRaisesRegex(wire.WireError, "unsupportedVersion: peer speaks protocol 4"):
            wire.parse_message([bytes(old)] + frames[1:])
        with self.assertRaisesRegex(wire.WireError, "lengthMismatch"):
            wire.parse_message(frames[:-1])

    def test_heartbeat_payload_is_the_pace_in_milliseconds(self):
        self.assertEqual(wire.heartbeat_payload(1.0).hex(), "e8030000")
        self.assertEqual(wire.heartbeat_payload(0.0001), struct.pack("<I", 1), "at least 1 ms")
        self.assertEqual(wire.parse_heartbeat(wire.heartbeat_payload(0.25)), 0.25)
        with self.assertRaisesRegex(wire.WireError, "malformed"):
            wire.parse_heartbeat(struct.pack("<I", 0))
        with self.assertRaisesRegex(wire.WireError, "truncated"):
            wire.parse_heartbeat(b"\x01\x02")
        with self.assertRaisesRegex(wire.WireError, "lengthMismatch"):
            wire.parse_heartbeat(b"\x01\x02\x03\x04\x05")

    def test_call_envelope_layout(self):
        env = wire.call_envelope(1, 0xAA, "learner", "$sX", 2)
        self.assertEqual(env.hex(), "0100000000000000" "aa00000000000000" "07000000" + b"learner".hex()
                         + "0000000000000000" "03000000" + b"$sX".hex() + "0000" "0200")
        self.assertEqual(wire.parse_call_envelope(env)["target"], "$sX")

    def test_reply_envelopes(self):
        self.assertEqual(wire.parse_reply_envelope(struct.pack("<QB", 9, 0)), {"call_id": 9, "outcome": 0})
        failed = wire.reply_envelope(4, wire.FAILED, wire.DEAD_LETTER, "no")
        self.assertEqual(wire.parse_reply_envelope(failed)["code"], 6)
        thrown = struct.pack("<QB", 5, 2) + wire.pack_string("Rein.RuntimeError") + wire.pack_string("gone") + b"\0"
        self.assertEqual(wire.parse_reply_envelope(thrown)["message"], "gone")


class ValueEncodingTests(unittest.TestCase):
    def test_arguments(self):
        # NodeID: a keyed container {rawValue: UInt64}.
        self.assertEqual(wire.enc_node(0x0102030405060708).hex(), "13" "08" + b"rawValue".hex() + "09" "0807060504030201")
        self.assertEqual(wire.enc_int(-1).hex(), "09ffffffffffffffff")
        self.assertEqual(wire.enc_bool(True).hex(), "0201")
        self.assertEqual(wire.framed(b"x" * 200)[:2].hex(), "c901")  # varint 201

    def test_work_order_decodes_keyed_fields_in_any_order_with_absent_optionals(self):
        token = wire.enc_keyed([("high", wire.enc_u64(0x11)), ("low", wire.enc_u64(0x22))])
        weights = wire.enc_keyed([("version", wire.enc_int(3)), ("values", wire.enc_floats([1.5, -2]))])
        frame = wire.enc_keyed([("token", token), ("incarnation", wire.enc_u64(9)), ("status", wire.enc_string("sample")),
                                ("index", wire.enc_int(4)), ("attempt", wire.enc_int(1)), ("version", wire.enc_int(3)),
                                ("weights", weights)])
        order = wire.WorkOrder.decode(frame)
        self.assertEqual((order.status, order.index, order.attempt, order.version, order.incarnation),
                         ("sample", 4, 1, 3, 9))
        self.assertEqual((order.token_high, order.token_low), (0x11, 0x22))
        self.assertEqual(order.weights[0], 3)
        self.assertEqual(order.weights[1].tolist(), [1.5, -2.0])
        wait = wire.WorkOrder.decode(wire.enc_keyed([("status", wire.enc_string("wait")), ("index", wire.enc_int(0)),
                                                     ("attempt", wire.enc_int(0)), ("version", wire.enc_int(0)),
                                                     ("incarnation", wire.enc_u64(0)), ("token", token)]))
        self.assertIsNone(wait.weights)

    def test_truncated_values_raise_wire_errors(self):
        with self.assertRaises(wire.WireError):
            wire.WorkOrder.decode(wire.enc_int(3)[:-2])
        with self.assertRaises(wire.WireError):
            wire.decode_value(b"\x05ab")

    def test_weight_broadcast_frames(self):
        values = np.arange(10, dtype=np.float32)
        frames = [values[:6].tobytes(), values[6:].tobytes()]
        self.assertEqual(wire.weights_from_broadcast(frames).tolist(), values.tolist())



class TargetTests(unittest.TestCase):
    def test_targets_are_the_documented_ones(self):
        import json
        from rein_worker.worker import TARGETS
        with open(os.path.join(GOLDEN, "targets.json")) as f:
            golden = json.load(f)["targets"]
        self.assertEqual(golden, {"join(worker:)": TARGETS["join"],
                                  "requestWork(worker:haveVersion:inline:)": TARGETS["requestWork"],
                                  "fetchWeights(version:)": TARGETS["fetchWeights"]})


if __name__ == "__main__":
    unittest.main()
