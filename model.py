"""
The model: loading one (a Hugging Face folder, a hub id or a GGUF file), building a tiny Llama from scratch, and
running it: the training loss, the checks train.py makes before packing, and decoding with a KV cache (eval.py and
probe.py). One clear error (DataError, naming the path) where a path is not a model, and never code from a checkpoint.

    from model import load_model, decode
    model, tokenizer = load_model("data/smollm2/SmolLM2-135M-Instruct")   # or "Qwen/Qwen2-1.5B", or "model.Q4_1.gguf"
"""
import functools
import importlib.util
import inspect
import os
import pickle
import re
import socket

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging

from data import DataError, train_tokenizer

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
    if "gguf_file" in kw:  # dequantized, an ordinary model now; still marked, save_pretrained refuses and a reload counts as quantized
        model.hf_quantizer, model.is_quantized = None, False
        model.config.__dict__.pop("quantization_config", None)
    if tokenizer.pad_token_id is None:  # only used under an attention mask of 0; any id will do
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.convert_ids_to_tokens(0)
    return model, tokenizer

def check_gguf(path):
    """A .gguf path that exists, starts with GGUF's magic bytes, and can be read (gguf and accelerate installed)."""
    if not os.path.isfile(path):
        raise DataError(f"--model/--init_from {path}: no such file")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise DataError(f"--model/--init_from {path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise DataError(f"--model/--init_from {path}: reading GGUF needs the optional packages gguf and accelerate: pip install {' '.join(missing)}")

def why_not_a_hub_id(path):
    """(why `path` cannot be loaded as a hub id, or "" if it can; from_pretrained kwargs). Checked up front
    so that a mistyped folder fails in a second instead of after a minute of retries against the hub."""
    if path.startswith(("/", ".", "~")) or path.count("/") > 1 or os.path.exists(path) or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path):
        return " (and not a hub id)", {}
    from huggingface_hub import try_to_load_from_cache
    if isinstance(try_to_load_from_cache(path, "config.json"), str):  # in the local hub cache: no network needed
        return "", {"local_files_only": True}
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return " (nor a cached hub model, and HF_HUB_OFFLINE is set)", {}
    host = re.sub(r"^\w+://", "", os.environ.get("HF_ENDPOINT", "https://huggingface.co")).split("/")[0]
    try:
        socket.create_connection((host.split(":")[0], int(host.split(":")[1]) if ":" in host else 443), timeout=3).close()
    except OSError:
        return f" (nor a cached hub model, and the hub at {host} cannot be reached to look it up)", {}
    return "", {}

def load_state(path):
    """A checkpoint's trainer state (optimizer moments, step) as tensors and plain values only (weights_only): a
    checkpoint from elsewhere whose pickle would build any other object, and so could run code, is refused."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path}: refused: it holds more than tensors and plain values (loading it could run code)") from None
    except RuntimeError as e:  # not a torch file at all
        raise DataError(f"{path}: not a trainer state ({str(e).splitlines()[0]})") from None

# -----------------------------------------------------------------------------
# building and training

def scratch_model(args, texts, out_dir, master_process, ddp):
    """A tiny Llama and a tokenizer trained on the data (on rank 0; every rank loads it, so all hold the same one)."""
    if master_process:
        train_tokenizer(texts, args.vocab_size, out_dir)
    if ddp:
        torch.distributed.barrier()
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.n_embd, intermediate_size=4 * args.n_embd,
                         num_hidden_layers=args.n_layer, num_attention_heads=args.n_head, num_key_value_heads=args.n_head,
                         max_position_embeddings=args.block_size, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(args.seed)  # the same init on every rank
    return LlamaForCausalLM(config), tokenizer

def loss_sum_of(model, inputs, labels, gather=True):
    """Summed token loss of one micro-batch (data.micro_batches). Logits only where a target is: a forward
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
    inputs = {"input_ids": torch.cat([a, b], 1), "position_ids": torch.cat([torch.arange(5), torch.arange(7)])[None].to(device)}
    row = model(**inputs, use_cache=False).logits.float()
    alone = torch.cat([model(input_ids=x, use_cache=False).logits for x in (a, b)], 1).float()
    labels = torch.where(torch.arange(12, device=device) % 3 == 0, inputs["input_ids"], -100)
    losses = [loss_sum_of(model, inputs, labels, gather) for gather in (True, False)]
    model.train(was_training)
    close = lambda x, y: torch.allclose(x, y, atol=1e-3 * y.abs().max().item() + 1e-6)  # noqa: E731
    return close(row, alone), close(*losses)

