"""
The from-scratch regime: a model trained on the very facts it is tested on, on the biography world
(data/bios/prepare.py). Run by experiments/reproduce.py, which caches every run:

    python experiments/reproduce.py full --only sweeps table1 search table2   # README's tables: 3 seeds (~5 h, 2 cores)
    python experiments/reproduce.py full --only table2                        # one part (it reuses the runs it needs)
    python experiments/reproduce.py full --only large --jobs 8 --device cuda  # a bigger world and model on a GPU

Parts: sweeps (K and rho in mixed training, with dev learning curves), table1 (Zhu et al.: arms x protocols, the
fact-token diagnostic), search (baseline and SAM in other settings: 2x steps in full mode), table2 (Li et al.:
gradual.py against its baselines), large (only when asked). Every choice is made on the dev split (K and rho from the
sweeps, the QA-tuning lr, gradual's fine-tuning lr and per-stage checkpoint); the test split is read once, at a run's
end. The tables: experiments/report.py. Every job is kept in results.json as it ends (its metrics, dev curve,
fact-token losses, gradual.py's report): a later session, without the runs folder, goes on where one stopped.
"""
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
from typing import NamedTuple

from runner import ROOT, Arm  # (first: it puts the repository root on the path)
from slick import GRADUAL_MODES

# steps: mixed training; pre_steps: documents only (protocol (a)), about as many passes over each document as mixed
# training makes (documents are a quarter of its examples); search: name -> (people, steps); ft_lrs: gradual's
# fine-tuning lr: the first is also run on every seed (it makes the base probes) and wins ties; model: train.py's
# scratch-model flags (default: its own)
MODES = {
    "smoke": dict(people=12, steps=40, pre_steps=20, batch=16, seeds=[0], ks=[1, 2], rhos=[0.05], qa_lrs=[1e-3],
                  qa_epochs=1, ft_lrs=[1e-3], eval_every=20, stage_steps=2, select_every=0, probe=["--fast"],
                  search_seeds=[0], search={"steps40": (12, 40)},
                  model=["--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--vocab_size", "512"]),
    "quick": dict(people=100, steps=300, pre_steps=150, batch=24, seeds=[0], ks=[1, 4], rhos=[0.02], qa_lrs=[3e-4],
                  qa_epochs=3, ft_lrs=[3e-4], eval_every=50, stage_steps=20, select_every=0, probe=["--fast"],
                  search_seeds=[0], search={"steps600": (100, 600)}),
    "full": dict(people=200, steps=1200, pre_steps=400, batch=48, seeds=[0, 1, 2], ks=[1, 2, 4, 8, 16],
                 rhos=[0.01, 0.02, 0.05], qa_lrs=[1e-4, 3e-4, 1e-3, 3e-3], qa_epochs=5, ft_lrs=[1e-4, 3e-5, 3e-4, 1e-3],
                 eval_every=100, stage_steps=60, select_every=10, probe=[], search_seeds=[0, 1],
                 search={"steps2400": (200, 2400)}),
}
PARTS = ["sweeps", "table1", "search", "table2", "large"]  # large: only when asked (--only large)
LARGE = dict(people=2000, steps=1200, seeds=[0, 1],
             flags=["--n_layer", "8", "--n_head", "8", "--n_embd", "512", "--batch_size", "384"])
PROBES = ("probe_base.jsonl", "probe_base_seed2.jsonl", "probe_base_test.jsonl")  # gradual.py's probes of the base


class World(NamedTuple):
    """A biography world's files: documents, paraphrases (para0..7), QA (train / dev / test people), the paraphrases
    trained on (para0..3) and gradual's QA (the test people split in halves)."""
    docs: str
    paraphrases: str
    qa: str
    para_train: str
    qa_gradual: str

    @property
    def held_out(self):
        """What the fact-token diagnostic reads: (documents, paraphrases, QA)."""
        return self.docs, self.paraphrases, self.qa


