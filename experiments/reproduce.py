"""
Reproduce both papers on the biography world: every number of README's Results section, from nothing.

    python experiments/reproduce.py smoke                  # every part of both regimes on worlds of a few people: the test (~3 min)
    python experiments/reproduce.py quick                  # both regimes, 1 seed, small worlds: a first look (~40 min on 2 CPU cores)
    python experiments/reproduce.py full                   # README's tables: 3 seeds (2 CPU cores: about 5 h from scratch, 3.6 h pretrained)
    python experiments/reproduce.py full --only table2     # one part only (it reuses the finished runs it needs)
    python experiments/reproduce.py full --only large --jobs 8 --device cuda   # a bigger world and model on a GPU
    python experiments/report.py experiments/results/full/results.json        # the markdown tables

Two regimes. From scratch (a model trained on the very facts it is tested on), parts: sweeps (K and rho in
mixed training, with dev learning curves), table1 (Zhu et al.: arms x protocols, fact-token diagnostic), search
(baseline and SAM in other settings: 2x steps in full mode), table2 (Li et al.: gradual.py against its
baselines), large (only when asked). Pretrained (a base model that knows people learns new ones: see
experiments/pretrained.py), parts: pt_base, pt_sweeps, pt_table1, pt_table2, pt_table1_docs. A real model (SmolLM2-135M
learns new people; SliCK and gradual learning on EntityQuestions: see experiments/real.py), parts: real_base, real_dev,
real_table1, real_table2. Runs go to experiments/runs/MODE/NAME/ (a
finished run is skipped when the script runs again; Ctrl-C (or `kill`) stops it, and a train.py it stopped resumes); results to experiments/results/MODE/results.json.
Every choice is made on the dev split (K and rho from the sweeps, the QA-tuning lr, gradual's fine-tuning
lr and per-stage checkpoint); the test split is read once, at a run's end.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from augment import format_variants  # noqa: E402
from data import encode_doc, read_docs, read_qa  # noqa: E402
from launch import run_script  # noqa: E402
from model import load_model  # noqa: E402
import pretrained  # noqa: E402  (experiments/pretrained.py: the pretrained regime)
import real  # noqa: E402  (experiments/real.py: the real-model regime, SmolLM2)
from slick import GRADUAL_MODES  # noqa: E402  (experiments/slick.py: both pretrained regimes' Table 2)

MODES = {  # steps: mixed training; pre_steps: documents only (protocol (a)), about as many passes over each
    # document as mixed training makes (documents are a quarter of its examples); search: name -> (people, steps)
    # ft_lrs: gradual's fine-tuning lr; the first is also run on every seed (it makes the base probes) and wins ties;
    # model: train.py's scratch-model flags (default: its own)
    "smoke": dict(people=12, steps=40, pre_steps=20, batch=16, seeds=[0], ks=[1, 2], rhos=[0.05], qa_lrs=[1e-3], qa_epochs=1, ft_lrs=[1e-3],
                  eval_every=20, stage_steps=2, select_every=0, probe=["--fast"], search_seeds=[0], search={"steps40": (12, 40)},
                  model=["--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--vocab_size", "512"]),
    "quick": dict(people=100, steps=300, pre_steps=150, batch=24, seeds=[0], ks=[1, 4], rhos=[0.02], qa_lrs=[3e-4], qa_epochs=3, ft_lrs=[3e-4],
                  eval_every=50, stage_steps=20, select_every=0, probe=["--fast"], search_seeds=[0], search={"steps600": (100, 600)}),
    "full": dict(people=200, steps=1200, pre_steps=400, batch=48, seeds=[0, 1, 2], ks=[1, 2, 4, 8, 16], rhos=[0.01, 0.02, 0.05],
                 qa_lrs=[1e-4, 3e-4, 1e-3, 3e-3], qa_epochs=5, ft_lrs=[1e-4, 3e-5, 3e-4, 1e-3], eval_every=100, stage_steps=60, select_every=10, probe=[],
                 search_seeds=[0, 1], search={"steps2400": (200, 2400)}),
}
PARTS = ["sweeps", "table1", "search", "table2"] + pretrained.PARTS + real.PARTS  # and "large", only when asked (--only large)
LARGE = dict(people=2000, steps=1200, seeds=[0, 1], flags=["--n_layer", "8", "--n_head", "8", "--n_embd", "512", "--batch_size", "384"])

def run_job(name, cmds, out, threads, device):
    """Run a job's commands in turn unless it finished before; True when it has. A train.py stopped midway resumes."""
    done = os.path.join(out, "job.json")
    if os.path.exists(done):
        return True
    os.makedirs(out, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    log = os.path.join(out, "job.log")
    open(log, "w").close()
    for cmd in cmds:  # each a process (launch.py: forked from a server that imported torch once), output to job.log
        cmd = [str(c) for c in cmd] + (["--device", device] if cmd[0] == "train.py" else [])
        if cmd[0] == "train.py" and os.path.exists(os.path.join(ROOT, cmd[cmd.index("--out_dir") + 1], "trainer_state.pt")):
            cmd.append("--resume")  # a run stopped before (SIGTERM, Ctrl-C: train.py saved its step) goes on from there, exactly
        with open(log, "a") as f:
            f.write("$ " + " ".join([sys.executable] + cmd) + "\n")
        code = run_script(cmd[0], cmd[1:], env=env, stdout=log, stderr=log, cwd=ROOT)
        if code != 0:  # 130 / 143 / -2 / -15: stopped by Ctrl-C or SIGTERM, not a failure
            print(f"  {'stopped' if code in (130, 143, -2, -15) else 'FAILED'} {name}: see {out}/job.log", flush=True)
            return False
    with open(done, "w") as f:
        json.dump({"name": name, "seconds": time.time() - t0, "commands": cmds}, f, default=str)
    print(f"  done {name} ({time.time() - t0:.0f} s)", flush=True)
    return True

def fact_loss(model_dir, world, device):
    """The knowledge-token diagnostic: mean loss on the fact tokens of test people's documents in formats
    (variants 32-33 of augment.py, never trained on) and paraphrases (para4..7, never trained on).
    world: (documents, paraphrases, QA file whose test split names the people). Cached in the run's folder."""
    cache = os.path.join(model_dir, "fact_loss.json")
    if os.path.exists(cache):
        return json.load(open(cache))
    model, tok = load_model(model_dir, device)
    model.eval()
    docs_path, para_path, qa_path = world
    people = {it["doc_id"] for it in read_qa(qa_path, "test")}
    docs = [d for d in read_docs(docs_path) if d["id"] in people]
    para = [d for d in read_docs(para_path) if d["id"].split("#")[0] in people
            and int(d["id"].split("#para")[1]) >= 4]
    out = {}
    for name, texts in (("formats", [(v, d["facts"]) for d in docs for v in format_variants(d["text"], 34, list(d["facts"].values()))[32:]]),
                        ("paraphrases", [(d["text"], d["facts"]) for d in para])):
        losses = []
        for text, facts in texts:
            ids = encode_doc(tok, text)
            with torch.no_grad():
                logp = model(torch.tensor([ids], device=device)).logits[0].float().log_softmax(-1)
            for value in facts.values():
                f = tok("x " + value, add_special_tokens=False)["input_ids"][len(tok("x", add_special_tokens=False)["input_ids"]):]  # as inside a text
                i = next((i for i in range(1, len(ids) - len(f) + 1) if ids[i:i + len(f)] == f), None)
                if i is not None:  # the fact's tokens, each predicted from everything before it
                    losses.append(-logp[torch.arange(i - 1, i - 1 + len(f)), torch.tensor(f)].mean().item())
        out[name] = statistics.mean(losses)
    with open(cache, "w") as f:
        json.dump(out, f)
    return out

def mean_std(xs):
    xs = [x for x in xs if x is not None]
    return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)} if xs else None

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=list(MODES), help="smoke (minutes: does every part run and report?), quick (a first look, about 40 min "
                   "on 2 CPU cores) or full (README's tables)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--only", nargs="+", default=None, choices=PARTS + ["large"], help="parts to run (default: all but large)")
    p.add_argument("--root", default=os.path.join(ROOT, "experiments"), help="where runs/ and results/ go")
    p.add_argument("--eq_archive", default=os.environ.get("EQ_ARCHIVE"), help="the EntityQuestions release archive (dataset.zip) for "
                   "the real-model parts (default: $EQ_ARCHIVE, else data/entityquestions/prepare.py downloads it and keeps it)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as Ctrl-C does (a background run ignores Ctrl-C)
    cfg = MODES[args.mode]
    parts = args.only or PARTS
    runs = os.path.join(args.root, "runs", args.mode)
    res_path = os.path.join(args.root, "results", args.mode, "results.json")
    os.makedirs(os.path.dirname(res_path), exist_ok=True)
    results = json.load(open(res_path)) if os.path.exists(res_path) else {}
    results.update(mode=args.mode, config=cfg, device=args.device, machine=torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} CPU cores")
    pool, started = ThreadPoolExecutor(args.jobs), time.time()

    def make_world(name, people):
        world = os.path.join(runs, name)
        if not os.path.exists(os.path.join(world, "qa_gradual.jsonl")):
            subprocess.run([sys.executable, "data/bios/prepare.py", "--people", str(people), "--paraphrases", "8", "--gradual", "--out_dir", world], cwd=ROOT, check=True)
            with open(os.path.join(world, "docs_para.jsonl")) as f:  # para0..3 are trained on, para4..7 held out
                lines = [l for l in f if int(json.loads(l)["id"].split("#para")[1]) < 4]
            with open(os.path.join(world, "para_train.jsonl"), "w") as f:
                f.writelines(lines)
        return tuple(os.path.join(world, f) for f in ("docs.jsonl", "docs_para.jsonl", "qa.jsonl")), *(os.path.join(world, f) for f in ("docs.jsonl", "qa.jsonl", "para_train.jsonl"))

    def batch(jobs, then=None):  # run (name, commands) jobs, `--jobs` at a time, and wait for all; then(name): as each one ends well
        futures = {pool.submit(run_job, name, cmds, os.path.join(runs, name), args.threads, args.device): name for name, cmds in jobs}
        ok = True
        try:
            for f in as_completed(futures):  # in this thread, so `then` may save results while the next runs train
                ok &= f.result()
                if f.result() and then:
                    then(futures[f])
        except KeyboardInterrupt:  # Ctrl-C: no job starts after it (the pool's queue would run them all); the running
            pool.shutdown(cancel_futures=True)  # train.py got it too and saves its step; wait for it
            sys.exit("reproduce.py: stopped. The same command goes on: finished runs are skipped, a stopped train.py resumes")
        return ok

    def metrics(name):
        path = os.path.join(runs, name, "args.json")
        return json.load(open(path))["metrics"] if os.path.exists(path) else {}

    def train(name, seed, flags, steps=cfg["steps"]):
        return ["train.py", "--out_dir", os.path.join(runs, name), "--seed", seed, "--max_steps", steps, "--batch_size", cfg["batch"],
                *cfg.get("model", []), *flags]

    def mixed(name, seed, w_docs, w_qa, flags, steps=cfg["steps"]):  # documents of everyone + the train people's QA
        return (name, [train(name, seed, ["--data", *w_docs, w_qa, "--eval_qa", w_qa, "--eval_every", cfg["eval_every"], *flags], steps)])

    def save():  # after every part, so a long run reports what it has
        results["wall_seconds"] = results.get("wall_seconds", 0) + time.time() - save.t
        save.t = time.time()
        with open(res_path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(res_path + ".tmp", res_path)
    save.t = started

    def mean_curve(curves):  # runs' [[step, dev EM], ...] (None: a missing run): the mean at the steps they all have
        by_step = [dict(c) for c in curves if c is not None]
        steps = sorted(set.intersection(*(set(b) for b in by_step))) if by_step else []
        return [[t, statistics.mean(b[t] for b in by_step)] for t in steps]

    def curve(names):  # mean dev exact match by step (--eval_every), over the runs
        logs = [[json.loads(l) for l in open(os.path.join(runs, n, "log.jsonl"))] for n in names if os.path.exists(os.path.join(runs, n, "log.jsonl"))]
        return mean_curve([[[r["step"], r["dev_exact_match"]] for r in log if "dev_exact_match" in r] for log in logs])

    def cell(names, w=None, keys=("test_exact_match", "dev_exact_match", "tokens")):  # w: the world, for the diagnostic
        ms = [metrics(n) for n in names]
        c = {k: mean_std([m.get(k) for m in ms]) for k in keys} | {"per_seed_test": [m.get("test_exact_match") for m in ms], "curve": curve(names)}
        if w:
            diag = [fact_loss(os.path.join(runs, n), w, args.device) for n in names]
            c |= {f"fact_loss_{k}": mean_std([d[k] for d in diag]) for k in ("formats", "paraphrases")}
            c |= {f"per_seed_fact_loss_{k}": [d[k] for d in diag] for k in ("formats", "paraphrases")}
        return c

    world, docs, qa, para = make_world("world", cfg["people"])
    seeds = cfg["seeds"]
    K, rho = results.get("chosen", {}).get("K", 4), results.get("chosen", {}).get("rho", 0.05)
    if "sweeps" in parts:  # mixed training (documents + train people's QA in one run): K and rho on dev
        batch([mixed(f"mixed_k{k}_s{s}", s, [docs], qa, ["--aug", k]) for k in cfg["ks"] for s in seeds] +
              [mixed(f"mixed_sam{r}_s{s}", s, [docs], qa, ["--sam", "--rho", r]) for r in cfg["rhos"] for s in seeds])
        results["sweeps"] = {c: cell([f"{c}_s{s}" for s in seeds]) for c in [f"mixed_k{k}" for k in cfg["ks"]] + [f"mixed_sam{r}" for r in cfg["rhos"]]}
        dev = lambda c: (results["sweeps"][c]["dev_exact_match"] or {"mean": -1})["mean"]  # noqa: E731
        K = max([k for k in cfg["ks"] if k > 1], key=lambda k: dev(f"mixed_k{k}"))
        rho = max(cfg["rhos"], key=lambda r: dev(f"mixed_sam{r}"))
        results["chosen"] = {"K": K, "rho": rho}
        save()
    arms = {"baseline": [], f"aug{K}": ["--aug", K], f"sam{rho}": ["--sam", "--rho", rho], f"aug{K}+sam{rho}": ["--aug", K, "--sam", "--rho", rho],
            "para": [], f"para+aug{K}+sam{rho}": ["--aug", K, "--sam", "--rho", rho]}
    data_of = lambda arm: [docs, para] if arm.startswith("para") else [docs]  # noqa: E731
    if "table1" in parts:
        reuse = {"baseline": "mixed_k1", f"aug{K}": f"mixed_k{K}", f"sam{rho}": f"mixed_sam{rho}"}
        done = lambda name: os.path.exists(os.path.join(runs, name, "job.json"))  # noqa: E731
        mixed_name = lambda arm, s: f"{reuse[arm]}_s{s}" if arm in reuse and done(f"{reuse[arm]}_s{s}") else f"mixed_{arm}_s{s}"  # noqa: E731
        jobs = [mixed(mixed_name(a, s), s, data_of(a), qa, f) for a, f in arms.items() for s in seeds]
        jobs += [(f"pre_{a}_s{s}", [train(f"pre_{a}_s{s}", s, ["--data", *data_of(a), *f], cfg["pre_steps"])]) for a, f in arms.items() for s in seeds]  # protocol (a), step 1
        batch(jobs)
        qa_tune = lambda name, pre, s, lr: (name, [train(name, s, ["--init_from", os.path.join(runs, pre), "--data", qa, "--eval_qa", qa,  # noqa: E731
                                                                   "--epochs", cfg["qa_epochs"], "--lr", lr, "--warmup", 5], steps=1)])
        batch([qa_tune(f"qalr{lr}", "pre_baseline_s0", 0, lr) for lr in cfg["qa_lrs"]])  # the QA-tuning lr, on dev
        qa_lr = max(cfg["qa_lrs"], key=lambda lr: metrics(f"qalr{lr}").get("dev_exact_match", -1))
        results.setdefault("chosen", {})["qa_lr"] = qa_lr
        batch([qa_tune(f"seq_{a}_lr{qa_lr}_s{s}", f"pre_{a}_s{s}", s, qa_lr) for a in arms for s in seeds])  # protocol (a), step 2
        results["table1"] = {a: {"mixed": cell([mixed_name(a, s) for s in seeds], world), "sequential": cell([f"seq_{a}_lr{qa_lr}_s{s}" for s in seeds], world)}
                             for a in arms}
        save()
    if "search" in parts:  # where can SAM act? baseline and SAM again in other settings (longer runs, more people)
        sarms = {"baseline": [], f"sam{rho}": ["--sam", "--rho", rho]}
        worlds = {people: make_world("world" if people == cfg["people"] else f"world_{people}", people) for people, _ in cfg["search"].values()}
        batch([mixed(f"{name}_{a}_s{s}", s, [worlds[people][1]], worlds[people][2], f, steps) for name, (people, steps) in cfg["search"].items()
               for a, f in sarms.items() for s in cfg["search_seeds"]])
        results["search"] = {name: {a: cell([f"{name}_{a}_s{s}" for s in cfg["search_seeds"]], worlds[people][0]) for a in sarms}
                             for name, (people, _) in cfg["search"].items()}
        save()
    # the paper's hypothesis: knowledge that generalizes to unseen formats is knowledge that can be extracted
    groups = {"mixed": [a["mixed"] for a in results.get("table1", {}).values()] + [c for st in results.get("search", {}).values() for c in st.values()],
              "sequential": [a["sequential"] for a in results.get("table1", {}).values()]}
    for protocol, cells in groups.items():
        pts = [p for c in cells if "per_seed_fact_loss_formats" in c for p in
               zip(c["per_seed_fact_loss_formats"], c["per_seed_fact_loss_paraphrases"], c["per_seed_test"]) if p[2] is not None]
        if len(pts) > 2 and len({p[2] for p in pts}) > 1:  # (a correlation needs test EM that varies)
            results.setdefault("fact_loss_vs_test_em", {})[protocol] = {"points": len(pts), **{
                f"pearson_{k}": statistics.correlation([p[i] for p in pts], [p[2] for p in pts]) for i, k in enumerate(("formats", "paraphrases"))}}
    if "table2" in parts:  # gradual.py and its same-budget baselines
        # The base model is trained like the mixed baseline (documents of everyone + the train people's QA),
        # with --qa_pack 4 so that it has seen several QA items in one sequence, as a few-shot probe shows
        # them (without it a small model copies the exemplars' answers). It answers questions and knows the
        # held-out people's facts only partly; a model trained on documents alone probes all Unknown. Its
        # test people are split in two: the gradual "train" half (probed, fine-tuned) and the "test" half.
        qa2 = os.path.join(os.path.dirname(qa), "qa_gradual.jsonl")  # prepare.py --gradual: the test people split in halves
        def job(m, s, lr):
            base = os.path.join(runs, f"gbase_s{s}")
            pre = [] if os.path.exists(os.path.join(base, "args.json")) else [train(f"gbase_s{s}", s, ["--data", docs, qa, "--eval_qa", qa, "--qa_pack", 4])]
            return (f"{m}_lr{lr}_s{s}", pre + [["gradual.py", "--model", base, "--qa", qa2, "--out_dir", os.path.join(runs, f"{m}_lr{lr}_s{s}"),
                                                "--baseline", m, "--seed", s, "--stage_steps", cfg["stage_steps"], "--select_every",
                                                cfg["select_every"], "--lr", lr, "--warmup", 5, "--batch_size", 16, *cfg["probe"]]])
        def share_probes(names, s):  # the base model's probes, made by the seed's first run, are the same for every run
            for name in names:
                os.makedirs(os.path.join(runs, name), exist_ok=True)
                for f in ("probe_base.jsonl", "probe_base_seed2.jsonl", "probe_base_test.jsonl"):
                    src = os.path.join(runs, f"one_stage_lr{lrs[0]}_s{s}", f)
                    if os.path.exists(src) and not os.path.exists(os.path.join(runs, name, f)):
                        shutil.copy(src, os.path.join(runs, name, f))
        lrs = cfg["ft_lrs"]
        batch([job("one_stage", s, lrs[0]) for s in seeds])  # one job a seed: it trains the base model and probes it
        share_probes([f"one_stage_lr{lr}_s0" for lr in lrs[1:]], 0)
        batch([job("one_stage", 0, lr) for lr in lrs[1:]])  # the fine-tuning lr: one_stage's stage-1 dev EM, seed 0
        dev_em = lambda lr: metrics(os.path.join(f"one_stage_lr{lr}_s0", "stage1", "best")).get("dev_exact_match", -1)  # noqa: E731
        lr = max(lrs, key=dev_em) if len(lrs) > 1 else lrs[0]
        results.setdefault("chosen", {})["ft_lr"] = lr
        for s in seeds:
            share_probes([f"{m}_lr{lr}_s{s}" for m in GRADUAL_MODES], s)
        batch([job(m, s, lr) for m in GRADUAL_MODES for s in seeds])
        results["table2"] = {m: [json.load(open(os.path.join(runs, f"{m}_lr{lr}_s{s}", "report.json"))) for s in seeds
                                 if os.path.exists(os.path.join(runs, f"{m}_lr{lr}_s{s}", "report.json"))] for m in GRADUAL_MODES}
    if "large" in parts:  # a bigger world and model: mixed training, baseline / augmentation / SAM
        lworld, ldocs, lqa, _ = make_world("world_large", LARGE["people"])
        larms = {"baseline": [], f"aug{K}": ["--aug", K], f"sam{rho}": ["--sam", "--rho", rho], f"aug{K}+sam{rho}": ["--aug", K, "--sam", "--rho", rho]}
        batch([(f"large_{a}_s{s}", [train(f"large_{a}_s{s}", s, ["--data", ldocs, lqa, "--eval_qa", lqa, *LARGE["flags"], *f], LARGE["steps"])])
               for a, f in larms.items() for s in LARGE["seeds"]])
        results["large"] = {"config": LARGE, "cells": {a: cell([f"large_{a}_s{s}" for s in LARGE["seeds"]]) for a in larms}}
    from types import SimpleNamespace
    x = SimpleNamespace(batch=batch, metrics=metrics, curve=curve, mean_curve=mean_curve, save=save, fact_loss=fact_loss, mean_std=mean_std,
                        runs=runs, results=results, mode=args.mode, device=args.device,
                        eq_archive=args.eq_archive)
    for regime in (pretrained, real):  # experiments/pretrained.py, experiments/real.py
        if set(parts) & set(regime.PARTS):
            regime.run(parts, x)
    save()
    print(f"wrote {res_path} ({(time.time() - started) / 60:.1f} min this run)")

if __name__ == "__main__":
    main()
