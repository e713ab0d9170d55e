"""The bytes of wire protocol 5, as specified in docs/wire-protocol.md.

Everything is little-endian. A message is a ZeroMQ multipart message: a 48-byte header frame and
the payload frames of its kind. Nothing here does I/O; ``worker`` moves the frames.
"""

import struct

import numpy as np

from . import PROTOCOL_VERSION

MAGIC = b"REIN"
HEADER = struct.Struct("<4sHHHHIQQQQ")  # magic, version, kind, flags, frames, reserved, sender, sequence, policy version, payload bytes
HEADER_BYTES = 48

# Message kinds.
HELLO, WELCOME, LEAVE, HEARTBEAT, CALL, REPLY, BULK = 1, 2, 3, 4, 5, 6, 7
KIND_NAMES = {1: "hello", 2: "welcome", 3: "leave", 4: "heartbeat", 5: "call", 6: "reply", 7: "bulk"}


class WireError(Exception):
    """Bytes that do not follow the protocol (the Swift side's ``WireError``)."""


# MARK: - Header


class Header:
    """The fields of a message header frame."""

    __slots__ = ("version", "kind", "flags", "frame_count", "sender", "sequence", "policy_version", "payload_bytes")

    def __init__(self, kind, sender, sequence=0, policy_version=0, frame_count=0, payload_bytes=0, flags=0,
                 version=PROTOCOL_VERSION):
        self.version, self.kind, self.flags = version, kind, flags
        self.frame_count, self.sender, self.sequence = frame_count, sender, sequence
        self.policy_version, self.payload_bytes = policy_version, payload_bytes

    def encode(self):
        return HEADER.pack(MAGIC, self.version, self.kind, self.flags, self.frame_count, 0, self.sender,
                           self.sequence, self.policy_version, self.payload_bytes)

    @staticmethod
    def decode(frame, local_version=PROTOCOL_VERSION):
        """Checks a header frame in the order of the spec: magic, version, size, kind."""
        frame = bytes(frame)
        if len(frame) < 4:
            raise WireError("truncated: header of %d bytes" % len(frame))
        if frame[:4] != MAGIC:
            raise WireError("badMagic: header starts with %s, expected 5245494e" % frame[:4].hex())
        if len(frame) >= 6:
            version = struct.unpack_from("<H", frame, 4)[0]
            if version != local_version:
                raise WireError("unsupportedVersion: peer speaks protocol %d, this client speaks %d"
                                % (version, local_version))
        if len(frame) != HEADER_BYTES:
            raise WireError("lengthMismatch: header frame is %d bytes, expected 48" % len(frame))
        _, version, kind, flags, frames, _, sender, sequence, policy, payload = HEADER.unpack(frame)
        if kind not in KIND_NAMES:
            raise WireError("unknownKind: unknown message kind %d" % kind)
        return Header(kind, sender, sequence, policy, frames, payload, flags, version)


def message(kind, sender, sequence, payload, policy_version=0, flags=0):
    """The frames of a message: its header (counts filled in) and `payload`."""
    payload = [bytes(p) if not isinstance(p, (bytes, memoryview)) else p for p in payload]
    size = sum(len(p) for p in payload)
    header = Header(kind, sender, sequence, policy_version, len(payload), size, flags)
    return [header.encode()] + payload


def parse_message(frames, local_version=PROTOCOL_VERSION):
    """The header and payload frames of a received message; checks the counts against the frames."""
    if not frames:
        raise WireError("truncated: message has no header frame")
    header = Header.decode(frames[0], local_version)
    payload = frames[1:]
    if header.frame_count != len(payload):
        raise WireError("lengthMismatch: header declares %d payload frames, %d present"
                        % (header.frame_count, len(payload)))
    size = sum(len(p) for p in payload)
    if header.payload_bytes != size:
        raise WireError("lengthMismatch: header declares %d payload bytes, %d present" % (header.payload_bytes, size))
    return header, payload


