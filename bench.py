"""
Speed and memory, every figure of one run (ratios cancel a shared machine's noise): the matmul peak in fp32 and bf16;
train.py's step (tokens/s, MFU, peak memory) on each arm of ARMS, in rounds of every arm in turn; the same examples
through a Hugging Face Trainer (padded, and padding-free; it needs `pip install accelerate`); the training state's
bytes; probe.py, sampling against --fast; whole processes, what a user waits for.

    python bench.py                         # CPU: the embedded default and a larger config -> bench.json
    python bench.py --configs default 0.5b --skip probe   # on a GPU: add the ~0.5B config (bf16) and FSDP2
    python bench.py --configs smollm2 --rounds 2 --rows 2 --fast_questions 64   # the real model, fp32 beside bf16
        # (its probe section: EntityQuestions, --eq_archive or downloaded; probe.py and eval.py whole, each precision)
"""
import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file

import data
import data.batches
import probe
import train
from lora import add_lora
from model import load_in, load_model, measure_peak_flops, sync
from sam import SAM

HERE = os.path.dirname(os.path.abspath(__file__))
SMOLLM2 = os.path.join(HERE, "data", "smollm2", "SmolLM2-135M-Instruct")
DATA = {"mixed": [os.path.join(HERE, "data", "bios", f) for f in ("docs.jsonl", "qa.jsonl")]}
DATA["docs"] = DATA["mixed"][:1]
ARMS = {  # name -> (data, train.py's flags beyond the config's); --fsdp: under torchrun, on a GPU only
    "adamw": ("mixed", ""), "padded": ("mixed", "--pack 0"), "adamw_docs": ("docs", ""), "sam": ("mixed", "--sam"),
    "padded_docs": ("docs", "--pack 0"), "sam_every2": ("mixed", "--sam --sam_every 2"),
    "sam_every4": ("mixed", "--sam --sam_every 4"), "lora16": ("mixed", "--lora 16"), "adamw_fsdp": ("mixed", "--fsdp"),
    "lora16_sam": ("mixed", "--lora 16 --sam"), "sam_fsdp": ("mixed", "--sam --fsdp")}
ARMS |= {f"{a}_{p}": (ARMS[a][0], f"{ARMS[a][1]} --dtype {d}") for a in ("adamw", "padded", "adamw_docs", "sam",
         "sam_every4", "lora16") for p, d in (("fp32", "float32"), ("bf16", "bfloat16"))}  # a precision asked for
SCRATCH = ["adamw", "padded", "adamw_docs", "padded_docs", "sam", "sam_every2", "sam_every4", "lora16", "lora16_sam",
           "adamw_fp32", "adamw_bf16"]  # (the last two: does bf16 pay at this width? auto's rule)
CONFIGS = {  # name -> scratch model flags (None: SmolLM2-135M-Instruct), global batch (examples of ~40 tokens), arms
    "default": ("--n_layer 4 --n_head 4 --n_embd 128", 48, SCRATCH),
    "large": ("--n_layer 6 --n_head 8 --n_embd 256", 48, SCRATCH),
    "0.5b": ("--n_layer 24 --n_head 16 --n_embd 1024", 256, SCRATCH + ["adamw_fsdp", "sam_fsdp"]),
    "smollm2": (None, 8, [f"{a}_{p}" for p in ("fp32", "bf16") for a in ("adamw", "sam", "sam_every4", "lora16")]
                + ["padded_fp32", "adamw_docs_fp32"]),  # 8 examples a step: the experiments' own size
}
# ratios: (name, arm, over which arm, of what): step time over AdamW's; tokens/s over padding's, and bf16's over fp32's
RATIOS = [(f"{a}{p}_step_ratio", f"{a}{p}", f"adamw{p}", "step_s") for p in ("", "_fp32", "_bf16")
          for a in ("sam", "sam_every2", "sam_every4", "lora16", "lora16_sam")]
RATIOS += [(f"{a}_over_padded", a, a.replace("adamw", "padded"), "tokens_per_s") for a in ("adamw", "adamw_docs",
                                                                                         "adamw_fp32")]
RATIOS += [(f"{a}_bf16_over_fp32", f"{a}_bf16", f"{a}_fp32", "tokens_per_s") for a in ("adamw", "sam", "sam_every4",
                                                                                      "lora16")]

