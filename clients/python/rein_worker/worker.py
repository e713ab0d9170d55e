"""The connection to a Rein learner and the worker loop.

    python -m rein_worker --learner tcp://127.0.0.1:7070 [--name py-worker] [--engine module:factory]

The worker joins (learner.join), reads the run's configuration from the join reply, then asks for
work (learner.requestWork, a long poll), samples each assigned batch with its engine and the
weights of the assigned version, grades it with the arithmetic task, and pushes it to the
learner's sample stream, until the learner says the run is finished; then it says goodbye
(a `leave` message). Heartbeats go out every 250 ms from the connection's own thread, so a long
sampling step never makes the worker look dead.
"""

import argparse
import importlib
import itertools
import json
import logging
import os
import queue
import struct
import sys
import threading
import time
from concurrent.futures import Future

import numpy as np
import zmq

from . import wire
from .model import NumpyGPT
from .task import EOS, VOCAB, Task, first_id, problems_for_step, sampling_seed

log = logging.getLogger("rein_worker")

# The distributed methods a worker calls, by their mangled target identifiers (Swift's
# RemoteCallTarget.identifier; docs/wire-protocol.md, "Calls a worker makes").
TARGETS = {
    "join": "$s11ReinRuntime12LearnerActorC4join6workerAA9JoinReplyV0A6Actors6NodeIDV_tYaKFTE",
    "requestWork": "$s11ReinRuntime12LearnerActorC11requestWork6worker11haveVersion6inlineAA0F5OrderV0A6Actors6NodeIDV_SiSbtYaKFTE",
    "fetchWeights": "$s11ReinRuntime12LearnerActorC12fetchWeights7versionAA06PolicyF0VSi_tYaKFTE",
}
LEARNER_NAME = "learner"


class LearnerLost(Exception):
    """The learner left, went silent past the heartbeat timeout, or refused the handshake."""


class RemoteError(Exception):
    """A call answered with a thrown error (`thrown`: the learner's method threw) or a failure."""

    def __init__(self, text, thrown=False):
        super().__init__(text)
        self.thrown = thrown


class Refused(RemoteError):
    """requestWork threw: the learner gives this worker no more work in the run (it delivered forged
    contents)."""


# Before the join reply brings the run's `runtime.heartbeat_timeout` and `runtime.call_timeout`.
JOIN_HEARTBEAT_TIMEOUT = 1.5
JOIN_CALL_TIMEOUT = 30.0
# The longest pace a learner's heartbeat is believed to announce (seconds).
MAX_PACE = 10.0


