"""
QA accuracy of a causal LM: batched greedy generation (left padding, KV cache), the answer is the text up
to the first newline, exact match after normalization (case, surrounding whitespace and punctuation) is
the primary metric and "gold answer contained" is reported beside it; any of "answers" counts.

    python eval.py --model out --qa data/bios/qa.jsonl --split test
    python eval.py --model out --qa data/bios/qa.jsonl --split test --probe probe.jsonl --out eval.json
    python eval.py --model out --qa data/bios/qa.jsonl --fast   # greedy EM by one teacher-forced pass
    python eval.py --model data/smollm2/SmolLM2-135M-Instruct --qa data/entityquestions/qa.jsonl --split test --shots 4

Zero-shot ("Question: ..\nAnswer:") suits a model trained on that format (train.py's QA items); a pretrained or
instruct model asked so answers with a sentence or nothing. --shots K puts K exemplars of the item's relation from
the file's dev split first, the prompt probe.py asks with (its first of --n_prompts for the same --seed): the way
to ask a model that has not been tuned to the format, as SliCK does (4-shot).

train.py evaluates with it (--eval_qa); the generation and scoring are decode.py's, which probe.py asks with too.
"""
import argparse
import json
import string
import sys
from collections import defaultdict

from data import DataError, Help, exemplar_pool, exemplar_sets, make_prompt, prefix_ids, read_qa, write_json

def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    p.add_argument("--model", required=True, help="model folder (train.py's out_dir) or hub id")
    p.add_argument("--qa", required=True, help="QA JSONL file")
    p.add_argument("--split", default=None, help="evaluate this split only (train / dev / test); default: all")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--probe", default=None, help="probe.py output: also report accuracy by knowledge category")
    p.add_argument("--batch_size", type=int, default=64, help="questions per generation batch")
    p.add_argument("--fast", action="store_true", help="greedy exact match by one teacher-forced pass, no generation: "
                   "counts a gold answer only in its own tokenization (not 'paris' for 'Paris'); 'contains' then "
                   "equals it")
    p.add_argument("--shots", type=int, default=0,
                   help="few-shot: K exemplars of the item's relation from the dev split first")
    p.add_argument("--seed", type=int, default=0, help="with --shots: seed of the exemplar choice (probe.py's --seed)")
    p.add_argument("--prompt_format", default="0", help="the question's prompt format: an index of augment.QA_FORMATS "
                   "(0: 'Question: ..\\nAnswer:'), or heldout: one no training run uses (does --qa_aug generalize?)")
    p.add_argument("--chat", action="store_true", help="ask with the tokenizer's chat template (zero-shot)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the weights' precision (auto: bf16 where the device computes it natively and it pays)")
    args = p.parse_args(argv)
    if args.prompt_format != "heldout" and not args.prompt_format.isdigit():
        p.error(f"--prompt_format {args.prompt_format}: an index of augment.QA_FORMATS, or heldout")
    if args.shots and args.chat:
        p.error("--shots builds plain few-shot prompts; --chat asks zero-shot in the chat template: choose one")
    return args

if __name__ == "__main__":
    get_args()

import torch  # only now, after the arguments: --help and a mistyped flag answer at once, before torch loads

from decode import generate, score_gold
from model import load_in


# -----------------------------------------------------------------------------
# matching: one implementation of "is this answer correct", used by eval.py and probe.py

def normalize(s):
    return " ".join(s.lower().split()).strip(string.punctuation + " ")

def exact_match(pred, answers):
    return any(normalize(pred) == normalize(a) for a in answers)

def contains(pred, answers):
    return any(normalize(a) in normalize(pred) for a in answers)

# -----------------------------------------------------------------------------
# evaluation and report

