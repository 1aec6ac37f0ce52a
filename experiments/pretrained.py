"""
The pretrained regime, where both papers make their claims: a model that already knows people and answers
questions about them learns new ones. A tiered world (data/bios/tiers.py) and, per seed, a base model
pretrained on its known and long-tail tiers ("the pretrained LLM", an ordinary train.py folder); from it:

  Table 1 (Zhu et al.): continued pre-training (CPT) on the new people. Arms: baseline, K formats, SAM, both,
  paraphrases, the baseline at twice the epochs (SAM's compute), SAM on every 4th step; each of baseline, K
  formats and both also with a replay of the pretraining mixture. Protocols (a) documents, then QA tuning on
  the new train people's QA, and (b) mixed. Reported: new people's test EM (knowledge acquired), known
  people's test EM after CPT (knowledge kept), tokens trained, the fact-token diagnostic.
  Table 2 (SliCK, Li et al.): the base model's category shares on the SliCK pool, SliCK's core experiment (a
  fixed-size fine-tuning set with 0-100% Unknown items; test EM at the dev-chosen early stop and at the end of
  training), and gradual.py against its same-budget baselines (experiments/slick.py).

Run by experiments/reproduce.py (parts pt_base, pt_sweeps, pt_table1 (protocol b), pt_table2, pt_table1_docs
(protocol a)), which caches every run:

    python experiments/reproduce.py smoke --only pt_base pt_sweeps pt_table1 pt_table2 pt_table1_docs   # the smoke test
    python experiments/reproduce.py full --only pt_table1     # one part (it reuses the finished runs it needs)

Every choice is made on dev, seed 0: the CPT lr, K, rho and the replay ratio in mixed CPT (the ratio by the mean
of new and known people's dev EM, the others by new people's dev EM), the QA-tuning lr of protocol (a), and
Table 2's fine-tuning lr (one_stage's stage-1 dev EM). The test splits are read once, at a run's end.
Table 2 probes with probe.py --fast (exact scoring of the gold answer: the sampling probe's categories up to its
sampling noise, tested against generation, at about 1/13 of its cost).
"""
import os
import subprocess
import sys
from typing import NamedTuple

from runner import ROOT, Arm  # (first: it puts the repository root on the path)
import slick  # experiments/slick.py: Table 2, shared with the real-model regime

# base_steps: pretraining; *_epochs: passes over the new data; fracs: SliCK's shares of Unknown items; model: the base
MODES = {
    "smoke": dict(known=12, longtail=6, new=8, base_steps=150, seeds=[0], cpt_epochs=2, doc_epochs=2, qa_epochs=1,
                  lrs=[1e-3], ks=[2], rhos=[0.05], ratios=[0.25], qa_lrs=[1e-3], eval_every=4, fracs=[0.0, 0.5, 1.0],
                  unk_n=6, unk_epochs=2, ft_lrs=[1e-3], stage_steps=2, select_every=0, probe=["--fast"],
                  model=["--n_layer", "2", "--n_head", "2", "--n_embd", "64", "--vocab_size", "512", "--lr", "6e-3",
                         "--batch_size", "16"]),
    "quick": dict(known=60, longtail=60, new=40, base_steps=400, seeds=[0], cpt_epochs=10, doc_epochs=10, qa_epochs=3,
                  lrs=[3e-4], ks=[4], rhos=[0.05], ratios=[0.25], qa_lrs=[3e-4], eval_every=20, fracs=[0.0, 0.5, 1.0],
                  unk_n=60, unk_epochs=10, ft_lrs=[1e-4], stage_steps=20, select_every=0, probe=["--fast"]),
    "full": dict(known=400, longtail=300, new=200, base_steps=2000, seeds=[0, 1, 2], cpt_epochs=30, doc_epochs=30,
                 qa_epochs=5, lrs=[1e-4, 3e-4, 1e-3], ks=[2, 4, 8], rhos=[0.02, 0.05, 0.1], ratios=[0.1, 0.25, 0.5],
                 qa_lrs=[1e-4, 3e-4, 1e-3], eval_every=50, fracs=[0.0, 0.25, 0.5, 0.75, 1.0], unk_n=300,
                 unk_epochs=20, ft_lrs=[1e-4, 3e-5, 3e-4], stage_steps=60, select_every=10, probe=["--fast"]),
}
PARTS = ["pt_base", "pt_sweeps", "pt_table1", "pt_table2", "pt_table1_docs"]  # the order they run in


