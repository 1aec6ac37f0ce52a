"""
Speed and memory of what matters, each figure measured in this run (ratios cancel a shared machine's noise):
the device's matmul peak; train.py's step (tokens/s, MFU) packed and padded, on the mixed default data and on
documents alone, against a Hugging Face Trainer with padding and with DataCollatorWithFlattening (padding-free);
SAM, --sam_every 2 / 4 and --lora 16 against AdamW (time, memory, and the training state's bytes); probe.py (sampling and --fast) against a
naive loop of `generate` calls, and the whole process of probing 500 questions (what a user waits for).

    python bench.py                         # CPU: the embedded default and a larger config -> bench.json
    python bench.py --configs default       # one config only
    python bench.py --configs default 0.5b --skip_probe   # on a GPU: add the ~0.5B config (bf16) and FSDP2
    python bench.py --configs smollm2 --rounds 1 --rows 2 --fast_questions 64   # the real model (README's run);
        # its probe section asks SliCK's EntityQuestions (--eq_archive dataset.zip, or downloaded)

Needs `accelerate` for the Trainer columns (pip install accelerate); it is not a runtime dependency.
"""
import argparse
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
from model import load_model, stop_ids
from lora import add_lora
from sam import SAM

HERE = os.path.dirname(os.path.abspath(__file__))
BIOS = os.path.join(HERE, "data", "bios")
CONFIGS = {  # name -> scratch model flags, global batch (examples of about 40 tokens)
    "default": (["--n_layer", "4", "--n_head", "4", "--n_embd", "128"], 48),
    "large": (["--n_layer", "6", "--n_head", "8", "--n_embd", "256"], 48),
    "0.5b": (["--n_layer", "24", "--n_head", "16", "--n_embd", "1024"], 256),
    "smollm2": (None, 8),  # SmolLM2-135M-Instruct (data/smollm2/prepare.py), not a scratch model: 8 examples a step
}
SMOLLM2 = os.path.join(HERE, "data", "smollm2", "SmolLM2-135M-Instruct")
SMOLLM2_ARMS = ["adamw", "padded", "adamw_docs", "sam", "sam_every4", "lora16", "lora16_sam"]  # ~10 s a step on a CPU: the arms

DATA = {"mixed": ["docs.jsonl", "qa.jsonl"], "docs": ["docs.jsonl"]}  # the default run's data, and documents alone

