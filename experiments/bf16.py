"""
Does bf16 change the science? SmolLM2-135M-Instruct in bf16 beside the real regime's fp32 runs (part real_bf16), and
what Table 1 left open, answered in bf16. The instruction-tuning runs on SmolLM2 (experiments/instruct.py, real_it)
are bf16 too, and set up here (real_in_bf16).

  precision_check: the base probed (SliCK's categories, probe.py --fast) and asked 4-shot (eval.py) on 480
  EntityQuestions questions (SliCK's 12 relations), in fp32 and in bf16: same categories, same answers?
  bf16_table: protocol (b) again, every run in bf16 (precision_arms): the baseline and K formats (beside Table 1's
  fp32 rows), formats + SAM, and Table 1's two open controls, formats at twice the epochs (formats + SAM's compute)
  and SAM at radii below 0.05 (the best on dev joins if it beats the baseline on dev). Three seeds a cell.

    python experiments/reproduce.py full --only real_base real_bf16   # about 3 h on 2 cores with native bf16
    python experiments/reproduce.py smoke --only real_base real_bf16  # seconds
"""
import functools
import json

import torch

from runner import Arm  # (first: it puts the repository root on the path)
from data import CATEGORIES
from model import pick_dtype
import real

PARTS = ["real_bf16"]


def run(parts, runner):
    """The bf16 check: the base in both precisions, then protocol (b)'s table in bf16."""
    rcfg, f, res = real_in_bf16(runner, "real_bf16")
    precision_check(rcfg, runner, f, res)
    bf16_table(rcfg, runner, f, res)


def real_in_bf16(runner, part):
    """The real regime's config, files and results, with the base measured, for a part whose runs are all bf16; on a
    CPU that computes no bf16 natively, a warning first (torch emulates it there, about 50x slower)."""
    if runner.device == "cpu" and pick_dtype("auto", "cpu")[0] != torch.bfloat16:
        print(f"reproduce.py: warning: {part} runs in bf16, which this CPU lacks (AVX512-BF16, AMX): a SmolLM2 step "
              "took 154 s on an AVX2 CPU, against 2-4 s on one that has it", flush=True)
    rcfg, res = real.MODES[runner.mode], runner.results.setdefault("real", {})
    f = real.setup(rcfg, runner)
    real.measure_base(rcfg, runner, f, res)
    res.setdefault("runs", {})
    return rcfg, f, res


def precision_arms(cfg, f, chosen):
    """Protocol (b) again, every run in bf16 (one table, one precision): the baseline and K formats (beside Table 1's
    fp32 rows: does bf16 change the science?), formats + SAM, and the two controls Table 1 left open: formats at twice
    the epochs (formats + SAM's compute) and SAM at the radii below 0.05 (the best on dev joins, if it beats the
    baseline on dev)."""
    lr, epochs, K, rho, docs = chosen["lr"], chosen["epochs"], chosen["K"], chosen["rho"], [f.new_docs]
    arms = [Arm("baseline", [], docs, lr, epochs, dtype="bfloat16"),
            Arm(f"aug{K}", ["--aug", K], docs, lr, epochs, dtype="bfloat16"),
            Arm(f"aug{K}+sam{rho}", ["--aug", K, "--sam", "--rho", rho], docs, lr, epochs, dtype="bfloat16"),
            Arm(f"aug{K}_2x_epochs", ["--aug", K], docs, lr, 2 * epochs, run=f"aug{K}", dtype="bfloat16")]
    return arms, [Arm(f"sam{r}", ["--sam", "--rho", r], docs, lr, epochs, dtype="bfloat16") for r in cfg["small_rhos"]]


def bf16_table(cfg, runner, f, res):
    """The bf16 table: seed 0 of every arm and radius first, then SAM's radius on dev, then the other seeds."""
    arms, small = precision_arms(cfg, f, real.chosen_on_dev(cfg, res))
    res.setdefault("table1_bf16", {})
    then = functools.partial(real.tabulate, cfg, runner, f, res, arms + small, table="table1_bf16",
                             protocols=["mixed"])
    jobs = [real.job(cfg, runner, f, res, "mixed", a, 0) for a in arms + small]
    runner.batch(real.todo(res, jobs, "fact_loss_formats"), then=then)
    dev = {a.name: res["runs"][real.run_name("mixed", a, 0)]["dev"] or 0 for a in [arms[0], *small]}
    best = max(small, key=lambda a: (dev[a.name], -small.index(a)))  # ties: the smaller radius
    res["chosen"]["small_rho"] = {"arm": best.name, "dev": dev[best.name], "baseline_dev": dev[arms[0].name]}
    if dev[best.name] > dev[arms[0].name]:  # it beats the baseline on dev: all its seeds
        arms.append(best)
    for a in small:
        if a not in arms:  # (its seed-0 row stays in runs, the table shows only what runs on every seed)
            res["table1_bf16"].pop(a.name, None)
    then = functools.partial(real.tabulate, cfg, runner, f, res, arms, table="table1_bf16", protocols=["mixed"])
    jobs = [real.job(cfg, runner, f, res, "mixed", a, s) for a in arms for s in cfg["seeds"][1:]]
    runner.batch(real.todo(res, jobs, "fact_loss_formats"), then=then)
    res["table1_bf16"] = {a.name: res["table1_bf16"][a.name] for a in arms if a.name in res["table1_bf16"]}
    runner.save()


def precision_check(cfg, runner, f, res):
    """Does bf16 change what the base is found to know? probe.py --fast (SliCK's categories) and eval.py --shots 4 on
    the same questions (EntityQuestions: 40 test questions a relation, SliCK's 12), in fp32 and in bf16."""
    if "precision_check" in res:  # recorded in results.json: done
        return
    qa = f.knowledge if not cfg["new"] else real.entityquestions(runner.path("real_world/eq40.jsonl"), 40,
                                                                 runner.eq_archive)
    jobs = [(f"real_precision_{d}", [["probe.py", "--model", f.base, "--qa", qa, "--split", "test", "--fast",
                                      "--dtype", d, "--out", runner.path(f"real_precision_{d}/probe.jsonl")],
                                     real.evaluated(f.base, qa, runner.path(f"real_precision_{d}/eval.json"), "--split",
                                               "test", "--dtype", d)]) for d in ("float32", "bfloat16")]
    runner.batch(jobs)
    probes = [{r["id"]: r["category"] for r in map(json.loads, open(runner.path(f"{n}/probe.jsonl")))} for n, _ in jobs]
    evals = [{p["id"]: p["exact_match"] for p in runner.read(n, "eval.json")["predictions"]} for n, _ in jobs]
    res["precision_check"] = {
        "questions": len(probes[0]), "same_category": sum(probes[1][k] == c for k, c in probes[0].items()),
        "categories": [{c: sum(v == c for v in p.values()) for c in CATEGORIES} for p in probes],
        "em": [sum(e.values()) / len(e) for e in evals], "same_answer_right": sum(evals[1][k] == v
                                                                               for k, v in evals[0].items())}
    runner.save()