class World(NamedTuple):
    """The tiered world's files (data/bios/tiers.py): the base's pretraining data and its known people's QA, the new
    people's documents, paraphrases (trained on / held out) and QA, the SliCK pool, and every tier's QA."""
    pretrain: str
    qa_known: str
    new_docs: str
    new_para: str
    new_para_heldout: str
    qa_new: str
    qa_slick: str
    qa_tiers: str


def replay(w, ratio):
    """The flags of a replay of the pretraining mixture, a `ratio` share of every batch."""
    return ["--replay", w.pretrain, w.qa_known, "--replay_ratio", ratio]


def lr_arms(cfg, w):
    """The sweeps' first step: the baseline at every CPT lr (mixed, seed 0)."""
    return [Arm("baseline", [], [w.new_docs], lr, cfg["cpt_epochs"]) for lr in cfg["lrs"]]


def sweep_arms(cfg, w, lr):
    """The sweeps' second step, at the chosen lr: K formats, SAM at each rho, replay at each ratio, by what each
    chooses (chosen's key, then the value)."""
    docs, epochs = [w.new_docs], cfg["cpt_epochs"]
    return {"K": {k: Arm(f"aug{k}", ["--aug", k], docs, lr, epochs) for k in cfg["ks"]},
            "rho": {r: Arm(f"sam{r}", ["--sam", "--rho", r], docs, lr, epochs) for r in cfg["rhos"]},
            "ratio": {r: Arm(f"replay{r}", replay(w, r), docs, lr, epochs) for r in cfg["ratios"]}}


def table1_arms(w, lr, K, rho, ratio, epochs):
    """Table 1's arms, in the order they run and are reported (epochs: the protocol's CPT epochs)."""
    sam = ["--sam", "--rho", rho]
    docs, para = [w.new_docs], [w.new_docs, w.new_para]
    return [Arm("baseline", [], docs, lr, epochs),
            Arm(f"aug{K}", ["--aug", K], docs, lr, epochs),
            Arm(f"sam{rho}", sam, docs, lr, epochs),
            Arm(f"aug{K}+sam{rho}", ["--aug", K, *sam], docs, lr, epochs),
            Arm("para", [], para, lr, epochs),
            Arm("baseline_2x_epochs", [], docs, lr, 2 * epochs),  # SAM's compute
            Arm(f"sam{rho}_every4", [*sam, "--sam_every", 4], docs, lr, epochs),
            Arm(f"replay{ratio}", replay(w, ratio), docs, lr, epochs),
            Arm(f"aug{K}+replay{ratio}", ["--aug", K, *replay(w, ratio)], docs, lr, epochs),
            Arm(f"aug{K}+sam{rho}+replay{ratio}", ["--aug", K, *sam, *replay(w, ratio)], docs, lr, epochs)]


def run_name(protocol, arm, seed, qa_lr=None):
    """A run's name: pt_{protocol}_{arm}_lr{lr}_s{seed}, protocol: mix (b), doc (a: documents) or seq (a: then QA
    tuning at qa_lr, pt_seq_{arm}_lr{lr}_qa{qa_lr}_s{seed})."""
    return f"pt_{protocol}_{arm.name}_lr{arm.lr}" + (f"_qa{qa_lr}" if qa_lr is not None else "") + f"_s{seed}"


def run(parts, runner):
    """The pretrained regime's parts asked for (the base models always: every part starts from them)."""
    cfg = MODES[runner.mode]
    res = runner.results.setdefault("pretrained", {})
    res["config"] = cfg
    chosen = res.setdefault("chosen", {})
    w = make_world(cfg, runner)
    base_models(cfg, runner, w, res)
    if not set(parts) & set(PARTS[1:]):
        return
    if "pt_sweeps" in parts:
        sweeps(cfg, runner, w, res)
    lr, K, rho, ratio = (chosen.get(k, d) for k, d in (("lr", cfg["lrs"][0]), ("K", cfg["ks"][0]),
                                                        ("rho", cfg["rhos"][0]), ("ratio", cfg["ratios"][0])))
    if "pt_table1" in parts:
        table1_mixed(cfg, runner, table1_arms(w, lr, K, rho, ratio, cfg["cpt_epochs"]), w, res)
    if "pt_table2" in parts:
        slick.table2(runner, cfg, {s: base(runner, s) for s in cfg["seeds"]}, w.qa_slick, "pt", res)
        runner.save()
    if "pt_table1_docs" in parts:  # after Table 2: it costs as much as (b)
        table1_docs(cfg, runner, table1_arms(w, lr, K, rho, ratio, cfg["doc_epochs"]), w, res)


