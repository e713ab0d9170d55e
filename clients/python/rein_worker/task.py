"""The arithmetic task, as Rein's ReinTasks defines it: the tokenizer, the seeded train/held-out
splits, the prompts of a batch index, and grading (reward and outcome).

The learner audits every batch against these (prompts, sample ids, rewards, outcomes), so they
must agree with the Swift code exactly; tests/test_task.py checks them against values the Swift
side printed.
"""

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15

SYMBOLS = "_^$0123456789+-*="
PAD, BOS, EOS = 0, 1, 2
VOCAB = len(SYMBOLS)
OPERATIONS = {"add": ("+", lambda a, b: a + b), "sub": ("-", lambda a, b: a - b), "mul": ("*", lambda a, b: a * b)}


def mix(x):
    """SplitMix64's output function."""
    z = x & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class TaskRandom:
    """ReinTasks' TaskRandom: SplitMix64 from mix(mix(seed) + mix(stream ^ 0x5EED0F5EED5EED00))."""

    def __init__(self, seed, stream=0):
        self.state = mix((mix(seed) + mix(stream ^ 0x5EED0F5EED5EED00)) & MASK)

    def next(self):
        self.state = (self.state + GAMMA) & MASK
        return mix(self.state)

    def below(self, bound):
        """Uniform in [0, bound): Lemire's multiply-and-reject, as the Swift code draws it."""
        product = bound * self.next()
        if product & MASK < bound:
            threshold = ((1 << 64) - bound) % bound
            while product & MASK < threshold:
                product = bound * self.next()
        return product >> 64


def encode(text):
    return [SYMBOLS.index(c) for c in text]


def decode(ids):
    return "".join(SYMBOLS[i] if 0 <= i < VOCAB else "?" for i in ids)


class Problem:
    __slots__ = ("lhs", "op", "rhs", "prompt", "answer")

    def __init__(self, lhs, op, rhs, prompt, answer):
        self.lhs, self.op, self.rhs, self.prompt, self.answer = lhs, op, rhs, prompt, answer


class Task:
    """The task of a run's `task:` block (snake_case keys, defaults as in ArithmeticTaskConfig)."""

    def __init__(self, config):
        self.operations = list(config.get("operations", ["add", "sub"]))
        self.min_digits = int(config.get("min_digits", 1))
        self.max_digits = int(config.get("max_digits", 2))
        self.pad_operands = bool(config.get("pad_operands", True))
        self.allow_negative = bool(config.get("allow_negative", False))
        self.bos = bool(config.get("bos", True))
        self.train_size = int(config.get("train_size", 14000))
        self.held_out_size = int(config.get("held_out_size", 1000))
        self.seed = int(config.get("seed", 1))
        self.format_reward = float(config.get("format_reward", 0))
        self.low = 0 if self.min_digits <= 1 else 10 ** (self.min_digits - 1)
        self.high = 10 ** self.max_digits - 1

    def operand(self, value):
        digits = str(value)
        return digits.rjust(self.max_digits, "0") if self.pad_operands else digits

    def problem(self, lhs, op, rhs):
        symbol, apply = OPERATIONS[op]
        text = self.operand(lhs) + symbol + self.operand(rhs) + "="
        prompt = ([BOS] if self.bos else []) + encode(text)
        return Problem(lhs, op, rhs, prompt, encode(str(apply(lhs, rhs))) + [EOS])

    def random_operands(self, random):
        op = self.operations[random.below(len(self.operations))]
        span = self.high - self.low + 1
        lhs = self.low + random.below(span)
        rhs = self.low + random.below(span)
        if op == "sub" and not self.allow_negative and lhs < rhs:
            lhs, rhs = rhs, lhs
        return lhs, op, rhs

    def splits(self):
        """(held_out, train): drawn from one TaskRandom(seed, stream 1), redrawing repeats."""
        random, seen = TaskRandom(self.seed, 1), set()

        def draw(count):
            out = []
            while len(out) < count:
                key = self.random_operands(random)
                if key not in seen:
                    seen.add(key)
                    out.append(self.problem(*key))
            return out

        held_out = draw(self.held_out_size)
        return held_out, draw(self.train_size)

    @property
    def max_answer_tokens(self):
        """The longest answer (sign included) plus EOS: the most tokens a worker may generate."""
        longest = 1
        for op in self.operations:
            if op in ("add", "mul"):
                extremes = [OPERATIONS[op][1](self.high, self.high)]
            else:
                extremes = [self.high - self.low, self.low - self.high if self.allow_negative else 0]
            longest = max(longest, max(len(str(e)) for e in extremes))
        return longest + 1

    def grade(self, problem, completion):
        """(outcome, reward, length): the completion is cut after its first EOS (length tokens kept)."""
        ids = list(completion)
        if EOS not in ids:
            return "no_eos", 0.0, len(ids)
        end = ids.index(EOS)
        body = ids[:end]
        if body == problem.answer[:-1]:
            outcome = "correct"
        elif self._canonical(body):
            outcome = "wrong_answer"
        else:
            outcome = "malformed"
        reward = 1.0 if outcome == "correct" else self.format_reward if outcome == "wrong_answer" else 0.0
        return outcome, reward, end + 1

    @staticmethod
    def _canonical(ids):
        if any(not 0 <= i < VOCAB for i in ids):
            return False
        text = decode(ids)
        negative = text.startswith("-")
        if negative:
            text = text[1:]
        if not text or not text.isdigit() or not all(c in "0123456789" for c in text):
            return False
        return text[0] != "0" or (len(text) == 1 and not negative)


def problems_for_step(step, run_seed, prompts_per_step, train):
    """The prompts of batch `step` (Trainer.problems(forStep:)): TaskRandom(seed, 0x7261696E + step)."""
    random = TaskRandom(run_seed, 0x7261696E + step)
    return [train[random.below(len(train))] for _ in range(prompts_per_step)]


def sampling_seed(step, run_seed):
    """Trainer.samplingSeed(forStep:seed:)."""
    return (run_seed * GAMMA + step) & MASK


def first_id(index, attempt):
    """The first sample id of batch `index`, attempt `attempt` (Rollout.firstID)."""
    return (index << 20) | (attempt << 16)
