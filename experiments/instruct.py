"""
Zhu et al.'s instruction-tuning claim: formats of the QA prompt (train.py --qa_aug K) and SAM, applied while tuning on
QA pairs after continued pre-training on documents (protocol (a), Jiang et al.'s setting 2), in every regime.

  real_it, SmolLM2-135M-Instruct, every run in bf16 (experiments/bf16.py checks that bf16 does not change the science).
  CPT: the documents of all 40 new people at the real regime's choices (lr 3e-4, 16 epochs: its protocol (c) runs, in
  bf16), one checkpoint a seed, shared by the IT arms (with K formats, the full recipe's). IT: the 18 new train
  people's QA. Measured: the 18 test people's questions zero-shot (108) in the canonical prompt and in a format no run
  trains on (augment.HELDOUT_QA_FORMAT: do prompt formats generalize to a new prompt?), and what was kept (the real
  regime's kept set, 4-shot). Chosen on dev (the 4 dev people's 24 questions, seed 0): IT's lr and epochs, then SAM's
  radius; ties go to more kept, then to the cheaper option.
  pt_it, the tiny base pretrained here (experiments/pretrained.py): the same arms after its protocol (a)'s documents-
  only CPT (pt_doc_baseline, with its K formats for the full recipe), at its QA lr and epochs; kept: the known people.
  Precision: what auto picks for the 64-wide base, fp32 (bf16 pays from 256 wide).
  it, from scratch (experiments/scratch.py): the CPT is Table 1's protocol (a) documents-only runs (pre_baseline,
  pre_aug{K}), the IT its QA tuning (lr chosen on dev, 5 epochs); no kept set (the model knew nothing before). Then
  the same from documents and paraphrases (pre_para, pre_para+aug{K}: table it_para), where (a) is off the floor.

  Arms (it_arms): the baseline, --qa_aug 8, --sam, --qa_aug 8 --sam, the baseline at twice the IT epochs (SAM's
  compute), and the full recipe (CPT with K formats, then IT with --qa_aug 8 --sam). Three seeds a cell.

    python experiments/reproduce.py full --only real_base real_it     # SmolLM2: about 1.3 h on 2 cores
    python experiments/reproduce.py full --only pt_base pt_it         # the tiny base: about 1 h (its base models)
    python experiments/reproduce.py full --only it                    # from scratch (after table1): about 25 min
    python experiments/reproduce.py smoke --only pt_base real_base real_it pt_it     # seconds
"""
import functools
import os

from runner import Arm  # (first: it puts the repository root on the path)
import bf16
import pretrained
import real
import scratch

MODES = {  # it_lrs x it_epochs: the dev grid of the real model's IT (the tiny base's are its regime's own); rhos: SAM's
    "smoke": dict(it_lrs=[1e-3], it_epochs=[1], rhos=[0.05], qa_aug=8),
    "quick": dict(it_lrs=[3e-4], it_epochs=[5], rhos=[0.02], qa_aug=8),
    "full": dict(it_lrs=[1e-4, 3e-4], it_epochs=[5, 10], rhos=[0.01, 0.02, 0.05], qa_aug=8),
}
PARTS = ["real_it", "pt_it", "it"]  # it: from scratch


def it_arms(cfg, qa, lr, epochs, rho, cpt, cpt_formats, dtype=None):
    """The table's arms, each (CPT arm its checkpoint comes from, IT arm), in the order they run and are reported."""
    sam, aug = ["--sam", "--rho", rho], ["--qa_aug", cfg["qa_aug"]]
    return [(cpt, Arm("baseline", [], [qa], lr, epochs, dtype=dtype)),
            (cpt, Arm(f"qa_aug{cfg['qa_aug']}", aug, [qa], lr, epochs, dtype=dtype)),
            (cpt, Arm(f"sam{rho}", sam, [qa], lr, epochs, dtype=dtype)),
            (cpt, Arm(f"qa_aug{cfg['qa_aug']}+sam{rho}", [*aug, *sam], [qa], lr, epochs, dtype=dtype)),
            (cpt, Arm("baseline_2x_epochs", [], [qa], lr, 2 * epochs, run="baseline", dtype=dtype)),  # SAM's compute
            (cpt_formats, Arm(f"{cpt_formats.name}+qa_aug{cfg['qa_aug']}+sam{rho}", [*aug, *sam], [qa], lr, epochs,
                              dtype=dtype))]


