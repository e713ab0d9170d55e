#!/usr/bin/env python3
"""Cross-check Rein's GPT engine against a nanoGPT-structured PyTorch model.

  1. `rein model init` writes a checkpoint; Python loads it with `safetensors` into the PyTorch model.
  2. Python writes a checkpoint with random weights (LayerNorm and biases too); Rein loads it.
In both cases `rein model score` and PyTorch compute per-token log-probs of the same random sequences
(ragged lengths), and the largest absolute difference must be below --tol.

Needs torch, numpy and safetensors (`pip install torch numpy safetensors`); Rein's tests do not.
Each check runs once per matrix-product backend (REIN_GEMM=onednn, openblas; --gemm to choose).
Usage: python scripts/torch_check.py [--rein .build/release/rein] [--config default|small] [--tol 1e-4]
       [--gemm onednn,openblas]
"""
import argparse, json, math, os, subprocess, sys, tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's GPT (bias=True, dropout 0): same module tree, so the same state-dict names."""

    def __init__(self, vocab_size, block_size, n_embd, n_layer, n_head):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying

    def forward(self, idx):
        pos = torch.arange(idx.size(1))
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def model_from_checkpoint(path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["config"])
    model = GPT(cfg["vocab"], cfg["context"], cfg["dModel"], cfg["layers"], cfg["heads"])
    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    assert missing == ["lm_head.weight"] and not unexpected, (missing, unexpected)  # lm_head is tied
    return model.eval(), cfg, meta


def torch_logprobs(model, sequences):
    out = []
    with torch.no_grad():
        for s in sequences:
            idx = torch.tensor([s[:-1]])
            lp = F.log_softmax(model(idx).double(), -1)[0]
            out.append([lp[t, s[t + 1]].item() for t in range(len(s) - 1)])
    return out


def rein_logprobs(rein, checkpoint, sequences, workdir, gemm):
    tokens = os.path.join(workdir, "tokens.json")
    with open(tokens, "w") as f:
        json.dump({"sequences": sequences}, f)
    out = subprocess.run([rein, "model", "score", "--checkpoint", checkpoint, "--tokens", tokens, "--json"],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "REIN_GEMM": gemm}).stdout
    return json.loads(out)["logprobs"]


def compare(name, a, b):
    worst = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    assert [len(r) for r in a] == [len(r) for r in b]
    n = sum(len(r) for r in a)
    scale = max(abs(y) for r in b for y in r)
    print(f"{name}: {n} log-probs (largest |log p| {scale:.3g}), max |rein - torch| = {worst:.3g}")
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rein", default=".build/release/rein")
    ap.add_argument("--config", default="default")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--gemm", default="onednn,openblas",
                    help="comma-separated matrix-product backends to check (REIN_GEMM values)")
    args = ap.parse_args()
    backends = [g for g in args.gemm.split(",") if g]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        # 1. Rein writes, PyTorch reads.
        ckpt = os.path.join(work, "rein_init.safetensors")
        subprocess.run([args.rein, "model", "init", "--config", args.config, "--seed", "7", "--out", ckpt,
                        "--tokenizer", "torch_check"], check=True, capture_output=True)
        model, cfg, meta = model_from_checkpoint(ckpt)
        assert meta.get("tokenizer") == "torch_check" and meta.get("policy_version") == "0", meta
        gen = torch.Generator().manual_seed(1)
        lengths = [cfg["context"] + 1, 2, 17, cfg["context"], 33, 9]
        sequences = [torch.randint(0, cfg["vocab"], (n,), generator=gen).tolist() for n in lengths]
        expected = torch_logprobs(model, sequences)
        w1 = max(compare(f"rein init -> torch ({g})", rein_logprobs(args.rein, ckpt, sequences, work, g), expected)
                 for g in backends)

        # 2. PyTorch writes random weights (LayerNorms and biases included), Rein reads.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                    p.copy_(1 + 0.3 * torch.randn_like(p))
                else:
                    p.copy_((0.3 if p.dim() > 1 else 0.2) * torch.randn_like(p))
        state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        ckpt2 = os.path.join(work, "torch_random.safetensors")
        save_file(state, ckpt2, metadata={"config": json.dumps(cfg), "format": "rein-gpt"})
        expected = torch_logprobs(model, sequences)
        w2 = max(compare(f"torch random -> rein ({g})", rein_logprobs(args.rein, ckpt2, sequences, work, g),
                         expected)
                 for g in backends)
    ok = max(w1, w2) < args.tol
    print("OK" if ok else f"FAIL: difference above {args.tol}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
