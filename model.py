"""
The model: loading one (a Hugging Face folder, a hub id or a GGUF file; one clear error, naming the path, where a
path is not a model), building train.py's (a tiny Llama from scratch, LoRA, its ranks under torchrun), and what
training runs on it: the loss, the checks made before packing, the FLOPs and the device's matmul peak (MFU).
Decoding (eval.py, probe.py) is decode.py's.

    from model import load_model
    model, tokenizer = load_model("data/smollm2/SmolLM2-135M-Instruct")   # or "Qwen/Qwen2-1.5B", or "model.Q4_1.gguf"
"""
import importlib.util
import inspect
import os
import re
import resource
import socket
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging

from augment import QA_FORMATS, format_variants, qa_completion, qa_prompt
from data import DataError, train_tokenizer
from lora import add_lora

# -----------------------------------------------------------------------------
# loading

def load_model(path, device="cpu", dtype=None):
    """AutoModelForCausalLM (in `dtype`, default float32) + AutoTokenizer from a local folder, a hub id or a .gguf
    file; one clear error if none. A GGUF model comes back an ordinary model that save_pretrained writes."""
    logging.disable_progress_bar()  # no "Loading weights" bar at every load
    kw, source = {}, path
    if path.endswith(".gguf"):
        check_gguf(path)
        kw, path = {"gguf_file": os.path.basename(path)}, os.path.dirname(path) or "."
    elif not os.path.isdir(path):
        why, kw = why_not_a_hub_id(path)
        if why:
            raise DataError(f"--model/--init_from {path}: no such model folder{why}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **kw).to(device)
    except (OSError, ValueError) as e:
        raise DataError(f"--model/--init_from {source}: cannot load a causal LM and tokenizer "
                        f"(not a model folder, and not a model on the hub): {str(e).splitlines()[0]}") from None
    # dequantized, an ordinary model now; still marked, save_pretrained refuses and a reload counts as quantized
    if "gguf_file" in kw:
        model.hf_quantizer, model.is_quantized = None, False
        model.config.__dict__.pop("quantization_config", None)
    if tokenizer.pad_token_id is None:  # only used under an attention mask of 0; any id will do
        tokenizer.pad_token = (tokenizer.eos_token if tokenizer.eos_token is not None
                               else tokenizer.convert_ids_to_tokens(0))
    return model, tokenizer

def check_gguf(path):
    """A .gguf path that exists, starts with GGUF's magic bytes, and can be read (gguf and accelerate installed)."""
    if not os.path.isfile(path):
        raise DataError(f"--model/--init_from {path}: no such file")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise DataError(f"--model/--init_from {path}: not a GGUF file "
                            "(it does not start with the GGUF magic bytes)")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise DataError(f"--model/--init_from {path}: reading GGUF needs the optional packages gguf and accelerate: "
                        f"pip install {' '.join(missing)}")

def why_not_a_hub_id(path):
    """(why `path` cannot be loaded as a hub id, or "" if it can; from_pretrained kwargs). Checked up front
    so that a mistyped folder fails in a second instead of after a minute of retries against the hub."""
    if (path.startswith(("/", ".", "~")) or path.count("/") > 1 or os.path.exists(path)
            or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path)):
        return " (and not a hub id)", {}
    from huggingface_hub import try_to_load_from_cache
    if isinstance(try_to_load_from_cache(path, "config.json"), str):  # in the local hub cache: no network needed
        return "", {"local_files_only": True}
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return " (nor a cached hub model, and HF_HUB_OFFLINE is set)", {}
    host = re.sub(r"^\w+://", "", os.environ.get("HF_ENDPOINT", "https://huggingface.co")).split("/")[0]
    try:
        port = int(host.split(":")[1]) if ":" in host else 443
        socket.create_connection((host.split(":")[0], port), timeout=3).close()
    except OSError:
        return f" (nor a cached hub model, and the hub at {host} cannot be reached to look it up)", {}
    return "", {}

# -----------------------------------------------------------------------------
# building and training

