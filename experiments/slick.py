"""
Table 2 of both regimes that start from a pretrained model (experiments/pretrained.py, experiments/real.py): what
the base model knows (SliCK's categories, probe.py), SliCK's experiment (a fixed-size fine-tuning set with 0-100%
Unknown items; test EM at the dev-chosen early stop and at the end, by the test items' categories; how late the
Unknown items are fitted) and gradual.py against its same-budget baselines. Run by experiments/reproduce.py:

    python experiments/reproduce.py smoke --only pt_base pt_table2      # the pretrained regime's, on a tiny world
    python experiments/reproduce.py full --only real_base real_table2   # SmolLM2-135M on EntityQuestions

Each finished run's results go into results.json (res["runs"]) and the tables are made from there, so a session
without the runs folder (experiments/runs/, not committed) reruns only what is missing.
"""
import json
import os
import random
import shutil

from data import CATEGORIES  # (reproduce.py puts the repository root on the path)

GRADUAL_MODES = ["gradual", "one_stage", "two_rounds", "random", "all"]

def table2(x, cfg, base, pool, prefix, res, gradual_flags=()):
    """SliCK's experiment and gradual.py against its baselines, from a base model (base(seed): its folder) on a QA pool
    (train: probed and fine-tuned on; dev: exemplars and model selection; test). Runs are named prefix_*; the results
    go to res (chosen ft_lr, unknown, unknown_curves, table2), and every finished run's own into res["runs"]: results.json
    is committed, so a session without the runs folder skips what is recorded there. gradual_flags: for every gradual.py run."""
    R = lambda name: os.path.join(x.runs, name)  # noqa: E731
    load = lambda d, name: json.load(open(os.path.join(d, name))) if os.path.exists(os.path.join(d, name)) else {}  # noqa: E731
    seeds, lrs, done = cfg["seeds"], cfg["ft_lrs"], res.setdefault("runs", {})
    def job(m, s, lr_):
        return (f"{prefix}_g_{m}_lr{lr_}_s{s}", [["gradual.py", "--model", base(s), "--qa", pool, "--out_dir", R(f"{prefix}_g_{m}_lr{lr_}_s{s}"),
                                                  "--baseline", m, "--seed", s, "--stage_steps", cfg["stage_steps"], "--select_every", cfg["select_every"],
                                                  "--lr", lr_, "--warmup", 5, "--batch_size", 16, *cfg["probe"], *gradual_flags]])
    def first(s):  # the seed's first run: its probes of the base model serve every run of the seed
        return f"{prefix}_g_one_stage_lr{lrs[0]}_s{s}"
    def share_probes(names, s):  # (when the first run's folder is still there: gradual.py probes the base again otherwise)
        for name in names:
            for p in ("probe_base.jsonl", "probe_base_seed2.jsonl", "probe_base_test.jsonl"):
                src, dst = os.path.join(R(first(s)), p), os.path.join(R(name), p)
                if name not in done and os.path.exists(src) and not os.path.exists(dst):
                    os.makedirs(R(name), exist_ok=True)
                    shutil.copy(src, dst)
    def summary(e):  # an eval.py result: exact match, overall and by the base's category of the item
        return {"exact_match": e.get("exact_match"), "by_category": {c: v["exact_match"] for c, v in e.get("by_category", {}).items()}} if e else {}
    def record(name):
        """A finished run's results into res["runs"] (collect() reads only these), then its weights off the disk (2-6 GB:
        nothing reads them once the run's evaluations are written)."""
        d = R(name)
        if os.path.exists(os.path.join(d, "report.json")):  # gradual.py's
            rec = {"report": load(d, "report.json"),
                   "stage1_dev": x.metrics(os.path.join(name, "stage1", "best" if cfg["select_every"] else "")).get("dev_exact_match")}
            if name == first(int(name.rsplit("_s", 1)[1])):  # the base's categories, train and test
                rec["categories"] = {split: {r["id"]: r["category"] for r in map(json.loads, open(os.path.join(d, f"probe_base{suffix}.jsonl")))}
                                     for split, suffix in (("train", ""), ("test", "_test"))}
        else:  # SliCK's: test EM at the early stop (best/) and at the end, dev EM by step
            rec = {"early_stop": summary(load(os.path.join(d, "best"), "test.json")), "end": summary(load(d, "test.json")),
                   "best_step": load(os.path.join(d, "best"), "args.json").get("step"), "curve": x.curve([name])}
        done[name] = rec
        for where, _, files in os.walk(d):
            for big in set(files) & {"model.safetensors", "lora.safetensors", "trainer_state.pt"}:
                os.remove(os.path.join(where, big))
        x.save()
    def todo(jobs):
        return [j for j in jobs if j[0] not in done]
    x.batch(todo([job("one_stage", s, lrs[0]) for s in seeds]), then=record)
    share_probes([f"{prefix}_g_one_stage_lr{v}_s0" for v in lrs[1:]], 0)
    x.batch(todo([job("one_stage", 0, v) for v in lrs[1:]]), then=record)
    ft = res.setdefault("chosen", {})["ft_lr"] = max(lrs, key=lambda v: done.get(f"{prefix}_g_one_stage_lr{v}_s0", {}).get("stage1_dev") or -1)
    for s in seeds:
        share_probes([f"{prefix}_g_{m}_lr{ft}_s{s}" for m in GRADUAL_MODES], s)
    # SliCK's core experiment: a fixed-size fine-tuning set, a share of it Unknown to the base, the rest known to it
    # (HighlyKnown, MaybeKnown or WeaklyKnown); test EM (zero-shot: the model is tuned to the QA format) at the best dev
    # step (early stop) and at the end, by the test items' categories. Curves: at the middle share, seed 0, the same run
    # twice more with the fine-tuning set's Unknown (then known) items as the "dev" split that train.py evaluates as it goes
    jobs, mid = [], cfg["fracs"][len(cfg["fracs"]) // 2]
    for s in seeds:
        cats = done[first(s)]["categories"]
        items = {it["id"]: it for it in map(json.loads, open(pool)) if it["split"] == "train"}
        unknown, known = ([items[k] for k in sorted(cats["train"]) if (cats["train"][k] == "Unknown") == u] for u in (True, False))
        n = min(len(unknown), len(known), cfg["unk_n"])
        res.setdefault("unknown_n", {})[str(s)] = n
        test_probe = R(f"{prefix}_base_categories_test_s{s}.jsonl")  # eval.py --probe: the base's category of each test item
        with open(test_probe, "w") as out:
            out.writelines(json.dumps({"id": k, "category": c}) + "\n" for k, c in cats["test"].items())
        for frac in cfg["fracs"]:
            rng, name = random.Random(f"{s}:{frac}"), f"{prefix}_unk{frac}_lr{ft}_s{s}"
            chosen_items = rng.sample(unknown, round(frac * n)) + rng.sample(known, n - round(frac * n))
            data = os.path.join(x.runs, f"{name}_data.jsonl")
            with open(data, "w") as out:
                out.writelines(json.dumps({k: v for k, v in it.items() if k != "split"}) + "\n" for it in chosen_items)
            train = ["train.py", "--init_from", base(s), "--data", data, "--seed", s, "--epochs", cfg["unk_epochs"], "--lr", ft, "--warmup", 5,
                     "--batch_size", 16, "--eval_every", max(1, n // 16)]
            evals = [["eval.py", "--model", m, "--qa", pool, "--split", "test", "--probe", test_probe, "--out", os.path.join(m, "test.json")]
                     for m in (os.path.join(R(name), "best"), R(name))]
            jobs.append((name, [[*train, "--out_dir", R(name), "--eval_qa", pool, "--keep_best"], *evals]))
            if frac == mid and s == seeds[0]:
                for kind, group in (("unknown", [it for it in chosen_items if cats["train"][it["id"]] == "Unknown"]),
                                    ("known", [it for it in chosen_items if cats["train"][it["id"]] != "Unknown"])):
                    curve_qa = os.path.join(x.runs, f"{name}_curve_{kind}.jsonl")
                    with open(curve_qa, "w") as out:
                        out.writelines(json.dumps({**it, "split": "dev"}) + "\n" for it in group)
                    jobs.append((f"{name}_curve_{kind}", [[*train, "--out_dir", R(f"{name}_curve_{kind}"), "--eval_qa", curve_qa]]))
    def collect(name=None):  # the results from the runs recorded so far (a missing one counts as None), saved: after every run
        if name:
            record(name)
        unk = lambda frac: [done.get(f"{prefix}_unk{frac}_lr{ft}_s{s}", {}) for s in seeds]  # noqa: E731
        res["unknown"] = {str(frac): {
            **{k: x.mean_std([r.get(k, {}).get("exact_match") for r in unk(frac)]) for k in ("early_stop", "end")},
            **{f"{k}_by_category": {c: x.mean_std([r.get(k, {}).get("by_category", {}).get(c) for r in unk(frac)]) for c in CATEGORIES}
               for k in ("early_stop", "end")},
            **{f"per_seed_{k}": [r.get(k, {}).get("exact_match") for r in unk(frac)] for k in ("early_stop", "end")},
            "best_step": x.mean_std([r.get("best_step") for r in unk(frac)]),
            "curve": x.mean_curve([r["curve"] for r in unk(frac) if "curve" in r])} for frac in cfg["fracs"]}
        res["unknown_curves"] = {kind: done.get(f"{prefix}_unk{mid}_lr{ft}_s{seeds[0]}_curve_{kind}", {}).get("curve", []) for kind in ("unknown", "known")}
        res["table2"] = {m: [done[n]["report"] for n in (f"{prefix}_g_{m}_lr{ft}_s{s}" for s in seeds) if n in done] for m in GRADUAL_MODES}
        x.save()
    # gradual.py's runs first (the longest), then SliCK's; each recorded as it ends, so a stop mid-way keeps what is done
    x.batch(todo([job(m, s, ft) for m in GRADUAL_MODES for s in seeds] + jobs), then=collect)
    collect()

def shares(categories, pool):
    """The base model's category shares (%) per relation and over all, from its probe's categories (id -> category)."""
    relation = {it["id"]: it["relation"] for it in map(json.loads, open(pool))}
    by = {}
    for k, c in categories.items():
        for key in (relation[k], "all"):
            by.setdefault(key, []).append(c)
    return {k: {c: 100 * v.count(c) / len(v) for c in CATEGORIES} | {"n": len(v)} for k, v in sorted(by.items())}
