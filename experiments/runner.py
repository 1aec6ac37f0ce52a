"""
The Runner every regime receives (experiments/reproduce.py makes one): it runs jobs (a job: a run's name and the
commands that make it, each a repo script run by launch.py), caches them (a finished job leaves job.json and is
skipped; a train.py stopped midway resumes; a regime that keeps its jobs has them recorded in results.json, so that
a later session without the runs folder skips them too), records results (results.json, saved after every part) and
computes a run's metrics (its args.json, its dev curve, the fact-token diagnostic), means and spreads. And Arm, the
one declaration of an arm that every regime's tables are made of.

    python experiments/reproduce.py smoke      # the Runner at work: every regime on tiny worlds (~3 min)
"""
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import NamedTuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository's modules (launch, model, data, augment) live at its root
from augment import format_variants
from data import encode_doc, read_docs, read_qa
from launch import run_script
from model import load_model

STOPPED = (130, 143, -2, -15)  # exit codes of a script stopped by Ctrl-C or SIGTERM: not a failure
# the precision of every train.py / eval.py / probe.py / gradual.py a job runs unless its command says --dtype: the
# recorded numbers were made in fp32 (reproduce.py reproduces them on any machine); a table in bf16 asks for it
DTYPE = "float32"
KEPT = ("report.json",)  # the files of a run that a kept record holds (gradual.py's report), beside its metrics


class Arm(NamedTuple):
    """One arm of a table: its name (the table's row), the train.py flags it adds, the data files it trains on
    (a protocol may add its QA), its lr and epochs (None where the regime sets them: steps from the mode), run: the
    arm part of its run names where that is another arm's (the baseline at 2x epochs is a baseline run at more
    epochs; a from-scratch arm's mixed run is the sweep's run of the same arm), and dtype: its precision where it is
    not DTYPE (every script of its runs is asked for it, and its run names say so: _bf16)."""
    name: str
    flags: list
    data: list
    lr: float = None
    epochs: int = None
    run: str = None
    dtype: str = None