class Connection:
    """A DEALER to the learner's ROUTER, owned by one I/O thread: handshake, heartbeats, calls and
    replies, goodbye. ``call`` may be used from any one other thread."""

    def __init__(self, context, endpoint, name, node, heartbeat_timeout=JOIN_HEARTBEAT_TIMEOUT,
                 connect_timeout=10.0):
        self.context, self.endpoint, self.name, self.node = context, endpoint, name, node
        self.use_heartbeat_timeout(heartbeat_timeout)
        self.learner = None
        self.pending = {}
        self.commands = queue.Queue()
        self.call_ids = itertools.count(1)
        self.sequence = itertools.count(1)
        self.lost = None
        self.welcomed = threading.Event()
        self.wake_address = "inproc://rein-worker-wake-%x" % node
        self.wake_in = context.socket(zmq.PULL)
        self.wake_in.bind(self.wake_address)
        self.wake = context.socket(zmq.PUSH)
        self.wake.connect(self.wake_address)
        self.thread = threading.Thread(target=self._run, name="rein-worker-io", daemon=True)
        self.thread.start()
        if not self.welcomed.wait(connect_timeout):
            self.close(goodbye=False)
            raise LearnerLost("no welcome from %s within %.0f s" % (endpoint, connect_timeout))
        if self.lost:
            self.close(goodbye=False)
            raise LearnerLost(self.lost)

    def use_heartbeat_timeout(self, timeout):
        """Declares the learner lost after `timeout` seconds of silence, and heartbeats every 250 ms
        (every quarter of the timeout if that is shorter), as the learner does. A learner with many
        workers announces a slower pace in its heartbeats (see ``follow_pace``)."""
        self.timeout, self.base = timeout, min(0.25, timeout / 4)
        self.follow_pace(getattr(self, "learner_pace", None))

    def follow_pace(self, pace):
        """Heartbeats at the slower of our pace and the learner's announced `pace` (seconds, at most
        MAX_PACE believed; None: none announced), and gives the learner the timeout plus what the
        interval grew before declaring it lost."""
        self.learner_pace = pace
        believed = self.base if pace is None else min(max(pace, self.base), max(self.base, MAX_PACE))
        self.interval = believed
        self.deadline = self.timeout + (believed - self.base)

    # The I/O thread.

    def _send(self, dealer, kind, payload, policy_version=0):
        dealer.send_multipart(wire.message(kind, self.node, next(self.sequence), payload, policy_version), copy=False)

    def _run(self):
        dealer = self.context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.ROUTING_ID, struct.pack("<Q", self.node))
        dealer.setsockopt(zmq.LINGER, 1000)
        dealer.connect(self.endpoint)
        self._send(dealer, wire.HELLO, [wire.hello_payload(self.name)])
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(self.wake_in, zmq.POLLIN)
        last_heard = time.monotonic()
        next_beat = time.monotonic() + self.interval
        stop = False
        while not stop:
            wait = max(0.0, next_beat - time.monotonic())
            for socket, _ in poller.poll(wait * 1000):
                if socket is self.wake_in:
                    while self.wake_in.poll(0):
                        self.wake_in.recv()
                    while not self.commands.empty():
                        command = self.commands.get()
                        if command[0] == "stop":
                            if command[1] and self.learner is not None:
                                self._send(dealer, wire.LEAVE, [])
                            stop = True
                        elif self.learner is not None and self.lost is None:
                            _, call_id, frames = command
                            self._send(dealer, wire.CALL, frames)
                        else:
                            self._fail(command[1], self.lost or "not connected")
                else:
                    while dealer.poll(0):
                        try:
                            if self._receive(dealer, dealer.recv_multipart(copy=True)):
                                last_heard = time.monotonic()
                        except (wire.WireError, IndexError) as error:
                            log.warning("refused a message from the learner: %s", error)
            now = time.monotonic()
            if now >= next_beat:
                if self.learner is not None and self.lost is None:
                    self._send(dealer, wire.HEARTBEAT, [wire.heartbeat_payload(self.base)])
                next_beat = now + self.interval
            if self.learner is not None and self.lost is None and now - last_heard > self.deadline:
                self._lose("no message from the learner for %.1f s" % (now - last_heard))
        dealer.close()
        self.wake_in.close()

    def _receive(self, dealer, frames):
        """Handles one message; True if it came from the learner."""
        try:
            header, payload = wire.parse_message(frames)
        except wire.WireError as error:
            if "unsupportedVersion" in str(error) and self.learner is None:
                self.lost = "the learner %s" % error
                self.welcomed.set()
            else:
                log.warning("refused a message: %s", error)
            return False
        if self.learner is None:
            if header.kind == wire.WELCOME:
                self.learner = header.sender
                name, _ = wire.parse_hello(payload[0])
                log.info("connected to %s (node %016x) at %s", name, header.sender, self.endpoint)
                self.welcomed.set()
            return True
        if header.sender != self.learner:
            return False
        if header.kind in (wire.REPLY, wire.CALL) and not payload:
            raise wire.WireError("truncated: %s without its envelope" % wire.KIND_NAMES[header.kind])
        if header.kind == wire.REPLY:
            reply = wire.parse_reply_envelope(payload[0])
            future = self.pending.pop(reply["call_id"], None)
            if future is not None:
                future.set_result((reply, payload[1:]))
        elif header.kind == wire.CALL:
            # A worker hosts no actor the learner may call: every call is a dead letter.
            call = wire.parse_call_envelope(payload[0])
            envelope = wire.reply_envelope(call["call_id"], wire.FAILED, wire.DEAD_LETTER, "no actors on this worker")
            self._send(dealer, wire.REPLY, [envelope])
        elif header.kind == wire.HEARTBEAT and payload:
            pace = wire.parse_heartbeat(payload[0])
            if pace != self.learner_pace:
                self.follow_pace(pace)
        elif header.kind == wire.LEAVE:
            self._lose("the learner left")
        return True

    def _fail(self, call_id, reason):
        future = self.pending.pop(call_id, None)
        if future is not None and not future.done():
            future.set_exception(LearnerLost(reason))

    def _lose(self, reason):
        self.lost = reason
        for call_id in list(self.pending):
            self._fail(call_id, reason)

    # The caller's side.

    def call(self, method, arguments, timeout):
        """The reply value frame of `method` (a key of TARGETS) with the encoded `arguments`."""
        if self.lost:
            raise LearnerLost(self.lost)
        call_id = next(self.call_ids)
        envelope = wire.call_envelope(call_id, self.learner, LEARNER_NAME, TARGETS[method], len(arguments))
        future = Future()
        self.pending[call_id] = future
        self.commands.put(("call", call_id, [envelope] + list(arguments)))
        self.wake.send(b"")
        try:
            reply, frames = future.result(timeout)
        except TimeoutError:
            self.pending.pop(call_id, None)
            raise LearnerLost("%s: no reply within %.0f s" % (method, timeout))
        except Exception as error:  # concurrent.futures.TimeoutError on Python < 3.11
            if type(error).__name__ == "TimeoutError":
                self.pending.pop(call_id, None)
                raise LearnerLost("%s: no reply within %.0f s" % (method, timeout))
            raise
        if reply["outcome"] == wire.VALUE and frames:
            return frames[0]
        if reply["outcome"] == wire.THROWN:
            raise RemoteError("%s threw %s: %s" % (method, reply["error_type"], reply["message"]), thrown=True)
        if reply["outcome"] == wire.FAILED:
            raise RemoteError("%s failed (code %d): %s" % (method, reply["code"], reply["message"]))
        raise RemoteError("%s: unexpected reply outcome %d" % (method, reply["outcome"]))

    def close(self, goodbye=True):
        """Says goodbye (a `leave` message) if asked to, and stops the I/O thread."""
        self.commands.put(("stop", goodbye))
        self.wake.send(b"")
        self.thread.join(5)
        self.wake.close()


