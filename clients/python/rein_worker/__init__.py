"""A Python rollout worker for a Rein learner, written from docs/wire-protocol.md.

Modules:
- ``wire``: the message header, call/reply envelopes, the keyed value encoding, the sample batch
  layout and weight broadcast frames (protocol 5);
- ``task``: the arithmetic task (tokenizer, seeded splits, prompts of a batch index, grading);
- ``model``: a numpy GPT (forward with a KV cache, sampling with temperature and top-k);
- ``worker``: the connection to the learner and the worker loop (``python -m rein_worker``).
"""

PROTOCOL_VERSION = 5