def sweep_arms(cfg, w):
    """The sweeps' arms, mixed training: K formats, then SAM at each radius rho."""
    return ([Arm(f"k{k}", ["--aug", k], [w.docs]) for k in cfg["ks"]] +
            [Arm(f"sam{r}", ["--sam", "--rho", r], [w.docs]) for r in cfg["rhos"]])


def table1_arms(w, K, rho):
    """Table 1's arms, in the order they run and are reported. run: the sweep's run of the same arm, whose mixed
    run serves here where it finished."""
    sam = ["--sam", "--rho", rho]
    docs, para = [w.docs], [w.docs, w.para_train]
    return [Arm("baseline", [], docs, run="k1"),
            Arm(f"aug{K}", ["--aug", K], docs, run=f"k{K}"),
            Arm(f"sam{rho}", sam, docs, run=f"sam{rho}"),
            Arm(f"aug{K}+sam{rho}", ["--aug", K, *sam], docs),
            Arm("para", [], para),
            Arm(f"para+aug{K}+sam{rho}", ["--aug", K, *sam], para)]


def search_arms(w, rho):
    """The search's arms: does SAM act in other settings?"""
    return [Arm("baseline", [], [w.docs]), Arm(f"sam{rho}", ["--sam", "--rho", rho], [w.docs])]


def large_arms(w, K, rho):
    """The larger world's arms: baseline, augmentation, SAM, both."""
    sam = ["--sam", "--rho", rho]
    return [Arm("baseline", [], [w.docs]), Arm(f"aug{K}", ["--aug", K], [w.docs]), Arm(f"sam{rho}", sam, [w.docs]),
            Arm(f"aug{K}+sam{rho}", ["--aug", K, *sam], [w.docs])]


def run_name(runner, kind, arm, seed, qa_lr=None):
    """A run's name: {kind}_{arm}_s{seed}, kind: mixed, pre (protocol (a), documents), large or a search setting;
    seq_{arm}_lr{qa_lr}_s{seed} (protocol (a), QA tuning). A mixed run is the sweep's mixed_{arm.run}_s{seed} where
    that finished."""
    if kind == "mixed" and arm.run and runner.finished(f"mixed_{arm.run}_s{seed}"):
        return f"mixed_{arm.run}_s{seed}"
    return f"{kind}_{arm.name}" + (f"_lr{qa_lr}" if qa_lr is not None else "") + f"_s{seed}"


def run(parts, runner):
    """The from-scratch parts asked for, in order. K and rho: the sweeps' choice (as recorded, else 4 and 0.05)."""
    cfg = MODES[runner.mode]
    w = make_world(runner, "world", cfg["people"])
    K, rho = runner.results.get("chosen", {}).get("K", 4), runner.results.get("chosen", {}).get("rho", 0.05)
    if "sweeps" in parts:
        K, rho = sweeps(cfg, runner, w)
        made(runner, "sweeps")
    if "table1" in parts:
        table1(cfg, runner, w, K, rho)
        made(runner, "table1")
    if "search" in parts:
        search(cfg, runner, rho)
        made(runner, "search")
    correlate(runner.results)
    if "table2" in parts:
        table2(cfg, runner, w)
        made(runner, "table2")
    if "large" in parts:
        large(cfg, runner, K, rho)


def made(runner, part):
    """A part's table is written: the code it is made with (git's HEAD) beside it (each kept run has its own too)."""
    runner.results.setdefault("commits", {})[part] = runner.commit()
    runner.save()


def make_world(runner, name, people):
    """A biography world of `people` people in runs/MODE/name (made once), with 8 paraphrases a person: para0..3
    trained on, para4..7 held out."""
    d = runner.path(name)
    if not os.path.exists(os.path.join(d, "qa_gradual.jsonl")):
        subprocess.run([sys.executable, "data/bios/prepare.py", "--people", str(people), "--paraphrases", "8",
                        "--gradual", "--out_dir", d], cwd=ROOT, check=True)
        with open(os.path.join(d, "docs_para.jsonl")) as f:
            lines = [line for line in f if int(json.loads(line)["id"].split("#para")[1]) < 4]
        with open(os.path.join(d, "para_train.jsonl"), "w") as f:
            f.writelines(lines)
    return World(*(os.path.join(d, f) for f in ("docs.jsonl", "docs_para.jsonl", "qa.jsonl", "para_train.jsonl",
                                                "qa_gradual.jsonl")))


