"""
Speed and memory of what matters, each figure measured in this run (ratios cancel a shared machine's noise):
the device's matmul peak; train.py's step (tokens/s, MFU) packed and padded, on the mixed default data and on
documents alone, against a Hugging Face Trainer with padding and with DataCollatorWithFlattening (padding-free);
SAM, --sam_every 2 / 4 and --lora 16 against AdamW (time, memory, and the training state's bytes); probe.py
(sampling and --fast) against a naive loop of `generate` calls, and the whole process of probing 500 questions
(what a user waits for).

    python bench.py                         # CPU: the embedded default and a larger config -> bench.json
    python bench.py --configs default       # one config only
    python bench.py --configs default 0.5b --skip_probe   # on a GPU: add the ~0.5B config (bf16) and FSDP2
    python bench.py --configs smollm2 --rounds 1 --rows 2 --fast_questions 64   # the real model (README's run);
        # its probe section asks SliCK's EntityQuestions (--eq_archive dataset.zip, or downloaded)

Needs `accelerate` for the Trainer columns (pip install accelerate); it is not a runtime dependency.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file

import data
import train
from eval import evaluate
from lora import add_lora
from decode import stop_ids
from model import load_model, measure_peak_flops
from sam import SAM

HERE = os.path.dirname(os.path.abspath(__file__))
BIOS = os.path.join(HERE, "data", "bios")
SMOLLM2 = os.path.join(HERE, "data", "smollm2", "SmolLM2-135M-Instruct")
DATA = {"mixed": [os.path.join(BIOS, "docs.jsonl"), os.path.join(BIOS, "qa.jsonl")],  # the default run's data
        "docs": [os.path.join(BIOS, "docs.jsonl")]}                                   # and documents alone

ARMS = {  # name -> (data: DATA's key, train.py's flags beyond the config's); a precision is a flag: --dtype bfloat16
    "adamw":      ("mixed", ""),          "padded":      ("mixed", "--pack 0"),  # adamw: rows packed to 2x the longest
    "pack1":      ("mixed", "--pack 1"),  "pack4":       ("mixed", "--pack 4"),
    "adamw_docs": ("docs", ""),           "padded_docs": ("docs", "--pack 0"),
    "pack1_docs": ("docs", "--pack 1"),   "pack4_docs":  ("docs", "--pack 4"),
    "sam":        ("mixed", "--sam"),     "sam_every2":  ("mixed", "--sam --sam_every 2"),
    "sam_every4": ("mixed", "--sam --sam_every 4"),
    "lora16":     ("mixed", "--lora 16"), "lora16_sam":  ("mixed", "--lora 16 --sam"),
    "adamw_fsdp": ("mixed", "--fsdp"),    "sam_fsdp":    ("mixed", "--sam --fsdp"),  # FSDP2, under torchrun
}
GPU_ONLY = {"adamw_fsdp", "sam_fsdp"}  # left out where CUDA is not available
SCRATCH = ["adamw", "padded", "pack1", "pack4", "adamw_docs", "padded_docs", "pack1_docs", "pack4_docs", "sam",
           "sam_every2", "sam_every4", "lora16", "lora16_sam"]  # the scratch configs' arms
CONFIGS = {  # name -> scratch model flags (None: SmolLM2-135M-Instruct), global batch (examples of ~40 tokens), arms
    "default": ("--n_layer 4 --n_head 4 --n_embd 128", 48, SCRATCH),
    "large": ("--n_layer 6 --n_head 8 --n_embd 256", 48, SCRATCH),
    "0.5b": ("--n_layer 24 --n_head 16 --n_embd 1024", 256, SCRATCH + ["adamw_fsdp", "sam_fsdp"]),
    "smollm2": (None, 8, ["adamw", "padded", "adamw_docs", "sam", "sam_every4", "lora16", "lora16_sam"]),  # 10 s a step
}
OVER_ADAMW = ["sam", "sam_every2", "sam_every4", "lora16", "lora16_sam"]  # step time over AdamW's
OVER_PADDED = {"pack1": "padded", "pack1_docs": "padded_docs", "adamw": "padded", "adamw_docs": "padded_docs",
               "pack4": "padded", "pack4_docs": "padded_docs"}  # tokens/s over the padded arm's on the same data
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]  # an arm with --fsdp runs under it

def get_args():
    """The flags; without `accelerate` (the Trainer needs it, train.py does not) no Trainer columns."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--configs", nargs="+", default=["default", "large"], choices=list(CONFIGS), help="model sizes to measure")
    a("--rows", type=int, default=4, help="logged intervals per train.py measurement and round")
    a("--rounds", type=int, default=3,
      help="rounds of all train.py arms in turn (a shared machine drifts over minutes: all arms take it alike)")
    a("--warmup_rows", type=int, default=1, help="logged intervals dropped first (new shapes warm up kernels)")
    a("--log_every", type=int, default=4, help="steps per logged interval (a multiple of --sam_every 2 and 4, so "
      "every interval holds as many SAM steps)")
    a("--skip_probe", action="store_true", help="skip the probe / eval section")
    a("--skip_train", action="store_true",
      help="skip the training section (the probe section's model: the first config's)")
    a("--probe_questions", type=int, default=32, help="questions for probe.py's rate")
    a("--probe_train_steps", type=int, default=300, help="train.py steps of the model that is probed")
    a("--fast_questions", type=int, default=256, help="questions for probe.py --fast's rate")
    a("--naive_questions", type=int, default=2, help="questions for the naive loop's rate (170 generate calls each)")
    a("--whole_questions", type=int, default=500, help="questions of the whole-process probe.py --fast run (0: none)")
    a("--eq_archive", default=os.environ.get("EQ_ARCHIVE"), help="EntityQuestions release archive, for --configs "
      "smollm2's probe section (default: $EQ_ARCHIVE, else data/entityquestions/prepare.py downloads it and keeps it)")
    a("--skip_trainer", action="store_true", help="skip the Hugging Face Trainer comparison")
    a("--out", default="bench.json", help="write the results here")
    args = p.parse_args()
    if not args.skip_trainer and importlib.util.find_spec("accelerate") is None:
        print("bench.py: no `accelerate` installed, so no Trainer column (pip install accelerate)", file=sys.stderr)
        args.skip_trainer = True
    return args