def get_args():
    """The flags; without `accelerate` (the Trainer needs it, train.py does not) no Trainer columns."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--configs", nargs="+", default=["default", "large"], choices=list(CONFIGS), help="model sizes to measure")
    a("--rows", type=int, default=4, help="logged intervals per train.py measurement and round")
    a("--rounds", type=int, default=3, help="rounds of every arm in turn (a machine drifts: all arms take it alike)")
    a("--warmup_rows", type=int, default=1, help="logged intervals dropped first (new shapes warm up kernels)")
    a("--log_every", type=int, default=4, help="steps a logged interval (a multiple of --sam_every 2 and 4)")
    a("--skip", nargs="+", default=[], choices=["train", "trainer", "probe"], help="sections to skip (without train, "
      "the probe's model is the first config's; the Trainer comparison needs `accelerate` installed)")
    a("--probe_questions", type=int, default=32, help="questions for probe.py's rate")
    a("--probe_train_steps", type=int, default=300, help="train.py steps of the model that is probed")
    a("--fast_questions", type=int, default=256, help="questions for probe.py --fast's rate")
    a("--whole_questions", type=int, default=500, help="questions of the whole-process runs (0: none)")
    a("--eq_archive", default=os.environ.get("EQ_ARCHIVE"), help="EntityQuestions release archive (smollm2's probe "
      "section; default: $EQ_ARCHIVE, else data/entityquestions/prepare.py downloads it)")
    a("--out", default="bench.json", help="write the results here")
    args = p.parse_args()
    if "trainer" not in args.skip and importlib.util.find_spec("accelerate") is None:
        print("bench.py: no `accelerate` installed, so no Trainer column (pip install accelerate)", file=sys.stderr)
        args.skip.append("trainer")
    return args

def python(script, *args, stdout=subprocess.DEVNULL, **kw):
    """Run a script of this repo to its end, checked (its output dropped unless told otherwise)."""
    subprocess.run([sys.executable, os.path.join(HERE, script), *map(str, args)], check=True, stdout=stdout, **kw)

def timed(fn):
    """Seconds fn() takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t

def show(title, values, fmt="{:.3g}"):
    """One printed line of named figures."""
    print(f"  {title}: " + ", ".join(f"{k} {fmt.format(v) if type(v) is not str else v}" for k, v in values.items()))

# -----------------------------------------------------------------------------
# training

def train_run(init, out, arm, flags, args):
    """train.py on one arm for --warmup_rows + --rows logged intervals (then it saves and exits): the last --rows."""
    extra = ARMS[arm][1].split()
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"] if "--fsdp" in extra else []
    steps = args.log_every * (args.rows + args.warmup_rows)
    cmd = [sys.executable, *launcher, os.path.join(HERE, "train.py"), "--init_from", init, "--data",
           *DATA[ARMS[arm][0]], "--out_dir", out, "--max_steps", steps, "--warmup", 10, *flags, *extra]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "stderr.txt"), "w") as err:  # a file, not a pipe: a full pipe would stall the run
        if subprocess.run(list(map(str, cmd)), stdout=subprocess.DEVNULL, stderr=err).returncode:
            sys.exit(f"bench.py: train.py failed: {' '.join(map(str, cmd))}\n{open(err.name).read()[-2000:]}")
    return [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))][args.warmup_rows:]

