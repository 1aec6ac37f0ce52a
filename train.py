"""
Teach a causal LM facts: continued pre-training on documents (loss on every token) and instruction tuning
on QA pairs (loss on the answer only), with formatting augmentation (--aug, --qa_aug) and SAM (--sam).

    python train.py                    # embedded default: bios world, tiny model from scratch, test QA at the end
    python train.py --sam              # the same with SAM
    python train.py --aug 4 --out_dir out/aug4
    python train.py --init_from out --data data/bios/qa.jsonl --epochs 5 --lr 3e-4 --out_dir out/qa
    torchrun --standalone --nproc_per_node=2 train.py --sam --max_steps 50          # DDP (gloo on CPU)
    torchrun --standalone --nproc_per_node=8 train.py --init_from Qwen/Qwen2-1.5B --data docs.jsonl \\
        --aug 8 --sam --dtype bfloat16 --lr 1e-5 --epochs 3 --out_dir out/qwen
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_endpoint HOST:29500 train.py --fsdp --init_from ...

The global batch is batch_size x grad_accum x world_size examples, a fixed set per step whatever the split
over ranks and micro-batches; the loss is normalized by the target tokens of the whole global batch.
"""
import argparse
import gc
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from contextlib import nullcontext

from data import DataError, Help, read_examples, read_qa, splits_of, write_json
from data.batches import global_batch, load_examples, micro_batches

HERE = os.path.dirname(os.path.abspath(__file__))
BIOS = os.path.join(HERE, "data", "bios")
# -----------------------------------------------------------------------------
# defaults: the embedded default (bios world, tiny Llama from scratch on 2 CPU cores)
init_from = "scratch"
data = None  # None: the bios documents + the train people's QA (prepared if absent)
eval_qa = None  # None with the default data: the bios QA file (dev during training, dev + test at the end)
out_dir = "out"
batch_size = 48
grad_accum = 1
max_steps = 1200
lr = 2e-3
warmup = 50
weight_decay = 0.1
grad_clip = 1.0
rho = 0.05
pack = 2.0  # packed row length in longest examples (bench.py: 2x beat 1x, 4x and padding on the CPU)
n_layer, n_head, n_embd, vocab_size, block_size = 4, 4, 128, 4096, 512
# -----------------------------------------------------------------------------