def run_name(prefix, cpt, arm, seed):
    """An IT run's name: {prefix}_it_{its CPT's run name's arm}_{arm}_lr{lr}_e{epochs}_s{seed}, _bf16 in bf16."""
    return f"{prefix}_it_{cpt.name}_{arm.run or arm.name}_lr{arm.lr}_e{arm.epochs}_s{seed}" + real.precision(arm)[1]


def run(parts, runner):
    """The parts asked for: real_it needs the real model's base measurements (real.py), pt_it the tiny base models,
    it the from-scratch regime's world and (a) runs."""
    cfg = MODES[runner.mode]
    if "real_it" in parts:
        rcfg, f, res = bf16.real_in_bf16(runner, "real_it")
        real_it(cfg, rcfg, runner, f, res)
    if "pt_it" in parts:
        pcfg, res = pretrained.MODES[runner.mode], runner.results.setdefault("pretrained", {})
        w = pretrained.make_world(pcfg, runner)
        pretrained.base_models(pcfg, runner, w, res)
        pt_it(cfg, pcfg, runner, w, res)
    if "it" in parts:
        scratch_it(cfg, scratch.MODES[runner.mode], runner)


def it_job(runner, name, init, arm, seed, qa, kept, extra):
    """IT from a CPT checkpoint: train.py on the train people's QA (dev and test zero-shot at its end), then the test
    people in the held-out prompt format, then the kept set (kept: its eval.py flags: file and how to ask; None: a
    model from scratch knew nothing before; extra: the regime's train.py flags)."""
    dtype, out = real.precision(arm)[0], runner.path(name)
    train = ["train.py", "--init_from", init, "--data", *arm.data, "--eval_qa", qa, "--out_dir", out, "--seed", seed,
             "--epochs", arm.epochs, "--lr", arm.lr, *extra, *arm.flags, *dtype]
    heldout = ["eval.py", "--model", out, "--qa", qa, "--split", "test", "--prompt_format", "heldout", "--out",
               f"{out}/heldout.json", *dtype]
    return name, [train, heldout] + ([["eval.py", "--model", out, *kept, "--out", f"{out}/kept.json", *dtype]]
                                     if kept else [])


def record_it(runner, res, name):
    """A finished IT run's row into results.json (test, dev, held-out format, kept, tokens, dtype); its weights off."""
    m, kept = runner.metrics(name), runner.read(name, "kept.json").get("by_split", {})
    res["runs"][name] = {"test": m.get("test_exact_match"), "dev": m.get("dev_exact_match"), "tokens": m.get("tokens"),
                         "heldout": runner.read(name, "heldout.json").get("exact_match"), "dtype": m.get("dtype"),
                         "kept": runner.read(name, "kept.json").get("exact_match"),
                         "kept_by_split": {k: v["exact_match"] for k, v in kept.items()}}
    for big in ("trainer_state.pt", "model.safetensors"):
        if os.path.exists(os.path.join(runner.path(name), big)):
            os.remove(os.path.join(runner.path(name), big))
    runner.save()


def pick(res, options, names):
    """The option whose run has the best dev EM; ties: more kept, then the first (the cheaper) option."""
    rows = [res["runs"][n] for n in names]
    return max(zip(options, rows), key=lambda o: (o[1]["dev"] or -1, o[1]["kept"] or -1, -options.index(o[0])))[0]


def tabulate(runner, res, table, seeds, arms, prefix):
    """Every cell of an IT table from the runs recorded so far (a missing seed is None, so seeds pair up)."""
    for cpt, arm in arms:
        rows = [res["runs"].get(run_name(prefix, cpt, arm, s), {}) for s in seeds]
        keys = ("test", "dev", "heldout", "kept", "tokens")
        table[arm.name] = {k: runner.mean_std([r.get(k) for r in rows]) for k in keys} | {
            f"per_seed_{k}": [r.get(k) for r in rows] for k in keys[:4]} | {"seeds": sum(map(bool, rows)),
                                                                             "dtype": arm.dtype or "float32"}
    runner.save()


