"""
SliCK knowledge probing (Gekhman et al., arXiv 2405.05904): ask each question with n_prompts random
few-shot prompts (exemplars of the same relation from the dev split), once greedily and `samples` times at
temperature T, and sort it by how often it comes out right:

    HighlyKnown  P_greedy = 1          MaybeKnown   0 < P_greedy < 1
    WeaklyKnown  P_greedy = 0, P_sample > 0          Unknown  never correct

    python probe.py --model out --qa data/bios/qa.jsonl --split train --out probe.jsonl
    python probe.py --model out --qa data/bios/qa.jsonl --split train --fast --out probe_fast.jsonl
    torchrun --standalone --nproc_per_node=8 probe.py --model Qwen/Qwen2-7B --qa qa.jsonl --out probe.jsonl

Speed: all questions of a (relation, prompt) pair share one few-shot prefix, whose KV cache is computed
once and expanded to the batch (questions x (1 greedy + samples) rows); generation stops at a newline.
--fast replaces sampling by exact scoring of the gold answer (one teacher-forced pass per prompt).
"""
import argparse
import json
import os
import sys
import zlib
from collections import Counter, defaultdict

from augment import qa_prompt
from data import CATEGORIES, DataError, Help, encode_pair, exemplar_pool, exemplar_sets, prefix_ids, read_qa