def train_cmd(cfg, runner, name, seed, flags, steps):
    """A train.py command of this regime (a scratch model, the mode's batch size)."""
    return ["train.py", "--out_dir", runner.path(name), "--seed", seed, "--max_steps", steps,
            "--batch_size", cfg["batch"], *cfg.get("model", []), *flags]


def mixed_job(cfg, runner, name, seed, arm, qa, steps=None):
    """Mixed training (protocol (b)): the arm's documents + the train people's QA in one run, dev EM as it goes."""
    flags = ["--data", *arm.data, qa, "--eval_qa", qa, "--eval_every", cfg["eval_every"], *arm.flags]
    return name, [train_cmd(cfg, runner, name, seed, flags, steps or cfg["steps"])]


def cell(runner, names, world=None):
    """A table cell over seeds: test and dev EM, tokens, each seed's test EM, the dev curve; with world, the
    fact-token diagnostic too."""
    ms = [runner.metrics(n) for n in names]
    c = {k: runner.mean_std([m.get(k) for m in ms]) for k in ("test_exact_match", "dev_exact_match", "tokens")}
    c |= {"per_seed_test": [m.get("test_exact_match") for m in ms], "curve": runner.curve(names)}
    if world:
        diag = [runner.fact_loss(n, world) for n in names]
        c |= {f"fact_loss_{k}": runner.mean_std([d[k] for d in diag]) for k in ("formats", "paraphrases")}
        c |= {f"per_seed_fact_loss_{k}": [d[k] for d in diag] for k in ("formats", "paraphrases")}
    return c


def sweeps(cfg, runner, w):
    """Mixed training at every K and rho; K (above 1) and rho chosen by mean dev EM. Returns them."""
    res, seeds, arms = runner.results, cfg["seeds"], sweep_arms(cfg, w)
    runner.batch([mixed_job(cfg, runner, run_name(runner, "mixed", a, s), s, a, w.qa) for a in arms for s in seeds],
                 then=functools.partial(runner.fact_loss, world=w.held_out), keep=True)  # (table 1 reads some)
    res["sweeps"] = {f"mixed_{a.name}": cell(runner, [run_name(runner, "mixed", a, s) for s in seeds]) for a in arms}
    K = max([k for k in cfg["ks"] if k > 1], key=lambda k: sweep_dev(res, f"mixed_k{k}"))
    rho = max(cfg["rhos"], key=lambda r: sweep_dev(res, f"mixed_sam{r}"))
    res["chosen"] = {"K": K, "rho": rho}
    runner.save()
    return K, rho


def sweep_dev(res, key):
    """A sweep cell's mean dev EM (-1 where it has none)."""
    return (res["sweeps"][key]["dev_exact_match"] or {"mean": -1})["mean"]


def table1(cfg, runner, w, K, rho):
    """Every arm in both protocols: (b) mixed and (a) documents, then QA tuning (its lr chosen on dev, seed 0)."""
    seeds, arms = cfg["seeds"], table1_arms(w, K, rho)
    diagnose = functools.partial(runner.fact_loss, world=w.held_out)  # (a pre_ run's: a few seconds, not read)
    runner.batch([mixed_job(cfg, runner, run_name(runner, "mixed", a, s), s, a, w.qa) for a in arms for s in seeds] +
                 [pre_job(cfg, runner, a, s) for a in arms for s in seeds], then=diagnose, keep=True)
    runner.batch([qa_tune(cfg, runner, f"qalr{lr}", "pre_baseline_s0", 0, lr, w.qa) for lr in cfg["qa_lrs"]],
                 keep=True)
    qa_lr = max(cfg["qa_lrs"], key=lambda lr: runner.metrics(f"qalr{lr}").get("dev_exact_match", -1))
    runner.results.setdefault("chosen", {})["qa_lr"] = qa_lr
    runner.batch([qa_tune(cfg, runner, run_name(runner, "seq", a, s, qa_lr), run_name(runner, "pre", a, s), s,
                          qa_lr, w.qa) for a in arms for s in seeds], then=diagnose, keep=True)
    runner.results["table1"] = {a.name: {
        "mixed": cell(runner, [run_name(runner, "mixed", a, s) for s in seeds], w.held_out),
        "sequential": cell(runner, [run_name(runner, "seq", a, s, qa_lr) for s in seeds], w.held_out)} for a in arms}
    runner.save()