# -----------------------------------------------------------------------------
# decoding with a KV cache (eval.py, probe.py)

@functools.lru_cache(maxsize=8)
def stop_ids(tokenizer):
    """Every token whose text holds a newline, and eos: generation of an answer ends at any of them. Each id is
    decoded alone (every tokenizer backend can do that, MistralCommonBackend included); cached per tokenizer."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return frozenset(i for i, t in enumerate(texts) if "\n" in t) | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())

def cache_kwarg(model):
    """The name of the KV-cache argument and output: transformers 5.x renamed `past_key_values` to `cache`;
    requirements.txt admits versions on both sides of the rename."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

# -----------------------------------------------------------------------------
# generation

def left_pad(rows, pad_id, device):
    n = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (n - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask

@torch.no_grad()
def decode(model, ids, mask, stops, max_new_tokens=24, temperature=0.0, top_k=0, past=None, generator=None, n=1):
    """Continue each row of a left-padded batch `n` times (rows i*n .. i*n+n-1 of the result continue row i).
    temperature: a float, or one per result row (0: greedy). With `past` (the KV cache of a shared prefix,
    already expanded to the batch) `mask` covers prefix + rows. Returns each result row's new token ids,
    cut before its first stop token. The prompts are run once, then their cache is copied n times."""
    temperature = torch.as_tensor(temperature, dtype=torch.float, device=ids.device).expand(ids.shape[0] * n)
    stop_t = torch.tensor(sorted(stops), device=ids.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
    alive = torch.arange(ids.shape[0] * n, device=ids.device)  # result rows still generating
    tokens = torch.full((ids.shape[0] * n, max_new_tokens), -1, dtype=torch.long, device=ids.device)
    cache = cache_kwarg(model)
    for t in range(max_new_tokens):
        o = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **{cache: past})
        past, logits = getattr(o, cache), o.logits[:, -1].float()
        if t == 0 and n > 1:  # one prefill per prompt, then n copies of its cache
            past.batch_repeat_interleave(n)
            logits, mask, positions = (x.repeat_interleave(n, dim=0) for x in (logits, mask, positions))
        nxt = logits.argmax(-1)
        hot = temperature > 0
        if hot.any():
            scaled = logits[hot] / temperature[hot, None]
            vals, idx = scaled.topk(min(top_k or scaled.shape[-1], scaled.shape[-1]), dim=-1)  # sample among the top k only
            nxt[hot] = idx.gather(1, torch.multinomial(vals.softmax(-1), 1, generator=generator)).squeeze(-1)
        tokens[alive, t] = nxt
        going = ~torch.isin(nxt, stop_t)
        if not going.any():  # one host sync a token; answers are short
            break
        if not going.all():  # drop finished rows: the rest of the batch gets cheaper
            keep = going.nonzero().flatten()
            past.batch_select_indices(keep)
            alive, nxt, mask, positions, temperature = (x[keep] for x in (alive, nxt, mask, positions, temperature))
        ids, positions = nxt[:, None], positions[:, -1:] + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    out = []
    for row in tokens.tolist():
        cut = next((j for j, t in enumerate(row) if t in stops or t < 0), len(row))
        out.append(row[:cut])
    return out

@torch.no_grad()
def prefix_cache(model, prefix_ids):
    """The KV cache of a shared prefix (few-shot exemplars), computed once, batch of one."""
    cache = cache_kwarg(model)
    device = next(model.parameters()).device
    return getattr(model(input_ids=torch.tensor([list(prefix_ids)], device=device), use_cache=True, logits_to_keep=1), cache)  # (its logits unused)
