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

The same functions serve train.py (--eval_qa) and probe.py (generation with a shared few-shot prefix).
"""
import argparse
import copy
import json
import os
import string
import sys
from collections import defaultdict

from augment import qa_completion
from data import DataError, Help, encode_pair, exemplar_pool, exemplar_sets, make_prompt, prefix_ids, read_qa

def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    parser.add_argument("--model", required=True, help="model folder (train.py's out_dir) or hub id")
    parser.add_argument("--qa", required=True, help="QA JSONL file")
    parser.add_argument("--split", default=None, help="evaluate this split only (train / dev / test); default: all")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--probe", default=None, help="probe.py output: also report accuracy by knowledge category")
    parser.add_argument("--batch_size", type=int, default=64, help="questions per generation batch")
    parser.add_argument("--fast", action="store_true", help="greedy exact match by one teacher-forced pass, no generation: "
                        "counts a gold answer only in its own tokenization (not 'paris' for 'Paris'); 'contains' then equals it")
    parser.add_argument("--shots", type=int, default=0, help="few-shot: K exemplars of the item's relation from the dev split first")
    parser.add_argument("--seed", type=int, default=0, help="with --shots: seed of the exemplar choice (probe.py's --seed)")
    parser.add_argument("--chat", action="store_true", help="ask with the tokenizer's chat template (zero-shot)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    args = parser.parse_args(argv)
    if args.shots and args.chat:
        parser.error("--shots builds plain few-shot prompts; --chat asks zero-shot in the chat template: choose one")
    return args

if __name__ == "__main__":
    get_args()  # --help and a mistyped flag answer at once, before torch loads

import torch  # noqa: E402

from model import cache_kwarg, decode, left_pad, load_model, prefix_cache, stop_ids  # noqa: E402


# -----------------------------------------------------------------------------
# matching: one implementation of "is this answer correct", used by eval.py and probe.py

def normalize(s):
    s = " ".join(s.lower().split())
    return s.strip(string.punctuation + " ")

def exact_match(pred, answers):
    return any(normalize(pred) == normalize(a) for a in answers)

def contains(pred, answers):
    return any(normalize(a) in normalize(pred) for a in answers)

# -----------------------------------------------------------------------------
# generation

def generate(model, tokenizer, prompts, batch_size=64, max_new_tokens=24, chat=False, bar=None, prefix=()):
    """Greedy answers (text before the first newline) for a list of prompt strings. With `prefix` (token ids of
    few-shot exemplars, BOS first) every prompt continues one KV cache of it, as probe.py asks."""
    stops, answers, device = stop_ids(tokenizer), [], next(model.parameters()).device
    past = prefix_cache(model, prefix) if prefix else None
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths, less padding
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        rows = [encode_pair(tokenizer, prompts[i], "", chat, bos=not prefix)[0] for i in idx]  # [BOS] + prompt, as trained
        ids, mask = left_pad(rows, tokenizer.pad_token_id, device)
        cache = None
        if past is not None:  # a copy of the prefix's cache per batch: decoding appends to it
            cache = copy.deepcopy(past)
            cache.batch_repeat_interleave(len(idx))
            mask = torch.cat([torch.ones(len(idx), len(prefix), dtype=mask.dtype, device=device), mask], dim=1)
        for i, toks in zip(idx, decode(model, ids, mask, stops, max_new_tokens, past=cache)):
            answers.append((i, tokenizer.decode(toks, skip_special_tokens=True).split("\n")[0].strip()))
        if bar is not None:
            bar.update(len(idx))
    return [a for _, a in sorted(answers)]

@torch.no_grad()
def score_gold(model, tokenizer, prompts, golds, batch_size=64, temperature=1.0, top_k=0, prefix=None, chat=False, bar=None):
    """One teacher-forced pass per (prompt, gold answer): does greedy decoding produce exactly the gold tokens
    and then the newline (argmax at every position), and what is the probability that sampling at
    `temperature` / `top_k` does. The fast, exact path. With `prefix` (token ids of few-shot exemplars, BOS
    first) every row continues one KV cache of it, computed once, as the generation path does."""
    device, greedy, prob = next(model.parameters()).device, [0] * len(prompts), [0.0] * len(prompts)
    past = prefix_cache(model, prefix) if prefix else None
    encoded = [encode_pair(tokenizer, p, qa_completion(g), chat, bos=not prefix) for p, g in zip(prompts, golds)]
    order, batches = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0])), []
    for i in order:  # by length, a batch cut where rows grow by a quarter: padding was 44% of the work on EntityQuestions
        if not batches or len(batches[-1]) == batch_size or len(encoded[i][0]) > 1.25 * len(encoded[batches[-1][0]][0]):
            batches.append([])
        batches[-1].append(i)
    for idx in batches:
        rows = [encoded[i] for i in idx]
        n = max(len(r) for r, _ in rows)
        ids = torch.tensor([r + [tokenizer.pad_token_id] * (n - len(r)) for r, _ in rows], device=device)  # right padding
        lengths, starts = (torch.tensor(x, device=device)[:, None] for x in ([len(r) for r, _ in rows], [k for _, k in rows]))
        pos = torch.arange(1, n, device=device)[None]
        targets = torch.where((pos >= starts) & (pos < lengths), ids[:, 1:], -100)  # the gold tokens, where they are predicted
        keep = (targets != -100).any(0).nonzero().flatten()  # logits only where a gold token is predicted
        kw = {}
        if past is not None:  # a copy of the prefix's cache per batch: the forward appends to it
            kw = {cache_kwarg(model): copy.deepcopy(past), "position_ids": len(prefix) + torch.arange(n, device=device)[None].expand(len(rows), n)}
            kw[cache_kwarg(model)].batch_repeat_interleave(len(rows))
        mask = torch.cat([torch.ones(len(rows), len(prefix or ()), dtype=torch.long, device=device),
                          (torch.arange(n, device=device)[None] < lengths).long()], dim=1)
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep, use_cache=past is not None, **kw).logits.float()
        targets = targets[:, keep]
        valid, gold = targets != -100, targets.clamp(min=0)
        # per-row reductions on the device, one host transfer per batch
        for i, g in zip(idx, ((logits.argmax(-1) == gold) | ~valid).all(1).tolist()):
            greedy[i] = g
        scaled = logits / temperature
        if top_k:
            scaled = scaled.masked_fill(scaled < scaled.topk(min(top_k, scaled.shape[-1]), -1).values[..., -1:], float("-inf"))
        logp = scaled.log_softmax(-1).gather(-1, gold[..., None]).squeeze(-1)
        for i, p in zip(idx, logp.masked_fill(~valid, 0.0).sum(1).exp().tolist()):
            prob[i] = p
        if bar is not None:
            bar.update(len(rows))
    return greedy, prob

# -----------------------------------------------------------------------------
# evaluation and report

def evaluate(model, tokenizer, items, batch_size=64, chat=False, fast=False, categories=None, progress=False, desc="eval",
             shots=0, pool=(), seed=0):
    """Exact match and contains over QA items, overall and by relation / split / probe category. shots > 0: each
    item after `shots` exemplars of its relation from `pool` (probe.py's first prompt for `seed`)."""
    from tqdm import tqdm
    was_training = model.training
    model.eval()
    prompts = [make_prompt(tokenizer, it["question"], chat=chat) for it in items]
    sets = exemplar_sets(pool, 1, shots, seed) if shots else {}
    by_prefix = defaultdict(list)  # few-shot prefix -> the items asked after it (zero-shot: one group, no prefix)
    for i, it in enumerate(items):
        by_prefix[prefix_ids(tokenizer, it, sets.get(it["relation"], [[]])[0], shots) if shots else ()].append(i)
    bar = tqdm(total=sum(len(it["answers"]) for it in items) if fast else len(items), desc=desc,
               unit=" answers" if fast else " questions", disable=not progress, dynamic_ncols=True, leave=False)
    preds = [""] * len(items)
    for prefix, idx in by_prefix.items():
        if fast:  # greedy correct iff some gold answer is greedy-decoded token for token
            pairs = [(i, a) for i in idx for a in items[i]["answers"]]
            ok = score_gold(model, tokenizer, [prompts[i] for i, _ in pairs], [a for _, a in pairs], batch_size,
                            prefix=list(prefix), chat=chat, bar=bar)[0]
            for (i, a), g in zip(pairs, ok):
                if g:
                    preds[i] = items[i]["answer"]
        else:
            for i, a in zip(idx, generate(model, tokenizer, [prompts[i] for i in idx], batch_size, chat=chat, bar=bar, prefix=prefix)):
                preds[i] = a
    bar.close()
    model.train(was_training)
    groups = defaultdict(lambda: [0, 0, 0])
    rows = []
    for it, pred in zip(items, preds):
        em, cont = exact_match(pred, it["answers"]), contains(pred, it["answers"])
        rows.append({"id": it["id"], "prediction": pred, "exact_match": em, "contains": cont})
        keys = ["all", f"relation:{it['relation']}", f"split:{it['split']}"]
        if categories is not None:
            keys.append(f"category:{categories.get(it['id'], 'unprobed')}")
        for k in keys:
            g = groups[k]
            g[0], g[1], g[2] = g[0] + em, g[1] + cont, g[2] + 1
    stats = {k: {"exact_match": em / n, "contains": c / n, "n": n} for k, (em, c, n) in groups.items()}
    result = dict(stats.pop("all"))
    for kind in ("relation", "split", "category"):
        part = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith(kind + ":")}
        if part:
            result[f"by_{kind}"] = part
    result["predictions"] = rows
    return result

def print_table(result, title="QA accuracy"):
    print(f"{title}: exact match {100 * result['exact_match']:.1f}%  contains {100 * result['contains']:.1f}%  (n={result['n']})")
    for kind in ("by_split", "by_relation", "by_category"):
        for name, s in sorted(result.get(kind, {}).items()):
            print(f"  {kind[3:]:>8} {name:<16} EM {100 * s['exact_match']:5.1f}%  contains {100 * s['contains']:5.1f}%  n={s['n']}")

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
        model, tokenizer = load_model(args.model, device)
    except (DataError, OSError, KeyError, json.JSONDecodeError) as e:
        print(f"eval.py: {e}", file=sys.stderr)
        sys.exit(2)
    result = evaluate(model, tokenizer, items, args.batch_size, args.chat, args.fast, categories, progress=True,
                      shots=args.shots, pool=pool, seed=args.seed)
    print_table(result, f"{args.model} on {args.qa}" + (f" [{args.split}]" if args.split else "") + (f", {args.shots}-shot" if args.shots else ""))
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"model": args.model, "qa": args.qa, "split": args.split, "shots": args.shots, **result}, f, indent=1)
        os.replace(tmp, args.out)

if __name__ == "__main__":
    main()