def make_world(cfg, runner):
    """The tiered world in runs/MODE/pt_world (made once)."""
    d = runner.path("pt_world")
    if not os.path.exists(os.path.join(d, "qa_tiers.jsonl")):
        subprocess.run([sys.executable, "data/bios/tiers.py", "--known", str(cfg["known"]), "--longtail",
                        str(cfg["longtail"]), "--new", str(cfg["new"]), "--out_dir", d], cwd=ROOT, check=True)
    return World(*(os.path.join(d, f"{n}.jsonl") for n in World._fields))


def base(runner, seed):
    """The seed's base model ("the pretrained LLM")."""
    return runner.path(f"pt_base_s{seed}")


def evaluated(model, qa, out, *extra):
    """eval.py on a model folder, the result in it (out: the file's name)."""
    return ["eval.py", "--model", model, "--qa", qa, "--out", os.path.join(model, out), *extra]


def base_models(cfg, runner, w, res):
    """The base model of every seed: known + long-tail documents in 4 formats (web text has every layout) and the
    known train people's QA, packed 4 to a sequence (so that few-shot probes look like what it read); then its
    exact match per tier."""
    seeds = cfg["seeds"]
    runner.batch([(f"pt_base_s{s}", [
        ["train.py", "--data", w.pretrain, w.qa_known, "--aug", 4, "--qa_pack", 4, "--max_steps", cfg["base_steps"],
         "--seed", s, "--eval_qa", w.qa_known, "--eval_every", cfg["base_steps"] // 4, "--out_dir", base(runner, s),
         *cfg.get("model", [])],
        evaluated(base(runner, s), w.qa_tiers, "tiers.json")]) for s in seeds])
    tiers = [runner.read(f"pt_base_s{s}", "tiers.json").get("by_split", {}) for s in seeds]
    res["base"] = {t: runner.mean_std([b[t]["exact_match"] for b in tiers if t in b])
                   for t in sorted(set().union(*tiers))}
    res["base"]["curve"] = runner.curve([f"pt_base_s{s}" for s in seeds])
    runner.save()


def cpt(cfg, runner, w, name, seed, data, flags, lr, epochs, init=None, qa=True):
    """A CPT (or QA-tuning) job from the seed's base (or init): train.py, then (qa) the known people's QA (what
    was kept); qa: the new people's dev EM as it goes, too."""
    cmd = ["train.py", "--init_from", init or base(runner, seed), "--data", *data, "--out_dir", runner.path(name),
           "--seed", seed, "--epochs", epochs, "--lr", lr, "--warmup", 10, *flags]
    cmd += ["--eval_qa", w.qa_new, "--eval_every", cfg["eval_every"]] if qa else []
    return name, [cmd] + ([evaluated(runner.path(name), w.qa_known, "known.json")] if qa else [])


def mixed_job(cfg, runner, w, arm, seed):
    """Protocol (b), mixed CPT: the arm's documents and the new train people's QA in one run."""
    return cpt(cfg, runner, w, run_name("mix", arm, seed), seed, [*arm.data, w.qa_new], arm.flags, arm.lr, arm.epochs)


def doc_job(cfg, runner, w, arm, seed):
    """Protocol (a), step 1: the arm's documents only."""
    return cpt(cfg, runner, w, run_name("doc", arm, seed), seed, arm.data, arm.flags, arm.lr, arm.epochs, qa=False)


def seq_job(cfg, runner, w, arm, seed, qa_lr):
    """Protocol (a), step 2: QA tuning on the new train people's QA from the arm's step-1 run."""
    return cpt(cfg, runner, w, run_name("seq", arm, seed, qa_lr), seed, [w.qa_new], [], qa_lr, cfg["qa_epochs"],
               init=runner.path(run_name("doc", arm, seed)))