class Runner:
    """Runs, caches and records the jobs of one mode: runs go to ROOT/runs/MODE/NAME/, results to
    ROOT/results/MODE/results.json (loaded if there, so a later session goes on from what it holds)."""

    def __init__(self, mode, root, config, jobs=2, threads=1, device="cpu", eq_archive=None):
        """config: the from-scratch regime's settings (results.json's top-level "config"); jobs: runs at a time."""
        self.mode, self.threads, self.device, self.eq_archive = mode, threads, device, eq_archive
        self.runs = os.path.join(root, "runs", mode)
        self.results_path = os.path.join(root, "results", mode, "results.json")
        os.makedirs(os.path.dirname(self.results_path), exist_ok=True)
        self.results = json.load(open(self.results_path)) if os.path.exists(self.results_path) else {}
        machine = torch.cuda.get_device_name() if device == "cuda" else \
            f"{os.cpu_count()} CPU cores ({torch.backends.cpu.get_cpu_capability()})"  # (the kernels: AVX2, AVX512)
        self.results.update(mode=mode, config=config, device=device, machine=machine)
        self.code = self.commit()  # the code this process runs its jobs with (kept with each of them)
        self.pool = ThreadPoolExecutor(jobs)
        self.started = self.saved_at = time.time()

    @staticmethod
    def commit():
        """The code this run is made with: git's HEAD, "+changes" where a tracked .py file differs from it."""
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "*.py"], cwd=ROOT).returncode
        return (head.stdout.strip() or "unknown") + ("+changes" if dirty else "")

    def path(self, name):
        """A run's folder (or any file under runs/MODE/)."""
        return os.path.join(self.runs, name)

    def finished(self, name):
        """Whether the job `name` finished (its job.json is there, or results.json keeps its record)."""
        return name in self.results.get("jobs", {}) or os.path.exists(os.path.join(self.path(name), "job.json"))

    def read(self, name, file):
        """A JSON file of a run's folder; where it is gone, the kept record's copy (KEPT files); else {}."""
        path = os.path.join(self.path(name), file)
        if os.path.exists(path):
            return json.load(open(path))
        return self.results.get("jobs", {}).get(name, {}).get("files", {}).get(file, {})

    def keep(self, name):
        """Record a finished job in results.json's "jobs": what the tables read of it (the metrics of every args.json
        in its folder, its dev curve, its KEPT files) and its commands, so that a later session without runs/ skips it
        and can make its weights again where a job to run starts from them (batch's keep)."""
        out, metrics = self.path(name), {}
        for d, _, files in os.walk(out):
            if "args.json" in files:
                metrics[os.path.relpath(d, out)] = json.load(open(os.path.join(d, "args.json"))).get("metrics", {})
        self.results.setdefault("jobs", {})[name] = {
            "commands": [[str(a).replace(self.runs, "{runs}") for a in cmd]  # (another clone: its own runs folder)
                         for cmd in self.read(name, "job.json")["commands"]], "commit": self.code,
            "machine": self.results["machine"], "metrics": metrics, "curve": self.dev_curve(name),
            "files": {f: self.read(name, f) for f in KEPT if os.path.exists(os.path.join(out, f))}}
        self.save()

    def run_job(self, name, cmds):
        """Run a job's commands in turn unless it finished before; True when it has. A train.py stopped midway
        resumes. Each command is a process (launch.py: forked from a server that imported torch once), its
        output in the run's job.log."""
        out = self.path(name)
        if os.path.exists(os.path.join(out, "job.json")):
            return True
        os.makedirs(out, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "TOKENIZERS_PARALLELISM": "false"}
        t0 = time.time()
        log = os.path.join(out, "job.log")
        open(log, "w").close()
        for cmd in cmds:
            cmd = [str(c) for c in cmd] + (["--device", self.device] if cmd[0] == "train.py" else [])
            if cmd[0] in ("train.py", "eval.py", "probe.py", "gradual.py") and "--dtype" not in cmd:
                cmd += ["--dtype", DTYPE]
            if cmd[0] == "train.py" and os.path.exists(
                    os.path.join(ROOT, cmd[cmd.index("--out_dir") + 1], "trainer_state.pt")):
                cmd.append("--resume")  # stopped before (SIGTERM, Ctrl-C: train.py saved its step): on from there
            with open(log, "a") as f:
                f.write("$ " + " ".join([sys.executable] + cmd) + "\n")
            code = run_script(cmd[0], cmd[1:], env=env, stdout=log, stderr=log, cwd=ROOT)
            if code != 0:
                print(f"  {'stopped' if code in STOPPED else 'FAILED'} {name}: see {out}/job.log", flush=True)
                return False
        with open(os.path.join(out, "job.json"), "w") as f:
            json.dump({"name": name, "seconds": time.time() - t0, "commands": cmds}, f, default=str)
        print(f"  done {name} ({time.time() - t0:.0f} s)", flush=True)
        return True

    def batch(self, jobs, then=None, keep=False):
        """Run (name, commands) jobs, `--jobs` at a time, and wait for all; True when all finished. then(name) is
        called as each one ends well, in this thread (so it may save results while the next runs train). keep: each
        job that ends well is recorded (keep()), a recorded one is skipped, and a recorded job whose folder a job to
        run starts from (--init_from, --model) but whose weights are gone runs again first (one level deep)."""
        if keep:
            kept = self.results.get("jobs", {})
            jobs = [(n, cmds) for n, cmds in jobs if n not in kept]
            starts = {str(a) for _, cmds in jobs for cmd in cmds for a in cmd}
            self.batch([(n, [[a.replace("{runs}", self.runs) for a in cmd] for cmd in r["commands"]])
                        for n, r in kept.items() if self.path(n) in starts
                        and not os.path.exists(os.path.join(self.path(n), "model.safetensors"))])
        futures = {self.pool.submit(self.run_job, name, cmds): name for name, cmds in jobs}
        ok = True
        try:
            for f in as_completed(futures):
                ok &= f.result()
                if f.result() and keep:
                    self.keep(futures[f])
                if f.result() and then:
                    then(futures[f])
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM): no job starts after it (the pool's queue would run them
            self.pool.shutdown(cancel_futures=True)  # all); the running train.py got it too and saves its step
            sys.exit("reproduce.py: stopped. The same command goes on: finished runs are skipped, "
                     "a stopped train.py resumes")
        return ok

    def save(self):
        """Write results.json (atomically), adding the time since the last save to its wall_seconds."""
        self.results["wall_seconds"] = self.results.get("wall_seconds", 0) + time.time() - self.saved_at
        self.saved_at = time.time()
        with open(self.results_path + ".tmp", "w") as f:
            json.dump(self.results, f, indent=1)
        os.replace(self.results_path + ".tmp", self.results_path)

    def metrics(self, name):
        """A run's final metrics (train.py's args.json; name may go into the run: JOB/stage1/best), else those its
        kept record holds; {} where it has none."""
        if os.path.exists(os.path.join(self.path(name), "args.json")):
            return self.read(name, "args.json").get("metrics", {})
        job, _, inside = name.partition(os.sep)
        return self.results.get("jobs", {}).get(job, {}).get("metrics", {}).get(os.path.normpath(inside or "."), {})

    def dev_curve(self, name):
        """A run's [[step, dev EM], ...] (train.py's --eval_every) from its log, else its kept record; None: neither."""
        log = os.path.join(self.path(name), "log.jsonl")
        if not os.path.exists(log):
            return self.results.get("jobs", {}).get(name, {}).get("curve")
        return [[r["step"], r["dev_exact_match"]] for r in map(json.loads, open(log)) if "dev_exact_match" in r]

    def curve(self, names):
        """Mean dev exact match by step, over the runs that have a curve."""
        return self.mean_curve([self.dev_curve(n) for n in names])

    @staticmethod
    def mean_curve(curves):
        """Runs' [[step, dev EM], ...] (None: a missing run): the mean at the steps they all have."""
        by_step = [dict(c) for c in curves if c is not None]
        steps = sorted(set.intersection(*(set(b) for b in by_step))) if by_step else []
        return [[t, statistics.mean(b[t] for b in by_step)] for t in steps]

    @staticmethod
    def mean_std(xs):
        """{mean, std, n} of the values that are not None; None where there are none."""
        xs = [x for x in xs if x is not None]
        if not xs:
            return None
        return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}

    def fact_loss(self, name, world):
        """The knowledge-token diagnostic of a run's model: mean loss on the fact tokens of test people's documents
        in formats (variants 32-33 of augment.py, never trained on) and paraphrases (para4..7, never trained on).
        world: (documents, paraphrases, QA file whose test split names the people). Cached in the run's folder and
        its kept record (a regime that keeps its jobs computes it as each ends: its weights go with runs/)."""
        cache, record = os.path.join(self.path(name), "fact_loss.json"), self.results.get("jobs", {}).get(name, {})
        if "fact_loss" in record:
            return record["fact_loss"]
        if not os.path.exists(cache):
            model, tok = load_model(self.path(name), self.device)
            model.eval()
            out = {kind: statistics.mean(fact_token_losses(model, tok, texts, self.device))
                   for kind, texts in held_out_texts(world).items()}
            with open(cache, "w") as f:
                json.dump(out, f)
        out = json.load(open(cache))
        if record:
            record["fact_loss"] = out
            self.save()
        return out


