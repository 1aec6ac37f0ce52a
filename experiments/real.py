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
  Arms: baseline, K formats, SAM, both, paraphrases (4 rewrites as versions of a document: one a pass, so the
  baseline's tokens), the baseline at twice the epochs (SAM's compute), SAM on every 4th step and the baseline at
  1.25x the epochs (its compute: one SAM step of four costs two passes), --lora 16 alone and
  with K formats, and a replay of EntityQuestions train questions the base answers (4 to a sequence, as a few-shot
  prompt reads; in (b) --qa_pack 4 packs the new train people's QA too). Every row: tokens trained and the fact-token diagnostic (loss on fact tokens in unseen formats
  and paraphrases).
  Choices on dev, seed 0, protocol (c): the baseline's lr and epochs, then K, rho and LoRA's lr, by the 4-shot EM of
  the new train and dev people (in (c) none of their QA is trained on; the test people are never looked at); ties go
  to knowledge kept, then to the cheaper setting. Protocol (b) uses the same.
Table 2 (real_table2; SliCK and Li et al.) on SliCK's own data: the base's categories per relation on an
EntityQuestions pool and the probe's noise, SliCK's %Unknown experiment and gradual.py against its baselines, by the
pretrained regime's code (experiments/slick.py) with SmolLM2 as the base and 4-shot evaluation in
gradual.py (the base answers few-shot only; the %Unknown runs are QA-tuned, so zero-shot, as SliCK evaluates).

Run by experiments/reproduce.py, cached and resumable (seed 0 of every arm first, then the other seeds):

    python data/smollm2/prepare.py && python experiments/reproduce.py full --only real_base real_dev real_table1
    python experiments/reproduce.py full --only real_table2
    python experiments/reproduce.py smoke --only pt_base pt_table2 real_base real_dev real_table1 real_table2   # seconds

In smoke mode the pretrained regime's tiny base stands in for SmolLM2, and its known people's QA for EntityQuestions
(no step of a 135M model fits in seconds): the same code paths, not the same numbers.
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import CATEGORIES, SLICK_RELATIONS  # noqa: E402
import slick  # noqa: E402  (experiments/slick.py: Table 2, the pretrained regime's code)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOLLM2 = os.path.join(ROOT, "data", "smollm2", "SmolLM2-135M-Instruct")
MODES = {  # new: new people (0: the pretrained regime's smoke world); eq_per_split: EntityQuestions items a relation and split;
    # kept_split: the split the kept set comes from (smoke: train, the only one its tiny base answers 4-shot)
    "smoke": dict(new=0, eq_per_split=0, kept_split="train", kept_max=20, replay_max=20, seeds=[0], lrs=[1e-3], epochs=[1], ks=[2], rhos=[0.05],
                  lora_lrs=[3e-3], replay_ratio=0.25, batch=8,
                  slick=dict(per_split=0, seeds=[0], fracs=[0.0, 0.5, 1.0], unk_n=6, unk_epochs=2, ft_lrs=[1e-3], stage_steps=2, select_every=0, probe=["--fast"])),
    "quick": dict(new=40, eq_per_split=100, kept_split="test", kept_max=150, replay_max=150, seeds=[0], lrs=[3e-4], epochs=[8], ks=[4], rhos=[0.05],
                  lora_lrs=[3e-3], replay_ratio=0.25, batch=8,
                  slick=dict(per_split=20, seeds=[0], fracs=[0.0, 0.5, 1.0], unk_n=50, unk_epochs=10, ft_lrs=[3e-5], stage_steps=30, select_every=0, probe=["--fast"])),
    "full": dict(new=40, eq_per_split=200, kept_split="test", kept_max=300, replay_max=300, seeds=[0, 1, 2], lrs=[3e-4, 1e-3], epochs=[8, 16],
                 ks=[2, 4, 8], rhos=[0.05, 0.1], lora_lrs=[1e-3, 3e-3], replay_ratio=0.25, batch=8,
                 slick=dict(per_split=30, seeds=[0, 1, 2], fracs=[0.0, 0.25, 0.5, 0.75, 1.0], unk_n=100, unk_epochs=10, ft_lrs=[3e-5, 1e-5, 1e-4],
                            stage_steps=40, select_every=10, probe=["--fast"])),
}
PARTS = ["real_base", "real_dev", "real_table1", "real_table2"]
PROTOCOLS = ["docs", "mixed"]