def evaluate(model, tokenizer, items, batch_size=64, chat=False, fast=False, categories=None, progress=False,
             desc="eval", shots=0, pool=(), seed=0, prompt_format=0):
    """Exact match and contains over QA items, overall and by relation / split / probe category. shots > 0: each
    item after `shots` exemplars of its relation from `pool` (probe.py's first prompt for `seed`); prompt_format:
    the question's (augment.QA_FORMATS' index, or "heldout")."""
    from tqdm import tqdm
    was_training = model.training
    model.eval()
    prompts = [make_prompt(tokenizer, it["question"], prompt_format, chat) for it in items]
    sets = exemplar_sets(pool, 1, shots, seed) if shots else {}
    by_prefix = defaultdict(list)  # few-shot prefix -> the items asked after it (zero-shot: one group, no prefix)
    for i, it in enumerate(items):
        by_prefix[prefix_ids(tokenizer, it, sets.get(it["relation"], [[]])[0], shots) if shots else ()].append(i)
    bar = tqdm(total=sum(len(it["answers"]) for it in items) if fast else len(items), desc=desc,
               unit=" answers" if fast else " questions", disable=not progress, dynamic_ncols=True, leave=False)
    preds = {}  # item -> its answer
    for prefix, idx in by_prefix.items():
        if fast:  # greedy correct iff some gold answer is greedy-decoded token for token (else no answer, "")
            pairs = [(i, a) for i in idx for a in items[i]["answers"]]
            ok = score_gold(model, tokenizer, [prompts[i] for i, _ in pairs], [a for _, a in pairs], batch_size,
                            prefix=list(prefix), chat=chat, bar=bar)[0]
            preds |= {i: items[i]["answer"] for (i, _), g in zip(pairs, ok) if g}
        else:
            preds |= zip(idx, generate(model, tokenizer, [prompts[i] for i in idx], batch_size, chat=chat, bar=bar,
                                       prefix=prefix))
    bar.close()
    model.train(was_training)
    return tally(items, [preds.get(i, "") for i in range(len(items))], categories)

def tally(items, preds, categories=None):
    """evaluate()'s result: the rates overall, then by relation, split and probe category, then each prediction."""
    rows, groups = [], defaultdict(list)  # ("all", "") / ("relation", name) / ... -> its rows
    for it, pred in zip(items, preds):
        rows.append({"id": it["id"], "prediction": pred, "exact_match": exact_match(pred, it["answers"]),
                     "contains": contains(pred, it["answers"])})
        category = [("category", categories.get(it["id"], "unprobed"))] if categories is not None else []
        for kind, name in [("all", ""), ("relation", it["relation"]), ("split", it["split"])] + category:
            groups[kind, str(name)].append(rows[-1])  # (a file without splits: "None")
    rates = {key: {"exact_match": sum(r["exact_match"] for r in rs) / len(rs),
                   "contains": sum(r["contains"] for r in rs) / len(rs), "n": len(rs)} for key, rs in groups.items()}
    result = rates.pop(("all", ""))
    for kind in ("relation", "split", "category"):
        if part := {name: v for (k, name), v in rates.items() if k == kind}:
            result[f"by_{kind}"] = part
    return result | {"predictions": rows}

def print_table(result, title="QA accuracy"):
    print(f"{title}: exact match {result['exact_match']:.1%}  contains {result['contains']:.1%}  (n={result['n']})")
    for kind in ("by_split", "by_relation", "by_category"):
        for name, s in sorted(result.get(kind, {}).items()):
            print(f"  {kind[3:]:>8} {name:<16} EM {s['exact_match']:6.1%}  contains {s['contains']:6.1%}  n={s['n']}")

def main(argv=None):
    args = get_args(argv)
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    try:
        items = read_qa(args.qa, args.split)
        pool = exemplar_pool(args.qa)[0] if args.shots else []
        categories = None
        if args.probe:
            with open(args.probe, encoding="utf-8") as f:
                categories = {r["id"]: r["category"] for r in map(json.loads, f)}
        model, tokenizer, why = load_in(args.model, device, args.dtype)
    except (DataError, OSError, KeyError, json.JSONDecodeError) as e:
        print(f"eval.py: {e}", file=sys.stderr)
        sys.exit(2)
    fmt = args.prompt_format if args.prompt_format == "heldout" else int(args.prompt_format)
    result = evaluate(model, tokenizer, items, args.batch_size, args.chat, args.fast, categories, progress=True,
                      shots=args.shots, pool=pool, seed=args.seed, prompt_format=fmt)
    split, shots = f" [{args.split}]" if args.split else "", f", {args.shots}-shot" if args.shots else ""
    print_table(result, f"{args.model} on {args.qa}{split}{shots} ({why})")
    if args.out:
        write_json(args.out, dict(model=args.model, qa=args.qa, split=args.split, shots=args.shots,
                                  format=args.prompt_format,
                                  dtype=str(next(model.parameters()).dtype).removeprefix("torch.")) | result)

if __name__ == "__main__":
    main()