# MARK: - Strings and envelopes


def pack_string(text):
    raw = text.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


class Reader:
    """Reads fields from a bytes-like value, raising WireError past its end."""

    def __init__(self, data):
        self.data, self.at = memoryview(bytes(data)), 0

    def take(self, n, what):
        if n < 0 or self.at + n > len(self.data):
            raise WireError("truncated: %s needs %d bytes, %d left" % (what, n, len(self.data) - self.at))
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return bytes(chunk)

    def unpack(self, fmt, what):
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size, what))[0]

    def string(self, what):
        n = self.unpack("I", what + " length")
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("malformed: %s: invalid UTF-8" % what)

    def varint(self, what):
        value, shift = 0, 0
        while True:
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise WireError("malformed: %s: varint longer than 10 bytes" % what)

    def end(self, what):
        if self.at != len(self.data):
            raise WireError("lengthMismatch: %s has %d bytes left over" % (what, len(self.data) - self.at))


def hello_payload(name, endpoint=""):
    """The one payload frame of hello and welcome: name and listening endpoint (strings)."""
    return pack_string(name) + pack_string(endpoint)


def parse_hello(frame):
    r = Reader(frame)
    name, endpoint = r.string("node name"), r.string("endpoint")
    r.end("hello")
    return name, endpoint


