"""
Loading what the scripts start from: a Hugging Face model folder, a hub id, or a GGUF file (llama.cpp's format:
transformers dequantizes it, with the optional packages gguf and accelerate), and a checkpoint's trainer state.
One clear error (DataError, naming the path) where a path is none of these, and never code from a checkpoint.

    from data.models import load_model
    model, tokenizer = load_model("data/smollm2/SmolLM2-135M-Instruct")   # or "Qwen/Qwen2-1.5B", or "model.Q4_1.gguf"
"""
import importlib.util
import os
import re
import socket

from data import DataError

def load_model(path, device="cpu", dtype=None):
    """AutoModelForCausalLM (in `dtype`, default float32) + AutoTokenizer from a local folder, a hub id or a .gguf
    file; one clear error if none. A GGUF model comes back an ordinary model that save_pretrained writes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging
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
    import pickle
    import torch
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path}: refused: it holds more than tensors and plain values (loading it could run code)") from None
    except RuntimeError as e:  # not a torch file at all
        raise DataError(f"{path}: not a trainer state ({str(e).splitlines()[0]})") from None