def scratch_model(args, files, out_dir, master_process, ddp):
    """A tiny Llama and a tokenizer trained on the data (on rank 0; every rank loads it, so all hold the same one).
    The tokenizer sees every format of every item (whatever --aug is), so all arms of an ablation share one."""
    if master_process:
        texts = [t for kind, items in files for it in items for t in (
            format_variants(it["text"], 8, list(it.get("facts", {}).values())) if kind == "docs" else
            [qa_prompt(it["question"], k) + qa_completion(it["answer"]) for k in range(len(QA_FORMATS))])]
        train_tokenizer(texts, args.vocab_size, out_dir)
    if ddp:
        torch.distributed.barrier()
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.n_embd, intermediate_size=4 * args.n_embd,
                         num_hidden_layers=args.n_layer, num_attention_heads=args.n_head,
                         num_key_value_heads=args.n_head, max_position_embeddings=args.block_size,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(args.seed)  # the same init on every rank
    return LlamaForCausalLM(config), tokenizer

def build(args, files, master, ddp, rank):
    """train.py's model and tokenizer: its checkpoint (--resume), a tiny Llama (scratch) or --init_from; then LoRA."""
    if args.resume:  # LoRA: the frozen weights are --init_from's, bitwise; the adapters come from the checkpoint
        model, tokenizer = load_model(args.init_from if args.lora else args.out_dir)
    elif args.init_from == "scratch":
        model, tokenizer = scratch_model(args, files, args.out_dir, master, ddp)
    else:
        model, tokenizer = load_model(args.init_from)
    if args.lora:
        torch.manual_seed(args.seed)  # the same adapters on every rank (FSDP2 shards what each rank holds)
        add_lora(model, args.lora, args.lora_alpha, args.lora_targets)
        torch.manual_seed(args.seed + rank)
        if args.lora_embeddings:
            model.get_input_embeddings().weight.requires_grad_(True)  # (and a tied lm_head with it)
        if args.resume:
            model.load_state_dict(load_file(os.path.join(args.out_dir, "lora.safetensors")), strict=False)
    return model, tokenizer

def distribute(model, fsdp, ddp, local_rank, device):
    """Under torchrun: FSDP2 (each block sharded, then the whole model) or DDP; the model itself otherwise."""
    if fsdp:
        for block in [m for m in model.modules() if type(m).__name__ in (model._no_split_modules or [])]:
            fully_shard(block)
        fully_shard(model)
    elif ddp:  # no buffer sync in every forward: a collective per forward for buffers that never change (rotary)
        sync_flag = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters \
            else "broadcast_buffers"
        model = DDP(model, device_ids=[local_rank] if device.startswith("cuda") else None, **{sync_flag: False})
    return model

def loss_sum_of(model, inputs, labels, gather=True):
    """Summed token loss of one micro-batch (data/batches.py: micro_batches). Logits only where a target is: a forward
    pre-hook hands lm_head just the hidden states that predict a target (a QA prompt costs no lm_head, nor
    does any position in a packed row that predicts nothing), so the logits are (1, targets, vocab).
    gather=False (a model whose logits are not its lm_head's output, see model_checks) computes them all.
    No KV cache: with one, transformers would not build the packed rows' block-diagonal mask."""
    predicts = F.pad(labels[:, 1:] != -100, (0, 1))  # positions whose next token carries loss
    head = (model.module if hasattr(model, "module") else model).get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda m, a: (a[0][predicts][None],)) if gather else None
    try:
        logits = model(**inputs, logits_to_keep=0, use_cache=False).logits
    finally:
        if hook:
            hook.remove()
    logits = logits[0] if gather else logits[predicts]
    return F.cross_entropy(logits.float(), labels[:, 1:][predicts[:, :-1]], reduction="sum")

@torch.no_grad()
def model_checks(model, device):
    """(packs, gathers): does this model keep packed examples apart (the block-diagonal mask transformers
    builds from position ids), and are its logits its lm_head's output, position by position (what
    loss_sum_of's gather needs)? Two short random examples in one row must give the logits they give alone.
    train.py pads instead of packing, or computes every logit, where a check fails."""
    was_training, vocab = model.training, model.config.vocab_size
    model.eval()
    a, b = (torch.randint(3, vocab, (1, n), generator=torch.Generator().manual_seed(n)).to(device) for n in (5, 7))
    inputs = {"input_ids": torch.cat([a, b], 1),
              "position_ids": torch.cat([torch.arange(5), torch.arange(7)])[None].to(device)}
    row = model(**inputs, use_cache=False).logits.float()
    alone = torch.cat([model(input_ids=x, use_cache=False).logits for x in (a, b)], 1).float()
    labels = torch.where(torch.arange(12, device=device) % 3 == 0, inputs["input_ids"], -100)
    losses = [loss_sum_of(model, inputs, labels, gather) for gather in (True, False)]
    model.train(was_training)
    def close(x, y):
        return torch.allclose(x, y, atol=1e-3 * y.abs().max().item() + 1e-6)
    return close(row, alone), close(*losses)