def real_it(cfg, rcfg, runner, f, res):
    """SmolLM2: the CPT checkpoints, IT's dev grid and SAM's radius (seed 0), then every arm on every seed."""
    chosen, seeds, bf16 = real.chosen_on_dev(rcfg, res), rcfg["seeds"], "bfloat16"
    cpt = Arm("baseline", [], [f.new_docs], chosen["lr"], chosen["epochs"], dtype=bf16)
    cpt_k = Arm(f"aug{chosen['K']}", ["--aug", chosen["K"]], [f.new_docs], chosen["lr"], chosen["epochs"], dtype=bf16)
    it = res.setdefault("it", {"config": cfg, "chosen": {}})
    kept = ["--qa", f.kept, "--split", rcfg["kept_split"], "--shots", 4]
    job = functools.partial(real_job, runner, f, res, rcfg, kept)
    then, cpt_job = functools.partial(record_it, runner, res), functools.partial(real.job, rcfg, runner, f, res, "docs")
    then_cpt = functools.partial(real.record, runner, f, res)  # (a CPT run keeps its weights: the IT runs start there)
    grid = [Arm("baseline", [], [f.qa_new], lr, e, dtype=bf16) for lr in cfg["it_lrs"] for e in cfg["it_epochs"]]
    after_cpt(runner, res, [job(cpt, a, 0) for a in grid], [cpt_job(cpt, 0)], then, then_cpt)
    best = pick(res, grid, [run_name("real", cpt, a, 0) for a in grid])
    sams = [Arm(f"sam{r}", ["--sam", "--rho", r], [f.qa_new], best.lr, best.epochs, dtype=bf16) for r in cfg["rhos"]]
    after_cpt(runner, res, [job(cpt, a, 0) for a in sams], [cpt_job(cpt, 0)], then, then_cpt)
    rho = pick(res, cfg["rhos"], [run_name("real", cpt, a, 0) for a in sams])
    it["chosen"] = {"lr": best.lr, "epochs": best.epochs, "rho": rho}
    it["dev"] = {n: res["runs"][n] for n in [run_name("real", cpt, a, 0) for a in grid + sams]}
    arms = it_arms(cfg, f.qa_new, best.lr, best.epochs, rho, cpt, cpt_k, dtype=bf16)
    for s in seeds:  # seed by seed: its CPT checkpoints, then its arms
        after_cpt(runner, res, [job(c, a, s) for c, a in arms], [cpt_job(c, s) for c in (cpt, cpt_k)], then, then_cpt)
        tabulate(runner, res, it.setdefault("table", {}), seeds, arms, "real")


def after_cpt(runner, res, jobs, cpt_jobs, then, then_cpt):
    """The IT jobs not recorded yet, after the CPT jobs: those not recorded yet, and those whose weights are not here
    while an IT job to run starts from them (a later session, without the runs folder, trains them again)."""
    jobs = real.todo(res, jobs)
    starts = {cmds[0][cmds[0].index("--init_from") + 1] for _, cmds in jobs}
    runner.batch([(n, cmds) for n, cmds in cpt_jobs if (n, cmds) in real.todo(res, cpt_jobs) or runner.path(n) in starts
                  and not os.path.exists(os.path.join(runner.path(n), "model.safetensors"))], then=then_cpt)
    runner.batch(jobs, then=then)


def real_job(runner, f, res, rcfg, kept, cpt, arm, seed):
    """An IT job of the real model from its CPT run of the seed."""
    init = runner.path(real.run_name("docs", cpt, seed))
    return it_job(runner, run_name("real", cpt, arm, seed), init, arm, seed, f.qa_new, kept,
                  ["--warmup", 5, "--batch_size", rcfg["batch"]])


def pt_it(cfg, pcfg, runner, w, res):
    """The tiny base: its protocol (a) CPT (documents only; with K formats), then the IT table (small_it)."""
    chosen = res.get("chosen", {})
    lr, K = chosen.get("lr", pcfg["lrs"][0]), chosen.get("K", pcfg["ks"][0])
    cpt = Arm("baseline", [], [w.new_docs], lr, pcfg["doc_epochs"])
    cpt_k = Arm(f"aug{K}", ["--aug", K], [w.new_docs], lr, pcfg["doc_epochs"])
    runner.batch([pretrained.doc_job(pcfg, runner, w, c, s) for c in (cpt, cpt_k) for s in pcfg["seeds"]])
    job = functools.partial(pt_job, runner, w, ["--qa", w.qa_known, "--split", "test"])
    small_it(cfg, runner, res, "pt", pcfg["seeds"], job, w.qa_new, chosen.get("qa_lr", pcfg["qa_lrs"][0]),
             pcfg["qa_epochs"], cpt, cpt_k)


