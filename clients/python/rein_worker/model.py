"""A numpy GPT with Rein's parameter layout (nanoGPT names and shapes, tied head), and a sampler
that returns the behaviour log-probs of what it drew: log μ(y_t | s_t) under the distribution
actually sampled from (logits / temperature, top-k cut, log-softmax).

Any engine that implements ``Engine`` (``load`` and ``generate``) can replace ``NumpyGPT``: a vLLM
or HF transformers engine must return the same per-token log-probs of the sampling distribution.
"""

import numpy as np


def layout(vocab, context, d_model, layers):
    """[(name, shape)] in the order of the flat parameter vector (ReinModel's ParameterLayout)."""
    v, t, c = vocab, context, d_model
    specs = [("transformer.wte.weight", (v, c)), ("transformer.wpe.weight", (t, c))]
    for i in range(layers):
        p = "transformer.h.%d." % i
        specs += [(p + "ln_1.weight", (c,)), (p + "ln_1.bias", (c,)), (p + "attn.c_attn.weight", (3 * c, c)),
                  (p + "attn.c_attn.bias", (3 * c,)), (p + "attn.c_proj.weight", (c, c)), (p + "attn.c_proj.bias", (c,)),
                  (p + "ln_2.weight", (c,)), (p + "ln_2.bias", (c,)), (p + "mlp.c_fc.weight", (4 * c, c)),
                  (p + "mlp.c_fc.bias", (4 * c,)), (p + "mlp.c_proj.weight", (c, 4 * c)), (p + "mlp.c_proj.bias", (c,))]
    return specs + [("transformer.ln_f.weight", (c,)), ("transformer.ln_f.bias", (c,))]


def parameter_count(vocab, context, d_model, layers):
    return sum(int(np.prod(shape)) for _, shape in layout(vocab, context, d_model, layers))


def unflatten(values, vocab, context, d_model, layers):
    """The named tensors (views, no copies) of a flat float32 vector."""
    values = np.asarray(values, dtype=np.float32)
    expected = parameter_count(vocab, context, d_model, layers)
    if values.size != expected:
        raise ValueError("%d parameters, the model needs %d" % (values.size, expected))
    tensors, at = {}, 0
    for name, shape in layout(vocab, context, d_model, layers):
        n = int(np.prod(shape))
        tensors[name] = values[at:at + n].reshape(shape)
        at += n
    return tensors


def safetensors_bytes(values, vocab, context, d_model, layers, metadata=None):
    """The flat vector as a safetensors file (F32 tensors, names and shapes of ``layout``)."""
    import json
    header, at = {}, 0
    for name, shape in layout(vocab, context, d_model, layers):
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [at, at + n]}
        at += n
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + np.asarray(values, dtype="<f4").tobytes()


def _erf(x):
    # Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, below float32 rounding of GELU's inputs).
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return sign * y


