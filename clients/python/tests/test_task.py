import json
import os
import unittest

from rein_worker.task import Problem, Task, TaskRandom, decode, encode, first_id, problems_for_step, sampling_seed

# Values the Swift side checks too (Tests/ReinTests/PythonClientGoldenTests.swift).
with open(os.path.join(os.path.dirname(__file__), "golden", "task.json")) as f:
    GOLDEN = json.load(f)


class TaskTests(unittest.TestCase):
    def test_task_random_matches_swift(self):
        r = TaskRandom(1, 0)
        self.assertEqual([str(r.next()) for _ in range(3)], GOLDEN["task_random_seed1_stream0_next"])
        r = TaskRandom(1, 0x7261696E)
        self.assertEqual([r.below(14000) for _ in range(5)], GOLDEN["task_random_seed1_stream_0x7261696E_below_14000"])

    def test_splits_and_batch_prompts_match_swift(self):
        task = Task({})
        held_out, train = task.splits()
        self.assertEqual(len(train), 14000)
        self.assertEqual([decode(p.prompt) for p in train[:5]], GOLDEN["train_prompts_first5"])
        self.assertEqual([decode(p.prompt) for p in held_out[:3]], GOLDEN["held_out_prompts_first3"])
        self.assertEqual(decode(train[-1].prompt), GOLDEN["train_prompts_last"])
        self.assertEqual(task.max_answer_tokens, GOLDEN["max_answer_tokens"])
        for step, prompts in GOLDEN["problems_for_step"].items():
            self.assertEqual([decode(p.prompt) for p in problems_for_step(int(step), 1, 4, train)], prompts)
        self.assertEqual(str(sampling_seed(3, 1)), GOLDEN["sampling_seed_step3_seed1"])
        self.assertEqual(first_id(2, 1), GOLDEN["first_id_index2_attempt1"])

    def test_grading_matches_swift(self):
        task = Task({})
        for g in GOLDEN["grades"]:
            got = task.grade(Problem(0, "add", 0, [], encode(g["answer"])), encode(g["completion"]))
            self.assertEqual(got, (g["outcome"], g["reward"], g["length"]), g)


if __name__ == "__main__":
    unittest.main()