def pre_job(cfg, runner, arm, seed):
    """Protocol (a), step 1: the arm's documents only (pre_steps steps)."""
    name = run_name(runner, "pre", arm, seed)
    return name, [train_cmd(cfg, runner, name, seed, ["--data", *arm.data, *arm.flags], cfg["pre_steps"])]


def qa_tune(cfg, runner, name, pre, seed, lr, qa):
    """QA tuning from the run `pre` (protocol (a), step 2): the train people's QA, dev EM at the end."""
    flags = ["--init_from", runner.path(pre), "--data", qa, "--eval_qa", qa, "--epochs", cfg["qa_epochs"], "--lr", lr,
             "--warmup", 5]
    return name, [train_cmd(cfg, runner, name, seed, flags, 1)]


def search(cfg, runner, rho):
    """Where can SAM act? Baseline and SAM again in other settings (longer runs, more people)."""
    worlds = {people: make_world(runner, "world" if people == cfg["people"] else f"world_{people}", people)
              for people, _ in cfg["search"].values()}
    arms = {people: search_arms(worlds[people], rho) for people in worlds}
    seeds = cfg["search_seeds"]
    for setting, (people, steps) in cfg["search"].items():
        runner.batch([mixed_job(cfg, runner, run_name(runner, setting, a, s), s, a, worlds[people].qa, steps)
                      for a in arms[people] for s in seeds],
                     then=functools.partial(runner.fact_loss, world=worlds[people].held_out), keep=True)
    runner.results["search"] = {
        setting: {a.name: cell(runner, [run_name(runner, setting, a, s) for s in seeds], worlds[people].held_out)
                  for a in arms[people]} for setting, (people, _) in cfg["search"].items()}
    runner.save()


def correlate(res):
    """The paper's hypothesis: knowledge that generalizes to unseen formats is knowledge that can be extracted.
    Pearson correlation of the fact-token losses with test EM over every run of table1 and search, by protocol."""
    groups = {"mixed": [a["mixed"] for a in res.get("table1", {}).values()] +
                       [c for st in res.get("search", {}).values() for c in st.values()],
              "sequential": [a["sequential"] for a in res.get("table1", {}).values()]}
    for protocol, cells in groups.items():
        pts = [p for c in cells if "per_seed_fact_loss_formats" in c for p in
               zip(c["per_seed_fact_loss_formats"], c["per_seed_fact_loss_paraphrases"], c["per_seed_test"])
               if p[2] is not None]
        if len(pts) > 2 and len({p[2] for p in pts}) > 1:  # (a correlation needs test EM that varies)
            res.setdefault("fact_loss_vs_test_em", {})[protocol] = {"points": len(pts), **{
                f"pearson_{k}": statistics.correlation([p[i] for p in pts], [p[2] for p in pts])
                for i, k in enumerate(("formats", "paraphrases"))}}


def base_job(cfg, runner, w, seed):
    """The seed's base model of gradual learning, trained like the mixed baseline, with --qa_pack 4 so that it has
    seen several QA items in one sequence, as a few-shot probe shows them (without it a small model copies the
    exemplars' answers). It answers questions and knows the held-out people's facts only partly; a model trained on
    documents alone probes all Unknown."""
    flags = ["--data", w.docs, w.qa, "--eval_qa", w.qa, "--qa_pack", 4]
    return f"gbase_s{seed}", [train_cmd(cfg, runner, f"gbase_s{seed}", seed, flags, cfg["steps"])]