def python(script, *args, stdout=subprocess.DEVNULL, **kw):
    """Run a script of this repo to its end, checked (its output dropped unless told otherwise)."""
    subprocess.run([sys.executable, os.path.join(HERE, script), *args], check=True, stdout=stdout, **kw)

# -----------------------------------------------------------------------------
# training

def train_run(init, out, arm, flags, args):
    """train.py on one arm until it has logged --warmup_rows + --rows intervals; the last --rows of them."""
    which, extra = ARMS[arm][0], ARMS[arm][1].split()
    cmd = [sys.executable, *(TORCHRUN if "--fsdp" in extra else []), os.path.join(HERE, "train.py"), "--init_from",
           init, "--data", *DATA[which], "--out_dir", out, "--max_steps", "100000", "--warmup", "10", *flags, *extra]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "stderr.txt"), "w") as err:  # a file, not a pipe: a full pipe would stall the run
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    log, rows, n_rows = os.path.join(out, "log.jsonl"), [], args.rows + args.warmup_rows
    while len(rows) < n_rows and proc.poll() is None:
        time.sleep(0.5)
        rows = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
    kill_tree(proc.pid)  # torchrun's workers too, so their GPU memory is freed before the next run
    proc.wait()
    if len(rows) < n_rows:
        sys.exit(f"bench.py: train.py failed: {' '.join(cmd)}\n{open(os.path.join(out, 'stderr.txt')).read()[-2000:]}")
    return rows[args.warmup_rows:n_rows]