def setup(cfg, R, archive):
    """The base model, the new people's files and the knowledge QA file (real: SmolLM2 and EntityQuestions)."""
    if not cfg["new"]:  # smoke: the pretrained regime's smoke world and base (reproduce.py's pt_base part)
        w = R("pt_world")
        return R("pt_base_s0"), {n: os.path.join(w, f"{n}.jsonl") for n in ("new_docs", "new_para", "new_para_heldout", "qa_new")}, \
            os.path.join(w, "qa_known.jsonl")
    w, eq = R("real_world"), R("real_world/eq.jsonl")
    if not os.path.exists(os.path.join(w, "qa_tiers.jsonl")):  # only the new tier is used: known and long-tail as small as allowed
        subprocess.run([sys.executable, "data/bios/tiers.py", "--known", "4", "--longtail", "3", "--new", str(cfg["new"]), "--out_dir", w], cwd=ROOT, check=True)
    entityquestions(eq, cfg["eq_per_split"], archive)
    if not os.path.exists(os.path.join(SMOLLM2, "model.safetensors")):
        subprocess.run([sys.executable, "data/smollm2/prepare.py"], cwd=ROOT, check=True)
    return SMOLLM2, {n: os.path.join(w, f"{n}.jsonl") for n in ("new_docs", "new_para", "new_para_heldout", "qa_new")}, eq

def answered(knowledge, eval_json, split, n_max, path):
    """Write the dev split (the exemplar pool) and up to n_max items of `split` that the base answered (eval_json:
    its 4-shot predictions) to path; return how many there were. Same pool, same exemplars: 100% for the base."""
    right = {p["id"] for p in json.load(open(eval_json))["predictions"] if p["exact_match"]}
    rows = [json.loads(l) for l in open(knowledge) if l.strip()]
    chosen = [r for r in rows if r["split"] == split and r["id"] in right]
    chosen = sorted(random.Random(0).sample(chosen, min(n_max, len(chosen))), key=lambda r: r["id"])
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in [r for r in rows if r["split"] == "dev"] + chosen)
    os.replace(path + ".tmp", path)
    return len(chosen)