def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    a = p.add_argument
    a("--init_from", default=init_from, help="'scratch' (a tiny Llama, tokenizer trained on the data), model or hub id")
    a("--data", nargs="+", default=data, help="JSONL: documents ('text') and/or QA ('question') (default: bios world)")
    a("--split", default="train", help="which split of a QA file to train on (a file without splits is used whole)")
    a("--out_dir", default=out_dir, help="output folder: HF model + tokenizer, optimizer state, args.json, log.jsonl")
    a("--sam", action="store_true", help="sharpness-aware minimization around AdamW")
    a("--rho", type=float, default=rho, help="SAM radius")
    a("--adaptive", action="store_true", help="ASAM: perturbation scaled by |w| (use a larger rho, e.g. 0.5)")
    a("--sam_every", type=int, default=1, help="with --sam: SAM on every K-th step, plain AdamW steps between")
    a("--lora", type=int, default=0, help="rank of low-rank adapters (lora.py) on the --lora_targets layers; 0: full "
      "fine-tuning. Only the adapters train; the output folder holds the merged model")
    a("--lora_alpha", type=float, default=32, help="LoRA scale alpha (the update is B A alpha / rank)")
    a("--lora_targets", default=r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|c_attn|c_proj|c_fc)$",
      help="regex on module names: the layers LoRA wraps (default: attention and MLP, Llama / Qwen / Mistral / GPT-2)")
    a("--lora_embeddings", action="store_true", help="with --lora: the embeddings train too (Physics of LMs 3.1)")
    a("--aug", type=int, default=1, help="formatted copies per document; each pass over a document uses its next one")
    a("--qa_aug", type=int, default=1, help="prompt formats per QA item, used in turn")
    a("--qa_pack", type=int, default=1, help="QA items per training sequence (> 1: few-shot-like contexts)")
    a("--pack", type=float, default=pack, help="padding-free packing: examples end to end in rows of PACK x the longest"
      "example of a micro-batch (0: pad every example to the longest instead)")
    a("--replay", nargs="+", default=None, help="JSONL files replayed beside --data (e.g. the pretraining mixture)")
    a("--replay_ratio", type=float, default=0.1, help="share of every global batch drawn from --replay")
    a("--epochs", type=float, default=None, help="passes over the training examples (overrides --max_steps)")
    a("--max_steps", type=int, default=max_steps, help="optimizer steps")
    a("--batch_size", type=int, default=batch_size, help="examples per micro-batch per rank")
    a("--grad_accum", type=int, default=grad_accum, help="micro-batches per rank per step")
    a("--lr", type=float, default=lr, help="peak learning rate (linear warmup, cosine decay to lr/10)")
    a("--warmup", type=int, default=warmup, help="warmup steps")
    a("--weight_decay", type=float, default=weight_decay, help="AdamW weight decay on matrices")
    a("--grad_clip", type=float, default=grad_clip, help="clip the (descent) gradient norm; 0 disables")
    a("--seed", type=int, default=0, help="seed of the init, data order and formats")
    a("--n_layer", type=int, default=n_layer, help="scratch model: layers")
    a("--n_head", type=int, default=n_head, help="scratch model: attention heads")
    a("--n_embd", type=int, default=n_embd, help="scratch model: width")
    a("--vocab_size", type=int, default=vocab_size, help="scratch tokenizer: BPE vocabulary size")
    a("--block_size", type=int, default=block_size, help="scratch model: context length")
    a("--save_every", type=int, default=0, help="checkpoint every N steps (0: only at the end)")
    a("--resume", action="store_true", help="continue from the checkpoint in --out_dir")
    a("--fsdp", action="store_true", help="shard the model with FSDP2 (fully_shard per block) under torchrun")
    a("--device", default="auto", help="cpu, cuda, ... (auto: cuda if available)")
    a("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="the math's precision (autocast; auto: "
      "bf16 where the device computes it natively and it pays, model.pick_dtype)")
    a("--chat", action="store_true", help="QA items in the tokenizer's chat template")
    a("--eval_qa", default=eval_qa, help="QA file: dev-split accuracy every --eval_every steps, dev + test at the end "
      "(default: the bios QA with the default data)")
    a("--eval_every", type=int, default=0, help="evaluate on the dev split every N steps (0: only at the end)")
    a("--keep_best", action="store_true", help="also save the model with the best dev exact match to out_dir/best")
    a("--log_every", type=int, default=10, help="log every N steps")
    a("--peak_tflops", type=float, default=0, help="peak of the device for MFU (0: measured at start)")
    return p

