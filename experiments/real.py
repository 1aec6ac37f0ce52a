"""
The real-model regime: Zhu et al. on a real pretrained LLM, SmolLM2-135M-Instruct (data/smollm2/prepare.py; 4-bit
weights dequantized to fp32, a little below the bf16 original). It reads the biographies of new people (the tiered
world's new tier: one document each, facts no model can know) and is then asked about them; what it knew before is
measured on EntityQuestions, SliCK's 12 relations.

  Knowledge acquired, the new test people's exact match, by two protocols. (c) documents only, then
  `eval.py --shots 4` (exemplars: the new dev people's QA): what continued pre-training alone put in. (b) mixed: the
  documents of all new people and the new train people's QA in one run, then the test people zero-shot.
  Knowledge kept: `eval.py --shots 4` after every run on the EntityQuestions test questions the base model
  answered (up to kept_max of them: 100% before training, by construction).
  Arms (table1_arms): baseline, K formats, SAM, both, paraphrases (4 rewrites as versions of a document: one a
  pass, so the baseline's tokens), the baseline at twice the epochs (SAM's compute), SAM on every 4th step and the
  baseline at 1.25x the epochs (its compute: one SAM step of four costs two passes), --lora 16 alone and with K
  formats, and a replay of EntityQuestions train questions the base answers (4 to a sequence, as a few-shot prompt
  reads; in (b) --qa_pack 4 packs the new train people's QA too). Every row: tokens trained and the fact-token
  diagnostic (loss on fact tokens in unseen formats and paraphrases).
  Choices on dev, seed 0, protocol (c): the baseline's lr and epochs, then K, rho and LoRA's lr, by the 4-shot EM of
  the new train and dev people (in (c) none of their QA is trained on; the test people are never looked at); ties go
  to knowledge kept, then to the cheaper setting. Protocol (b) uses the same.
Table 2 (real_table2; SliCK and Li et al.) on SliCK's own data: the base's categories per relation on an
EntityQuestions pool and the probe's noise, SliCK's %Unknown experiment and gradual.py against its baselines, by the
pretrained regime's code (experiments/slick.py) with SmolLM2 as the base and 4-shot evaluation in
gradual.py (the base answers few-shot only; the %Unknown runs are QA-tuned, so zero-shot, as SliCK evaluates).

Run by experiments/reproduce.py, cached and resumable (seed 0 of every arm first, then the other seeds); every
finished run's row is recorded in results.json (committed), so a session without runs/ skips it:

    python data/smollm2/prepare.py && python experiments/reproduce.py full --only real_base real_dev real_table1
    python experiments/reproduce.py full --only real_table2
    python experiments/reproduce.py smoke --only pt_base pt_table2 real_base real_dev real_table1 real_table2  # seconds

In smoke mode the pretrained regime's tiny base stands in for SmolLM2, and its known people's QA for EntityQuestions
(no step of a 135M model fits in seconds): the same code paths, not the same numbers.
"""
import functools
import json
import os
import random
import subprocess
import sys
from typing import NamedTuple

from runner import ROOT, Arm  # (first: it puts the repository root on the path)
import slick  # experiments/slick.py: Table 2, the pretrained regime's code
from data import SLICK_RELATIONS

SMOLLM2 = os.path.join(ROOT, "data", "smollm2", "SmolLM2-135M-Instruct")
# new: new people (0: the pretrained regime's smoke world); eq_per_split: EntityQuestions items a relation and split;
# kept_split: the split the kept set comes from (smoke: train, the only one its tiny base answers 4-shot)
MODES = {
    "smoke": dict(new=0, eq_per_split=0, kept_split="train", kept_max=20, replay_max=20, seeds=[0], lrs=[1e-3],
                  epochs=[1], ks=[2], rhos=[0.05], lora_lrs=[3e-3], replay_ratio=0.25, batch=8, small_rhos=[0.01, 0.02],
                  slick=dict(per_split=0, seeds=[0], fracs=[0.0, 0.5, 1.0], unk_n=6, unk_epochs=2, ft_lrs=[1e-3],
                             stage_steps=2, select_every=0, probe=["--fast"])),
    "quick": dict(new=40, eq_per_split=100, kept_split="test", kept_max=150, replay_max=150, seeds=[0], lrs=[3e-4],
                  epochs=[8], ks=[4], rhos=[0.05], lora_lrs=[3e-3], replay_ratio=0.25, batch=8, small_rhos=[0.01, 0.02],
                  slick=dict(per_split=20, seeds=[0], fracs=[0.0, 0.5, 1.0], unk_n=50, unk_epochs=10, ft_lrs=[3e-5],
                             stage_steps=30, select_every=0, probe=["--fast"])),
    "full": dict(new=40, eq_per_split=200, kept_split="test", kept_max=300, replay_max=300, seeds=[0, 1, 2],
                 lrs=[3e-4, 1e-3], epochs=[8, 16], ks=[2, 4, 8], rhos=[0.05, 0.1], lora_lrs=[1e-3, 3e-3],
                 replay_ratio=0.25, batch=8, small_rhos=[0.01, 0.02],
                 slick=dict(per_split=30, seeds=[0, 1, 2], fracs=[0.0, 0.25, 0.5, 0.75, 1.0], unk_n=100,
                            unk_epochs=10, ft_lrs=[3e-5, 1e-5, 1e-4], stage_steps=40, select_every=10,
                            probe=["--fast"])),
}
PARTS = ["real_base", "real_dev", "real_table1", "real_table2"]
PROTOCOLS = ["docs", "mixed"]  # (c) documents only, then 4-shot; (b) mixed: documents and the train people's QA


