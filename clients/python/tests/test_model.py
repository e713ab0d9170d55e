import unittest

import numpy as np

from rein_worker.model import NumpyGPT, behaviour_log_probs, layout, parameter_count, safetensors_bytes, unflatten


def random_gpt(seed=0, vocab=17, context=16, d_model=16, layers=2, heads=2):
    rng = np.random.default_rng(seed)
    gpt = NumpyGPT(vocab, context, d_model, layers, heads)
    values = (rng.standard_normal(parameter_count(vocab, context, d_model, layers)) * 0.3).astype(np.float32)
    gpt.load(1, values)
    return gpt, values


class ModelTests(unittest.TestCase):
    def test_layout_matches_rein_parameter_count(self):
        # d_model 64, 4 layers, context 64, vocab 17: ReinModel's ParameterLayout count.
        self.assertEqual(parameter_count(17, 64, 64, 4), 17 * 64 + 64 * 64 + 4 * (12 * 64 * 64 + 13 * 64) + 2 * 64)
        names = [n for n, _ in layout(17, 64, 64, 1)]
        self.assertEqual(names[:3], ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight"])

    def test_forward_is_causal(self):
        gpt, _ = random_gpt()
        a = gpt.logits(np.array([[1, 5, 6, 7]]))
        b = gpt.logits(np.array([[1, 5, 9, 3]]))
        np.testing.assert_allclose(a[:, :2], b[:, :2], rtol=1e-6)
        self.assertFalse(np.allclose(a[:, 2:], b[:, 2:]))

    def test_behaviour_log_probs_are_the_sampling_distribution(self):
        logits = np.array([[2.0, 1.0, 1.0, -1.0]])
        lp = behaviour_log_probs(logits, 0.5, 2)
        self.assertTrue(np.isneginf(lp[0, 2]) and np.isneginf(lp[0, 3]), "top-2 keeps the lower id of a tie")
        self.assertAlmostEqual(float(np.exp(lp).sum()), 1.0, places=12)
        self.assertAlmostEqual(float(lp[0, 0] - lp[0, 1]), 2.0, places=12)
        self.assertEqual(behaviour_log_probs(logits, 0, 0)[0].tolist(), [0.0, -np.inf, -np.inf, -np.inf])

    def test_generated_log_probs_are_those_of_the_tokens_drawn(self):
        gpt, _ = random_gpt(3)
        prompts = [[1, 5, 13, 6, 16], [1, 7, 14, 8, 16], [1, 9, 16]]
        out = gpt.generate(prompts, 4, 1.0, 0, 2, seed=7)
        for prompt, (tokens, log_probs) in zip(prompts, out):
            self.assertTrue(1 <= len(tokens) <= 4 and len(log_probs) == len(tokens))
            self.assertTrue(2 not in tokens[:-1], "stops after the end token")
            seq = list(prompt)
            for token, lp in zip(tokens, log_probs):
                expected = behaviour_log_probs(gpt.logits(np.array([seq]))[:, -1, :], 1.0, 0)[0, token]
                self.assertAlmostEqual(lp, float(expected), places=5)
                self.assertLessEqual(lp, 0.0)
                seq.append(token)
        self.assertEqual(out, gpt.generate(prompts, 4, 1.0, 0, 2, seed=7), "seeded")

    def test_safetensors_header_names_every_tensor(self):
        _, values = random_gpt()
        raw = safetensors_bytes(values, 17, 16, 16, 2)
        n = int.from_bytes(raw[:8], "little")
        import json
        header = json.loads(raw[8:8 + n])
        self.assertEqual(header["transformer.wte.weight"], {"dtype": "F32", "shape": [17, 16], "data_offsets": [0, 17 * 16 * 4]})
        self.assertEqual(len(raw) - 8 - n, values.size * 4)
        tensors = unflatten(values, 17, 16, 16, 2)
        self.assertEqual(tensors["transformer.ln_f.bias"].shape, (16,))


if __name__ == "__main__":
    unittest.main()