def run(parts, x):
    """x: reproduce.py's runner (batch, metrics, save, fact_loss, mean_std, runs, results, mode, device)."""
    cfg = MODES[x.mode]
    res = x.results.setdefault("real", {})
    res["config"] = cfg
    def R(name):
        return os.path.join(x.runs, name)
    base, f, knowledge = setup(cfg, R, x.eq_archive)
    kept, replay = R("real_kept.jsonl"), R("real_replay.jsonl")
    def evaluated(model, qa, out, *extra):
        """eval.py, 4-shot (exemplars: the file's dev split), results to out."""
        return ["eval.py", "--model", model, "--qa", qa, "--out", out, "--shots", 4, *extra]
    def load(name, file):
        path = os.path.join(R(name), file)
        return json.load(open(path)) if os.path.exists(path) else {}

    # the base: what it answers of EntityQuestions (test: the kept set; train: the replay arm's data), and its 4-shot EM on
    # the new people (the floor: it cannot know them)
    x.batch([("real_base", [evaluated(base, knowledge, R("real_base/test.json"), "--split", "test"),
                            evaluated(base, knowledge, R("real_base/train.json"), "--split", "train"),
                            evaluated(base, f["qa_new"], R("real_base/new.json"))])])
    res["base"] = {"kept_n": answered(knowledge, os.path.join(R("real_base"), f"{cfg['kept_split']}.json"), cfg["kept_split"], cfg["kept_max"], kept),
                   "replay_n": answered(knowledge, os.path.join(R("real_base"), "train.json"), "train", cfg["replay_max"], replay),
                   "knowledge_test_em": load("real_base", "test.json").get("exact_match"),
                   "new_4shot": {k: v["exact_match"] for k, v in load("real_base", "new.json").get("by_split", {}).items()}}
    if res["base"]["kept_n"]:  # the kept set asked as every run asks it: the base answers all of it (same exemplars)
        x.batch([("real_base_kept", [evaluated(base, kept, R("real_base_kept/kept.json"), "--split", cfg["kept_split"])])])
        res["base"]["kept_em"] = load("real_base_kept", "kept.json").get("exact_match")
    x.save()

    def job(protocol, arm, flags, s, lr, epochs):
        """One run from the base: train.py, then (docs) the new people 4-shot, then the kept set 4-shot."""
        name = f"real_{protocol}_{arm}_lr{lr}_e{epochs}_s{s}"
        data = [f["new_docs"], *([f["new_para"]] if arm.startswith("para") else []), *([f["qa_new"]] if protocol == "mixed" else [])]
        train = ["train.py", "--init_from", base, "--data", *data, "--out_dir", R(name), "--seed", s, "--epochs", epochs, "--lr", lr,
                 "--warmup", 5, "--batch_size", cfg["batch"], *flags] + (["--eval_qa", f["qa_new"]] if protocol == "mixed" else [])
        evals = [evaluated(R(name), f["qa_new"], R(f"{name}/new.json"))] if protocol == "docs" else []
        if res["base"]["kept_n"]:  # (a base that answers nothing keeps nothing: no kept set to ask)
            evals.append(evaluated(R(name), kept, R(f"{name}/kept.json"), "--split", cfg["kept_split"]))
        return name, [train, *evals]

    def row(name):
        """Acquired (test; dev), kept, tokens of a finished run. Docs: 4-shot EM, and "dev" the train and dev people
        together (their QA is never trained on in (c): 22 people, not 4); mixed: train.py's zero-shot EM."""
        m, new = x.metrics(name), load(name, "new.json").get("by_split", {})
        held = [new[k] for k in ("train", "dev") if k in new]
        acq = {"test": new["test"]["exact_match"], "dev": sum(v["exact_match"] * v["n"] for v in held) / sum(v["n"] for v in held)} \
            if "test" in new else {k: m.get(f"{k}_exact_match") for k in ("test", "dev")}
        return {"test": acq.get("test"), "dev": acq.get("dev"), "kept": load(name, "kept.json").get("exact_match"), "tokens": m.get("tokens")}

    def pick(options, names):
        """The option whose run has the best dev EM; ties: more kept, then the first (the cheaper) option."""
        rows = [done[n] for n in names]
        return max(zip(options, rows), key=lambda o: ((o[1]["dev"] or -1), (o[1]["kept"] or -1), -options.index(o[0])))[0]

    def prune(name, weights):
        """Free a finished run's 1.1 GB of optimizer state (no run here is resumed once done), and with weights its
        model too (once its evaluations and diagnostic are on disk: what is reported stays)."""
        for big in ("trainer_state.pt",) + (("model.safetensors", "lora.safetensors") if weights else ()):
            if os.path.exists(os.path.join(R(name), big)):
                os.remove(os.path.join(R(name), big))

    # every finished run's row in results.json, which is committed: a later session (or machine) without runs/ skips it
    done = res.setdefault("runs", {})
    def record(name, diag=False):
        """A finished run's row (diag: and its fact-token losses) into results.json, then its big files off the disk."""
        loss = x.fact_loss(R(name), (f["new_docs"], f["new_para_heldout"], f["qa_new"]), x.device) if diag else {}
        done[name] = row(name) | {f"fact_loss_{k}": v for k, v in loss.items()}
        prune(name, weights=diag)
        x.save()
    def todo(jobs, key="tokens"):
        """The jobs not in results.json yet (key: what a recorded run has; a table-1 run also its fact-token losses)."""
        return [j for j in jobs if key not in done.get(j[0], {})]

    chosen = res.setdefault("chosen", {})
    if "real_dev" in parts:  # seed 0, protocol (c): lr x epochs of the baseline, then K, rho and LoRA's lr
        grid = [(lr, e) for lr in cfg["lrs"] for e in cfg["epochs"]]
        x.batch(todo([job("docs", "baseline", [], 0, lr, e) for lr, e in grid]), then=record)
        lr, epochs = pick(grid, [f"real_docs_baseline_lr{lr}_e{e}_s0" for lr, e in grid])
        chosen.update(lr=lr, epochs=epochs)
        then = [job("docs", f"aug{k}", ["--aug", k], 0, lr, epochs) for k in cfg["ks"]] + \
               [job("docs", f"sam{r}", ["--sam", "--rho", r], 0, lr, epochs) for r in cfg["rhos"]] + \
               [job("docs", "lora16", ["--lora", 16], 0, v, epochs) for v in cfg["lora_lrs"]]
        x.batch(todo(then), then=record)
        chosen.update(K=pick(cfg["ks"], [f"real_docs_aug{k}_lr{lr}_e{epochs}_s0" for k in cfg["ks"]]),
                      rho=pick(cfg["rhos"], [f"real_docs_sam{r}_lr{lr}_e{epochs}_s0" for r in cfg["rhos"]]),
                      lora_lr=pick(cfg["lora_lrs"], [f"real_docs_lora16_lr{v}_e{epochs}_s0" for v in cfg["lora_lrs"]]))
        res["dev"] = {n: done[n] for n in [f"real_docs_baseline_lr{lr_}_e{e}_s0" for lr_, e in grid] + [name for name, _ in then]}
        x.save()
    if "real_table1" in parts:
        lr, epochs, K, rho, lora_lr = (chosen.get(k, cfg[d][0]) for k, d in (("lr", "lrs"), ("epochs", "epochs"), ("K", "ks"), ("rho", "rhos"), ("lora_lr", "lora_lrs")))
        sam = ["--sam", "--rho", rho]
        arms = {"baseline": ([], lr, epochs), f"aug{K}": (["--aug", K], lr, epochs), f"sam{rho}": (sam, lr, epochs),
                f"aug{K}+sam{rho}": (["--aug", K, *sam], lr, epochs), "para": ([], lr, epochs), "baseline_2x_epochs": ([], lr, 2 * epochs),
                f"sam{rho}_every4": ([*sam, "--sam_every", 4], lr, epochs), "baseline_1.25x_epochs": ([], lr, epochs * 5 // 4), "lora16": (["--lora", 16], lora_lr, epochs),
                f"lora16+aug{K}": (["--lora", 16, "--aug", K], lora_lr, epochs),
                "replay": (["--replay", replay, "--replay_ratio", cfg["replay_ratio"], "--qa_pack", 4], lr, epochs)}
        if not res["base"]["replay_n"]:  # nothing the base answers, nothing to replay
            del arms["replay"]
        if epochs * 5 // 4 == epochs:  # too few epochs for a quarter more (smoke): it would be the baseline's own run
            del arms["baseline_1.25x_epochs"]
        def label(arm):  # the 2x- and 1.25x-epochs arms are baseline runs at more epochs (a dev run, if the grid had it)
            return "baseline" if arm.startswith("baseline_") else arm
        def name_of(protocol, arm, s):
            return f"real_{protocol}_{label(arm)}_lr{arms[arm][1]}_e{arms[arm][2]}_s{s}"
        table = res.setdefault("table1", {})
        def tabulate(name):
            """Record a finished run, then every cell again from the runs done so far (seeds in order, some may be missing)."""
            record(name, diag=True)
            for a in arms:
                for p in PROTOCOLS:
                    rows = [done.get(name_of(p, a, s), {}) for s in cfg["seeds"]]  # a missing seed is None, so seeds pair up in the report
                    rows = [r if "fact_loss_formats" in r else {} for r in rows]
                    if any(rows):
                        table.setdefault(a, {})[p] = {k: x.mean_std([r.get(k) for r in rows]) for k in
                                                      ("test", "dev", "kept", "tokens", "fact_loss_formats", "fact_loss_paraphrases")} | \
                            {"per_seed_test": [r.get("test") for r in rows], "per_seed_kept": [r.get("kept") for r in rows],
                             "seeds": sum(map(bool, rows))}
            x.save()
        # seed 0 whole (the first look), then arm by arm in the order above (the claims first: a cell's verdict needs
        # all its seeds), (c) before (b); one queue, so both cores stay busy across the seams
        order = [(s, a) for s in cfg["seeds"][:1] for a in arms] + [(s, a) for a in arms for s in cfg["seeds"][1:]]
        x.batch(todo([job(p, label(a), arms[a][0], s, arms[a][1], arms[a][2]) for s, a in order for p in PROTOCOLS],
                     "fact_loss_formats"), then=tabulate)
    if "real_table2" in parts:  # SliCK and gradual learning on EntityQuestions: experiments/slick.py, 4-shot evals for gradual
        sc, pool = cfg["slick"], slick_pool(cfg, R, x.eq_archive)
        t2 = res.setdefault("slick", {"config": sc})
        for n in range(1, len(sc["seeds"]) + 1):  # seed by seed, each whole and saved before the next starts
            slick.table2(x, {**sc, "seeds": sc["seeds"][:n]}, lambda s: base, pool, "real", t2, ["--eval_shots", 4])
            cats = t2["runs"][f"real_g_one_stage_lr{sc['ft_lrs'][0]}_s{sc['seeds'][0]}"]["categories"]  # the base's probes, seed 0
            t2["shares_by_relation"] = {split: slick.shares(cats[split], pool) for split in ("train", "test")}
            t2["seeds_done"] = n
            x.save()

def slick_pool(cfg, R, archive):
    """The SliCK pool: EntityQuestions, 12 relations, per_split items a relation and split (smoke: the tiered world's pool)."""
    if not cfg["new"]:
        return os.path.join(R("pt_world"), "qa_slick.jsonl")
    return entityquestions(R("real_world/eq_slick.jsonl"), cfg["slick"]["per_split"], archive)

def entityquestions(path, per_split, archive=None):
    """SliCK's 12 relations of EntityQuestions, per_split items a relation and split (seeded), at path once: from the
    release archive given (--eq_archive), else the one data/entityquestions/prepare.py downloads and keeps."""
    if not os.path.exists(path):
        code = subprocess.run([sys.executable, "data/entityquestions/prepare.py", *(["--archive", archive] if archive else []),
                               "--relations", *SLICK_RELATIONS, "--max_per_split", str(per_split), "--out", path], cwd=ROOT).returncode
        if code:  # prepare.py said why and how to get the archive
            sys.exit(2)
    return path

def report(q, pm, per_seed_delta, gradual_table):
    """The real-model part of README's Results, markdown (experiments/report.py calls it with its pm, per_seed_delta and
    gradual_table)."""
    cfg, base = q["config"], q.get("base", {})
    print(f"SmolLM2-135M-Instruct (4-bit GGUF weights dequantized to fp32); {cfg['new']} new people (data/bios/tiers.py's new tier); "
          f"kept set: {base.get('kept_n')} EntityQuestions {cfg['kept_split']} questions it answers 4-shot (of "
          f"{12 * cfg['eq_per_split']}: {100 * (base.get('knowledge_test_em') or 0):.1f}%), replay: {base.get('replay_n')} train questions it "
          f"answers. The base on the new people, 4-shot: {json.dumps({k: round(100 * v, 1) for k, v in base.get('new_4shot', {}).items()})}.\n")
    if "dev" in q:
        print("**Dev grid (seed 0, protocol (c) documents only): 4-shot EM % of the new train and dev people (in (c) no QA of theirs is "
              "trained on), of the test people, kept %, tokens**\n\n| run | new train + dev EM | new test EM | kept | tokens |\n|---|---|---|---|---|")
        for name, r in q["dev"].items():
            print(f"| {name[len('real_docs_'):-len('_s0')]} | {100 * (r['dev'] or 0):.1f} | {100 * (r['test'] or 0):.1f} | "
                  f"{100 * (r['kept'] or 0):.1f} | {r['tokens']} |")
        print(f"\nChosen on dev: {q.get('chosen')}\n")
    if "table1" in q:
        print("**Table 1, real model: new test people's EM % (knowledge acquired; (c): 4-shot after documents only, (b): zero-shot after "
              "mixed training), EM % on the EntityQuestions questions it answered before (knowledge kept), mean ± std (each seed); per-seed difference to the "
              "baseline in points; fact-token loss on the new people's documents in unseen formats / paraphrases**\n")
        print("| arm | (c) docs: new | per seed vs baseline | kept | (b) mixed: new | per seed vs baseline | kept | k tokens (c) / (b) "
              "| fact loss (c): formats / paraphrases | (b) |\n|---|---|---|---|---|---|---|---|---|---|")
        b = q["table1"].get("baseline", {})
        def cell(c, key):  # mean ± std (each seed's %)
            return f"{pm(c.get(key))} ({' / '.join(f'{100 * v:.1f}' for v in c.get(f'per_seed_{key}', []) if v is not None)})"
        for arm, c in q["table1"].items():
            d, m = c.get("docs", {}), c.get("mixed", {})
            print(f"| {arm} | {cell(d, 'test')} | {per_seed_delta(d.get('per_seed_test'), b.get('docs', {}).get('per_seed_test'))} | {cell(d, 'kept')} "
                  f"| {cell(m, 'test')} | {per_seed_delta(m.get('per_seed_test'), b.get('mixed', {}).get('per_seed_test'))} | {cell(m, 'kept')} "
                  f"| {pm(d.get('tokens'), 1e-3, 0)} / {pm(m.get('tokens'), 1e-3, 0)} | {pm(d.get('fact_loss_formats'), 1, 2)} / "
                  f"{pm(d.get('fact_loss_paraphrases'), 1, 2)} | {pm(m.get('fact_loss_formats'), 1, 2)} / {pm(m.get('fact_loss_paraphrases'), 1, 2)} |")
        print()
    if "slick" in q:
        slick_report(q["slick"], pm, per_seed_delta, gradual_table)

def figure(q, ax):
    """Knowledge acquired against knowledge kept, every seed of every arm a dot (circles: (c) docs, crosses: (b) mixed)."""
    from matplotlib import colormaps
    tab20 = colormaps["tab20"].colors
    colors = tab20[0::2] + tab20[1::2]  # 20: ten hues, then their light shades (more than ten arms)
    for i, (arm, c) in enumerate(q.get("table1", {}).items()):
        for p, marker in (("docs", "o"), ("mixed", "x")):
            pts = [(k, t) for k, t in zip(c.get(p, {}).get("per_seed_kept", []), c.get(p, {}).get("per_seed_test", [])) if None not in (k, t)]
            ax.scatter([100 * k for k, _ in pts], [100 * t for _, t in pts], marker=marker, color=colors[i % 20], label=arm if p == "docs" else None)
    ax.set_xlabel("knowledge kept: EM % on EntityQuestions it answered before")
    ax.set_ylabel("knowledge acquired: new test people EM %")
    ax.set_title("Real model (SmolLM2-135M): o (c) documents only, x (b) mixed", fontsize=9)
    ax.legend(fontsize=6)

def slick_report(t, pm, per_seed_delta, gradual_table):
    """Table 2 on the real model: what it knows, SliCK's experiment, gradual.py against its baselines."""
    cats = CATEGORIES
    print("**What SmolLM2-135M-Instruct knows: SliCK categories (%) of EntityQuestions questions, probe.py --fast (10 prompts of "
          "4 exemplars), seed 0** (SliCK's PaLM-2-M over its 12 relations: 24 / 23 / 17 / 36)\n\n| relation | train pool: n | "
          + " | ".join(cats) + " | test: n | " + " | ".join(cats) + " |\n" + "|---" * 11 + "|")
    by = t.get("shares_by_relation", {})
    for rel in by.get("train", {}):
        tr, te = by["train"][rel], by.get("test", {}).get(rel, {})
        print(f"| {rel} | {tr['n']} | " + " | ".join(f"{tr[c]:.1f}" for c in cats) + f" | {te.get('n', '')} | "
              + " | ".join(f"{te[c]:.1f}" if c in te else "" for c in cats) + " |")
    noise = [rep["probe_noise"] for rep in t.get("table2", {}).get("one_stage", [])]
    if noise:
        changed = [sum(m[a][b] for a in cats for b in cats if a != b) / sum(m[a][b] for a in cats for b in cats) for m in noise]
        print(f"\nProbe noise: the train pool probed twice (seeds s and s + 1), {100 * min(changed):.1f}-{100 * max(changed):.1f}% of "
              f"the questions change category by chance ({len(noise)} seed(s)).\n")
    if "unknown" in t:
        print(f"**SliCK's experiment on the real model: {' / '.join(map(str, t.get('unknown_n', {}).values()))} fine-tuning items a seed, a share of them Unknown to the base "
              "(the rest known), QA fine-tuning; test EM % zero-shot (the model is tuned to the QA format) at the best dev step and at the "
              "end, and at the end by the test items' base categories**\n")
        print("| Unknown share | early stop | per seed vs 0% | end | per seed vs 0% | best step | end: " + " / ".join(cats) + " |\n" + "|---" * 7 + "|")
        zero = next(iter(t["unknown"].values()))
        for frac, c in t["unknown"].items():
            print(f"| {100 * float(frac):.0f}% | {pm(c['early_stop'])} | {per_seed_delta(c.get('per_seed_early_stop'), zero.get('per_seed_early_stop'))} "
                  f"| {pm(c['end'])} | {per_seed_delta(c.get('per_seed_end'), zero.get('per_seed_end'))} | {pm(c['best_step'], 1, 0)} | "
                  + " / ".join(pm(c.get("end_by_category", {}).get(k)) for k in cats) + " |")
        curves = t.get("unknown_curves", {})
        print("\nTrain accuracy (EM %) of the fine-tuning set's Unknown and known items as training goes (the middle share, seed 0): "
              + "; ".join(f"{kind}: " + ", ".join(f"step {st} {100 * v:.0f}" for st, v in pts) for kind, pts in curves.items()) + "\n")
    if "table2" in t:
        print("**gradual.py against same-budget baselines, real model (EntityQuestions train pool; test: its test split, 4-shot at every stage)**\n")
        gradual_table(t["table2"])