def heartbeat_payload(interval):
    """The optional payload frame of heartbeat: the sender's pace in seconds, as UInt32 milliseconds."""
    return struct.pack("<I", max(1, min(int(-(-interval * 1000 // 1)), 0xFFFFFFFF)))


def parse_heartbeat(frame):
    """The pace (seconds) a heartbeat's payload frame announces."""
    r = Reader(frame)
    milliseconds = r.unpack("I", "heartbeat interval")
    r.end("heartbeat")
    if milliseconds == 0:
        raise WireError("malformed: heartbeat interval of 0 ms")
    return milliseconds / 1000.0


def call_envelope(call_id, recipient_node, recipient_name, target, argument_count, incarnation=0,
                  substitutions=()):
    """The first payload frame of a call."""
    out = struct.pack("<QQ", call_id, recipient_node) + pack_string(recipient_name)
    out += struct.pack("<Q", incarnation) + pack_string(target) + struct.pack("<H", len(substitutions))
    for name in substitutions:
        out += pack_string(name)
    return out + struct.pack("<H", argument_count)


def parse_call_envelope(frame):
    r = Reader(frame)
    call_id, node = r.unpack("Q", "call id"), r.unpack("Q", "recipient node")
    name, incarnation, target = r.string("recipient name"), r.unpack("Q", "recipient incarnation"), r.string("target")
    substitutions = [r.string("substitution") for _ in range(r.unpack("H", "substitution count"))]
    arguments = r.unpack("H", "argument count")
    r.end("call envelope")
    return dict(call_id=call_id, node=node, name=name, incarnation=incarnation, target=target,
                substitutions=substitutions, arguments=arguments)


# Reply outcomes.
VALUE, VOID, THROWN, FAILED = 0, 1, 2, 3
# RemoteCallError codes a reply may carry.
DEAD_LETTER, INVOCATION_FAILED, BAD_REPLY, WRONG_ACTOR_TYPE, FORBIDDEN = 6, 7, 8, 9, 10


def reply_envelope(call_id, outcome, code=0, message=""):
    out = struct.pack("<QB", call_id, outcome)
    if outcome == FAILED:
        out += struct.pack("<H", code) + pack_string(message)
    elif outcome == THROWN:
        raise ValueError("a worker never throws to the learner")
    return out


def parse_reply_envelope(frame):
    """A dict with call_id, outcome and, per outcome, error_type/message/has_payload or code/message."""
    r = Reader(frame)
    reply = dict(call_id=r.unpack("Q", "call id"), outcome=r.unpack("B", "outcome"))
    if reply["outcome"] == THROWN:
        reply.update(error_type=r.string("error type"), message=r.string("error message"),
                     has_payload=r.unpack("B", "error payload flag") != 0)
    elif reply["outcome"] == FAILED:
        reply.update(code=r.unpack("H", "failure code"), message=r.string("failure"))
    elif reply["outcome"] not in (VALUE, VOID):
        raise WireError("malformed: unknown reply outcome %d" % reply["outcome"])
    r.end("reply envelope")
    return reply


# MARK: - Value encoding (arguments and results)


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def framed(content):
    """A framed value: varint(len + 1) and the content; None is the single byte 0 (nil)."""
    if content is None:
        return b"\0"
    return varint(len(content) + 1) + bytes(content)


def enc_u64(v):
    return framed(struct.pack("<Q", v))


def enc_int(v):
    return framed(struct.pack("<q", v))


def enc_bool(v):
    return framed(b"\1" if v else b"\0")


def enc_string(v):
    return framed(v.encode("utf-8"))


def enc_floats(values):
    return framed(np.ascontiguousarray(values, dtype="<f4").tobytes())


def enc_keyed(fields):
    """A keyed container (struct): (varint key length, key, framed value) pairs, in order.
    `fields` is a list of (key, framed value); a field whose value is None is left out (an
    absent optional)."""
    content = b"".join(varint(len(k.encode())) + k.encode() + v for k, v in fields if v is not None)
    return framed(content)


def enc_node(node):
    """A NodeID: a keyed container with its `rawValue`."""
    return enc_keyed([("rawValue", enc_u64(node))])


def read_framed(r, what):
    """The content of the next framed value in reader `r` (None for nil)."""
    n = r.varint(what)
    if n == 0:
        return None
    return r.take(n - 1, what)


def decode_value(frame):
    """The content bytes of a whole frame holding one framed value (None for nil)."""
    r = Reader(frame)
    content = read_framed(r, "value")
    r.end("value")
    return content


def keyed(content, what="keyed container"):
    """The fields of a keyed container's content: dict key -> content bytes (None for nil)."""
    r = Reader(content)
    fields = {}
    while r.at < len(r.data):
        n = r.varint(what + " key length")
        key = r.take(n, what + " key").decode("utf-8", "replace")
        fields[key] = read_framed(r, what + "." + key)
    return fields


def dec_int(content):
    if content is None or len(content) != 8:
        raise WireError("malformed: expected an 8-byte integer")
    return struct.unpack("<q", content)[0]


def dec_u64(content):
    if content is None or len(content) != 8:
        raise WireError("malformed: expected an 8-byte integer")
    return struct.unpack("<Q", content)[0]


def dec_string(content):
    return None if content is None else content.decode("utf-8")


def dec_floats(content):
    if content is None or len(content) % 4:
        raise WireError("malformed: a float array of %s bytes" % (None if content is None else len(content)))
    return np.frombuffer(content, dtype="<f4")


def dec_weights(content):
    """A PolicyWeights (keyed: version Int, values [Float]) as (version, float32 array)."""
    if content is None:
        return None
    f = keyed(content, "weights")
    return dec_int(f.get("version")), dec_floats(f.get("values"))


class WorkOrder:
    """The result of requestWork: status sample / wait / finished and the assignment."""

    def __init__(self, status, index=0, attempt=0, version=0, weights=None, incarnation=0, token_high=0,
                 token_low=0):
        self.status, self.index, self.attempt, self.version = status, index, attempt, version
        self.weights, self.incarnation, self.token_high, self.token_low = weights, incarnation, token_high, token_low

    @staticmethod
    def decode(frame):
        f = keyed(decode_value(frame), "WorkOrder")
        token = keyed(f["token"], "token") if f.get("token") is not None else {}
        status = dec_string(f.get("status"))
        if status not in ("sample", "wait", "finished"):
            raise WireError("malformed: work order status %r" % status)
        return WorkOrder(status, dec_int(f.get("index")), dec_int(f.get("attempt")), dec_int(f.get("version")),
                         dec_weights(f.get("weights")), dec_u64(f.get("incarnation")),
                         dec_u64(token.get("high", b"\0" * 8)), dec_u64(token.get("low", b"\0" * 8)))


class JoinReply:
    """The result of join: weights, endpoints, versions to keep, π_ref's weights, the run config."""

    def __init__(self, weights, broadcast, keep_versions, samples, reference, config):
        self.weights, self.broadcast, self.keep_versions = weights, broadcast, keep_versions
        self.samples, self.reference, self.config = samples, reference, config

    @staticmethod
    def decode(frame):
        f = keyed(decode_value(frame), "JoinReply")
        return JoinReply(dec_weights(f.get("weights")), dec_string(f.get("broadcast")),
                         dec_int(f.get("keepVersions")), dec_string(f.get("samples")),
                         dec_weights(f.get("reference")), dec_string(f.get("config")))


# MARK: - Sample batch layout (payload of a bulk message on the sample stream)

SAMPLE_MAGIC = b"RSMP"
LAYOUT_VERSION = 2
SAMPLE_FIXED = struct.Struct("<4sHHQqqQQQqqQQdq")
SAMPLE_FIXED_BYTES = 104
ENTRY = struct.Struct("<20sB3xQ")
# name, numpy dtype, dtype code, extent
COLUMNS = [
    ("ids", "<u8", 4, "rows"), ("groups", "<i8", 3, "rows"), ("prompt_offsets", "<i8", 3, "rows+1"),
    ("prompts", "<i4", 2, "prompt_tokens"), ("completion_offsets", "<i8", 3, "rows+1"),
    ("completions", "<i4", 2, "tokens"), ("behaviour_logprobs", "<f4", 5, "tokens"), ("versions", "<i8", 3, "tokens"),
    ("rewards", "<f8", 6, "rows"), ("outcomes", "<u1", 1, "rows"), ("reference_logprobs", "<f4", 5, "reference_tokens"),
    ("reference_rows", "<f4", 5, "reference_rows"),
]
HEADER_FRAME_BYTES = SAMPLE_FIXED_BYTES + ENTRY.size * len(COLUMNS)
OUTCOMES = ["correct", "wrong_answer", "malformed", "no_eos"]


class SampleBatch:
    """One sample batch: the assignment it answers, its group size, sampler settings and columns
    (a dict name -> numpy array with the dtypes of ``COLUMNS``)."""

    def __init__(self, worker, index, attempt, incarnation, token_high, token_low, group_size, temperature, top_k,
                 columns, reference_width=0):
        self.worker, self.index, self.attempt, self.incarnation = worker, index, attempt, incarnation
        self.token_high, self.token_low, self.group_size = token_high, token_low, group_size
        self.temperature, self.top_k, self.reference_width = temperature, top_k, reference_width
        self.columns = {name: np.ascontiguousarray(columns.get(name, []), dtype=dt) for name, dt, _, _ in COLUMNS}

    def frames(self):
        """Payload frames 1 … 13: the header frame, then one raw frame per column (no per-element copies)."""
        c = self.columns
        rows, tokens = len(c["ids"]), len(c["completions"])
        head = SAMPLE_FIXED.pack(SAMPLE_MAGIC, LAYOUT_VERSION, len(COLUMNS), self.worker, self.index, self.attempt,
                                 self.incarnation, self.token_high, self.token_low, self.group_size,
                                 self.reference_width, rows, tokens, float(self.temperature), self.top_k)
        for name, _, code, _ in COLUMNS:
            head += ENTRY.pack(name.encode("ascii"), code, c[name].size)
        return [head] + [c[name].tobytes() for name, _, _, _ in COLUMNS]

    @staticmethod
    def decode(frames, max_frame_bytes=16 << 20):
        """The batch in payload frames 1 … 13, with the checks of the spec, in its order."""
        if not frames:
            raise WireError("truncated: sample batch: no header frame")
        head = bytes(frames[0])
        if len(head) < 8:
            raise WireError("truncated: sample batch header of %d bytes" % len(head))
        if head[:4] != SAMPLE_MAGIC:
            raise WireError("badMagic: sample batch header starts with %s" % head[:4].hex())
        layout, count = struct.unpack_from("<HH", head, 4)
        if layout != LAYOUT_VERSION:
            raise WireError("unsupportedVersion: sample batch layout %d, this client reads %d" % (layout, LAYOUT_VERSION))
        if count != len(COLUMNS) or len(head) != HEADER_FRAME_BYTES:
            raise WireError("lengthMismatch: %d columns in a %d-byte header" % (count, len(head)))
        (_, _, _, worker, index, attempt, incarnation, high, low, group_size, width, rows, tokens, temperature,
         top_k) = SAMPLE_FIXED.unpack_from(head, 0)
        if group_size < 1 or width < 0 or not np.isfinite(temperature) or temperature < 0 or top_k < 0:
            raise WireError("malformed: group size %d, reference width %d, temperature %r, top-k %d"
                            % (group_size, width, temperature, top_k))
        if rows >= 2**31 - 1 or tokens >= 2**60 - 1:
            raise WireError("oversize: %d rows, %d tokens" % (rows, tokens))
        counts = []
        for i, (name, _, code, _) in enumerate(COLUMNS):
            raw, dtype, elements = ENTRY.unpack_from(head, SAMPLE_FIXED_BYTES + i * ENTRY.size)
            reserved = head[SAMPLE_FIXED_BYTES + i * ENTRY.size + 21:SAMPLE_FIXED_BYTES + i * ENTRY.size + 24]
            if raw != name.encode().ljust(20, b"\0") or dtype != code or reserved != b"\0\0\0":
                raise WireError("malformed: column %d is not %s" % (i, name))
            counts.append(elements)
        if len(frames) != 1 + len(COLUMNS):
            raise WireError("lengthMismatch: %d column frames, the header declares %d" % (len(frames) - 1, len(COLUMNS)))
        prompt_tokens = counts[3]
        extents = {"rows": rows, "rows+1": rows + 1, "prompt_tokens": prompt_tokens, "tokens": tokens,
                   "reference_tokens": tokens if width else 0, "reference_rows": tokens * width}
        columns = {}
        for (name, dt, _, extent), n, frame in zip(COLUMNS, counts, frames[1:]):
            size = np.dtype(dt).itemsize
            if len(frame) > max_frame_bytes or n > max_frame_bytes // size:
                raise WireError("oversize: column %s: %d elements" % (name, n))
            if n * size != len(frame):
                raise WireError("lengthMismatch: column %s: %d elements declared, %d bytes present" % (name, n, len(frame)))
            if n != extents[extent]:
                raise WireError("lengthMismatch: column %s: %d elements, expected %d" % (name, n, extents[extent]))
            columns[name] = np.frombuffer(bytes(frame), dtype=dt)
        for name, end in (("prompt_offsets", prompt_tokens), ("completion_offsets", tokens)):
            o = columns[name]
            if o[0] != 0 or o[-1] != end or np.any(np.diff(o) < 0):
                raise WireError("malformed: column %s: offsets do not run from 0 to %d" % (name, end))
        if np.any(columns["outcomes"] >= len(OUTCOMES)):
            raise WireError("malformed: unknown outcome code")
        return SampleBatch(worker, index, attempt, incarnation, high, low, group_size, temperature, top_k, columns,
                           width)


# MARK: - Weights


def weights_from_broadcast(payload):
    """The flat float32 parameters of a weight broadcast's payload frames (raw little-endian
    floats, at most 2^20 a frame), concatenated; the policy version is the header's."""
    return np.frombuffer(b"".join(bytes(f) for f in payload), dtype="<f4")