def held_out_texts(world):
    """The diagnostic's texts, (text, facts) pairs: "formats", the test people's documents in augment.py's variants
    32-33, and "paraphrases", their rewrites para4..7."""
    docs_path, para_path, qa_path = world
    people = {it["doc_id"] for it in read_qa(qa_path, "test")}
    docs = [d for d in read_docs(docs_path) if d["id"] in people]
    para = [d for d in read_docs(para_path) if d["id"].split("#")[0] in people
            and int(d["id"].split("#para")[1]) >= 4]
    formats = [(v, d["facts"]) for d in docs for v in format_variants(d["text"], 34, list(d["facts"].values()))[32:]]
    return {"formats": formats, "paraphrases": [(d["text"], d["facts"]) for d in para]}


def fact_token_losses(model, tok, texts, device):
    """Each fact's mean token loss in its text: its tokens, each predicted from everything before it."""
    losses = []
    prefix = len(tok("x", add_special_tokens=False)["input_ids"])
    for text, facts in texts:
        ids = encode_doc(tok, text)
        with torch.no_grad():
            logp = model(torch.tensor([ids], device=device)).logits[0].float().log_softmax(-1)
        for value in facts.values():
            f = tok("x " + value, add_special_tokens=False)["input_ids"][prefix:]  # tokenized as inside a text
            i = next((i for i in range(1, len(ids) - len(f) + 1) if ids[i:i + len(f)] == f), None)
            if i is not None:
                losses.append(-logp[torch.arange(i - 1, i - 1 + len(f)), torch.tensor(f)].mean().item())
    return losses