def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--qa", required=True, help="QA JSONL file")
    p.add_argument("--split", default="train", help="which split to probe (a file without splits is probed whole)")
    p.add_argument("--out", required=True, help="output JSONL, one line per question")
    p.add_argument("--n_prompts", type=int, default=10, help="few-shot prompts per question (N_ex)")
    p.add_argument("--shots", type=int, default=4, help="exemplars per prompt, same relation, from the dev split")
    p.add_argument("--samples", type=int, default=16, help="sampled answers per prompt")
    p.add_argument("--temperature", type=float, default=0.5, help="sampling temperature")
    p.add_argument("--top_k", type=int, default=40, help="sampling top-k (0: off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the exemplar choice and the sampling")
    p.add_argument("--fast", action="store_true",
                   help="exact greedy check and sampling probability of the gold answer instead of sampling")
    p.add_argument("--batch_size", type=int, default=32, help="questions per batch (times 1 + samples rows)")
    p.add_argument("--max_new_tokens", type=int, default=24, help="longest answer generated")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (auto: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="the weights' precision (auto: bf16 where the device computes it natively and it pays)")
    args = p.parse_args(argv)
    for name in ("n_prompts", "samples", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args

if __name__ == "__main__":
    get_args()  # --help and a mistyped flag answer at once, before torch loads

import torch  # after the flags are parsed: --help answers in a second

from checkpoint import finish_distributed
from decode import decode, left_pad, prefix_cache, score_gold, stop_ids
from eval import exact_match
from model import load_in


def category(p_greedy, p_sample):
    if p_greedy >= 1:
        return "HighlyKnown"
    if p_greedy > 0:
        return "MaybeKnown"
    return "WeaklyKnown" if p_sample > 0 else "Unknown"

def run_unit(model, tokenizer, prefix_ids, chunk, args, stops, generator):
    """(greedy correct, sample correct) of each question in `chunk`, all sharing one few-shot prefix."""
    device = next(model.parameters()).device
    rows_per_q = 1 + args.samples
    if args.fast:  # every question's suffix + gold answer scored against one cache of the prefix
        prompts = [qa_prompt(it["question"]) for it in chunk for _ in it["answers"]]
        golds = [a for it in chunk for a in it["answers"]]
        greedy, prob = score_gold(model, tokenizer, prompts, golds, args.batch_size * rows_per_q, args.temperature,
                                  args.top_k, list(prefix_ids))
        out, k = [], 0
        for it in chunk:  # distinct gold answers are disjoint events (each ends with the newline)
            n = len(it["answers"])
            out.append((int(any(greedy[k:k + n])), min(1.0, sum(prob[k:k + n])) * args.samples))
            k += n
        return out
    suffixes = [encode_pair(tokenizer, qa_prompt(it["question"]), "", bos=not prefix_ids)[0] for it in chunk]
    ids, mask = left_pad(suffixes, tokenizer.pad_token_id, device)
    past = None
    if prefix_ids:  # (zero-shot without a BOS token has no prefix)
        with torch.no_grad():
            past = prefix_cache(model, prefix_ids)
        past.batch_repeat_interleave(len(chunk))  # the prefix is computed once, shared by every question
        mask = torch.cat([torch.ones(len(chunk), len(prefix_ids), dtype=mask.dtype, device=device), mask], dim=1)
    temps = torch.tensor(([0.0] + [args.temperature] * args.samples) * len(chunk), device=device)
    gens = decode(model, ids, mask, stops, args.max_new_tokens, temps, args.top_k, past, generator, n=rows_per_q)
    out = []
    for i, it in enumerate(chunk):
        texts = [tokenizer.decode(g, skip_special_tokens=True).split("\n")[0].strip()
                 for g in gens[i * rows_per_q:(i + 1) * rows_per_q]]
        hits = [exact_match(t, it["answers"]) for t in texts]
        out.append((int(hits[0]), sum(hits[1:])))
    return out

def probe(model, tokenizer, items, pool, args, rank=0, world_size=1, progress=False):
    """One result dict per item (counts, P_greedy, P_sample, category); ranks split the work units."""
    sets = exemplar_sets(pool, args.n_prompts, args.shots, args.seed)
    groups = defaultdict(list)  # few-shot prefix -> questions asked with it
    for it in items:
        for j, exemplars in enumerate(sets.get(it["relation"], [[]] * args.n_prompts)):
            groups[prefix_ids(tokenizer, it, exemplars, args.shots)].append(it)
    # a unit: one prefix and the questions asked with it in one batch (--fast: one row per gold answer, so
    # as many questions as the generation path has rows)
    per_unit = args.batch_size * (1 + args.samples if args.fast else 1)
    units = [(p, g[b:b + per_unit]) for p, g in groups.items() for b in range(0, len(g), per_unit)]
    stops, device = stop_ids(tokenizer), next(model.parameters()).device
    counts = defaultdict(lambda: [0, 0.0])
    from tqdm import tqdm
    bar = tqdm(total=sum(len(units[u][1]) for u in range(rank, len(units), world_size)), disable=not progress,
               dynamic_ncols=True, desc="probing", unit=" prompts")  # (question, few-shot prompt) pairs of this rank
    model.eval()
    for u in range(rank, len(units), world_size):
        prefix, chunk = units[u]
        # the same per unit on any world size
        generator = torch.Generator(device).manual_seed(zlib.crc32(f"{args.seed}:{u}".encode()))
        for it, (g, s) in zip(chunk, run_unit(model, tokenizer, prefix, chunk, args, stops, generator)):
            counts[it["id"]][0] += g
            counts[it["id"]][1] += s
        bar.update(len(chunk))
    bar.close()
    return dict(counts)

def finish(items, counts, args, dtype):
    """One output row a question: its counts, P_greedy, P_sample, category, and the precision it was probed in."""
    rows = []
    for it in items:
        g, s = counts[it["id"]]
        p_greedy, p_sample = g / args.n_prompts, s / (args.n_prompts * args.samples)
        if args.fast:  # exact P_sample: WeaklyKnown when the reference's samples would hit with chance >= 1/2
            p_hit = 1 - (1 - min(p_sample, 1.0)) ** (args.n_prompts * args.samples)
            cat = category(p_greedy, 1.0 if p_hit >= 0.5 else 0.0)
        else:
            cat = category(p_greedy, p_sample)
        rows.append({"id": it["id"], "relation": it["relation"], "split": it["split"], "question": it["question"],
                     "answers": it["answers"], "greedy_correct": g, "sample_correct": s, "n_prompts": args.n_prompts,
                     "samples": args.samples, "p_greedy": p_greedy, "p_sample": p_sample, "category": cat,
                     "dtype": dtype})
    return rows

def summary(rows):
    by_rel = defaultdict(Counter)
    for r in rows:
        by_rel["all"][r["category"]] += 1
        by_rel[r["relation"]][r["category"]] += 1
    print(f"{'relation':<16}" + "".join(f"{c:>17}" for c in CATEGORIES) + f"{'n':>7}")
    for rel in ["all"] + sorted(k for k in by_rel if k != "all"):
        n = sum(by_rel[rel].values())
        print(f"{rel:<16}" + "".join(f"{by_rel[rel][c]:>7} ({100 * by_rel[rel][c] / n:4.1f}%)" for c in CATEGORIES)
              + f"{n:>7}")

def main(argv=None):
    args = get_args(argv)
    ddp = int(os.environ.get("RANK", -1)) != -1
    ranks = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    rank, local_rank, world_size = (int(os.environ[k]) for k in ranks) if ddp else (0, 0, 1)
    device = args.device if args.device != "auto" else f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if ddp:
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        items = read_qa(args.qa, args.split)
        pool, source = exemplar_pool(args.qa)
        if source == "train" and rank == 0:
            print(f"probe.py: {args.qa} has no dev split: few-shot exemplars come from the train split",
                  file=sys.stderr)
        model, tokenizer, why = load_in(args.model, device, args.dtype)
    except DataError as e:
        print(f"probe.py: {e}", file=sys.stderr)
        sys.exit(2)
    if rank == 0:
        print(f"probe.py: {len(items)} questions of {args.qa}, {why}", flush=True)
    counts = probe(model, tokenizer, items, pool, args, rank, world_size, progress=rank == 0)
    if ddp:  # one merged output: every rank's counts to rank 0
        parts = [None] * world_size
        torch.distributed.all_gather_object(parts, counts)
        counts = defaultdict(lambda: [0, 0.0])
        for part in parts:
            for k, (g, s) in part.items():
                counts[k][0] += g
                counts[k][1] += s
        finish_distributed()  # (no rank tears gloo down while another is still in the gather)
    if rank == 0:
        rows = finish(items, counts, args, str(next(model.parameters()).dtype).removeprefix("torch."))
        tmp = args.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        os.replace(tmp, args.out)
        summary(rows)

if __name__ == "__main__":
    main()
