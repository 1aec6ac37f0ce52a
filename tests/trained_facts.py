"""Helpers shared by test_train.py and test_eval.py: a handful of made-up facts and tiny models trained on
them, built once per session (cached in pytest's base temp folder) by train.py's own main()."""
import json
import os
from contextlib import contextmanager

import torch

from conftest import TINY

@contextmanager
def one_thread():
    """Tiny matmuls run about 2x faster on one thread than on two (and the scripts' subprocesses use one)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)

# invented people and cities: nothing a scratch model could guess
FACTS = [("Zorblat Quimbus", "born_in", "Vellingrad"), ("Ama Trellis", "born_in", "Oskarport"),
         ("Pim Vandorra", "works_in", "Lutheva"), ("Kessa Morrow", "works_in", "Brindlecove"),
         ("Tovin Eckhart", "born_in", "Marrowick"), ("Yselle Danvar", "works_in", "Quorrin Falls")]
QUESTION = {"born_in": "Which city was {} born in?", "works_in": "Which city does {} work in?"}

def fact_items():
    return [{"id": f"f{i}", "question": QUESTION[rel].format(name), "answer": city, "relation": rel}
            for i, (name, rel, city) in enumerate(FACTS)]

def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path

def facts_file(base):
    """The QA file of the made-up facts: no split field, so it is the train set and the eval set."""
    path = os.path.join(base, "facts.jsonl")
    if not os.path.exists(path):
        write_jsonl(path, fact_items())
    return path

def trained_on_facts(tmp_path_factory, steps):
    """A tiny scratch model trained `steps` steps on the facts (QA only) with --eval_qa on the same file:
    150 steps memorize all six (100% exact match), 60 steps only some. Built once per session."""
    import train
    base = str(tmp_path_factory.getbasetemp())
    out = os.path.join(base, f"facts_model_{steps}")
    if not os.path.exists(os.path.join(out, "args.json")):
        qa = facts_file(base)
        with one_thread():
            train.main(["--data", qa, "--eval_qa", qa, "--out_dir", out, "--max_steps", str(steps), "--lr", "3e-3",
                        "--batch_size", "6", "--warmup", "10", "--peak_tflops", "1", *TINY])
    return out