def kill_tree(pid):
    """SIGKILL a process, children first: torchrun's workers run in sessions of their own, which killpg would miss."""
    for child in os.listdir("/proc"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # not a process, or gone already
            if int(open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:  # its parent's pid
                kill_tree(int(child))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)

def train_arms(name, init, args, peak, tmp):
    """train.py's step on each arm of a config, the medians of its logged intervals (tokens/s, time, MFU, memory)."""
    batch, arms = CONFIGS[name][1], [a for a in CONFIGS[name][2] if torch.cuda.is_available() or a not in GPU_ONLY]
    flags = ["--log_every", str(args.log_every), "--peak_tflops", str(peak / 1e12), "--batch_size", str(batch)]
    rows = {arm: [] for arm in arms}
    for rnd in range(args.rounds):  # all arms in turn each round: a machine that drifts over minutes slows all alike
        for arm in arms:
            rows[arm] += train_run(init, os.path.join(tmp, f"{name}_{arm}_{rnd}"), arm, flags, args)
    r = {arm: {k: statistics.median(x[k] for x in rows[arm]) for k in ("tokens_per_s", "step_s", "mfu", "peak_mem_mb")}
         for arm in arms}
    for arm, a in r.items():
        print(f"  [{name}] train.py {arm:<12} {a['tokens_per_s']:>10.0f} tok/s  {a['step_s'] * 1000:8.1f} ms/step  "
              f"MFU {100 * a['mfu']:5.1f}%  peak mem {a['peak_mem_mb']:8.0f} MB", flush=True)
    return r

def trainer_tokens_per_s(init, batch_size, steps, bf16, which="mixed", flatten=False):
    """train.py's examples and batch through transformers.Trainer, padded or (flatten) padding-free: real tokens/s."""
    from transformers import DataCollatorWithFlattening, Trainer, TrainerCallback, TrainingArguments
    model, tokenizer = load_model(init)
    args = train.get_args(["--data", *DATA[which]])
    files = [data.read_examples(p, "train") for p in args.data]
    examples = [v[0] for v in data.load_examples(args, files, tokenizer, 10**9, False)]
    dataset = [{"input_ids": x, "labels": [t if any(a <= i < b for a, b in s) else -100 for i, t in enumerate(x)]}
               for x, s in examples]  # the loss where train.py puts it: all of a document, a QA item's answer
    times = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter())
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(tmp, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=2e-3,
                                  warmup_steps=10, weight_decay=0.1, adam_beta2=0.95, lr_scheduler_type="cosine",
                                  logging_steps=10**6, save_strategy="no", report_to=[], bf16=bf16,
                                  use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, max_grad_norm=1.0,
                                  disable_tqdm=True, dataloader_drop_last=True)  # full batches only, as train.py's
        collate = DataCollatorWithFlattening() if flatten else lambda rows: pad_collate(rows, tokenizer.pad_token_id)
        Trainer(model=model, args=targs, train_dataset=dataset, data_collator=collate, callbacks=[Clock()]).train()
    warm = times[len(times) // 3:]  # the first third warms up (new shapes)
    step_s = statistics.median(b - a for a, b in zip(warm, warm[1:]))
    return statistics.mean(len(ids) for ids, _ in examples) * batch_size / step_s

def pad_collate(rows, pad_id):
    """Pad to the longest in the batch, as a DataCollator does."""
    n, lengths = max(len(r["input_ids"]) for r in rows), torch.tensor([len(r["input_ids"]) for r in rows])
    return {"input_ids": torch.tensor([r["input_ids"] + [pad_id] * (n - len(r["input_ids"])) for r in rows]),
            "attention_mask": (torch.arange(n)[None] < lengths[:, None]).long(),
            "labels": torch.tensor([r["labels"] + [-100] * (n - len(r["labels"])) for r in rows])}

def state_mb(init, lora, sam, device):
    """The training state's MB after a step, tensor by tensor: weights, grads, AdamW's moments, SAM's copy of w."""
    model, _ = load_model(init, device)  # (peak RSS on a CPU cannot resolve a few MB; activations not counted)
    if lora:
        add_lora(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = SAM(params, torch.optim.AdamW, 0.05, lr=1e-4) if sam else torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(3, model.config.vocab_size, (2, 16), device=device)
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    # SAM: the gradient at w + e, its copy of w kept; AdamW reruns it too (grads add up, bytes do not)
    opt.step(lambda: model(input_ids=ids, labels=ids, use_cache=False).loss.backward())
    states = [st for o in ([opt, opt.base_optimizer] if sam else [opt]) for st in o.state.values()]
    tensors = [t for p in model.parameters() for t in (p, p.grad) if t is not None]
    tensors += [t for st in states for t in st.values() if torch.is_tensor(t) and t.dim()]
    return sum({t.data_ptr(): t.nbytes for t in tensors}.values()) / 2**20  # by storage: a tied lm_head counts once

def adamw_step_s(init, device, steps=3):
    """Seconds of one AdamW update of every weight: torch's default (a loop over tensors on a CPU) and fused."""
    params, out = list(load_model(init, device)[0].parameters()), {}
    for p in params:
        p.grad = torch.randn_like(p)
    for name, kw in (("default", {}), ("fused", {"fused": True})):  # fused: what train.py and the Trainer use
        opt = torch.optim.AdamW(params, lr=1e-4, **kw)
        opt.step()  # the moments allocated
        t = time.perf_counter()
        for _ in range(steps):
            opt.step()
        out[name] = (time.perf_counter() - t) / steps
    return out

def bench_config(name, args, peak, device, tmp):
    """One config's figures, printed: train.py's arms and their ratios, the training state, the Trainer."""
    flags, batch, _ = CONFIGS[name]
    init = SMOLLM2 if flags is None else os.path.join(tmp, f"init_{name}")  # the model every arm starts from
    if flags is None:
        python("data/smollm2/prepare.py")
    else:
        python("train.py", "--out_dir", init, "--max_steps", "1", "--data", *DATA["mixed"], *flags.split())
    r = train_arms(name, init, args, peak, tmp)
    r["params"] = n = sum(t.numel() for t in load_file(os.path.join(init, "model.safetensors")).values())
    r |= {f"{arm}_step_ratio": r[arm]["step_s"] / r["adamw"]["step_s"] for arm in OVER_ADAMW if arm in r}
    r["sam_extra_mem_over_param_bytes"] = (r["sam"]["peak_mem_mb"] - r["adamw"]["peak_mem_mb"]) * 2**20 / (4 * n)
    r["state_mb"] = {arm: state_mb(init, lora, sam, device) for arm, lora, sam in
                     (("adamw", 0, False), ("sam", 0, True), ("lora16", 16, False), ("lora16_sam", 16, True))}
    r["adamw_step_s"] = adamw_step_s(init, device)
    r["packed_over_padded"] = {arm: r[arm]["tokens_per_s"] / r[pad]["tokens_per_s"] for arm, pad in OVER_PADDED.items()
                               if arm in r and pad in r}
    steps = args.log_every * (args.rows * args.rounds + args.warmup_rows)
    for which, flat in [] if args.skip_trainer else [("mixed", 0), ("mixed", 1), ("docs", 0), ("docs", 1)]:
        key = f"trainer{'_flat' if flat else ''}_{which}"
        r[key] = trainer_tokens_per_s(init, batch, steps, torch.cuda.is_available(), which, bool(flat))
        r[f"ours_over_{key}"] = r["adamw" + ("_docs" if which == "docs" else "")]["tokens_per_s"] / r[key]
    print(f"  [{name}] {n / 1e6:.1f}M params, batch {batch}; packed / padded tokens/s (pack1 / adamw / "
          "pack4: rows of 1x / 2x (default) / 4x the longest): "
          + ", ".join(f"{k} {v:.2f}" for k, v in r["packed_over_padded"].items()))
    # SAM's 2.0 floor holds for the forward-backward only (the batch and the AdamW update are not doubled). Memory:
    # GPU max_memory_allocated; on a CPU the process's peak RSS, too coarse for a few-MB buffer
    print("  step time over AdamW: " + ", ".join(f"{a} {r[f'{a}_step_ratio']:.2f}" for a in OVER_ADAMW if a in r))
    print(f"  SAM extra peak memory {r['sam_extra_mem_over_param_bytes']:.2f} x param bytes"
          f"{'' if torch.cuda.is_available() else ' (peak RSS)'}")
    print(f"  one AdamW update of every weight: default {r['adamw_step_s']['default']:.3f} s, fused "
          f"{r['adamw_step_s']['fused']:.3f} s\n  training state (weights, grads, AdamW moments, SAM's copy of w; no "
          "activations): " + ", ".join(f"{arm} {mb:.1f} MB" for arm, mb in r["state_mb"].items()))
    for key in [k[len("ours_over_"):] for k in r if k.startswith("ours_over_")]:
        print(f"  {key:<20} {r[key]:>10.0f} tok/s  -> train.py / it = {r['ours_over_' + key]:.2f}")
    return r

# -----------------------------------------------------------------------------
# probing

def count_tokens(ran, module, args, kwargs):
    """Forward pre-hook: the non-padding input tokens of a forward with an attention mask (prefix caches have none)."""
    if kwargs.get("attention_mask") is not None and kwargs.get("input_ids") is not None:
        ran.append(kwargs["attention_mask"][:, -kwargs["input_ids"].shape[1]:].sum())  # on the device: no sync

def probe_rate(model, tokenizer, items, n, pool, args, warmup):
    """probe.probe's questions/s on n items after a warm-up on `warmup`, and the input tokens its forwards ran."""
    import probe
    probe.probe(model, tokenizer, items[:warmup], pool, args)
    ran = []
    hook = model.register_forward_pre_hook(lambda *a: count_tokens(ran, *a), with_kwargs=True)
    t = time.perf_counter()
    probe.probe(model, tokenizer, items[:n], pool, args)
    t = time.perf_counter() - t
    hook.remove()
    return n / t, int(sum(ran))

def naive_rate(model, tokenizer, items, pool, args):
    """One generate() call per question, prompt and sample: questions/s and tokens a question (prefix included)."""
    from augment import qa_prompt
    sets = data.exemplar_sets(pool, args.n_prompts, args.shots, args.seed)
    gen = dict(max_new_tokens=args.max_new_tokens, eos_token_id=sorted(stop_ids(tokenizer)),
               pad_token_id=tokenizer.pad_token_id)
    device, t, n_tokens = next(model.parameters()).device, time.perf_counter(), 0
    for it in items:
        for exemplars in sets[it["relation"]]:
            suffix = data.encode_pair(tokenizer, qa_prompt(it["question"]), "", bos=False)[0]
            ids = torch.tensor([list(data.prefix_ids(tokenizer, it, exemplars, args.shots)) + suffix], device=device)
            for s in range(1 + args.samples):
                kw = dict(do_sample=True, temperature=args.temperature, top_k=args.top_k) if s else {"do_sample": False}
                n_tokens += model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen, **kw).shape[1]
    return len(items) / (time.perf_counter() - t), n_tokens / len(items)

def bench_probe(init, qa, split, n_probe, n_fast, n_naive, device, eval_shots=0):
    """probe.py (sampling, --fast) against the naive loop, and eval.py's greedy rate (eval_shots: few-shot)."""
    import probe
    model, tokenizer = load_model(init, device, torch.bfloat16 if device == "cuda" else torch.float32)
    items, pool = data.read_qa(qa, split), data.read_qa(qa, "dev")
    items = sorted(random.Random(0).sample(items, len(items)), key=lambda it: it["relation"])  # full batches
    args, fast_args = (probe.get_args(["--model", init, "--qa", qa, "--out", os.devnull, *f]) for f in ([], ["--fast"]))
    ours, ran = probe_rate(model, tokenizer, items, n_probe, pool, args, warmup=2)
    fast, _ = probe_rate(model, tokenizer, items, n_fast, pool, fast_args, warmup=8)
    naive, naive_tokens = naive_rate(model, tokenizer, items[:n_naive], pool, args)
    t = time.perf_counter()
    evaluate(model, tokenizer, items[:256], shots=eval_shots, pool=pool)
    return {"probe_q_per_s": ours, "fast_q_per_s": fast, "naive_q_per_s": naive, "speedup": ours / naive,
            "fast_over_sampling": fast / ours, "fast_over_naive": fast / naive,
            "eval_q_per_s": len(items[:256]) / (time.perf_counter() - t), "naive_tokens_per_q": naive_tokens,
            # suffixes and answers run, + each answer's stop token (produced, never run: naive counts it too)
            "probe_tokens_per_q": ran / n_probe + args.n_prompts * (1 + args.samples),
            "params": sum(p.numel() for p in model.parameters())}

def whole_process(model, qa, split, n, rates, tmp):
    """`python probe.py --fast` on n questions, start to exit; sampling's and naive's estimated from its start."""
    lines = [(line, json.loads(line).get("split")) for line in open(qa) if line.strip()]
    asked = random.Random(0).sample([line for line, s in lines if s == split], n)
    sub, t0 = os.path.join(tmp, "whole.jsonl"), time.perf_counter()
    with open(sub, "w") as f:
        f.writelines([line for line, s in lines if s == "dev"] + asked)
    subprocess.run([sys.executable, "-c", f"from model import load_model; import probe; load_model({model!r})"],
                   cwd=HERE, check=True)  # the fixed part: a process that starts, imports and loads the model
    t1 = time.perf_counter()
    python("probe.py", "--model", model, "--qa", sub, "--split", split, "--fast", "--out",
           os.path.join(tmp, "whole_probe.jsonl"), stderr=subprocess.DEVNULL)
    fixed, fast = t1 - t0, time.perf_counter() - t1  # the others: the fixed part + n questions at measured rates
    sampling, naive = fixed + n / rates["probe_q_per_s"], fixed + n / rates["naive_q_per_s"]
    return {"whole_questions": n, "fixed_s": fixed, "fast_whole_s": fast, "sampling_whole_s": sampling,
            "naive_whole_s": naive, "fast_over_sampling_whole": sampling / fast, "fast_over_naive_whole": naive / fast}

def probe_section(args, peak, device, tmp):
    """The probe section's figures, printed: the real model on SliCK's EntityQuestions, else a small trained one."""
    if args.configs[0] == "smollm2":  # EntityQuestions test questions, evaluated 4-shot
        model_dir, qa, split, shots = SMOLLM2, os.path.join(tmp, "eq.jsonl"), "test", 4
        python("data/entityquestions/prepare.py", *(["--archive", args.eq_archive] if args.eq_archive else []),
               "--relations", *data.SLICK_RELATIONS, "--max_per_split",
               str(-(-args.whole_questions // len(data.SLICK_RELATIONS))), "--out", qa)
    else:  # a model that has learned the QA format, so answers end at a newline as they do when probing for real
        # (an untrained one runs every row to --max_new_tokens: 4-7x the work of a real probe, for both loops)
        model_dir, qa, split, shots = os.path.join(tmp, "probe_model"), DATA["mixed"][1], "train", 0
        python("train.py", "--out_dir", model_dir, "--max_steps", str(args.probe_train_steps), "--qa_pack", "4",
               *CONFIGS[args.configs[0]][0].split(), stderr=subprocess.DEVNULL)
    pr = bench_probe(model_dir, qa, split, args.probe_questions, args.fast_questions, args.naive_questions, device,
                     shots)
    if args.whole_questions:
        pr |= whole_process(model_dir, qa, split, args.whole_questions, pr, tmp)
    # the limit: 2N forward FLOPs a token probe.py runs (suffixes and answers; shared prefixes are negligible)
    limit = peak / (2 * pr["params"] * pr["probe_tokens_per_q"])
    print(f"\n[probe, {args.configs[0]} model, defaults: 10 prompts x (1 greedy + 16 samples)]\n"
          f"  probe.py {pr['probe_q_per_s']:.2f} q/s | --fast {pr['fast_q_per_s']:.1f} q/s | naive generate loop "
          f"{pr['naive_q_per_s']:.3f} q/s\n  probe.py / naive {pr['speedup']:.1f}x | --fast / probe.py "
          f"{pr['fast_over_sampling']:.1f}x | --fast / naive {pr['fast_over_naive']:.0f}x\n  the forward FLOPs it "
          f"needs ({pr['probe_tokens_per_q']:.0f} tokens a question) at the measured peak allow {limit:.3g} q/s: "
          f"probe.py runs at {100 * pr['probe_q_per_s'] / limit:.0f}% of that limit\n  eval.py (greedy, batched"
          f"{', 4-shot' if shots else ''}) {pr['eval_q_per_s']:.1f} q/s")
    if args.whole_questions:
        print(f"  whole process, {pr['whole_questions']} questions: `probe.py --fast` {pr['fast_whole_s']:.0f} s "
              f"(measured; of it {pr['fixed_s']:.0f} s start + imports + model load) | probe.py "
              f"{pr['sampling_whole_s']:.0f} s | naive {pr['naive_whole_s']:.0f} s (that fixed part + the questions "
              f"at the rates above) -> --fast / probe.py {pr['fast_over_sampling_whole']:.1f}x, --fast / naive "
              f"{pr['fast_over_naive_whole']:.0f}x")
    return pr

def main():
    args = get_args()
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    machine = torch.cuda.get_device_name() if cuda else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"$ python {' '.join(sys.argv)}\n# {machine} | torch {torch.__version__} | {time.strftime('%Y-%m-%d %H:%M')}")
    if not os.path.exists(DATA["mixed"][1]):
        python("data/bios/prepare.py", stdout=None)
    peak = measure_peak_flops(device, dtype, trials=10)
    results = {"machine": machine, "command": " ".join(sys.argv), "peak_tflops": peak / 1e12, "configs": {}}
    print(f"matmul peak ({dtype}): {peak / 1e12:.2f} TFLOP/s")
    tmp = tempfile.mkdtemp()
    for name in [] if args.skip_train else args.configs:
        results["configs"][name] = bench_config(name, args, peak, device, tmp)
    if not args.skip_probe:
        results["probe"] = probe_section(args, peak, device, tmp)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)

if __name__ == "__main__":
    main()
