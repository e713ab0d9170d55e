"""Hugging Face TRL peer for `rein bench e2e`: GRPOTrainer on the same policy, task and batch.

Loads Rein's reference checkpoint (nanoGPT names, safetensors) into a transformers GPT-2 module of
the same shape (exact GELU, LayerNorm eps 1e-5, tied head, no dropout), with Rein's 17-symbol
character tokenizer (`_` pad, `^` BOS, `$` EOS, digits, `+ - * =`), and trains it with GRPOTrainer
on CPU: prompts like `^37+58=` drawn as Rein draws them (operations, operand digits, zero-padded,
subtraction swapped to stay non-negative), reward 1 for exactly the answer followed by EOS and 0
otherwise, prompts_per_step × group_size completions per optimizer step, at most the longest
answer + EOS new tokens, β, learning rate, temperature and PPO clip range from Rein's config,
token-mean loss. Prints one JSON line: samples trained per second over `steps` optimizer steps
after one warm-up step.

Usage (rein bench e2e passes the settings): python scripts/bench/trl_peer.py '{"reference": PATH,
"steps": 10, "threads": 2, "prompts_per_step": 16, "group_size": 8, "beta": 0.02, "lr": 1e-4,
"temperature": 1.0, "clip": [0.2, 0.28], "seed": 1, "max_new_tokens": 4, "task": {"operations": ["add", "sub"],
"min_digits": 1, "max_digits": 2, "pad_operands": true}}'
Needs torch, transformers, trl, datasets and safetensors; Rein's tests do not.
"""
import json, os, random, sys, tempfile, time, warnings

settings = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
threads = int(settings.get("threads", 2))
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
# OpenMP threads that spin while waiting lose their core on a busy machine: measured here with
# other builds running, the peer did 17 samples/s spinning and 348 passive. Passive is its best case.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

torch.set_num_threads(threads)

import datasets  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

transformers.logging.set_verbosity_error()
datasets.disable_progress_bars()

SYMBOLS = ["_", "^", "$", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "*", "="]
PAD, BOS, EOS = 0, 1, 2


def tokenizer():
    """Rein's character tokenizer: one id per symbol, ids as in ReinTasks' Tokenizer.standard."""
    vocab = {s: i for i, s in enumerate(SYMBOLS)}
    t = Tokenizer(models.WordLevel(vocab=vocab, unk_token="_"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    t.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=t, pad_token="_", bos_token="^", eos_token="$", unk_token="_",
        padding_side="left")


def gpt2_from_rein(path, directory):
    """Rein's nanoGPT-named checkpoint as a transformers GPT-2 (Conv1D weights are transposed)."""
    with safe_open(path, framework="pt") as f:
        cfg = json.loads(f.metadata()["config"])
    config = GPT2Config(
        vocab_size=cfg["vocab"], n_positions=cfg["context"], n_embd=cfg["dModel"], n_layer=cfg["layers"],
        n_head=cfg["heads"], activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=True)
    model = GPT2LMHeadModel(config)
    state = {}
    for name, tensor in load_file(path).items():
        if name.endswith(".weight") and any(k in name for k in ("c_attn", "c_proj", "c_fc")):
            tensor = tensor.t().contiguous()  # torch.nn.Linear [out, in] → GPT-2 Conv1D [in, out]
        state[name] = tensor
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight" and not m.endswith(".attn.bias")
               and not m.endswith(".attn.masked_bias")]
    assert not missing and not unexpected, (missing, unexpected)
    model.generation_config.eos_token_id = EOS
    model.generation_config.pad_token_id = PAD
    model.generation_config.bos_token_id = BOS
    # GRPOTrainer loads the reference model again from the same path, so both start from the file.
    model.save_pretrained(directory)
    return cfg


def problems(task, count, seed):
    """Prompts and answers drawn as ArithmeticTask.randomProblem draws them (other random numbers)."""
    rng = random.Random(seed)
    low = 0 if task["min_digits"] <= 1 else 10 ** (task["min_digits"] - 1)
    high = 10 ** task["max_digits"] - 1
    apply = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
    symbol = {"add": "+", "sub": "-", "mul": "*"}
    rows = []
    for _ in range(count):
        op = rng.choice(task["operations"])
        a, b = rng.randint(low, high), rng.randint(low, high)
        if op == "sub" and a < b:
            a, b = b, a
        write = (lambda x: str(x).zfill(task["max_digits"])) if task.get("pad_operands", True) else str
        rows.append({"prompt": "^" + write(a) + symbol[op] + write(b) + "=", "answer": str(apply[op](a, b))})
    return rows


def reward(completions, answer, completion_ids=None, **_):
    """1 for exactly the answer then EOS (Rein's exact-match reward, format_reward 0), else 0."""
    out = []
    for i, target in enumerate(answer):
        ids = list(completion_ids[i]) if completion_ids is not None else None
        if ids is None:  # older TRL: the text only (EOS stripped), so EOS cannot be checked
            out.append(1.0 if completions[i] == target else 0.0)
            continue
        if EOS not in ids:
            out.append(0.0)
            continue
        body = "".join(SYMBOLS[t] if 0 <= t < len(SYMBOLS) else "?" for t in ids[:ids.index(EOS)])
        out.append(1.0 if body == target else 0.0)
    return out


class StepClock(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def main():
    steps = int(settings.get("steps", 10))
    per_step, group = int(settings.get("prompts_per_step", 16)), int(settings.get("group_size", 8))
    task = settings.get("task", {"operations": ["add", "sub"], "min_digits": 1, "max_digits": 2,
                                 "pad_operands": True})
    clip = settings.get("clip", [0.2, 0.28])
    work = tempfile.mkdtemp(prefix="rein-trl-peer-")
    model_dir = os.path.join(work, "model")
    gpt = gpt2_from_rein(settings["reference"], model_dir)
    rows = problems(task, per_step * (steps + 1), int(settings.get("seed", 1)))
    new_tokens = int(settings.get("max_new_tokens", 4))
    args = GRPOConfig(
        output_dir=os.path.join(work, "out"), use_cpu=True, bf16=False, fp16=False,
        per_device_train_batch_size=per_step * group, num_generations=group, gradient_accumulation_steps=1,
        max_completion_length=new_tokens, max_steps=steps + 1, learning_rate=float(settings.get("lr", 1e-4)),
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        beta=float(settings.get("beta", 0.02)), temperature=float(settings.get("temperature", 1.0)),
        top_k=0, top_p=1.0, epsilon=clip[0], epsilon_high=clip[1], num_iterations=1, loss_type="dapo",
        logging_steps=10_000, save_strategy="no", report_to="none", seed=int(settings.get("seed", 1)),
        dataloader_num_workers=0, disable_tqdm=True, shuffle_dataset=False)
    clock = StepClock()
    trainer = GRPOTrainer(
        model=model_dir, reward_funcs=reward, args=args, train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer(), callbacks=[clock])
    trainer.train()
    timed = clock.times[1:] if len(clock.times) > 1 else clock.times
    seconds = timed[-1] - clock.times[0]
    n = len(timed) if len(clock.times) > 1 else 1
    print(json.dumps(dict(
        samples_per_s=round(per_step * group * n / seconds, 1), steps=n, seconds=round(seconds, 3),
        threads=torch.get_num_threads(), batch=per_step * group, max_new_tokens=new_tokens,
        model=gpt, versions=f"trl {trl.__version__}, transformers {transformers.__version__}, "
                            f"torch {torch.__version__}")))


if __name__ == "__main__":
    main()