def _layer_norm(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w + b


def behaviour_log_probs(logits, temperature, top_k):
    """Rows of log-probs of the sampling distribution: logits / temperature, all but the top_k
    largest (ties: lower ids first) set to -inf when 0 < top_k < vocab, log-softmax. Temperature
    0 is greedy (log-prob 0 for the argmax, -inf elsewhere)."""
    logits = np.asarray(logits, dtype=np.float64)
    v = logits.shape[-1]
    if temperature == 0:
        out = np.full_like(logits, -np.inf)
        np.put_along_axis(out, logits.argmax(-1)[..., None], 0.0, -1)
        return out
    z = logits / temperature
    if 0 < top_k < v:
        order = np.argsort(-z, axis=-1, kind="stable")
        cut = order[..., top_k:]
        np.put_along_axis(z, cut, -np.inf, -1)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


class Engine:
    """What the worker needs of a rollout engine."""

    def load(self, version, values):
        """Use the flat parameters `values` (float32, ``layout`` order) of policy `version`."""
        raise NotImplementedError

    def generate(self, prompts, max_new_tokens, temperature, top_k, eos, seed):
        """Completions of `prompts` (lists of token ids): for each, (tokens, log_probs) of up to
        `max_new_tokens` generated tokens, stopping after `eos`; log_probs[t] is log μ(tokens[t] |
        prefix) under the distribution the token was drawn from (``behaviour_log_probs``)."""
        raise NotImplementedError


class NumpyGPT(Engine):
    """nanoGPT's forward in numpy (float32 weights, float64 softmax): causal attention, exact-erf
    GELU (A&S approximation, < 1.5e-7), LayerNorm eps 1e-5, head tied to the token embedding."""

    def __init__(self, vocab, context, d_model, layers, heads):
        self.vocab, self.context, self.d_model, self.layers, self.heads = vocab, context, d_model, layers, heads
        self.tensors, self.version = None, None

    def load(self, version, values):
        self.tensors = unflatten(values, self.vocab, self.context, self.d_model, self.layers)
        self.version = version

    def logits(self, tokens):
        """Logits (B × T × vocab) of a B × T block of token ids."""
        p, (b, t), c, h = self.tensors, tokens.shape, self.d_model, self.heads
        x = p["transformer.wte.weight"][tokens] + p["transformer.wpe.weight"][:t]
        mask = np.triu(np.ones((t, t), dtype=bool), 1)
        for i in range(self.layers):
            q = "transformer.h.%d." % i
            a = _layer_norm(x, p[q + "ln_1.weight"], p[q + "ln_1.bias"])
            qkv = a @ p[q + "attn.c_attn.weight"].T + p[q + "attn.c_attn.bias"]
            qh, kh, vh = (qkv[..., j * c:(j + 1) * c].reshape(b, t, h, c // h).transpose(0, 2, 1, 3) for j in range(3))
            att = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(c // h)
            att = np.where(mask, -np.inf, att)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            y = (att @ vh).transpose(0, 2, 1, 3).reshape(b, t, c)
            x = x + y @ p[q + "attn.c_proj.weight"].T + p[q + "attn.c_proj.bias"]
            a = _layer_norm(x, p[q + "ln_2.weight"], p[q + "ln_2.bias"])
            f = a @ p[q + "mlp.c_fc.weight"].T + p[q + "mlp.c_fc.bias"]
            f = f * 0.5 * (1 + _erf(f * 0.7071067811865476))
            x = x + f @ p[q + "mlp.c_proj.weight"].T + p[q + "mlp.c_proj.bias"]
        x = _layer_norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"])
        return x @ p["transformer.wte.weight"].T

    def generate(self, prompts, max_new_tokens, temperature, top_k, eos, seed):
        if self.tensors is None:
            raise RuntimeError("no weights loaded")
        rng = np.random.default_rng(seed)
        out = [None] * len(prompts)
        by_length = {}
        for r, prompt in enumerate(prompts):
            by_length.setdefault(len(prompt), []).append(r)
        for length, rows in by_length.items():
            if length + max_new_tokens > self.context:
                raise ValueError("prompt of %d tokens + %d new exceeds the context %d" % (length, max_new_tokens, self.context))
            seq = np.array([prompts[r] for r in rows], dtype=np.int64)
            logps = np.zeros((len(rows), max_new_tokens))
            done = np.zeros(len(rows), dtype=bool)
            for g in range(max_new_tokens):
                lp = behaviour_log_probs(self.logits(seq)[:, -1, :], temperature, top_k)
                probs = np.exp(lp)
                cdf = np.cumsum(probs, -1)
                u = rng.random(len(rows)) * cdf[:, -1]
                token = np.minimum((cdf <= u[:, None]).sum(-1), self.vocab - 1)
                token = np.where(np.isfinite(lp[np.arange(len(rows)), token]), token, lp.argmax(-1))
                logps[:, g] = lp[np.arange(len(rows)), token]
                seq = np.concatenate([seq, token[:, None]], 1)
                done |= token == eos
                if done.all():
                    break
            for i, r in enumerate(rows):
                generated = seq[i, length:].tolist()
                n = generated.index(eos) + 1 if eos in generated else len(generated)
                out[r] = (generated[:n], logps[i, :n].astype(np.float32).tolist())
        return out
