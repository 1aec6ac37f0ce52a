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

Run by experiments/reproduce.py (parts pt_base, pt_sweeps, pt_table1 (protocol b), pt_table2, pt_table1_docs (protocol a)), which caches every run:

    python experiments/reproduce.py smoke --only pt_base pt_sweeps pt_table1 pt_table2 pt_table1_docs   # the smoke test of this regime
    python experiments/reproduce.py full --only pt_table1     # one part (it reuses the finished runs it needs)

Every choice is made on dev, seed 0: the CPT lr, K, rho and the replay ratio in mixed CPT (the ratio by the mean
of new and known people's dev EM, the others by new people's dev EM), the QA-tuning lr of protocol (a), and
Table 2's fine-tuning lr (one_stage's stage-1 dev EM). The test splits are read once, at a run's end.
Table 2 probes with probe.py --fast (exact scoring of the gold answer: the sampling probe's categories up to its
sampling noise, tested against generation, at about 1/13 of its cost).
"""
import json
import os
import subprocess
import sys

import slick  # experiments/slick.py: Table 2, shared with the real-model regime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {  # base_steps: pretraining; *_epochs: passes over the new data; fracs: SliCK's shares of Unknown items; model: the base's size
    "smoke": dict(known=12, longtail=6, new=8, base_steps=150, seeds=[0], cpt_epochs=2, doc_epochs=2, qa_epochs=1,
                  lrs=[1e-3], ks=[2], rhos=[0.05], ratios=[0.25], qa_lrs=[1e-3], eval_every=4, fracs=[0.0, 0.5, 1.0],
                  unk_n=6, unk_epochs=2, ft_lrs=[1e-3], stage_steps=2, select_every=0, probe=["--fast"],
                  model=["--n_layer", "2", "--n_head", "2", "--n_embd", "64", "--vocab_size", "512", "--lr", "6e-3", "--batch_size", "16"]),
    "quick": dict(known=60, longtail=60, new=40, base_steps=400, seeds=[0], cpt_epochs=10, doc_epochs=10, qa_epochs=3,
                  lrs=[3e-4], ks=[4], rhos=[0.05], ratios=[0.25], qa_lrs=[3e-4], eval_every=20, fracs=[0.0, 0.5, 1.0],
                  unk_n=60, unk_epochs=10, ft_lrs=[1e-4], stage_steps=20, select_every=0, probe=["--fast"]),
    "full": dict(known=400, longtail=300, new=200, base_steps=2000, seeds=[0, 1, 2], cpt_epochs=30, doc_epochs=30, qa_epochs=5,
                 lrs=[1e-4, 3e-4, 1e-3], ks=[2, 4, 8], rhos=[0.02, 0.05, 0.1], ratios=[0.1, 0.25, 0.5], qa_lrs=[1e-4, 3e-4, 1e-3],
                 eval_every=50, fracs=[0.0, 0.25, 0.5, 0.75, 1.0], unk_n=300, unk_epochs=20, ft_lrs=[1e-4, 3e-5, 3e-4],
                 stage_steps=60, select_every=10, probe=["--fast"]),
}
PARTS = ["pt_base", "pt_sweeps", "pt_table1", "pt_table2", "pt_table1_docs"]  # the order they run in

def run(parts, x):
    """x: reproduce.py's runner (batch, metrics, curve, save, fact_loss, mean_std, runs, results, mode, device)."""
    cfg = MODES[x.mode]
    res = x.results.setdefault("pretrained", {})
    res["config"] = cfg
    R = lambda name: os.path.join(x.runs, name)  # noqa: E731
    W = R("pt_world")
    if not os.path.exists(os.path.join(W, "qa_tiers.jsonl")):
        subprocess.run([sys.executable, "data/bios/tiers.py", "--known", str(cfg["known"]), "--longtail", str(cfg["longtail"]),
                        "--new", str(cfg["new"]), "--out_dir", W], cwd=ROOT, check=True)
    f = {n: os.path.join(W, f"{n}.jsonl") for n in ("pretrain", "qa_known", "new_docs", "new_para", "new_para_heldout", "qa_new", "qa_slick", "qa_tiers")}
    base = lambda s: R(f"pt_base_s{s}")  # noqa: E731
    seeds, chosen = cfg["seeds"], res.setdefault("chosen", {})
    evaluated = lambda d, qa, name, *extra: ["eval.py", "--model", d, "--qa", qa, "--out", os.path.join(d, name), *extra]  # noqa: E731
    load = lambda d, name: json.load(open(os.path.join(d, name))) if os.path.exists(os.path.join(d, name)) else {}  # noqa: E731

    # the base model: known + long-tail documents in 4 formats (web text has every layout) and the known train people's
    # QA, packed 4 to a sequence (so that few-shot probes look like what it read); then its exact match per tier
    x.batch([(f"pt_base_s{s}", [["train.py", "--data", f["pretrain"], f["qa_known"], "--aug", 4, "--qa_pack", 4, "--max_steps",
                                 cfg["base_steps"], "--seed", s, "--eval_qa", f["qa_known"], "--eval_every", cfg["base_steps"] // 4,
                                 "--out_dir", base(s), *cfg.get("model", [])], evaluated(base(s), f["qa_tiers"], "tiers.json")]) for s in seeds])
    tiers = [load(base(s), "tiers.json").get("by_split", {}) for s in seeds]
    res["base"] = {t: x.mean_std([b[t]["exact_match"] for b in tiers if t in b]) for t in sorted(set().union(*tiers))}
    res["base"]["curve"] = x.curve([f"pt_base_s{s}" for s in seeds])
    x.save()
    if not set(parts) & set(PARTS[1:]):
        return

    def cpt(name, s, data, flags, lr, epochs=cfg["cpt_epochs"], init=None, qa=True):
        """A CPT (or QA-tuning) job from the base: train.py, then the known people's QA (what was kept)."""
        cmd = ["train.py", "--init_from", init or base(s), "--data", *data, "--out_dir", R(name), "--seed", s, "--epochs", epochs,
               "--lr", lr, "--warmup", 10, *flags] + (["--eval_qa", f["qa_new"], "--eval_every", cfg["eval_every"]] if qa else [])
        return (name, [cmd] + ([evaluated(R(name), f["qa_known"], "known.json")] if qa else []))

    def cell(names, diagnostic=True):
        ms = [x.metrics(n) for n in names]
        known = [load(R(n), "known.json").get("by_split", {}) for n in names]
        c = {k: x.mean_std([m.get(k) for m in ms]) for k in ("test_exact_match", "dev_exact_match", "tokens")}
        c |= {f"known_{k}": x.mean_std([kn.get(k, {}).get("exact_match") for kn in known]) for k in ("test", "dev")}
        c |= {"per_seed_test": [m.get("test_exact_match") for m in ms], "per_seed_known_test": [kn.get("test", {}).get("exact_match") for kn in known],
              "curve": x.curve(names)}
        if diagnostic:
            d = [x.fact_loss(R(n), (f["new_docs"], f["new_para_heldout"], f["qa_new"]), x.device) for n in names]
            c |= {f"fact_loss_{k}": x.mean_std([v[k] for v in d]) for k in ("formats", "paraphrases")}
        return c

    lr, K, rho, ratio = (chosen.get(k, d) for k, d in (("lr", cfg["lrs"][0]), ("K", cfg["ks"][0]), ("rho", cfg["rhos"][0]), ("ratio", cfg["ratios"][0])))
    replay = lambda r: ["--replay", f["pretrain"], f["qa_known"], "--replay_ratio", r]  # noqa: E731
    mixed = lambda arm, flags, s, lr_, para=False, epochs=cfg["cpt_epochs"]: cpt(  # noqa: E731
        f"pt_mix_{arm}_lr{lr_}_s{s}", s, [f["new_docs"], *([f["new_para"]] if para else []), f["qa_new"]], flags, lr_, epochs)
    if "pt_sweeps" in parts:  # mixed CPT, seed 0: the lr, then K, rho (and SAM on every 4th step), the replay ratio
        dev = lambda n: x.metrics(n).get("dev_exact_match", -1)  # noqa: E731
        x.batch([mixed("baseline", [], 0, v) for v in cfg["lrs"]])
        lr = chosen["lr"] = max(cfg["lrs"], key=lambda v: dev(f"pt_mix_baseline_lr{v}_s0"))
        x.batch([mixed(f"aug{k}", ["--aug", k], 0, lr) for k in cfg["ks"]] + [mixed(f"sam{r}", ["--sam", "--rho", r], 0, lr) for r in cfg["rhos"]] +
                [mixed(f"replay{r}", replay(r), 0, lr) for r in cfg["ratios"]])
        K = chosen["K"] = max(cfg["ks"], key=lambda k: dev(f"pt_mix_aug{k}_lr{lr}_s0"))
        rho = chosen["rho"] = max(cfg["rhos"], key=lambda r: dev(f"pt_mix_sam{r}_lr{lr}_s0"))
        kept = lambda n: (dev(n) + load(R(n), "known.json").get("by_split", {}).get("dev", {}).get("exact_match", -1)) / 2  # noqa: E731
        ratio = chosen["ratio"] = max(cfg["ratios"], key=lambda r: kept(f"pt_mix_replay{r}_lr{lr}_s0"))
        names = [f"baseline_lr{v}" for v in cfg["lrs"]] + [f"aug{k}_lr{lr}" for k in cfg["ks"]] + [f"sam{r}_lr{lr}" for r in cfg["rhos"]] + \
                [f"replay{r}_lr{lr}" for r in cfg["ratios"]]
        res["sweeps"] = {n: cell([f"pt_mix_{n}_s0"], diagnostic=False) for n in names}
        x.save()
    arms = {"baseline": [], f"aug{K}": ["--aug", K], f"sam{rho}": ["--sam", "--rho", rho], f"aug{K}+sam{rho}": ["--aug", K, "--sam", "--rho", rho],
            "para": [], "baseline_2x_epochs": [], f"sam{rho}_every4": ["--sam", "--rho", rho, "--sam_every", 4],
            f"replay{ratio}": replay(ratio), f"aug{K}+replay{ratio}": ["--aug", K, *replay(ratio)],
            f"aug{K}+sam{rho}+replay{ratio}": ["--aug", K, "--sam", "--rho", rho, *replay(ratio)]}
    epochs_of = lambda arm, e: 2 * e if arm == "baseline_2x_epochs" else e  # noqa: E731
    if "pt_table1" in parts:  # protocol (b), mixed; in two groups of arms, each saved when done
        res.setdefault("table1", {})
        for group in (list(arms)[:4], list(arms)[4:]):
            x.batch([mixed(a, arms[a], s, lr, a == "para", epochs_of(a, cfg["cpt_epochs"])) for a in group for s in seeds])
            for a in group:
                res["table1"].setdefault(a, {})["mixed"] = cell([f"pt_mix_{a}_lr{lr}_s{s}" for s in seeds])
            x.save()
    if "pt_table2" in parts:
        slick.table2(x, cfg, base, f["qa_slick"], "pt", res)
        x.save()
    if "pt_table1_docs" in parts:  # protocol (a): documents only, then QA tuning (after Table 2: it costs as much as (b))
        docs = lambda a: [f["new_docs"], *([f["new_para"]] if a == "para" else [])]  # noqa: E731
        doc_job = lambda a, s: cpt(f"pt_doc_{a}_lr{lr}_s{s}", s, docs(a), arms[a], lr, epochs_of(a, cfg["doc_epochs"]), qa=False)  # noqa: E731
        x.batch([doc_job(a, s) for a in arms for s in seeds])  # protocol (a), step 1: documents only
        qa_tune = lambda a, s, q: cpt(f"pt_seq_{a}_lr{lr}_qa{q}_s{s}", s, [f["qa_new"]], [], q, cfg["qa_epochs"], init=R(f"pt_doc_{a}_lr{lr}_s{s}"))  # noqa: E731
        x.batch([qa_tune("baseline", 0, q) for q in cfg["qa_lrs"]])
        qa_lr = chosen["qa_lr"] = max(cfg["qa_lrs"], key=lambda q: x.metrics(f"pt_seq_baseline_lr{lr}_qa{q}_s0").get("dev_exact_match", -1))
        x.batch([qa_tune(a, s, qa_lr) for a in arms for s in seeds])  # protocol (a), step 2: QA tuning
        for a in arms:
            c = res.setdefault("table1", {}).setdefault(a, {})["sequential"] = cell([f"pt_seq_{a}_lr{lr}_qa{qa_lr}_s{s}" for s in seeds])
            c["tokens"] = x.mean_std([x.metrics(f"pt_doc_{a}_lr{lr}_s{s}").get("tokens", 0) +  # both steps: documents, then QA
                                      x.metrics(f"pt_seq_{a}_lr{lr}_qa{qa_lr}_s{s}").get("tokens", 0) for s in seeds])
        x.save()