def gradual_job(cfg, runner, w, mode, seed, lr):
    """gradual.py (or one of its baselines, mode) from the seed's base model (base_job). The base's test people are
    split in two: the gradual "train" half (probed, fine-tuned) and the "test" half."""
    name, base = f"{mode}_lr{lr}_s{seed}", runner.path(f"gbase_s{seed}")
    return name, [["gradual.py", "--model", base, "--qa", w.qa_gradual, "--out_dir", runner.path(name), "--baseline",
                   mode, "--seed", seed, "--stage_steps", cfg["stage_steps"], "--select_every", cfg["select_every"],
                   "--lr", lr, "--warmup", 5, "--batch_size", 16, *cfg["probe"]]]


def share_probes(cfg, runner, names, seed):
    """The base model's probes, made by the seed's first run, are the same for every run: copied, not made again."""
    for name in names:
        for f in PROBES:
            src = os.path.join(runner.path(f"one_stage_lr{cfg['ft_lrs'][0]}_s{seed}"), f)
            if os.path.exists(src) and not os.path.exists(os.path.join(runner.path(name), f)):
                os.makedirs(runner.path(name), exist_ok=True)
                shutil.copy(src, os.path.join(runner.path(name), f))


def table2(cfg, runner, w):
    """gradual.py and its same-budget baselines; the fine-tuning lr by one_stage's stage-1 dev EM, seed 0."""
    seeds, lrs = cfg["seeds"], cfg["ft_lrs"]
    runner.batch([base_job(cfg, runner, w, s) for s in seeds], keep=True)
    runner.batch([gradual_job(cfg, runner, w, "one_stage", s, lrs[0]) for s in seeds], keep=True)  # probes the base
    share_probes(cfg, runner, [f"one_stage_lr{lr}_s0" for lr in lrs[1:]], 0)
    runner.batch([gradual_job(cfg, runner, w, "one_stage", 0, lr) for lr in lrs[1:]], keep=True)
    lr = max(lrs, key=lambda v: stage1_dev(runner, v)) if len(lrs) > 1 else lrs[0]
    runner.results.setdefault("chosen", {})["ft_lr"] = lr
    for s in seeds:
        share_probes(cfg, runner, [f"{m}_lr{lr}_s{s}" for m in GRADUAL_MODES], s)
    runner.batch([gradual_job(cfg, runner, w, m, s, lr) for m in GRADUAL_MODES for s in seeds], keep=True)
    reports = {m: [runner.read(f"{m}_lr{lr}_s{s}", "report.json") for s in seeds] for m in GRADUAL_MODES}
    runner.results["table2"] = {m: [r for r in rs if r] for m, rs in reports.items()}


def stage1_dev(runner, lr):
    """one_stage's stage-1 dev EM at the fine-tuning lr, seed 0 (-1 where it has none)."""
    return runner.metrics(os.path.join(f"one_stage_lr{lr}_s0", "stage1", "best")).get("dev_exact_match", -1)


def large(cfg, runner, K, rho):
    """A bigger world and model (LARGE): mixed training, baseline / augmentation / SAM."""
    w = make_world(runner, "world_large", LARGE["people"])
    arms, jobs = large_arms(w, K, rho), []
    for a in arms:
        for s in LARGE["seeds"]:
            name = run_name(runner, "large", a, s)
            flags = ["--data", *a.data, w.qa, "--eval_qa", w.qa, *LARGE["flags"], *a.flags]
            jobs.append((name, [train_cmd(cfg, runner, name, s, flags, LARGE["steps"])]))
    runner.batch(jobs, keep=True)
    runner.results["large"] = {"config": LARGE, "cells": {
        a.name: cell(runner, [run_name(runner, "large", a, s) for s in LARGE["seeds"]]) for a in arms}}