def scratch_it(cfg, scfg, runner):
    """From scratch: protocol (a)'s documents-only runs are the CPT (pre_baseline, pre_aug{K}: Table 1's; made again
    where an IT run to make starts from them), then the IT table (small_it) at (a)'s QA lr and epochs; no kept set
    (the model knew nothing before its documents). Again from documents and paraphrases (pre_para, pre_para+aug{K}):
    there (a) extracts about 30%, off the floor of documents alone (about 2%)."""
    w, chosen = scratch.make_world(runner, "world", scfg["people"]), runner.results.get("chosen", {})
    K, docs, para = chosen.get("K", scfg["ks"][-1]), [w.docs], [w.docs, w.para_train]
    cpts = {"it": (Arm("baseline", [], docs), Arm(f"aug{K}", ["--aug", K], docs)),
            "it_para": (Arm("para", [], para), Arm(f"para+aug{K}", ["--aug", K], para))}
    runner.batch([scratch.pre_job(scfg, runner, c, s) for pair in cpts.values() for c in pair for s in scfg["seeds"]],
                 keep=True)
    job = functools.partial(scratch_job, scfg, runner, w)
    for key, (cpt, cpt_k) in cpts.items():
        small_it(cfg, runner, runner.results, "scratch", scfg["seeds"], job, w.qa,
                 chosen.get("qa_lr", scfg["qa_lrs"][0]), scfg["qa_epochs"], cpt, cpt_k, keep=True, key=key)
    scratch.made(runner, "it")


def small_it(cfg, runner, res, prefix, seeds, job, qa, lr, epochs, cpt, cpt_k, keep=False, key="it"):
    """A small regime's IT table (res[key]; its runs' rows in res["runs"]): SAM's radius on dev (seed 0), then every
    arm on every seed. job(cpt, arm, seed): an IT job from the seed's CPT run; keep: Runner.batch's (the from-scratch
    regime's jobs are kept with their commit, and a CPT run whose weights are gone is made again)."""
    it, then = res.setdefault(key, {"config": cfg, "chosen": {}}), functools.partial(record_it, runner, res)
    res.setdefault("runs", {})
    sams = [Arm(f"sam{r}", ["--sam", "--rho", r], [qa], lr, epochs) for r in cfg["rhos"]]
    base = Arm("baseline", [], [qa], lr, epochs)
    runner.batch([job(cpt, a, 0) for a in [base, *sams] if run_name(prefix, cpt, a, 0) not in res["runs"]], then=then,
                 keep=keep)
    rho = pick(res, cfg["rhos"], [run_name(prefix, cpt, a, 0) for a in sams])
    it["chosen"] = {"lr": lr, "epochs": epochs, "rho": rho}
    arms = it_arms(cfg, qa, lr, epochs, rho, cpt, cpt_k)
    runner.batch([job(c, a, s) for s in seeds for c, a in arms if run_name(prefix, c, a, s) not in res["runs"]],
                 then=then, keep=keep)
    tabulate(runner, res, it.setdefault("table", {}), seeds, arms, prefix)


def pt_job(runner, w, kept, cpt, arm, seed):
    """An IT job of the tiny base from its documents-only CPT run of the seed (train.py's batch, as its QA tuning)."""
    init = runner.path(pretrained.run_name("doc", cpt, seed))
    return it_job(runner, run_name("pt", cpt, arm, seed), init, arm, seed, w.qa_new, kept, ["--warmup", 10])


def scratch_job(scfg, runner, w, cpt, arm, seed):
    """An IT job from scratch from the seed's documents-only run (protocol (a)'s QA tuning, its batch and warm-up)."""
    init = runner.path(scratch.run_name(runner, "pre", cpt, seed))
    return it_job(runner, run_name("scratch", cpt, arm, seed), init, arm, seed, w.qa, None,
                  ["--warmup", 5, "--batch_size", scfg["batch"], *scfg.get("model", [])])