def trainer_tokens_per_s(init, batch_size, steps, which="mixed", flatten=False):
    """train.py's examples and batch through transformers.Trainer, padded or (flatten) padding-free: real tokens/s."""
    from transformers import (DataCollatorForSeq2Seq, DataCollatorWithFlattening, Trainer, TrainerCallback,
                              TrainingArguments)
    model, tokenizer = load_model(init)
    args = train.get_args(["--data", *DATA[which]])
    files = [data.read_examples(p, "train") for p in args.data]
    examples = [v[0] for v in data.batches.load_examples(args, files, tokenizer, 10**9, False)]
    dataset = [{"input_ids": x, "labels": [t if any(a <= i < b for a, b in s) else -100 for i, t in enumerate(x)]}
               for x, s in examples]  # the loss where train.py puts it: all of a document, a QA item's answer
    times, cuda = [], torch.cuda.is_available()

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            times.append(sync("cuda" if cuda else "cpu"))
    with tempfile.TemporaryDirectory() as tmp:  # full batches only, as train.py's; its lr schedule and clipping
        targs = TrainingArguments(tmp, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=2e-3,
                                  warmup_steps=10, weight_decay=0.1, adam_beta2=0.95, lr_scheduler_type="cosine",
                                  logging_steps=10**6, save_strategy="no", report_to=[], bf16=cuda, max_grad_norm=1.0,
                                  use_cpu=not cuda, dataloader_drop_last=True, disable_tqdm=True)
        collate = DataCollatorWithFlattening() if flatten else DataCollatorForSeq2Seq(tokenizer, padding=True)
        Trainer(model=model, args=targs, train_dataset=dataset, data_collator=collate, callbacks=[Clock()]).train()
    warm = times[len(times) // 3:]  # the first third warms up (new shapes)
    return statistics.mean(len(x) for x, _ in examples) * batch_size / statistics.median(
        b - a for a, b in zip(warm, warm[1:]))

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

def bench_config(name, args, device, tmp):
    """One config: every arm's medians over rounds (each run measures its precision's peak for its MFU), the ratios,
    the training state, the Trainer."""
    flags, batch, arms = CONFIGS[name]
    arms = [a for a in arms if torch.cuda.is_available() or "--fsdp" not in ARMS[a][1]]
    init = SMOLLM2 if flags is None else os.path.join(tmp, f"init_{name}")  # the model every arm starts from
    python("data/smollm2/prepare.py") if flags is None else \
        python("train.py", "--out_dir", init, "--max_steps", 1, "--data", *DATA["mixed"], *flags.split())
    rows = {arm: [] for arm in arms}
    for rnd in range(args.rounds):  # all arms in turn each round: a machine that drifts over minutes slows all alike
        for arm in arms:
            rows[arm] += train_run(init, f"{tmp}/{name}_{arm}_{rnd}", arm, ["--log_every", args.log_every,
                                                                          "--batch_size", batch], args)
    keys = ("tokens_per_s", "step_s", "mfu", "peak_mem_mb")
    r = {arm: {k: statistics.median(x[k] for x in rows[arm]) for k in keys} for arm in arms}
    for arm, a in r.items():
        show(f"[{name}] train.py {arm}", a, "{:.3g}")
    r["params"] = n = sum(t.numel() for t in load_file(os.path.join(init, "model.safetensors")).values())
    r["ratios"] = {k: r[a][key] / r[b][key] for k, a, b, key in RATIOS if a in r and b in r}
    r["state_mb"] = {arm: state_mb(init, lora, sam, device) for arm, lora, sam in
                     (("adamw", 0, False), ("sam", 0, True), ("lora16", 16, False), ("lora16_sam", 16, True))}
    steps, fp32 = args.log_every * (args.rows * args.rounds + args.warmup_rows), "" if "adamw" in r else "_fp32"
    for which, flat in [(w, f) for w in ("mixed", "docs") for f in (False, True)] * ("trainer" not in args.skip):
        key, ours = f"trainer{'_flat' if flat else ''}_{which}", ("adamw_docs" if which == "docs" else "adamw") + fp32
        r[key] = trainer_tokens_per_s(init, batch, steps, which, flat)
        r["ratios"][f"ours_over_{key}"] = r[ours]["tokens_per_s"] / r[key] if ours in r else float("nan")
    show(f"[{name}] {n / 1e6:.1f}M params, batch {batch}; ratios", r["ratios"], "{:.2f}")
    show("training state, MB (weights, grads, AdamW moments, SAM's copy of w)", r["state_mb"], "{:.1f}")
    return r

# -----------------------------------------------------------------------------
# probing and evaluating

def bench_probe(init, qa, split, args, device):
    """probe.py's questions/s, sampling and --fast (after a warm-up each), in one process, at auto's precision."""
    model, tokenizer, why = load_in(init, device, "auto")
    items, pool = data.read_qa(qa, split), data.read_qa(qa, "dev")
    items = sorted(random.Random(0).sample(items, len(items)), key=lambda it: it["relation"])  # full batches
    pargs, fast_args = (probe.get_args(["--model", init, "--qa", qa, "--out", os.devnull, *f])
                        for f in ([], ["--fast"]))
    rates = {}
    for name, pa, n, warmup in (("ours", pargs, args.probe_questions, 2), ("fast", fast_args, args.fast_questions, 8)):
        probe.probe(model, tokenizer, items[:warmup], pool, pa)
        rates[name] = n / timed(lambda: probe.probe(model, tokenizer, items[:n], pool, pa))
    return {"precision": why, "probe_q_per_s": rates["ours"], "fast_q_per_s": rates["fast"],
            "fast_over_sampling": rates["fast"] / rates["ours"]}

def whole_process(model, qa, split, n, rates, tmp, dtype="auto", shots=None):
    """What a user waits for: `python probe.py --fast` on n questions of `split`, start to exit (and `eval.py --shots`
    where shots is given), measured; the sampling probe's estimated: the same fixed part (a process that starts,
    imports and loads the model, measured) plus n questions at the rate measured in process."""
    lines = [(line, json.loads(line).get("split")) for line in open(qa) if line.strip()]
    asked = random.Random(0).sample([line for line, s in lines if s == split], n)
    sub = os.path.join(tmp, "whole.jsonl")
    with open(sub, "w") as f:
        f.writelines([line for line, s in lines if s == "dev"] + asked)
    fixed = timed(lambda: subprocess.run([sys.executable, "-c", "import probe; from model import load_in; "
                                          f"load_in({model!r}, 'cpu', {dtype!r})"], cwd=HERE, check=True))
    common = ["--model", model, "--qa", sub, "--split", split, "--dtype", dtype]
    quiet = dict(stderr=subprocess.DEVNULL)
    fast = timed(lambda: python("probe.py", *common, "--fast", "--out", f"{tmp}/whole_probe.jsonl", **quiet))
    r = {"whole_questions": n, "fixed_s": fixed, "fast_whole_s": fast, "sampling_whole_s": fixed + n / rates[
        "probe_q_per_s"]}
    if shots is not None:
        r["eval_whole_s"] = timed(lambda: python("eval.py", *common, "--shots", shots, **quiet))
    return r | {"fast_over_sampling_whole": r["sampling_whole_s"] / fast}

def probe_section(args, device, tmp):
    """The real model on SliCK's EntityQuestions, 4-shot (whole processes in fp32 and bf16), else a small trained one
    (it has learned the QA format, so its answers end at a newline: an untrained one runs every row to the limit)."""
    real = args.configs[0] == "smollm2"
    model_dir, qa, split = (SMOLLM2, f"{tmp}/eq.jsonl", "test") if real else (f"{tmp}/probe", DATA["mixed"][1], "train")
    if real:
        python("data/entityquestions/prepare.py", *(["--archive", args.eq_archive] if args.eq_archive else []),
               "--relations", *data.SLICK_RELATIONS, "--max_per_split",
               -(-args.whole_questions // len(data.SLICK_RELATIONS)), "--out", qa)
    else:
        python("train.py", "--out_dir", model_dir, "--max_steps", args.probe_train_steps, "--qa_pack", 4,
               *CONFIGS[args.configs[0]][0].split(), stderr=subprocess.DEVNULL)
    pr = bench_probe(model_dir, qa, split, args, device)
    for dtype in (["float32", "bfloat16"] if real else ["auto"]) * bool(args.whole_questions):
        pr[f"whole_{dtype}"] = whole_process(model_dir, qa, split, args.whole_questions, pr, tmp, dtype, 4 * real)
    if "whole_bfloat16" in pr:
        pr |= {f"{k}_bf16_over_fp32": pr["whole_float32"][f"{k}_whole_s"] / pr["whole_bfloat16"][f"{k}_whole_s"]
               for k in ("fast", "eval")}
    show(f"[probe, {args.configs[0]} model; probe.py's defaults: 10 prompts x (1 greedy + 16 samples)]",
         {k: v for k, v in pr.items() if not isinstance(v, dict)})
    for k in [k for k, v in pr.items() if isinstance(v, dict)]:
        show(f"{k}: whole processes, seconds", pr[k])
    return pr

def main():
    args = get_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = torch.cuda.get_device_name() if device == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"$ python {' '.join(sys.argv)}\n# {machine} | torch {torch.__version__} | {time.strftime('%Y-%m-%d %H:%M')}")
    if not os.path.exists(DATA["mixed"][1]):
        python("data/bios/prepare.py", stdout=None)
    peak = {str(d)[6:]: measure_peak_flops(device, d, trials=10) / 1e12 for d in (torch.float32, torch.bfloat16)}
    results, tmp = {"machine": machine, "command": " ".join(sys.argv), "peak_tflops": peak}, tempfile.mkdtemp()
    show("matmul peak, TFLOP/s", peak, "{:.2f}")
    results["configs"] = {}
    for name in [] if "train" in args.skip else args.configs:
        results["configs"][name] = bench_config(name, args, device, tmp)
    if "probe" not in args.skip:
        results["probe"] = probe_section(args, device, tmp)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)

if __name__ == "__main__":
    main()