def get_args(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    for name in ("aug", "qa_aug", "qa_pack", "batch_size", "grad_accum", "max_steps", "sam_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if not 0 <= args.replay_ratio < 1:
        p.error("--replay_ratio must be in [0, 1)")
    if args.lora and args.init_from == "scratch":
        p.error("--lora adapts a trained model: give it --init_from (a model folder or hub id)")
    if args.fsdp and "RANK" not in os.environ:
        p.error("--fsdp needs torchrun (it shards the model over the ranks)")
    return args

if __name__ == "__main__":
    get_args()  # --help and a mistyped flag answer at once, before torch loads (seconds)

# torch, and every module that imports it, loads only now: after the flags are parsed
import torch
from tqdm import tqdm
from transformers.utils import logging as hf_logging

from checkpoint import (agree_to_stop, catch_signals, commit, finish_distributed, load_state, restore, save, start_log,
                        stop_run)
from eval import evaluate, print_table
from model import (build, check_packing, distribute, loss_sum_of, measure_peak_flops, peak_memory, pick_dtype, sync,
                   train_flops)
from sam import SAM

# where this process runs (torchrun's ranks; one process: rank 0 of 1), and what trains and a checkpoint holds (the
# model as DDP / FSDP2 wrap it under torchrun, the model itself, its tokenizer, the optimizer)
Run = namedtuple("Run", "ddp rank local_rank world_size master device dtype autocast")
Learner = namedtuple("Learner", "model raw_model tokenizer optimizer")

# -----------------------------------------------------------------------------
# setup, data, model

def setup(args):
    """Ranks (torchrun's environment switches DDP on), the device, the seed (the precision comes with the model)."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) if ddp else \
        (0, 0, 1)
    device = {"auto": f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu", "cuda": f"cuda:{local_rank}"}.get(
        args.device, args.device)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    if ddp:
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    torch.manual_seed(args.seed + rank)  # per-rank seed (no dropout by default, so nothing depends on it)
    return Run(ddp, rank, local_rank, world_size, rank == 0, device, None, None)

def read_inputs(args, run):
    """Every input, read and checked: training files, replay files, evaluation items, the trainer state to resume."""
    if args.data is None:  # the embedded default: the bios world (prepared if absent), its QA evaluated
        if not os.path.exists(os.path.join(BIOS, "qa.jsonl")) and run.master:
            subprocess.run([sys.executable, os.path.join(BIOS, "prepare.py")], check=True)
        if run.ddp:
            torch.distributed.barrier()
        args.data = [os.path.join(BIOS, "docs.jsonl"), os.path.join(BIOS, "qa.jsonl")]
        args.eval_qa = args.eval_qa or args.data[1]
    files, replay_files = ([read_examples(p, args.split) for p in paths] for paths in (args.data, args.replay or []))
    state_path = os.path.join(args.out_dir, "trainer_state.pt")
    if args.resume and not os.path.exists(state_path):
        raise DataError(f"--resume: no checkpoint in {args.out_dir}")
    state = load_state(state_path) if args.resume else None  # tensors and plain values only: no code runs
    return files, replay_files, read_qa(args.eval_qa) if args.eval_qa else [], state

# -----------------------------------------------------------------------------
# optimizer, schedule, one step's gradient

def make_optimizer(args, raw_model, device):
    """AdamW (fused: 5x the default's speed on a CPU at 135M, bench.py), or SAM around it; decay on matrices only."""
    params = [p for p in raw_model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    adamw = dict(lr=args.lr, betas=(0.9, 0.95), fused=device.split(":")[0] in ("cpu", "cuda"))
    return SAM(groups, torch.optim.AdamW, args.rho, args.adaptive, **adamw) if args.sam else \
        torch.optim.AdamW(groups, **adamw)

def get_lr(it, args, steps):
    """Linear warmup, then cosine decay to lr / 10."""
    if it < args.warmup:
        return args.lr * (it + 1) / args.warmup
    ratio = min(1.0, (it - args.warmup) / max(1, steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * ratio)))

def forward_backward(model, batches, n_tokens, args, run, gather):
    """Gradient of the global batch's mean token loss; the all-reduce happens once, on the last piece."""
    loss_sum = torch.zeros((), device=run.device)
    for i, piece in enumerate(batches):
        # the no-sync switch is set before the forward: DDP decides in forward whether the backward will reduce,
        # so a no_sync around the backward alone would still sync every micro-step
        if args.fsdp:
            model.set_requires_gradient_sync(i == len(batches) - 1)
        elif run.ddp:
            model.require_backward_grad_sync = i == len(batches) - 1
        with run.autocast:
            loss = loss_sum_of(model, *piece, gather)
        # divide by the tokens of the whole global batch; times world_size because DDP / FSDP average over ranks
        (loss * run.world_size / n_tokens).backward()
        loss_sum += loss.detach()
    if run.ddp:
        torch.distributed.all_reduce(loss_sum)
    return loss_sum / n_tokens  # a tensor: read (a host sync) only when logged

# -----------------------------------------------------------------------------
# logging and evaluating

def log_step(row, args, learner, step, steps, clock, eval_items, metrics, run):
    """A logged step: NaN stops the run (before any save); speed and MFU when due; dev exact match when asked."""
    if not (math.isfinite(row["loss"]) and math.isfinite(row.get("loss_adv", 0.0))):
        if run.master:
            print(f"\ntrain.py: loss is {row['loss']} by step {step}; stopped. The last good checkpoint is in "
                  f"{args.out_dir}", file=sys.stderr)
        sys.exit(3)
    if step % args.log_every == 0 or step == steps:  # speed since the last logged step; both SAM passes count
        dt, n_steps, tokens = sync(run.device) - clock["t0"], step - clock["step"], clock["tokens"]
        flops = train_flops(learner.raw_model, tokens / (n_steps * clock["examples"]), args.lora) * tokens * \
            (1 + 1 / args.sam_every if args.sam else 1)
        row.update(tokens_per_s=tokens / dt, step_s=dt / n_steps, mfu=flops / dt / clock["peak"],
                   peak_mem_mb=peak_memory(run.device) / 2**20)
        clock.update(t0=time.perf_counter(), tokens=0, step=step)
    splits, t_eval = splits_of(eval_items), time.perf_counter()
    res = evaluate_split(args, learner, eval_items, "dev" if "dev" in splits else splits[0], f"eval at step {step}",
                         run) if eval_items else None
    clock["t0"] += time.perf_counter() - t_eval  # evaluation time is not training time
    if res is not None:
        row["dev_exact_match"] = res["exact_match"]
        if run.master:
            tqdm.write(f"step {step}: dev exact match {100 * res['exact_match']:.1f}%")
        if args.keep_best and res["exact_match"] > metrics.get("best_dev_exact_match", -1.0):  # chosen on dev only
            metrics["best_dev_exact_match"] = res["exact_match"]  # in each checkpoint: a resumed run compares with it
            save(os.path.join(args.out_dir, "best"), args, learner, step, {"dev_exact_match": res["exact_match"]},
                 run.master)
    if run.master and ("mfu" in row or "dev_exact_match" in row):
        with open(os.path.join(args.out_dir, "log.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")

def evaluate_split(args, learner, items, split, desc, run):
    """Exact match on a split of --eval_qa; None if it fails (reported: a failing evaluation never costs the run)."""
    try:  # every rank runs it (FSDP2 needs all ranks in every forward); rank 0 prints
        return evaluate(learner.raw_model, learner.tokenizer, [it for it in items if it["split"] == split],
                        chat=args.chat, progress=run.master, desc=desc)
    except Exception as e:  # (any tokenizer or model error)
        if run.master:
            why = str(e).splitlines()[0] if str(e) else ""
            tqdm.write(f"train.py: evaluation on {args.eval_qa} [{split}] failed: {type(e).__name__}: {why}")

def finish(args, learner, items, step, metrics, run):
    """The final evaluation (dev and test; the checkpoint is on disk already) into args.json, then the exit code."""
    failed = []
    for split in [s for s in splits_of(items) if s in ("dev", "test", None)] if args.eval_qa else []:
        name = split or "all"
        res = evaluate_split(args, learner, items, split, f"final eval [{name}]", run)
        failed += [name] if res is None else []
        metrics |= {f"{name}_{k}": res[k] for k in ("exact_match", "contains")} if res else {}
        if res and run.master:
            print_table(res, f"\n{name} QA ({args.eval_qa})")
    if run.master:
        if args.eval_qa:  # the metrics join the checkpoint's args.json (written whole, then renamed)
            write_json(os.path.join(args.out_dir, "args.json"), {"args": vars(args), "step": step, "metrics": metrics})
        test = metrics.get("test_exact_match")
        print(f"saved to {args.out_dir}" + (f" | test exact match {100 * test:.1f}%" if test is not None else ""))
        if failed:
            print(f"train.py: the final evaluation failed ({', '.join(failed)}); the model is saved in {args.out_dir} "
                  "(evaluate it with eval.py, or rerun with --resume to retry)", file=sys.stderr)
    if run.ddp:
        finish_distributed()
    if failed:
        sys.exit(4)

# -----------------------------------------------------------------------------

def main(argv=None):
    args = get_args(argv)
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
    run = setup(args)
    os.makedirs(args.out_dir, exist_ok=True)
    if run.master:
        commit(args.out_dir)  # finish (or drop) a checkpoint that a kill interrupted
    try:  # data and model: every input read and checked before anything is written
        files, replay_files, eval_items, state = read_inputs(args, run)
        raw_model, tokenizer = build(args, files, run.master, run.ddp, run.rank)
        max_len = getattr(raw_model.config, "max_position_embeddings", None) or args.block_size
        examples, replay = ([] if not f else load_examples(args, f, tokenizer, max_len, run.master)
                            for f in (files, replay_files))
    except (DataError, ValueError) as e:  # ValueError: --lora_targets matching no layer
        print(f"train.py: {e}", file=sys.stderr)
        sys.exit(2)
    args.pack, gather = check_packing(raw_model.to(run.device).train(), args.pack, run.device, run.master)
    dtype, why = pick_dtype(args.dtype, run.device, raw_model.config.hidden_size)  # fp32 weights; bf16 math: autocast
    run = run._replace(dtype=dtype, autocast=torch.autocast(run.device.split(":")[0], dtype) if dtype != torch.float32
                       else nullcontext())
    model = distribute(raw_model, args.fsdp, run.ddp, run.local_rank, run.device)
    optimizer = make_optimizer(args, raw_model, run.device)
    learner = Learner(model, raw_model, tokenizer, optimizer)
    global_size = args.batch_size * args.grad_accum * run.world_size
    n_replay = round(args.replay_ratio * global_size) if replay else 0  # examples of each global batch from --replay
    steps = math.ceil(args.epochs * len(examples) / (global_size - n_replay)) if args.epochs else args.max_steps
    step = restore(args, model, optimizer, state)
    metrics = start_log(args, step, run.master) | {"dtype": str(dtype).removeprefix("torch.")}
    clock = dict(t0=time.perf_counter(), tokens=0, step=step,
                 peak=args.peak_tflops * 1e12 or measure_peak_flops(run.device, run.dtype))
    if run.master:
        print(f"{sum(p.numel() for p in raw_model.parameters()) / 1e6:.2f}M params | {len(examples)} examples | global "
              f"batch {global_size} | {steps} steps | {'SAM' if args.sam else 'AdamW'} | {run.world_size} rank(s) on "
              f"{run.device} | {why} | peak {clock['peak'] / 1e12:.2f} TFLOP/s" +
              (f"\nresuming from step {step} of {steps} ({args.out_dir})" if args.resume else ""))
    stop, handlers = catch_signals()  # Ctrl-C, SIGTERM: the step finishes, a checkpoint, the resume command
    bar = tqdm(total=steps, initial=step, disable=not run.master, dynamic_ncols=True, unit=" steps")
    while step < steps:
        lr_now = get_lr(step, args, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        batch = global_batch(examples, step, global_size, args.seed, replay, n_replay)
        n_tokens = max(1, sum(max(0, e - max(s, 1)) for _, spans in batch for s, e in spans))  # (a first token: none)
        batches = micro_batches(batch, args.grad_accum, run.rank, run.world_size, tokenizer.pad_token_id, run.device,
                                args.pack)
        loss = forward_backward(model, batches, n_tokens, args, run, gather)  # 1. gradient at w
        sam_now = args.sam and step % args.sam_every == 0
        if sam_now:
            grad_norm = optimizer.first_step(zero_grad=True)  # 2. move to w + e
            loss_adv = forward_backward(model, batches, n_tokens, args, run, gather)  # 3. gradient at w + e, same data
        if args.grad_clip > 0:  # on the descent gradient only
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        if args.sam:
            optimizer.second_step(zero_grad=True)  # 4. back to w (bitwise), AdamW step (no first step: a plain one)
        else:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        step += 1
        n_batch = sum(len(ids) for ids, _ in batch)
        clock.update(tokens=clock["tokens"] + n_batch, examples=len(batch))
        metrics["tokens"] = metrics.get("tokens", 0) + n_batch  # over the whole run (resumes too)
        bar.update(1)
        stopping = agree_to_stop(stop, run.ddp, run.device)
        eval_now = args.eval_qa and args.eval_every and step % args.eval_every == 0 and not stopping
        save_now = (args.save_every and step % args.save_every == 0) or step == steps or stopping
        if step % args.log_every == 0 or eval_now or save_now:
            row = {"step": step, "loss": loss.item(), "lr": lr_now}
            row |= {"loss_adv": loss_adv.item(), "grad_norm": grad_norm.item()} if sam_now else {}
            log_step(row, args, learner, step, steps, clock, eval_items if eval_now else [], metrics, run)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        if save_now:
            save(args.out_dir, args, learner, step, metrics, run.master)
        if stopping:
            bar.close()
            stop_run(args, stop, step, steps, argv, run.master, run.world_size, run.ddp)
    bar.close()
    for sig, handler in handlers.items():  # the caller's handlers again (train.main may run inside another program)
        signal.signal(sig, handler)
    finish(args, learner, eval_items, step, metrics, run)

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before training began, or a second Ctrl-C: no traceback, the last checkpoint intact
        print("\ntrain.py: interrupted; the last complete checkpoint (if any) is intact", file=sys.stderr)
        sys.exit(130)
    finally:
        # FSDP2's modules and device meshes (which hold the process group) outlive main() in reference cycles; left
        # to interpreter shutdown, their teardown can abort a finished run (CI saw "terminate called without an
        # active exception", exit -6, after "saved to"): free them while the interpreter is whole
        gc.collect()