def cell(runner, w, names, diagnostic=True):
    """A table cell over seeds: new people's test and dev EM, tokens, known people's EM after it, each seed's, the
    dev curve; with diagnostic, the fact-token losses."""
    ms = [runner.metrics(n) for n in names]
    known = [runner.read(n, "known.json").get("by_split", {}) for n in names]
    c = {k: runner.mean_std([m.get(k) for m in ms]) for k in ("test_exact_match", "dev_exact_match", "tokens")}
    c |= {f"known_{k}": runner.mean_std([kn.get(k, {}).get("exact_match") for kn in known]) for k in ("test", "dev")}
    c |= {"per_seed_test": [m.get("test_exact_match") for m in ms],
          "per_seed_known_test": [kn.get("test", {}).get("exact_match") for kn in known], "curve": runner.curve(names)}
    if diagnostic:
        d = [runner.fact_loss(n, (w.new_docs, w.new_para_heldout, w.qa_new)) for n in names]
        c |= {f"fact_loss_{k}": runner.mean_std([v[k] for v in d]) for k in ("formats", "paraphrases")}
    return c


def dev_em(runner, arm):
    """The new people's dev EM of the arm's mixed run, seed 0 (-1 where it has none)."""
    return runner.metrics(run_name("mix", arm, 0)).get("dev_exact_match", -1)


def dev_and_kept(runner, arm):
    """The mean of the new and the known people's dev EM of the arm's mixed run, seed 0."""
    known = runner.read(run_name("mix", arm, 0), "known.json").get("by_split", {}).get("dev", {})
    return (dev_em(runner, arm) + known.get("exact_match", -1)) / 2


def sweeps(cfg, runner, w, res):
    """Mixed CPT, seed 0: the lr, then K, rho (and SAM on every 4th step), the replay ratio, chosen on dev."""
    chosen, grid = res["chosen"], lr_arms(cfg, w)
    runner.batch([mixed_job(cfg, runner, w, a, 0) for a in grid])
    lr = chosen["lr"] = max(grid, key=lambda a: dev_em(runner, a)).lr
    sweep = sweep_arms(cfg, w, lr)
    runner.batch([mixed_job(cfg, runner, w, a, 0) for arms in sweep.values() for a in arms.values()])
    chosen["K"] = max(cfg["ks"], key=lambda k: dev_em(runner, sweep["K"][k]))
    chosen["rho"] = max(cfg["rhos"], key=lambda r: dev_em(runner, sweep["rho"][r]))
    chosen["ratio"] = max(cfg["ratios"], key=lambda r: dev_and_kept(runner, sweep["ratio"][r]))
    arms = grid + [a for arms in sweep.values() for a in arms.values()]
    res["sweeps"] = {f"{a.name}_lr{a.lr}": cell(runner, w, [run_name("mix", a, 0)], diagnostic=False) for a in arms}
    runner.save()


def table1_mixed(cfg, runner, arms, w, res):
    """Table 1, protocol (b), mixed; in two groups of arms, each saved when done."""
    res.setdefault("table1", {})
    for group in (arms[:4], arms[4:]):
        runner.batch([mixed_job(cfg, runner, w, a, s) for a in group for s in cfg["seeds"]])
        for a in group:
            names = [run_name("mix", a, s) for s in cfg["seeds"]]
            res["table1"].setdefault(a.name, {})["mixed"] = cell(runner, w, names)
        runner.save()


def table1_docs(cfg, runner, arms, w, res):
    """Table 1, protocol (a): documents only, then QA tuning (its lr chosen on dev: the baseline, seed 0)."""
    seeds, baseline = cfg["seeds"], next(a for a in arms if a.name == "baseline")
    runner.batch([doc_job(cfg, runner, w, a, s) for a in arms for s in seeds])
    runner.batch([seq_job(cfg, runner, w, baseline, 0, q) for q in cfg["qa_lrs"]])
    qa_lr = res["chosen"]["qa_lr"] = max(
        cfg["qa_lrs"], key=lambda q: runner.metrics(run_name("seq", baseline, 0, q)).get("dev_exact_match", -1))
    runner.batch([seq_job(cfg, runner, w, a, s, qa_lr) for a in arms for s in seeds])
    for a in arms:
        c = res.setdefault("table1", {}).setdefault(a.name, {})["sequential"] = cell(
            runner, w, [run_name("seq", a, s, qa_lr) for s in seeds])
        c["tokens"] = runner.mean_std([runner.metrics(run_name("doc", a, s)).get("tokens", 0) +  # both steps
                                       runner.metrics(run_name("seq", a, s, qa_lr)).get("tokens", 0) for s in seeds])
    runner.save()