class Files(NamedTuple):
    """The regime's inputs: the base model, the new people's documents, paraphrases (trained on / held out) and QA,
    the knowledge QA file (EntityQuestions), and the kept and replay sets made from what the base answers."""
    base: str
    new_docs: str
    new_para: str
    new_para_heldout: str
    qa_new: str
    knowledge: str
    kept: str
    replay: str


def grid_arms(cfg, f):
    """The dev grid's first step: the baseline at every lr and epochs."""
    return [Arm("baseline", [], [f.new_docs], lr, e) for lr in cfg["lrs"] for e in cfg["epochs"]]


def dev_arms(cfg, f, lr, epochs):
    """The dev grid's arms after the baseline's lr and epochs, by what each chooses (chosen's key, then the value):
    K formats, SAM at each rho, LoRA at each lr."""
    docs = [f.new_docs]
    return {"K": {k: Arm(f"aug{k}", ["--aug", k], docs, lr, epochs) for k in cfg["ks"]},
            "rho": {r: Arm(f"sam{r}", ["--sam", "--rho", r], docs, lr, epochs) for r in cfg["rhos"]},
            "lora_lr": {v: Arm("lora16", ["--lora", 16], docs, v, epochs) for v in cfg["lora_lrs"]}}


def table1_arms(cfg, f, chosen, replay_n):
    """Table 1's arms, in the order they run and are reported; chosen: the dev choices. run="baseline": a baseline
    run at more epochs (its name says baseline, so a run of the dev grid at those epochs serves)."""
    lr, epochs, K, rho, lora_lr = (chosen[k] for k in ("lr", "epochs", "K", "rho", "lora_lr"))
    sam, docs, para = ["--sam", "--rho", rho], [f.new_docs], [f.new_docs, f.new_para]
    replay = ["--replay", f.replay, "--replay_ratio", cfg["replay_ratio"], "--qa_pack", 4]
    arms = [Arm("baseline", [], docs, lr, epochs),
            Arm(f"aug{K}", ["--aug", K], docs, lr, epochs),
            Arm(f"sam{rho}", sam, docs, lr, epochs),
            Arm(f"aug{K}+sam{rho}", ["--aug", K, *sam], docs, lr, epochs),
            Arm("para", [], para, lr, epochs),
            Arm("baseline_2x_epochs", [], docs, lr, 2 * epochs, run="baseline"),  # SAM's compute
            Arm(f"sam{rho}_every4", [*sam, "--sam_every", 4], docs, lr, epochs),
            Arm("baseline_1.25x_epochs", [], docs, lr, epochs * 5 // 4, run="baseline"),  # SAM every 4th's compute
            Arm("lora16", ["--lora", 16], docs, lora_lr, epochs),
            Arm(f"lora16+aug{K}", ["--lora", 16, "--aug", K], docs, lora_lr, epochs),
            Arm("replay", replay, docs, lr, epochs)]
    # left out: replay where the base answers nothing (nothing to replay), 1.25x the epochs where that is no more
    # epochs (smoke: it would be the baseline's own run)
    return [a for a in arms if (a.name != "replay" or replay_n)
            and (a.name != "baseline_1.25x_epochs" or a.epochs != epochs)]


def run_name(protocol, arm, seed):
    """A run's name: real_{protocol}_{arm}_lr{lr}_e{epochs}_s{seed} (arm: arm.run where it is another arm's run), and
    _bf16 for a run in bf16."""
    return f"real_{protocol}_{arm.run or arm.name}_lr{arm.lr}_e{arm.epochs}_s{seed}" + precision(arm)[1]


def precision(arm):
    """(the flags that ask every script of an arm's runs for its precision, its run names' suffix)."""
    return (["--dtype", arm.dtype], "_bf16" if arm.dtype == "bfloat16" else "") if arm.dtype else ([], "")


def run(parts, runner):
    """The real-model parts asked for; the base's measurements always (every part needs them)."""
    cfg = MODES[runner.mode]
    res = runner.results.setdefault("real", {})
    res["config"] = cfg
    f = setup(cfg, runner)
    measure_base(cfg, runner, f, res)
    res.setdefault("runs", {})  # every finished run's row: results.json is committed, so a later session skips it
    res.setdefault("chosen", {})
    if "real_dev" in parts:
        dev(cfg, runner, f, res)
    if "real_table1" in parts:
        table1(cfg, runner, f, res)
    if "real_table2" in parts:
        table2(cfg, runner, f, slick_pool(cfg, runner), res)


def files(cfg, runner):
    """Where the inputs are (setup makes them): real, SmolLM2 and EntityQuestions; smoke, the pretrained regime's
    smoke world and base (its pt_base part)."""
    if cfg["new"]:
        w, base, knowledge = runner.path("real_world"), SMOLLM2, runner.path("real_world/eq.jsonl")
    else:
        w = runner.path("pt_world")
        base, knowledge = runner.path("pt_base_s0"), os.path.join(w, "qa_known.jsonl")
    return Files(base, *(os.path.join(w, f"{n}.jsonl") for n in ("new_docs", "new_para", "new_para_heldout", "qa_new")),
                 knowledge, runner.path("real_kept.jsonl"), runner.path("real_replay.jsonl"))


def setup(cfg, runner):
    """The inputs (files), made where missing: the new people (only the new tier is used: known and long-tail as small
    as allowed), EntityQuestions, SmolLM2."""
    f = files(cfg, runner)
    if cfg["new"]:
        w = runner.path("real_world")
        if not os.path.exists(os.path.join(w, "qa_tiers.jsonl")):
            subprocess.run([sys.executable, "data/bios/tiers.py", "--known", "4", "--longtail", "3", "--new",
                            str(cfg["new"]), "--out_dir", w], cwd=ROOT, check=True)
        entityquestions(f.knowledge, cfg["eq_per_split"], runner.eq_archive)
        if not os.path.exists(os.path.join(SMOLLM2, "model.safetensors")):
            subprocess.run([sys.executable, "data/smollm2/prepare.py"], cwd=ROOT, check=True)
    return f


def slick_pool(cfg, runner):
    """The SliCK pool: EntityQuestions, 12 relations, per_split items a relation and split (smoke: the tiered world's
    pool)."""
    if not cfg["new"]:
        return os.path.join(runner.path("pt_world"), "qa_slick.jsonl")
    return entityquestions(runner.path("real_world/eq_slick.jsonl"), cfg["slick"]["per_split"], runner.eq_archive)


def entityquestions(path, per_split, archive=None):
    """SliCK's 12 relations of EntityQuestions, per_split items a relation and split (seeded), at path once: from the
    release archive given (--eq_archive), else the one data/entityquestions/prepare.py downloads and keeps."""
    if not os.path.exists(path):
        code = subprocess.run([sys.executable, "data/entityquestions/prepare.py",
                               *(["--archive", archive] if archive else []), "--relations", *SLICK_RELATIONS,
                               "--max_per_split", str(per_split), "--out", path], cwd=ROOT).returncode
        if code:  # prepare.py said why and how to get the archive
            sys.exit(2)
    return path


def evaluated(model, qa, out, *extra):
    """eval.py, 4-shot (exemplars: the file's dev split), results to out."""
    return ["eval.py", "--model", model, "--qa", qa, "--out", out, "--shots", 4, *extra]


def answered(knowledge, eval_json, split, n_max, path):
    """Write the dev split (the exemplar pool) and up to n_max items of `split` that the base answered (eval_json:
    its 4-shot predictions) to path; return how many there were. Same pool, same exemplars: 100% for the base."""
    right = {p["id"] for p in json.load(open(eval_json))["predictions"] if p["exact_match"]}
    rows = [json.loads(line) for line in open(knowledge) if line.strip()]
    chosen = [r for r in rows if r["split"] == split and r["id"] in right]
    chosen = sorted(random.Random(0).sample(chosen, min(n_max, len(chosen))), key=lambda r: r["id"])
    with open(path + ".tmp", "w") as out:
        out.writelines(json.dumps(r) + "\n" for r in [r for r in rows if r["split"] == "dev"] + chosen)
    os.replace(path + ".tmp", path)
    return len(chosen)


def measure_base(cfg, runner, f, res):
    """The base: what it answers of EntityQuestions (test: the kept set; train: the replay arm's data), and its 4-shot
    EM on the new people (the floor: it cannot know them); then the kept set asked as every run asks it."""
    out = runner.path("real_base")
    runner.batch([("real_base", [evaluated(f.base, f.knowledge, f"{out}/test.json", "--split", "test"),
                                 evaluated(f.base, f.knowledge, f"{out}/train.json", "--split", "train"),
                                 evaluated(f.base, f.qa_new, f"{out}/new.json")])])
    base_dir, split = runner.path("real_base"), cfg["kept_split"]
    res["base"] = {"kept_n": answered(f.knowledge, os.path.join(base_dir, f"{split}.json"), split, cfg["kept_max"],
                                      f.kept),
                   "replay_n": answered(f.knowledge, os.path.join(base_dir, "train.json"), "train", cfg["replay_max"],
                                        f.replay),
                   "knowledge_test_em": runner.read("real_base", "test.json").get("exact_match"),
                   "new_4shot": {k: v["exact_match"]
                                 for k, v in runner.read("real_base", "new.json").get("by_split", {}).items()}}
    if res["base"]["kept_n"]:  # the base answers all of it (same exemplars)
        runner.batch([("real_base_kept", [evaluated(f.base, f.kept, runner.path("real_base_kept/kept.json"),
                                                    "--split", split)])])
        res["base"]["kept_em"] = runner.read("real_base_kept", "kept.json").get("exact_match")
    runner.save()


def job(cfg, runner, f, res, protocol, arm, seed):
    """One run from the base: train.py on the arm's data (mixed: and the new train people's QA), then (docs) the new
    people 4-shot, then the kept set 4-shot."""
    name, mixed, dtype = run_name(protocol, arm, seed), protocol == "mixed", precision(arm)[0]
    train = ["train.py", "--init_from", f.base, "--data", *arm.data, *([f.qa_new] if mixed else []),
             "--out_dir", runner.path(name), "--seed", seed, "--epochs", arm.epochs, "--lr", arm.lr, "--warmup", 5,
             "--batch_size", cfg["batch"], *arm.flags, *dtype] + (["--eval_qa", f.qa_new] if mixed else [])
    evals = [] if mixed else [evaluated(runner.path(name), f.qa_new, runner.path(f"{name}/new.json"), *dtype)]
    if res["base"]["kept_n"]:  # (a base that answers nothing keeps nothing: no kept set to ask)
        evals.append(evaluated(runner.path(name), f.kept, runner.path(f"{name}/kept.json"), "--split",
                               cfg["kept_split"], *dtype))
    return name, [train, *evals]


def todo(res, jobs, key="tokens"):
    """The jobs not in results.json yet (key: what a recorded run has; a table-1 run also its fact-token losses)."""
    return [j for j in jobs if key not in res["runs"].get(j[0], {})]


def row(runner, name):
    """Acquired (test; dev), kept, tokens of a finished run. Docs: 4-shot EM, and "dev" the train and dev people
    together (their QA is never trained on in (c): 22 people, not 4); mixed: train.py's zero-shot EM."""
    m, new = runner.metrics(name), runner.read(name, "new.json").get("by_split", {})
    held = [new[k] for k in ("train", "dev") if k in new]
    if "test" in new:
        acq = {"test": new["test"]["exact_match"],
               "dev": sum(v["exact_match"] * v["n"] for v in held) / sum(v["n"] for v in held)}
    else:
        acq = {k: m.get(f"{k}_exact_match") for k in ("test", "dev")}
    return {"test": acq.get("test"), "dev": acq.get("dev"), "kept": runner.read(name, "kept.json").get("exact_match"),
            "tokens": m.get("tokens"), "dtype": m.get("dtype")}


def record(runner, f, res, name, diag=False):
    """A finished run's row (diag: and its fact-token losses) into results.json, then its big files off the disk:
    its 1.1 GB of optimizer state (no run here is resumed once done), and with diag its model too (once its
    evaluations and diagnostic are on disk: what is reported stays)."""
    loss = runner.fact_loss(name, (f.new_docs, f.new_para_heldout, f.qa_new)) if diag else {}
    res["runs"][name] = row(runner, name) | {f"fact_loss_{k}": v for k, v in loss.items()}
    for big in ("trainer_state.pt",) + (("model.safetensors", "lora.safetensors") if diag else ()):
        if os.path.exists(os.path.join(runner.path(name), big)):
            os.remove(os.path.join(runner.path(name), big))
    runner.save()


def pick(res, options, names):
    """The option whose run has the best dev EM; ties: more kept, then the first (the cheaper) option."""
    rows = [res["runs"][n] for n in names]
    return max(zip(options, rows), key=lambda o: ((o[1]["dev"] or -1), (o[1]["kept"] or -1), -options.index(o[0])))[0]


def dev(cfg, runner, f, res):
    """Seed 0, protocol (c): lr x epochs of the baseline, then K, rho and LoRA's lr."""
    chosen, then = res["chosen"], functools.partial(record, runner, f, res)
    grid = grid_arms(cfg, f)
    runner.batch(todo(res, [job(cfg, runner, f, res, "docs", a, 0) for a in grid]), then=then)
    best = pick(res, grid, [run_name("docs", a, 0) for a in grid])
    chosen.update(lr=best.lr, epochs=best.epochs)
    sweep = dev_arms(cfg, f, best.lr, best.epochs)
    arms = [a for options in sweep.values() for a in options.values()]
    runner.batch(todo(res, [job(cfg, runner, f, res, "docs", a, 0) for a in arms]), then=then)
    chosen.update({key: pick(res, list(options), [run_name("docs", a, 0) for a in options.values()])
                   for key, options in sweep.items()})
    res["dev"] = {n: res["runs"][n] for n in [run_name("docs", a, 0) for a in grid + arms]}
    runner.save()


def chosen_on_dev(cfg, res):
    """The dev grid's choices (its first options where real_dev has not run: smoke, a part alone)."""
    return {k: res["chosen"].get(k, cfg[d][0]) for k, d in (("lr", "lrs"), ("epochs", "epochs"), ("K", "ks"),
                                                            ("rho", "rhos"), ("lora_lr", "lora_lrs"))}


def table1(cfg, runner, f, res):
    """Every arm in both protocols, seed 0 whole first (the first look), then arm by arm in order (the claims first:
    a cell's verdict needs all its seeds), (c) before (b); one queue, so both cores stay busy across the seams."""
    arms, seeds = table1_arms(cfg, f, chosen_on_dev(cfg, res), res["base"]["replay_n"]), cfg["seeds"]
    res.setdefault("table1", {})
    order = [(s, a) for s in seeds[:1] for a in arms] + [(s, a) for a in arms for s in seeds[1:]]
    runner.batch(todo(res, [job(cfg, runner, f, res, p, a, s) for s, a in order for p in PROTOCOLS],
                      "fact_loss_formats"), then=functools.partial(tabulate, cfg, runner, f, res, arms))


def tabulate(cfg, runner, f, res, arms, name, table="table1", protocols=PROTOCOLS):
    """Record a finished run, then every cell again from the runs done so far (seeds in order, some may be missing:
    a missing seed is None, so seeds pair up in the report)."""
    record(runner, f, res, name, diag=True)
    for a in arms:
        for p in protocols:
            rows = [res["runs"].get(run_name(p, a, s), {}) for s in cfg["seeds"]]
            rows = [r if "fact_loss_formats" in r else {} for r in rows]
            if any(rows):
                res[table].setdefault(a.name, {})[p] = table1_cell(runner, rows)
    runner.save()


def table1_cell(runner, rows):
    """A Table 1 cell from its runs' rows, one a seed ({}: not done yet)."""
    keys = ("test", "dev", "kept", "tokens", "fact_loss_formats", "fact_loss_paraphrases")
    return {k: runner.mean_std([r.get(k) for r in rows]) for k in keys} | {
        "per_seed_test": [r.get("test") for r in rows], "per_seed_kept": [r.get("kept") for r in rows],
        "seeds": sum(map(bool, rows))}


def table2(cfg, runner, f, pool, res):
    """SliCK and gradual learning on EntityQuestions (experiments/slick.py, 4-shot evals for gradual), seed by seed,
    each whole and saved before the next starts; the base's category shares per relation (from seed 0's probes)."""
    sc = cfg["slick"]
    t2 = res.setdefault("slick", {"config": sc})
    for n in range(1, len(sc["seeds"]) + 1):
        slick.table2(runner, {**sc, "seeds": sc["seeds"][:n]}, {s: f.base for s in sc["seeds"]}, pool, "real", t2,
                     ["--eval_shots", 4])
        if "shares_by_relation" not in t2:  # from a recorded run: the same every time (and no pool read to plan)
            cats = t2["runs"][f"real_g_one_stage_lr{sc['ft_lrs'][0]}_s{sc['seeds'][0]}"]["categories"]
            t2["shares_by_relation"] = {split: slick.shares(cats[split], pool) for split in ("train", "test")}
        t2["seeds_done"] = n
        runner.save()
