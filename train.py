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
import inspect
import json
import math
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext

from augment import QA_FORMATS, format_variants, qa_completion, qa_prompt
from data import DataError, Help, global_batch, load_examples, micro_batches, read_examples, read_qa

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
    a("--init_from", default=init_from, help="'scratch' (tiny Llama, tokenizer trained on the data) or a model folder / hub id")
    a("--data", nargs="+", default=data, help="JSONL files: documents ('text') and/or QA ('question'), told apart by keys (default: the bios world's documents and QA, prepared if absent)")
    a("--split", default="train", help="which split of a QA file to train on (a file without splits is used whole)")
    a("--out_dir", default=out_dir, help="output folder: HF model + tokenizer, optimizer state, args.json, log.jsonl")
    a("--sam", action="store_true", help="sharpness-aware minimization around AdamW")
    a("--rho", type=float, default=rho, help="SAM radius")
    a("--adaptive", action="store_true", help="ASAM: perturbation scaled by |w| (use a larger rho, e.g. 0.5)")
    a("--sam_every", type=int, default=1, help="with --sam: the SAM step on every K-th step, a plain AdamW step between (cheaper)")
    a("--lora", type=int, default=0, help="rank of low-rank adapters (lora.py) on the --lora_targets layers; 0: full fine-tuning. "
      "Only the adapters train; the output folder holds the merged model")
    a("--lora_alpha", type=float, default=32, help="LoRA scale alpha (the update is B A alpha / rank)")
    a("--lora_targets", default=r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|c_attn|c_proj|c_fc)$",
      help="regex on module names: the layers LoRA wraps (default: attention and MLP of Llama / Qwen / Mistral / GPT-2)")
    a("--lora_embeddings", action="store_true", help="with --lora: the embeddings train too (Physics of LMs 3.1 tunes them)")
    a("--aug", type=int, default=1, help="formatted copies per document; each pass over a document uses the next one")
    a("--qa_aug", type=int, default=1, help="prompt formats per QA item, used in turn")
    a("--qa_pack", type=int, default=1, help="QA items per training sequence (> 1: the model sees few-shot-like contexts)")
    a("--pack", type=float, default=pack, help="padding-free packing: examples end to end in rows of PACK x the longest "
      "example of a micro-batch (0: pad every example to the longest instead)")
    a("--replay", nargs="+", default=None, help="JSONL files replayed beside --data (e.g. the pretraining mixture, against forgetting)")
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
    a("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="autocast dtype (auto: bf16 on GPU)")
    a("--chat", action="store_true", help="QA items in the tokenizer's chat template")
    a("--eval_qa", default=eval_qa, help="QA file: dev-split accuracy every --eval_every steps, dev + test at the end (default: the bios QA with the default data)")
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
    if args.dtype == "float16":
        p.error("--dtype float16 needs a loss scaler, which this loop does not have: use bfloat16 or float32")
    return args

if __name__ == "__main__":
    get_args()  # --help and a mistyped flag answer at once, before torch loads (seconds)

import torch  # noqa: E402

from model import load_model, load_state, loss_sum_of, model_checks, scratch_model  # noqa: E402
from eval import evaluate, print_table  # noqa: E402
from sam import SAM  # noqa: E402

# -----------------------------------------------------------------------------
# model

def measure_peak_flops(device, dtype, trials=3):
    """The matmul rate this device reaches (the MFU denominator), measured: the best of a few trials (neighbours only slow one down)."""
    n, reps = (8192, 20) if str(device).startswith("cuda") else (1024, 4)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    times = []
    for _ in range(trials + 1):  # the first trial warms up
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 * reps / min(times[1:])

# -----------------------------------------------------------------------------
# checkpoints: written to out_dir/.next, marked complete, then moved to the top of out_dir. A kill before
# the mark leaves the last checkpoint untouched; a kill during the moves is finished by commit() next time.

def commit(out_dir):
    nxt = os.path.join(out_dir, ".next")
    if os.path.exists(os.path.join(nxt, "COMPLETE")):
        for name in os.listdir(nxt):
            if name != "COMPLETE":
                os.replace(os.path.join(nxt, name), os.path.join(out_dir, name))
    shutil.rmtree(nxt, ignore_errors=True)

def save_checkpoint(out_dir, raw_model, tokenizer, model_state, optim_state, adapters, step, args, metrics):
    nxt = os.path.join(out_dir, ".next")
    shutil.rmtree(nxt, ignore_errors=True)
    raw_model.save_pretrained(nxt, state_dict=model_state)  # safetensors; handles tied embeddings
    if adapters is not None:  # --lora: the tensors that train, for --resume (model.safetensors holds the merged model)
        from safetensors.torch import save_file
        save_file(adapters, os.path.join(nxt, "lora.safetensors"))
    tokenizer.save_pretrained(nxt)
    torch.save({"optimizer": optim_state, "step": step}, os.path.join(nxt, "trainer_state.pt"))
    write_json(os.path.join(nxt, "args.json"), {"args": vars(args), "step": step, "metrics": metrics})
    open(os.path.join(nxt, "COMPLETE"), "w").close()
    commit(out_dir)

def finish_distributed():  # the barrier: no rank tears its pairs down while another still writes or communicates
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()

def write_json(path, obj):  # whole or not at all
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)