def train_run(init, out, flags, n_rows, warmup_rows, torchrun=False, which="mixed"):
    """Run train.py until it has logged warmup_rows + n_rows rows; return the last n_rows."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"] if torchrun else [sys.executable]
    files = [os.path.join(BIOS, f) for f in DATA[which]]
    cmd = launcher + [os.path.join(HERE, "train.py"), "--init_from", init, "--data", *files, "--out_dir", out,
                      "--max_steps", "100000", "--warmup", "10", *flags]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "stderr.txt"), "w") as err:  # a file, not a pipe: a full pipe would stall the run
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    log, rows, n_rows = os.path.join(out, "log.jsonl"), [], n_rows + warmup_rows
    while len(rows) < n_rows and proc.poll() is None:
        time.sleep(0.5)
        rows = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    kill_tree(proc.pid)  # torchrun's workers too, so their GPU memory is freed before the next run
    proc.wait()
    if len(rows) < n_rows:
        sys.exit(f"bench.py: train.py failed: {' '.join(cmd)}\n{open(os.path.join(out, 'stderr.txt')).read()[-2000:]}")
    return rows[warmup_rows:n_rows]

def kill_tree(pid):  # children first; torchrun's workers run in sessions of their own, so killpg would miss them
    for child in os.listdir("/proc"):
        try:
            if int(open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:  # its parent's pid
                kill_tree(int(child))
        except (OSError, ValueError, IndexError):  # not a process, or gone already
            pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

def trainer_tokens_per_s(init, batch_size, steps, bf16, which="mixed", flatten=False):
    """The same model, examples and batch through transformers.Trainer, padded to the longest of a batch or
    (flatten) padding-free with DataCollatorWithFlattening; real (non-pad) tokens per second."""
    from transformers import DataCollatorWithFlattening, Trainer, TrainerCallback, TrainingArguments
    model, tokenizer = load_model(init)
    args = train.get_args(["--data", *(os.path.join(BIOS, f) for f in DATA[which])])
    files = [data.read_examples(p, "train") for p in args.data]
    examples = [v[0] for v in data.load_examples(args, files, tokenizer, 10**9, False)]
    dataset = [{"input_ids": ids, "labels": [t if any(a <= i < b for a, b in spans) else -100 for i, t in enumerate(ids)]}
               for ids, spans in examples]  # the loss where train.py puts it: all of a document, a QA item's answer

    def collate(rows):  # pad to the longest in the batch, as a DataCollator does
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.tensor([r["input_ids"] + [tokenizer.pad_token_id] * (n - len(r["input_ids"])) for r in rows])
        return {"input_ids": ids, "attention_mask": (torch.arange(n)[None] < torch.tensor([len(r["input_ids"]) for r in rows])[:, None]).long(),
                "labels": torch.tensor([r["labels"] + [-100] * (n - len(r["labels"])) for r in rows])}

    times = []
    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter())
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(tmp, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=2e-3,
                                  warmup_steps=10, weight_decay=0.1, adam_beta2=0.95, lr_scheduler_type="cosine",
                                  logging_steps=10**6, save_strategy="no", report_to=[], bf16=bf16, use_cpu=not torch.cuda.is_available(),
                                  dataloader_num_workers=0, max_grad_norm=1.0, disable_tqdm=True,
                                  dataloader_drop_last=True)  # full batches only, as train.py's: a short last batch a pass pulled the median down
        Trainer(model=model, args=targs, train_dataset=dataset, data_collator=DataCollatorWithFlattening() if flatten else collate,
                callbacks=[Clock()]).train()
    warm = times[len(times) // 3:]  # the first third warms up (new shapes)
    step_s = statistics.median(b - a for a, b in zip(warm, warm[1:]))
    return statistics.mean(len(ids) for ids, _ in examples) * batch_size / step_s

def state_mb(init, lora, sam, device):
    """The training state's bytes, counted tensor by tensor after one step (peak RSS on a CPU cannot resolve a few
    MB): weights, gradients, AdamW's moments and SAM's copy of w, built as train.py builds them. Activations excluded."""
    model, _ = load_model(init, device)
    if lora:
        add_lora(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = SAM(params, torch.optim.AdamW, 0.05, lr=1e-4) if sam else torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(3, model.config.vocab_size, (2, 16), device=device)
    backward = lambda: model(input_ids=ids, labels=ids, use_cache=False).loss.backward()  # noqa: E731
    backward()
    opt.step(backward)  # SAM: the gradient at w + e, its copy of w kept; AdamW reruns it too (grads add up, bytes do not)
    states = [st for o in ([opt, opt.base_optimizer] if sam else [opt]) for st in o.state.values()]
    tensors = [t for p in model.parameters() for t in (p, p.grad) if t is not None]
    tensors += [t for st in states for t in st.values() if torch.is_tensor(t) and t.dim()]
    return sum({t.data_ptr(): t.nbytes for t in tensors}.values()) / 2**20  # by storage: a tied lm_head counts once

def adamw_step_s(init, device, steps=3):
    """Seconds of one AdamW update of every weight (gradients given): torch's default against fused (one kernel for
    all tensors, what train.py and the Trainer use); on a CPU the default loops over tensors."""
    params = [p for p in load_model(init, device)[0].parameters()]
    for p in params:
        p.grad = torch.randn_like(p)
    out = {}
    for name, kw in (("default", {}), ("fused", {"fused": True})):
        opt = torch.optim.AdamW(params, lr=1e-4, **kw)
        opt.step()  # the moments allocated
        t = time.perf_counter()
        for _ in range(steps):
            opt.step()
        out[name] = (time.perf_counter() - t) / steps
    return out

def bench_probe(init, qa, split, n_probe, n_fast, n_naive, device, eval_shots=0):
    """probe.py at its defaults (sampling) and --fast against one generate() call per question, prompt and sample;
    eval.py's greedy rate (eval_shots: few-shot, as a real model is evaluated)."""
    import probe
    from augment import qa_prompt
    model, tokenizer = load_model(init, device, torch.bfloat16 if device == "cuda" else torch.float32)
    items, pool = data.read_qa(qa, split), data.read_qa(qa, "dev")
    items = sorted(random.Random(0).sample(items, len(items)), key=lambda it: it["relation"])  # by relation: full batches, as in a whole file
    args = probe.get_args(["--model", init, "--qa", qa, "--out", os.devnull])
    probe.probe(model, tokenizer, items[:2], pool, args)  # warm-up
    decode, counted = probe.decode, [0]

    def counting_decode(model, ids, mask, stops, *a, n=1, **k):  # tokens probe.py must run: suffixes + answers
        out = decode(model, ids, mask, stops, *a, n=n, **k)
        counted[0] += int(mask[:, -ids.shape[1]:].sum()) + sum(len(g) + 1 for g in out)
        return out
    probe.decode = counting_decode
    t = time.perf_counter()
    probe.probe(model, tokenizer, items[:n_probe], pool, args)
    ours = n_probe / (time.perf_counter() - t)
    probe.decode = decode
    fast_args = probe.get_args(["--model", init, "--qa", qa, "--out", os.devnull, "--fast"])
    probe.probe(model, tokenizer, items[:8], pool, fast_args)  # warm-up
    t = time.perf_counter()
    probe.probe(model, tokenizer, items[:n_fast], pool, fast_args)
    fast = n_fast / (time.perf_counter() - t)
    sets, stops = probe.exemplar_sets(pool, args.n_prompts, args.shots, args.seed), sorted(stop_ids(tokenizer))
    t, n_tokens = time.perf_counter(), 0
    for it in items[:n_naive]:
        for exemplars in sets[it["relation"]]:
            ids = list(probe.prefix_ids(tokenizer, it, exemplars, args.shots)) + data.encode_pair(tokenizer, qa_prompt(it["question"]), "", bos=False)[0]
            enc = {"input_ids": torch.tensor([ids], device=device), "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device)}
            for s in range(1 + args.samples):
                kw = dict(do_sample=True, temperature=args.temperature, top_k=args.top_k) if s else dict(do_sample=False)
                out = model.generate(**enc, max_new_tokens=args.max_new_tokens, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id, **kw)
                n_tokens += enc["input_ids"].shape[1] + out.shape[1] - enc["input_ids"].shape[1]
    naive = n_naive / (time.perf_counter() - t)
    t = time.perf_counter()
    evaluate(model, tokenizer, items[:256], shots=eval_shots, pool=pool)
    return {"probe_q_per_s": ours, "fast_q_per_s": fast, "naive_q_per_s": naive, "speedup": ours / naive, "fast_over_sampling": fast / ours,
            "fast_over_naive": fast / naive, "eval_q_per_s": 256 / (time.perf_counter() - t),
            "naive_tokens_per_q": n_tokens / n_naive, "probe_tokens_per_q": counted[0] / n_probe, "params": sum(p.numel() for p in model.parameters())}

def whole_process(model, qa, split, n, rates, tmp):
    """What a user waits for: `python probe.py --fast` on n questions of `split`, start to exit, measured. The sampling
    probe's and the naive loop's whole processes, hours on a CPU, are estimated: the same fixed part (a process that
    starts, imports and loads the model, measured) plus n questions at the rates bench_probe measured."""
    lines = [l for l in open(qa) if l.strip()]
    splits = [json.loads(l).get("split") for l in lines]
    asked = random.Random(0).sample([l for l, s in zip(lines, splits) if s == split], n)
    sub, t0 = os.path.join(tmp, "whole.jsonl"), time.perf_counter()
    with open(sub, "w") as f:
        f.writelines([l for l, s in zip(lines, splits) if s == "dev"] + asked)
    subprocess.run([sys.executable, "-c", f"from model import load_model; import probe; load_model({model!r})"], cwd=HERE, check=True)
    t1 = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(HERE, "probe.py"), "--model", model, "--qa", sub, "--split", split, "--fast",
                    "--out", os.path.join(tmp, "whole_probe.jsonl")], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fixed, fast = t1 - t0, time.perf_counter() - t1
    sampling, naive = fixed + n / rates["probe_q_per_s"], fixed + n / rates["naive_q_per_s"]
    return {"whole_questions": n, "fixed_s": fixed, "fast_whole_s": fast, "sampling_whole_s": sampling, "naive_whole_s": naive,
            "fast_over_sampling_whole": sampling / fast, "fast_over_naive_whole": naive / fast}

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["default", "large"], choices=list(CONFIGS), help="model sizes to measure")
    p.add_argument("--rows", type=int, default=4, help="logged intervals per train.py measurement and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all train.py arms in turn (a shared machine drifts over minutes: all arms take it alike)")
    p.add_argument("--warmup_rows", type=int, default=1, help="logged intervals dropped first (new shapes warm up kernels)")
    p.add_argument("--log_every", type=int, default=4, help="steps per logged interval (a multiple of --sam_every 2 and 4, so every interval holds as many SAM steps)")
    p.add_argument("--skip_probe", action="store_true", help="skip the probe / eval section")
    p.add_argument("--skip_train", action="store_true", help="skip the training section (the probe section's model: the first config's)")
    p.add_argument("--probe_questions", type=int, default=32, help="questions for probe.py's rate")
    p.add_argument("--probe_train_steps", type=int, default=300, help="train.py steps of the model that is probed")
    p.add_argument("--fast_questions", type=int, default=256, help="questions for probe.py --fast's rate")
    p.add_argument("--naive_questions", type=int, default=2, help="questions for the naive loop's rate (170 generate calls each)")
    p.add_argument("--whole_questions", type=int, default=500, help="questions of the whole-process probe.py --fast run (0: none)")
    p.add_argument("--eq_archive", default=os.environ.get("EQ_ARCHIVE"), help="EntityQuestions release archive, for --configs smollm2's "
                   "probe section (default: $EQ_ARCHIVE, else data/entityquestions/prepare.py downloads it and keeps it)")
    p.add_argument("--skip_trainer", action="store_true", help="skip the Hugging Face Trainer comparison")
    p.add_argument("--out", default="bench.json", help="write the results here")
    args = p.parse_args()
    if not args.skip_trainer and importlib.util.find_spec("accelerate") is None:  # Trainer needs it; train.py does not
        print("bench.py: no `accelerate` installed, so no Trainer column (pip install accelerate)", file=sys.stderr)
        args.skip_trainer = True
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    machine = torch.cuda.get_device_name() if cuda else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"$ python {' '.join(sys.argv)}\n# {machine} | torch {torch.__version__} | {time.strftime('%Y-%m-%d %H:%M')}")
    if not os.path.exists(os.path.join(BIOS, "qa.jsonl")):
        subprocess.run([sys.executable, os.path.join(BIOS, "prepare.py")], check=True)
    peak = train.measure_peak_flops(device, dtype, trials=10)
    results = {"machine": machine, "command": " ".join(sys.argv), "peak_tflops": peak / 1e12, "configs": {}}
    print(f"matmul peak ({dtype}): {peak / 1e12:.2f} TFLOP/s")
    tmp = tempfile.mkdtemp()
    for name in [] if args.skip_train else args.configs:
        init = SMOLLM2 if name == "smollm2" else os.path.join(tmp, f"init_{name}")  # one model + tokenizer that every arm starts from
        subprocess.run([sys.executable, os.path.join(HERE, "data", "smollm2", "prepare.py")] if name == "smollm2" else
                       [sys.executable, os.path.join(HERE, "train.py"), "--out_dir", init, "--max_steps", "1",
                        "--data", os.path.join(BIOS, "docs.jsonl"), os.path.join(BIOS, "qa.jsonl"), *CONFIGS[name][0]],
                       check=True, stdout=subprocess.DEVNULL)
        batch = CONFIGS[name][1]
        flags = ["--log_every", str(args.log_every), "--peak_tflops", str(peak / 1e12), "--batch_size", str(batch)]
        r = {}
        packs = {"adamw": [], "padded": ["--pack", "0"], "pack1": ["--pack", "1"], "pack4": ["--pack", "4"]}  # mixed data, and _docs alone
        arms = {**packs, **{f"{k}_docs": v for k, v in packs.items()}, "sam": ["--sam"], "sam_every2": ["--sam", "--sam_every", "2"],
                "sam_every4": ["--sam", "--sam_every", "4"], "lora16": ["--lora", "16"], "lora16_sam": ["--lora", "16", "--sam"]}
        if cuda and name == "0.5b":
            arms.update({"adamw_fsdp": ["--fsdp"], "sam_fsdp": ["--sam", "--fsdp"]})
        if name == "smollm2":
            arms = {k: arms[k] for k in SMOLLM2_ARMS}
        rows = {arm: [] for arm in arms}  # rounds of every arm in turn: a machine that drifts over minutes slows all arms alike
        for rnd in range(args.rounds):
            for arm, extra in arms.items():
                rows[arm] += train_run(init, os.path.join(tmp, f"{name}_{arm}_{rnd}"), flags + extra, args.rows, args.warmup_rows,
                                       torchrun="fsdp" in arm, which="docs" if arm.endswith("_docs") else "mixed")
        for arm in arms:
            r[arm] = a = {k: statistics.median(row[k] for row in rows[arm]) for k in ("tokens_per_s", "step_s", "mfu", "peak_mem_mb")}
            print(f"  [{name}] train.py {arm:<12} {a['tokens_per_s']:>10.0f} tok/s  {a['step_s'] * 1000:8.1f} ms/step  MFU {100 * a['mfu']:5.1f}%"
                  f"  peak mem {a['peak_mem_mb']:8.0f} MB", flush=True)
        r["params"] = n_params = sum(t.numel() for t in load_file(os.path.join(init, "model.safetensors")).values())
        for arm in [a for a in ("sam", "sam_every2", "sam_every4", "lora16", "lora16_sam") if a in arms]:
            r[f"{arm}_step_ratio"] = r[arm]["step_s"] / r["adamw"]["step_s"]
        r["sam_extra_mem_over_param_bytes"] = (r["sam"]["peak_mem_mb"] - r["adamw"]["peak_mem_mb"]) * 2**20 / (4 * n_params)
        # the training state counted tensor by tensor (what LoRA saves; on a CPU peak RSS cannot show it)
        r["state_mb"] = {arm: state_mb(init, lora, sam, device) for arm, lora, sam in
                         (("adamw", 0, False), ("sam", 0, True), ("lora16", 16, False), ("lora16_sam", 16, True))}
        r["adamw_step_s"] = adamw_step_s(init, device)
        r["packed_over_padded"] = {f"{k}{d}": r[f"{k}{d}"]["tokens_per_s"] / r[f"padded{d}"]["tokens_per_s"] for k in ("pack1", "adamw", "pack4")
                                   for d in ("", "_docs") if f"{k}{d}" in r and f"padded{d}" in r}
        if not args.skip_trainer:
            steps = args.log_every * (args.rows * args.rounds + args.warmup_rows)
            for d in ("mixed", "docs"):
                for flat in (False, True):
                    key = f"trainer{'_flat' if flat else ''}_{d}"
                    r[key] = trainer_tokens_per_s(init, batch, steps, cuda, d, flat)
                    r[f"ours_over_{key}"] = r["adamw" + ("_docs" if d == "docs" else "")]["tokens_per_s"] / r[key]
        results["configs"][name] = r
        print(f"  [{name}] {n_params / 1e6:.1f}M params, batch {batch}; packed / padded tokens/s (pack1 / adamw / pack4: rows of 1x / 2x "
              f"(default) / 4x the longest): " + ", ".join(f"{k} {v:.2f}" for k, v in r["packed_over_padded"].items()))
        # SAM's 2.0 floor holds for the forward-backward only (the batch and the AdamW update are not doubled). Memory:
        # GPU max_memory_allocated; on a CPU the process's peak RSS, too coarse for a few-MB buffer
        print("  step time over AdamW: " + ", ".join(f"{k[:-len('_step_ratio')]} {v:.2f}" for k, v in r.items() if k.endswith("_step_ratio")))
        print(f"  SAM extra peak memory {r['sam_extra_mem_over_param_bytes']:.2f} x param bytes{'' if cuda else ' (peak RSS)'}")
        print(f"  one AdamW update of every weight: default {r['adamw_step_s']['default']:.3f} s, fused {r['adamw_step_s']['fused']:.3f} s")
        print("  training state (weights, grads, AdamW moments, SAM's copy of w; no activations): "
              + ", ".join(f"{arm} {mb:.1f} MB" for arm, mb in r["state_mb"].items()))
        for key in [k for k in r if k.startswith("ours_over_")]:
            print(f"  {key[len('ours_over_'):]:<20} {r[key[len('ours_over_'):]]:>10.0f} tok/s  -> train.py / it = {r[key]:.2f}")
    if not args.skip_probe:
        if args.configs[0] == "smollm2":  # the real model on SliCK's data: EntityQuestions test questions, evaluated 4-shot
            model_dir, qa, split, shots = SMOLLM2, os.path.join(tmp, "eq.jsonl"), "test", 4
            subprocess.run([sys.executable, os.path.join(HERE, "data", "entityquestions", "prepare.py"), *(["--archive", args.eq_archive] if args.eq_archive else []), "--relations",
                            *data.SLICK_RELATIONS, "--max_per_split", str(-(-args.whole_questions // len(data.SLICK_RELATIONS))), "--out", qa], check=True, stdout=subprocess.DEVNULL)
        else:  # a model that has learned the QA format, so answers end at a newline as they do when probing for real
            # (an untrained one runs every row to --max_new_tokens: 4-7x the work of a real probe, for both loops)
            model_dir, qa, split, shots = os.path.join(tmp, "probe_model"), os.path.join(BIOS, "qa.jsonl"), "train", 0
            subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--out_dir", model_dir, "--max_steps", str(args.probe_train_steps),
                            "--qa_pack", "4", *CONFIGS[args.configs[0]][0]], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results["probe"] = pr = bench_probe(model_dir, qa, split, args.probe_questions, args.fast_questions, args.naive_questions, device, shots)
        if args.whole_questions:
            pr |= whole_process(model_dir, qa, split, args.whole_questions, pr, tmp)
        # the limit: 2N forward FLOPs a token probe.py runs (suffixes and answers; shared prefixes are negligible)
        limit_q_per_s = peak / (2 * pr["params"] * pr["probe_tokens_per_q"])
        print(f"\n[probe, {args.configs[0]} model, defaults: 10 prompts x (1 greedy + 16 samples)]")
        print(f"  probe.py {pr['probe_q_per_s']:.2f} q/s | --fast {pr['fast_q_per_s']:.1f} q/s | naive generate loop {pr['naive_q_per_s']:.3f} q/s")
        print(f"  probe.py / naive {pr['speedup']:.1f}x | --fast / probe.py {pr['fast_over_sampling']:.1f}x | --fast / naive {pr['fast_over_naive']:.0f}x")
        print(f"  the forward FLOPs it needs ({pr['probe_tokens_per_q']:.0f} tokens a question) at the measured peak allow {limit_q_per_s:.3g} q/s:"
              f" probe.py runs at {100 * pr['probe_q_per_s'] / limit_q_per_s:.0f}% of that limit")
        print(f"  eval.py (greedy, batched{', 4-shot' if shots else ''}) {pr['eval_q_per_s']:.1f} q/s")
        if args.whole_questions:
            print(f"  whole process, {pr['whole_questions']} questions: `probe.py --fast` {pr['fast_whole_s']:.0f} s (measured; of it "
                  f"{pr['fixed_s']:.0f} s start + imports + model load) | probe.py {pr['sampling_whole_s']:.0f} s | naive {pr['naive_whole_s']:.0f} s "
                  f"(that fixed part + the questions at the rates above) -> --fast / probe.py {pr['fast_over_sampling_whole']:.1f}x, "
                  f"--fast / naive {pr['fast_over_naive_whole']:.0f}x")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)

if __name__ == "__main__":
    main()