class WeightSubscription:
    """The learner's weight broadcast: a SUB socket, and the newest `keep` versions received."""

    def __init__(self, context, endpoint, keep, count):
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(endpoint)
        self.keep, self.count, self.versions = max(1, keep), count, {}

    def _take(self, timeout):
        """Receives what arrived (waiting up to `timeout` seconds for the first message)."""
        while self.socket.poll(timeout * 1000):
            timeout = 0
            try:
                header, payload = wire.parse_message(self.socket.recv_multipart())
            except wire.WireError as error:
                log.warning("skipped a weight broadcast: %s", error)
                continue
            values = wire.weights_from_broadcast(payload) if header.kind == wire.BULK else None
            if values is None or values.size != self.count:
                log.warning("skipped a weight broadcast that is not %d floats", self.count)
                continue
            self.versions[header.policy_version] = values
            while len(self.versions) > self.keep:
                del self.versions[min(self.versions)]

    def get(self, version, wait):
        """The weights of `version` if they arrived, waiting up to `wait` seconds for them."""
        deadline = time.monotonic() + wait
        self._take(0)
        while version not in self.versions and time.monotonic() < deadline:
            self._take(max(0.0, deadline - time.monotonic()))
        return self.versions.get(version)

    def close(self):
        self.socket.close(0)