def pick_dtype(name, device, width=None):
    """(dtype, why) for --dtype: float32, bfloat16, or auto: bf16 where the device computes it natively (CUDA with
    bf16; a CPU with AVX512-BF16 or AMX) and, on a CPU, the model is at least 256 wide (bench.py: a 128-wide model
    trains only 1.1-1.25x faster in bf16 there, not worth leaving fp32; 256 wide 1.6x, SmolLM2 2x); else float32."""
    cpu = not str(device).startswith("cuda")
    caps = getattr(torch.cpu, "get_capabilities", dict)() if cpu else {}  # (torch >= 2.8; else AVX512-BF16 alone)
    native = not cpu or any(v is True and "bf16" in k for k, v in caps.items()) or \
        getattr(torch.cpu, "_is_avx512_bf16_supported", bool)()
    if name != "auto":  # (bf16 on a CPU without it is emulated: a SmolLM2 step took 154 s on an AVX2 CPU)
        return getattr(torch, name), f"--dtype {name}" + ("" if native or name != "bfloat16" else
                                                           " (this CPU computes no bf16 natively: slow)")
    if not cpu:
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: bf16 on this GPU"
        return torch.float32, "auto: fp32, no bf16 on this GPU"
    if not native:
        return torch.float32, "auto: fp32, this CPU computes no bf16 natively"
    if width is not None and width < 256:
        return torch.float32, f"auto: fp32, a {width}-wide model gains little from bf16 on a CPU"
    return torch.bfloat16, "auto: bf16, native on this CPU"

def load_in(path, device, name):
    """load_model with the weights in --dtype `name` (inference: bench.py measured bf16 weights as fast as autocast,
    at half the memory); (model, tokenizer, why). On a GPU a bf16 model loads as bf16; on a CPU auto reads its width."""
    early = pick_dtype(name, device)[0] if name != "auto" or str(device).startswith("cuda") else None
    model, tokenizer = load_model(path, device, early)
    dtype, why = pick_dtype(name, device, model.config.hidden_size)
    return model.to(dtype), tokenizer, why

def check_packing(model, pack, device, warn=True):
    """(pack, gather): --pack where the model keeps packed examples apart (0, pad instead, where it does not: said
    once), and whether loss_sum_of may compute logits only where a target is (model_checks)."""
    packs, gather = model_checks(model, device)
    if pack and not packs and warn:
        print(f"warning: {type(model).__name__} attends across packed examples; padding instead (--pack 0)",
              file=sys.stderr)
    return (pack if packs else 0.0), gather

def measure_peak_flops(device, dtype, trials=3):
    """The matmul rate this device reaches (the MFU denominator): the best of a few trials (neighbours slow one)."""
    n, reps = (8192, 20) if str(device).startswith("cuda") else (1024, 4)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b  # warms up (on a GPU the first matmul also starts cuBLAS: not a rate)
    t0 = sync(device)
    a @ b
    if (one := sync(device) - t0) > 1:  # an emulated precision (bf16 on an AVX2 CPU: 4 s a matmul): one says enough
        return 2 * n ** 3 / one
    times = []
    for _ in range(trials):
        t0 = sync(device)
        for _ in range(reps):
            a @ b
        times.append(sync(device) - t0)
    return 2 * n ** 3 * reps / min(times)

def train_flops(model, tokens_per_example, lora=False):
    """Model FLOPs a trained token costs: 6N for the matmuls of forward + backward (LoRA: 4N, frozen weights get no
    gradient), plus attention (PaLM, appendix B)."""
    c = model.config
    return (4 if lora else 6) * sum(p.numel() for p in model.parameters()) + \
        12 * c.num_hidden_layers * c.hidden_size * tokens_per_example

def peak_memory(device):
    """Bytes: the GPU's peak allocation, or on a CPU the process's peak RSS."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def sync(device):
    """The time, once the device has finished its queued work."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()
