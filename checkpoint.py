"""
train.py's journal: checkpoints that a kill at any moment leaves whole, resuming from one, and stopping on a
signal. A checkpoint is written to OUT/.next, marked complete, then moved to the top of OUT; a kill before the
mark leaves the last checkpoint untouched, a kill during the moves is finished by commit() at the next start.
It is an ordinary Hugging Face folder (model.safetensors, tokenizer) plus trainer_state.pt (AdamW's moments,
the step), args.json (flags, step, metrics) and, under LoRA, lora.safetensors (the tensors that train;
model.safetensors holds the merged model). Trainer states are read back as tensors and plain values only.

    python train.py --save_every 100 --out_dir out     # Ctrl-C: the step finishes, a checkpoint, the resume command
    python train.py --save_every 100 --out_dir out --resume    # the uninterrupted run's weights, bit for bit
"""
import json
import os
import pickle
import shlex
import shutil
import signal
import sys
import time

import torch
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_optimizer_state_dict)

from data import DataError, write_json
from lora import merged_state_dict

def commit(out_dir):
    """Move a complete .next/ into place; drop an incomplete one."""
    nxt = os.path.join(out_dir, ".next")
    if os.path.exists(os.path.join(nxt, "COMPLETE")):
        for name in os.listdir(nxt):
            if name != "COMPLETE":
                os.replace(os.path.join(nxt, name), os.path.join(out_dir, name))
    shutil.rmtree(nxt, ignore_errors=True)

def full_states(args, model, raw_model, optimizer):
    """(model state, optimizer state, LoRA's trainable tensors): every rank gathers FSDP2's shards to rank 0's CPU."""
    adamw = optimizer.base_optimizer if args.sam else optimizer
    model_state, optim_state = (raw_model.state_dict() if args.lora else None), optimizer.state_dict()
    if args.fsdp:
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(model, options=options)
        optim_state = get_optimizer_state_dict(model, adamw, options=options)
        if getattr(raw_model.config, "tie_word_embeddings", False):  # gathered copies hide the tie from save_pretrained
            model_state.pop("lm_head.weight", None)
    if not args.lora or not model_state:  # (FSDP2 gathers the full state on rank 0 only)
        return model_state, optim_state, None
    trainable = {n for n, p in raw_model.named_parameters() if p.requires_grad}
    adapters = {k: v.contiguous() for k, v in model_state.items() if k in trainable}
    return merged_state_dict(raw_model, model_state), optim_state, adapters

def save(out_dir, args, learner, step, metrics, master):
    """A checkpoint of train.py's Learner (model, raw model, tokenizer, optimizer): all ranks gather, rank 0 writes."""
    model_state, optim_state, adapters = full_states(args, learner.model, learner.raw_model, learner.optimizer)
    if not master:
        return
    nxt = os.path.join(out_dir, ".next")
    shutil.rmtree(nxt, ignore_errors=True)
    learner.raw_model.save_pretrained(nxt, state_dict=model_state)  # safetensors; tied embeddings kept tied
    if adapters is not None:
        save_file(adapters, os.path.join(nxt, "lora.safetensors"))
    learner.tokenizer.save_pretrained(nxt)
    torch.save({"optimizer": optim_state, "step": step}, os.path.join(nxt, "trainer_state.pt"))
    write_json(os.path.join(nxt, "args.json"), {"args": vars(args), "step": step, "metrics": metrics})
    open(os.path.join(nxt, "COMPLETE"), "w").close()
    commit(out_dir)

def load_state(path):
    """A checkpoint's trainer state (optimizer moments, step) as tensors and plain values only (weights_only): a
    checkpoint from elsewhere whose pickle would build any other object, and so could run code, is refused."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path}: refused: it holds more than tensors and plain values "
                        "(loading it could run code)") from None
    except RuntimeError as e:  # not a torch file at all
        raise DataError(f"{path}: not a trainer state ({str(e).splitlines()[0]})") from None

def restore(args, model, optimizer, state):
    """The step to start from: 0, or the checkpoint's, with AdamW's moments loaded (FSDP2: sharded as the model)."""
    if state is not None and args.fsdp:
        adamw = optimizer.base_optimizer if args.sam else optimizer
        set_optimizer_state_dict(model, adamw, state["optimizer"], options=StateDictOptions(full_state_dict=True))
        optimizer.param_groups = adamw.param_groups  # loading made new group dicts: SAM shares them again
    elif state is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state["step"] if state is not None else 0

def start_log(args, step, master):
    """log.jsonl (a resumed run keeps its rows up to its step), and the metrics so far."""
    path = os.path.join(args.out_dir, "log.jsonl")
    if master:
        old = list(open(path)) if args.resume and os.path.exists(path) else []
        with open(path, "w") as f:
            f.writelines(line for line in old if json.loads(line).get("step", 0) <= step)
    return json.load(open(os.path.join(args.out_dir, "args.json")))["metrics"] if args.resume else {}

def catch_signals():
    """Ctrl-C (SIGINT) and a scheduler's SIGTERM land in the list returned, beside the old handlers: train.py finishes
    its step (never stopping while SAM has perturbed the weights) and saves. A second signal leaves at once."""
    stop = []
    def on_signal(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)
    return stop, {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

def agree_to_stop(stop, ddp, device):
    """Whether a signal came; under torchrun all ranks stop at one step, though a signal may reach them a step apart."""
    if not ddp:
        return bool(stop)
    flag = torch.tensor(float(bool(stop)), device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return flag.item() > 0

def finish_distributed():
    """The process group's end, once every rank is here (a last all-reduce) and gloo's threads are done with it."""
    last = torch.ones(1, device="cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
    torch.distributed.all_reduce(last)
    # A worker thread lets go of a tensor that Python also holds only under the GIL; the group's destructor joins those
    # threads while holding the GIL (when the DDP wrapper that owns the group is freed). Wait here, the GIL released,
    # until the thread has let go of the last tensor, or the two deadlock (CI saw a finished run hang at exit).
    for _ in range(10_000):
        if last._use_count() == 1:
            break
        time.sleep(0.001)
    torch.distributed.destroy_process_group()

def stop_run(args, stop, step, steps, argv, master, world_size, ddp):
    """After a signal's checkpoint: the command that resumes, then exit 128 + the signal (a rank may stop for another's:
    SIGTERM then)."""
    signum = stop[0] if stop else signal.SIGTERM
    if master:
        launcher = ["torchrun", f"--nproc_per_node={world_size}"] if ddp else ["python"]
        flags = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--resume"]
        print(f"\ntrain.py: stopped by {signal.Signals(signum).name} at step {step} of {steps}; checkpoint in "
              f"{args.out_dir}. Resume: {shlex.join(map(str, launcher + [sys.argv[0]] + flags + ['--resume']))}",
              file=sys.stderr)
    if ddp:
        finish_distributed()
    sys.exit(128 + signum)