def reachable(endpoint, learner_address):
    """A wildcard-host tcp endpoint (0.0.0.0, *, [::]) with the learner's host instead."""
    if not (endpoint.startswith("tcp://") and learner_address.startswith("tcp://")):
        return endpoint
    host, _, port = endpoint[6:].rpartition(":")
    if host not in ("0.0.0.0", "*", "[::]"):
        return endpoint
    return "tcp://" + learner_address[6:].rpartition(":")[0] + ":" + port


class Worker:
    """Joins a learner and works until the run is finished."""

    def __init__(self, learner, name=None, engine_factory=None, context=None):
        self.address = learner
        self.name = name or "py-worker-%d" % os.getpid()
        self.engine_factory = engine_factory
        self.context = context or zmq.Context.instance()
        self.node = int.from_bytes(os.urandom(8), "little") or 1
        self.version = -1
        self.delivered = 0
        self.push_sequence = itertools.count(1)
        self.broadcast_swaps = self.fetched_swaps = self.order_swaps = 0

    def run(self, connection=None):
        """Works until the run is finished; the number of batches delivered. Says goodbye (`leave`)
        unless the learner is lost, also when refused or stopped by an error."""
        connection = connection or Connection(self.context, self.address, self.name, self.node)
        try:
            return self._work(connection)
        finally:
            connection.close(goodbye=connection.lost is None)

    def _work(self, connection):
        push = self.weights = None
        try:
            joined = wire.JoinReply.decode(connection.call("join", [wire.enc_node(self.node)], JOIN_CALL_TIMEOUT))
            if joined.config is None:
                raise RuntimeError("the learner sent no run configuration (protocol 5 learners do)")
            config = json.loads(joined.config)
            train, model = config["train"], config["model"]
            runtime = config.get("runtime", {})
            self.call_timeout = float(runtime.get("call_timeout", JOIN_CALL_TIMEOUT))
            connection.use_heartbeat_timeout(float(runtime.get("heartbeat_timeout", JOIN_HEARTBEAT_TIMEOUT)))
            self.task = Task(config.get("task", {}))
            _, self.train_split = self.task.splits()
            self.seed, self.prompts_per_step = int(config["seed"]), int(train["prompts_per_step"])
            self.group_size = int(train["group_size"])
            self.temperature, self.top_k = float(train["temperature"]), int(train["top_k"])
            self.engine = (self.engine_factory or NumpyGPT)(
                VOCAB, int(model["context"]), int(model["d_model"]), int(model["layers"]), int(model["heads"]))
            self._load(*joined.weights)
            if not joined.samples:
                raise RuntimeError("the learner takes no sample stream (this worker delivers only by stream)")
            if joined.broadcast:
                self.weights = WeightSubscription(self.context, reachable(joined.broadcast, self.address),
                                                  joined.keep_versions, joined.weights[1].size)
            push = self.context.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 10000)
            push.connect(reachable(joined.samples, self.address))
            log.info("joined at version %d; pushing samples to %s", self.version, joined.samples)
            while True:
                order = self._request_work(connection)
                if order.status == "finished":
                    log.info("run finished after %d batches from this worker; weights from the broadcast %d "
                             "times, in the order %d, fetched %d times", self.delivered, self.broadcast_swaps,
                             self.order_swaps, self.fetched_swaps)
                    return self.delivered
                if order.status == "wait":
                    continue
                if order.weights is not None:
                    self._load(*order.weights)
                    self.order_swaps += 1
                elif order.version != self.version:
                    values = self.weights.get(order.version, 0.5) if self.weights else None
                    if values is not None:
                        self._load(order.version, values)
                        self.broadcast_swaps += 1
                    elif not self._fetch(connection, order.version):
                        continue  # the learner gave this assignment up: ask for work again
                batch = self.sample(order)
                payload = batch.frames()
                push.send_multipart(wire.message(wire.BULK, self.node, next(self.push_sequence), payload,
                                                 policy_version=order.version), copy=False)
                self.delivered += 1
                log.info("delivered batch %d (attempt %d, version %d)", order.index, order.attempt, order.version)
        finally:
            if push is not None:
                push.close()
            if self.weights is not None:
                self.weights.close()

    def _request_work(self, connection):
        """The next work order; inline weights only without a broadcast subscription. Raises
        Refused if the learner gives this worker no more work."""
        try:
            return wire.WorkOrder.decode(connection.call(
                "requestWork",
                [wire.enc_node(self.node), wire.enc_int(self.version), wire.enc_bool(self.weights is None)],
                self.call_timeout))
        except RemoteError as error:
            if error.thrown:
                raise Refused("the learner gives this worker no more work in this run (%s)" % error) from error
            raise

    def _fetch(self, connection, version):
        """Loads the weights of `version` by fetchWeights; False if the learner no longer keeps them."""
        try:
            frame = connection.call("fetchWeights", [wire.enc_int(version)], self.call_timeout)
        except RemoteError as error:
            if not error.thrown:
                raise
            log.warning("%s; asking for work again", error)
            return False
        self._load(*wire.dec_weights(wire.decode_value(frame)))
        self.fetched_swaps += 1
        return True

    def _load(self, version, values):
        self.engine.load(version, values)
        self.version = version

    def sample(self, order):
        """The sample batch of `order`: its problems, group_size completions each, graded."""
        problems = problems_for_step(order.index, self.seed, self.prompts_per_step, self.train_split)
        prompts = [p.prompt for p in problems for _ in range(self.group_size)]
        completions = self.engine.generate(prompts, self.task.max_answer_tokens, self.temperature, self.top_k, EOS,
                                           sampling_seed(order.index, self.seed))
        columns = {k: [] for k in ("completions", "behaviour_logprobs", "versions", "rewards", "outcomes", "prompts")}
        prompt_offsets, completion_offsets = [0], [0]
        for row, (prompt, (tokens, log_probs)) in enumerate(zip(prompts, completions)):
            outcome, reward, length = self.task.grade(problems[row // self.group_size], tokens)
            tokens, log_probs = tokens[:length], log_probs[:length]
            columns["prompts"] += prompt
            columns["completions"] += tokens
            columns["behaviour_logprobs"] += log_probs
            columns["versions"] += [order.version] * len(tokens)
            columns["rewards"].append(reward)
            columns["outcomes"].append(wire.OUTCOMES.index(outcome))
            prompt_offsets.append(len(columns["prompts"]))
            completion_offsets.append(len(columns["completions"]))
        rows = len(prompts)
        columns.update(ids=first_id(order.index, order.attempt) + np.arange(rows, dtype=np.uint64),
                       groups=np.arange(rows) // self.group_size, prompt_offsets=prompt_offsets,
                       completion_offsets=completion_offsets)
        return wire.SampleBatch(self.node, order.index, order.attempt, order.incarnation, order.token_high,
                                order.token_low, self.group_size, self.temperature, self.top_k, columns)


def load_engine(spec):
    """`module:callable`, called like NumpyGPT(vocab, context, d_model, layers, heads)."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="rein-worker-py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--learner", default="tcp://127.0.0.1:7070", help="the learner's endpoint")
    parser.add_argument("--name", help="this worker's name (default py-worker-PID)")
    parser.add_argument("--engine", help="module:factory of another engine (default: the numpy GPT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    worker = Worker(args.learner, args.name, load_engine(args.engine) if args.engine else None)
    try:
        delivered = worker.run()
    except (LearnerLost, RemoteError, RuntimeError, ValueError, wire.WireError) as error:
        print("rein-worker-py: %s" % error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print("rein-worker-py: delivered %d batches; new weights %d times from the broadcast, %d in the order, "
          "fetched %d times" % (delivered, worker.broadcast_swaps, worker.order_swaps, worker.fetched_swaps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