def main(argv=None):
    args = get_args(argv)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
    # distributed: torchrun's env vars switch DDP on
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) if ddp else (0, 0, 1)
    master_process = rank == 0
    device = {"auto": f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu", "cuda": f"cuda:{local_rank}"}.get(args.device, args.device)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    if ddp:
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    dtype = {"auto": torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32,
             "float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    autocast = torch.autocast(device.split(":")[0], dtype=dtype) if dtype != torch.float32 else nullcontext()
    torch.manual_seed(args.seed + rank)  # per-rank seed (no dropout by default, so nothing depends on it)
    if args.data is None:  # the embedded default: prepare the bios world if absent
        if not os.path.exists(os.path.join(BIOS, "qa.jsonl")) and master_process:
            subprocess.run([sys.executable, os.path.join(BIOS, "prepare.py")], check=True)
        if ddp:
            torch.distributed.barrier()
        args.data = [os.path.join(BIOS, "docs.jsonl"), os.path.join(BIOS, "qa.jsonl")]
        args.eval_qa = args.eval_qa or args.data[1]
    out = args.out_dir
    os.makedirs(out, exist_ok=True)
    if master_process:
        commit(out)  # finish (or drop) a checkpoint that a kill interrupted
    try:  # read and check every input before anything is written
        files = [read_examples(path, args.split) for path in args.data]
        replay_files = [read_examples(path, args.split) for path in args.replay or []]
        eval_items = read_qa(args.eval_qa) if args.eval_qa else []
        state = None
        if args.resume:
            if not os.path.exists(os.path.join(out, "trainer_state.pt")):
                raise DataError(f"--resume: no checkpoint in {out}")
            # LoRA: the frozen weights are --init_from's, bitwise; the adapters come from the checkpoint below
            model, tokenizer = load_model(args.init_from if args.lora else out)
            state = load_state(os.path.join(out, "trainer_state.pt"))  # tensors and plain values only: no code runs
        elif args.init_from == "scratch":
            # the tokenizer sees every format (whatever --aug is), so all arms of an ablation share one
            texts = [t for kind, items in files for it in items for t in (
                format_variants(it["text"], 8, list(it.get("facts", {}).values())) if kind == "docs" else
                [qa_prompt(it["question"], k) + qa_completion(it["answer"]) for k in range(len(QA_FORMATS))])]
            model, tokenizer = scratch_model(args, texts, out, master_process, ddp)
        else:
            model, tokenizer = load_model(args.init_from)
        max_len = getattr(model.config, "max_position_embeddings", None) or args.block_size
        examples = load_examples(args, files, tokenizer, max_len, master_process)
        if args.lora:
            from lora import add_lora
            torch.manual_seed(args.seed)  # the same adapters on every rank (FSDP2 shards what each rank holds)
            add_lora(model, args.lora, args.lora_alpha, args.lora_targets)
            torch.manual_seed(args.seed + rank)
            if args.lora_embeddings:
                model.get_input_embeddings().weight.requires_grad_(True)  # (and a tied lm_head with it)
            if args.resume:
                from safetensors.torch import load_file
                model.load_state_dict(load_file(os.path.join(out, "lora.safetensors")), strict=False)
        replay = load_examples(args, replay_files, tokenizer, max_len, master_process) if replay_files else []
    except (DataError, ValueError) as e:  # ValueError: --lora_targets matching no layer
        print(f"train.py: {e}", file=sys.stderr)
        sys.exit(2)
    model.to(device).train()
    raw_model = model
    packs, gather = model_checks(model, device)
    if args.pack and not packs:
        if master_process:
            print(f"warning: {type(model).__name__} attends across packed examples; padding instead (--pack 0)", file=sys.stderr)
        args.pack = 0.0
    if args.fsdp:
        from torch.distributed.fsdp import fully_shard
        for block in [m for m in model.modules() if type(m).__name__ in (model._no_split_modules or [])]:
            fully_shard(block)
        fully_shard(model)
    elif ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP
        # no buffer sync in every forward: a collective per forward for buffers that never change (rotary tables)
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
        model = DDP(model, device_ids=[local_rank] if device.startswith("cuda") else None, **{no_sync: False})
    # optimizer: AdamW, or SAM around AdamW; weight decay on matrices only (not norms / biases)
    params = [p for p in raw_model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    adamw = dict(lr=args.lr, betas=(0.9, 0.95), fused=device.split(":")[0] in ("cpu", "cuda"))  # one kernel for all tensors: 5x the default's speed on a CPU at 135M (bench.adamw_step_s)
    optimizer = SAM(groups, torch.optim.AdamW, args.rho, args.adaptive, **adamw) if args.sam else torch.optim.AdamW(groups, **adamw)
    base_optimizer = optimizer.base_optimizer if args.sam else optimizer
    global_size = args.batch_size * args.grad_accum * world_size
    n_replay = round(args.replay_ratio * global_size) if replay else 0  # examples of each global batch from --replay
    steps = math.ceil(args.epochs * len(examples) / (global_size - n_replay)) if args.epochs else args.max_steps
    if state is not None:
        if args.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
            set_optimizer_state_dict(model, base_optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True))
            if args.sam:
                optimizer.param_groups = base_optimizer.param_groups  # loading made new group dicts: share again
        else:
            optimizer.load_state_dict(state["optimizer"])
    step = state["step"] if state is not None else 0

    def get_lr(it):  # linear warmup, then cosine decay to lr / 10
        if it < args.warmup:
            return args.lr * (it + 1) / args.warmup
        ratio = min(1.0, (it - args.warmup) / max(1, steps - args.warmup))
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * ratio)))

    def forward_backward(batches, n_tokens):
        """Gradient of the global batch's mean token loss; the all-reduce happens once, on the last
        piece. The no-sync switch is set before the forward: DDP decides in forward whether the
        backward will reduce, so a no_sync around the backward alone would still sync every micro-step."""
        loss_sum = torch.zeros((), device=device)
        for i, piece in enumerate(batches):
            sync = i == len(batches) - 1
            if args.fsdp:
                model.set_requires_gradient_sync(sync)
            elif ddp:
                model.require_backward_grad_sync = sync
            with autocast:
                loss = loss_sum_of(model, *piece, gather)
            # divide by the tokens of the whole global batch; times world_size because DDP / FSDP average over ranks
            (loss * world_size / n_tokens).backward()
            loss_sum += loss.detach()
        if ddp:
            torch.distributed.all_reduce(loss_sum)
        return loss_sum / n_tokens  # a tensor: read (a host sync) only when logged

    def full_states():  # (model state, optimizer state, trainable tensors under LoRA); every rank gathers FSDP2 shards, rank 0 writes
        model_state, optim_state = (raw_model.state_dict() if args.lora else None), optimizer.state_dict()
        if args.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict
            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            model_state, optim_state = get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, base_optimizer, options=opts)
            if getattr(raw_model.config, "tie_word_embeddings", False):  # gathered copies hide the tie from save_pretrained
                model_state.pop("lm_head.weight", None)
        if not args.lora or not model_state:  # (FSDP2 gathers the full state on rank 0 only)
            return model_state, optim_state, None
        from lora import merged_state_dict  # the output folder holds the merged model; --resume needs what trains
        trainable = {n for n, p in raw_model.named_parameters() if p.requires_grad}
        return merged_state_dict(raw_model, model_state), optim_state, {k: v.contiguous() for k, v in model_state.items() if k in trainable}

    splits = sorted({it["split"] for it in eval_items if it["split"]}) or [None]  # None: a file without splits

    def run_eval(split, desc="eval"):  # every rank runs it (FSDP2 needs all ranks in every forward); rank 0 prints
        try:  # a failing evaluation never costs the run: it is reported, training and saving go on
            return evaluate(raw_model, tokenizer, [it for it in eval_items if it["split"] == split], chat=args.chat,
                            progress=master_process, desc=desc)
        except Exception as e:  # noqa: BLE001 (any tokenizer or model error)
            if master_process:
                tqdm.write(f"train.py: evaluation on {args.eval_qa} [{split}] failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            return None

    log_path = os.path.join(out, "log.jsonl")
    if master_process:  # a resumed run continues the log from its checkpoint
        old = [l for l in open(log_path)] if args.resume and os.path.exists(log_path) else []
        with open(log_path, "w") as f:
            f.writelines(l for l in old if json.loads(l).get("step", 0) <= step)
    peak = args.peak_tflops * 1e12 or measure_peak_flops(device, dtype)
    metrics = json.load(open(os.path.join(out, "args.json")))["metrics"] if args.resume else {}
    best, n_params, c = metrics.get("best_dev_exact_match", -1.0), sum(p.numel() for p in raw_model.parameters()), raw_model.config
    if master_process:
        print(f"{n_params / 1e6:.2f}M params | {len(examples)} examples | global batch {global_size} | {steps} steps"
              f" | {'SAM' if args.sam else 'AdamW'} | {world_size} rank(s) on {device} | peak {peak / 1e12:.2f} TFLOP/s")
    if master_process and args.resume:
        print(f"resuming from step {step} of {steps} ({out})")
    # Ctrl-C (SIGINT) and a scheduler's SIGTERM: finish the step (never stop while SAM has perturbed the
    # weights), write a checkpoint, say how to resume, exit non-zero. A second signal leaves at once: the
    # checkpoint journal keeps the last complete checkpoint whatever happens.
    stop = []
    def on_signal(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)
    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    from tqdm import tqdm
    bar = tqdm(total=steps, initial=step, disable=not master_process, dynamic_ncols=True, unit=" steps")
    t0, tokens_seen, logged_step = time.perf_counter(), 0, step
    while step < steps:
        lr_now = get_lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        batch = global_batch(examples, step, global_size, args.seed, replay, n_replay)
        n_tokens = max(1, sum(max(0, e - max(s, 1)) for _, spans in batch for s, e in spans))  # target tokens (the first has no context)
        batches = micro_batches(batch, args.grad_accum, rank, world_size, tokenizer.pad_token_id, device, args.pack)
        loss = forward_backward(batches, n_tokens)  # 1. gradient at w
        sam_now = args.sam and step % args.sam_every == 0
        if sam_now:
            grad_norm = optimizer.first_step(zero_grad=True)  # 2. move to w + e
            loss_adv = forward_backward(batches, n_tokens)  # 3. gradient at w + e, same micro-batches
        if args.grad_clip > 0:  # on the descent gradient only
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        if args.sam:
            optimizer.second_step(zero_grad=True)  # 4. back to w (bitwise), AdamW step (without a first step: a plain one)
        else:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += sum(len(ids) for ids, _ in batch)
        metrics["tokens"] = metrics.get("tokens", 0) + sum(len(ids) for ids, _ in batch)  # over the whole run (resumes too)
        bar.update(1)
        stopping = bool(stop)
        if ddp:  # every rank stops at the same step, although a signal may reach them a step apart
            flag = torch.tensor(float(stopping), device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stopping = flag.item() > 0
        eval_now = args.eval_qa and args.eval_every and step % args.eval_every == 0 and not stopping
        save_now = (args.save_every and step % args.save_every == 0) or step == steps or stopping
        if not (step % args.log_every == 0 or eval_now or save_now):
            continue
        row = {"step": step, "loss": loss.item(), "lr": lr_now}
        if sam_now:
            row.update(loss_adv=loss_adv.item(), grad_norm=grad_norm.item())
        if not (math.isfinite(row["loss"]) and math.isfinite(row.get("loss_adv", 0.0))):  # checked before any save
            if master_process:
                print(f"\ntrain.py: loss is {row['loss']} by step {step}; stopped. The last good checkpoint is in {out}", file=sys.stderr)
            sys.exit(3)
        if step % args.log_every == 0 or step == steps:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            dt, t0 = time.perf_counter() - t0, time.perf_counter()
            n_steps = step - logged_step
            # model FLOPs: 6N a token for the matmuls of forward + backward, plus attention (PaLM, appendix B)
            # (LoRA: 4N, frozen weights get no gradient)
            per_token = (4 if args.lora else 6) * n_params + 12 * c.num_hidden_layers * c.hidden_size * tokens_seen / (n_steps * len(batch))
            flops = per_token * tokens_seen * (1 + 1 / args.sam_every if args.sam else 1)  # both SAM passes count
            mem = torch.cuda.max_memory_allocated() if device.startswith("cuda") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            row.update(tokens_per_s=tokens_seen / dt, step_s=dt / n_steps, mfu=flops / dt / peak, peak_mem_mb=mem / 2**20)
            tokens_seen, logged_step = 0, step
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        t_eval = time.perf_counter()
        res = run_eval("dev" if "dev" in splits else splits[0], f"eval at step {step}") if eval_now else None
        if res is not None:
            row["dev_exact_match"] = res["exact_match"]
            if master_process:
                tqdm.write(f"step {step}: dev exact match {100 * res['exact_match']:.1f}%")
            if args.keep_best and res["exact_match"] > best:  # model selection on dev, never on test
                best = metrics["best_dev_exact_match"] = res["exact_match"]  # in each checkpoint: a resumed run compares with it
                states = full_states()
                if master_process:
                    save_checkpoint(os.path.join(out, "best"), raw_model, tokenizer, *states, step, args, {"dev_exact_match": best})
        t0 += time.perf_counter() - t_eval  # evaluation time is not training time
        if master_process and ("mfu" in row or "dev_exact_match" in row):
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if save_now:
            states = full_states()
            if master_process:
                save_checkpoint(out, raw_model, tokenizer, *states, step, args, metrics)
        if stopping:
            bar.close()
            if master_process:
                launcher = ["torchrun", f"--nproc_per_node={world_size}"] if ddp else ["python"]
                again = launcher + [sys.argv[0]] + [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--resume"] + ["--resume"]
                print(f"\ntrain.py: stopped by {signal.Signals(stop[0] if stop else signal.SIGTERM).name} at step {step} of {steps}; "
                      f"checkpoint in {out}. Resume: {shlex.join(map(str, again))}", file=sys.stderr)
            if ddp:
                finish_distributed()
            sys.exit(128 + (stop[0] if stop else signal.SIGTERM))
    bar.close()
    for sig, handler in handlers.items():  # the caller's handlers again (train.main may run inside another program)
        signal.signal(sig, handler)
    failed = []
    if args.eval_qa:  # after the final checkpoint is on disk: a failing evaluation never costs the run
        for split in [s for s in splits if s in ("dev", "test", None)]:
            res, name = run_eval(split, f"final eval [{split or 'all'}]"), split or "all"
            if res is None:
                failed.append(name)
                continue
            metrics[f"{name}_exact_match"], metrics[f"{name}_contains"] = res["exact_match"], res["contains"]
            if master_process:
                print_table(res, f"\n{name} QA ({args.eval_qa})")
        if master_process:  # the metrics join the checkpoint's args.json (written whole, then renamed)
            write_json(os.path.join(out, "args.json"), {"args": vars(args), "step": step, "metrics": metrics})
    if master_process:
        print(f"saved to {out}" + (f" | test exact match {100 * metrics['test_exact_match']:.1f}%" if "test_exact_match" in metrics else ""))
        if failed:
            print(f"train.py: the final evaluation failed ({', '.join(failed)}); the model is saved in {out} "
                  f"(evaluate it with eval.py, or rerun with --resume to retry)", file=sys.stderr)
    if ddp:
        finish_distributed()
    if failed:
        sys.exit(4)

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
