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

from data import CATEGORIES  # (the regimes import runner.py first: it puts the repository root on the path)

GRADUAL_MODES = ["gradual", "one_stage", "two_rounds", "random", "all"]
PROBES = ("probe_base.jsonl", "probe_base_seed2.jsonl", "probe_base_test.jsonl")  # gradual.py's probes of the base
BIG = {"model.safetensors", "lora.safetensors", "trainer_state.pt"}  # a run's files that nothing reads once recorded


def table2(runner, cfg, bases, pool, prefix, res, gradual_flags=()):
    """SliCK's experiment and gradual.py against its baselines, from base models (bases: seed -> folder) on a QA pool
    (train: probed and fine-tuned on; dev: exemplars and model selection; test). Runs are named prefix_*; the results
    go to res (chosen ft_lr, unknown_n, unknown, unknown_curves, table2), and every finished run's own into
    res["runs"]: results.json is committed, so a session without the runs folder skips what is recorded there.
    gradual_flags: for every gradual.py run."""
    Table2(runner, cfg, bases, pool, prefix, res, gradual_flags).run()


def summary(e):
    """An eval.py result: exact match, overall and by the base's category of the item ({} where there is none)."""
    if not e:
        return {}
    return {"exact_match": e.get("exact_match"),
            "by_category": {c: v["exact_match"] for c, v in e.get("by_category", {}).items()}}


def shares(categories, pool):
    """The base model's category shares (%) per relation and over all, from its probe's categories (id -> category)."""
    relation = {it["id"]: it["relation"] for it in map(json.loads, open(pool))}
    by = {}
    for k, c in categories.items():
        for key in (relation[k], "all"):
            by.setdefault(key, []).append(c)
    return {k: {c: 100 * v.count(c) / len(v) for c in CATEGORIES} | {"n": len(v)} for k, v in sorted(by.items())}


class Table2:
    """One regime's Table 2 (see table2): its runs' names, jobs, records and tables."""

    def __init__(self, runner, cfg, bases, pool, prefix, res, gradual_flags=()):
        """The arguments of table2."""
        self.runner, self.cfg, self.bases, self.pool, self.prefix, self.res = runner, cfg, bases, pool, prefix, res
        self.gradual_flags, self.seeds, self.lrs = list(gradual_flags), cfg["seeds"], cfg["ft_lrs"]
        self.done = res.setdefault("runs", {})
        self.mid = cfg["fracs"][len(cfg["fracs"]) // 2]  # the share whose run, seed 0, also gets the Unknown curves
        self.ft = None  # the fine-tuning lr, once chosen

    def run(self):
        """one_stage on every seed (its probes of the base serve the seed's runs), the fine-tuning lr on seed 0,
        then gradual.py's runs (the longest) and SliCK's; each recorded as it ends, so a stop keeps what is done."""
        runner, lrs = self.runner, self.lrs
        runner.batch(self.todo([self.gradual_job("one_stage", s, lrs[0]) for s in self.seeds]), then=self.record)
        self.share_probes([self.gradual_name("one_stage", 0, v) for v in lrs[1:]], 0)
        runner.batch(self.todo([self.gradual_job("one_stage", 0, v) for v in lrs[1:]]), then=self.record)
        self.ft = self.res.setdefault("chosen", {})["ft_lr"] = max(
            lrs, key=lambda v: self.done.get(self.gradual_name("one_stage", 0, v), {}).get("stage1_dev") or -1)
        for s in self.seeds:
            self.share_probes([self.gradual_name(m, s, self.ft) for m in GRADUAL_MODES], s)
        jobs = [job for s in self.seeds for job in self.unknown_jobs(s)]
        runner.batch(self.todo([self.gradual_job(m, s, self.ft) for m in GRADUAL_MODES for s in self.seeds] + jobs),
                     then=self.collect)
        self.collect()

    def gradual_name(self, mode, seed, lr):
        """A gradual.py run's name (mode: gradual or one of its baselines)."""
        return f"{self.prefix}_g_{mode}_lr{lr}_s{seed}"

    def unknown_name(self, frac, seed):
        """A SliCK run's name: a `frac` share of the fine-tuning set Unknown, at the chosen lr."""
        return f"{self.prefix}_unk{frac}_lr{self.ft}_s{seed}"

    def first(self, seed):
        """The seed's first run: its probes of the base model serve every run of the seed."""
        return self.gradual_name("one_stage", seed, self.lrs[0])

    def todo(self, jobs):
        """The jobs not recorded in results.json yet."""
        return [j for j in jobs if j[0] not in self.done]

    def gradual_job(self, mode, seed, lr):
        """gradual.py (or one of its baselines) from the seed's base on the pool."""
        name, cfg = self.gradual_name(mode, seed, lr), self.cfg
        return name, [["gradual.py", "--model", self.bases[seed], "--qa", self.pool, "--out_dir",
                       self.runner.path(name), "--baseline", mode, "--seed", seed, "--stage_steps", cfg["stage_steps"],
                       "--select_every", cfg["select_every"], "--lr", lr, "--warmup", 5, "--batch_size", 16,
                       *cfg["probe"], *self.gradual_flags]]

    def share_probes(self, names, seed):
        """Copy the seed's first run's probes into the runs not recorded yet (when its folder is still there:
        gradual.py probes the base again otherwise)."""
        for name in names:
            for p in PROBES:
                src, dst = os.path.join(self.runner.path(self.first(seed)), p), os.path.join(self.runner.path(name), p)
                if name not in self.done and os.path.exists(src) and not os.path.exists(dst):
                    os.makedirs(self.runner.path(name), exist_ok=True)
                    shutil.copy(src, dst)

    def record(self, name):
        """A finished run's results into res["runs"] (collect() reads only these), then its weights off the disk
        (2-6 GB: nothing reads them once the run's evaluations are written)."""
        runner, d = self.runner, self.runner.path(name)
        if os.path.exists(os.path.join(d, "report.json")):  # gradual.py's
            best = "best" if self.cfg["select_every"] else ""
            rec = {"report": runner.read(name, "report.json"),
                   "stage1_dev": runner.metrics(os.path.join(name, "stage1", best)).get("dev_exact_match")}
            if name == self.first(int(name.rsplit("_s", 1)[1])):  # the base's categories, train and test
                rec["categories"] = {split: {r["id"]: r["category"] for r in
                                             map(json.loads, open(os.path.join(d, f"probe_base{suffix}.jsonl")))}
                                     for split, suffix in (("train", ""), ("test", "_test"))}
        else:  # SliCK's: test EM at the early stop (best/) and at the end, dev EM by step
            best = os.path.join(name, "best")
            rec = {"early_stop": summary(runner.read(best, "test.json")),
                   "end": summary(runner.read(name, "test.json")),
                   "best_step": runner.read(best, "args.json").get("step"), "curve": runner.curve([name])}
        self.done[name] = rec
        for where, _, files in os.walk(d):
            for big in set(files) & BIG:
                os.remove(os.path.join(where, big))
        runner.save()

    def unknown_jobs(self, seed):
        """SliCK's core experiment on one seed: a fixed-size fine-tuning set, a `frac` share of it Unknown to the base,
        the rest known to it (HighlyKnown, MaybeKnown or WeaklyKnown); test EM (zero-shot: the model is tuned to the QA
        format) at the best dev step (early stop) and at the end, by the test items' categories. Curves: at the middle
        share, seed 0, the same run twice more with the fine-tuning set's Unknown (then known) items as the "dev"
        split that train.py evaluates as it goes. Writes each run's data; none for a seed whose runs are all recorded
        (a session without the pool plans from results.json alone)."""
        names = [self.unknown_name(frac, seed) for frac in self.cfg["fracs"]]
        if seed == self.seeds[0]:
            names += [f"{self.unknown_name(self.mid, seed)}_curve_{kind}" for kind in ("unknown", "known")]
        if all(n in self.done for n in names) and str(seed) in self.res.get("unknown_n", {}):
            return []
        cats = self.done[self.first(seed)]["categories"]
        items = {it["id"]: it for it in map(json.loads, open(self.pool)) if it["split"] == "train"}
        unknown, known = ([items[k] for k in sorted(cats["train"]) if (cats["train"][k] == "Unknown") == u]
                          for u in (True, False))
        n = min(len(unknown), len(known), self.cfg["unk_n"])
        self.res.setdefault("unknown_n", {})[str(seed)] = n
        test_probe = self.runner.path(f"{self.prefix}_base_categories_test_s{seed}.jsonl")  # eval.py --probe's
        write_jsonl(test_probe, [{"id": k, "category": c} for k, c in cats["test"].items()])
        jobs = []
        for frac in self.cfg["fracs"]:
            rng, name = random.Random(f"{seed}:{frac}"), self.unknown_name(frac, seed)
            chosen = rng.sample(unknown, round(frac * n)) + rng.sample(known, n - round(frac * n))
            jobs.append(self.unknown_run(name, seed, chosen, n, test_probe))
            if frac == self.mid and seed == self.seeds[0]:
                for kind, group in (("unknown", [it for it in chosen if cats["train"][it["id"]] == "Unknown"]),
                                    ("known", [it for it in chosen if cats["train"][it["id"]] != "Unknown"])):
                    jobs.append(self.curve_run(name, seed, n, kind, group))
        return jobs

    def unknown_train(self, name, seed, n):
        """A SliCK run's train.py command (its data: runs/MODE/name_data.jsonl), without --out_dir and --eval_qa."""
        return ["train.py", "--init_from", self.bases[seed], "--data", self.runner.path(f"{name}_data.jsonl"),
                "--seed", seed, "--epochs", self.cfg["unk_epochs"], "--lr", self.ft, "--warmup", 5, "--batch_size", 16,
                "--eval_every", max(1, n // 16)]

    def unknown_run(self, name, seed, chosen, n, test_probe):
        """A SliCK run's job (its data written: the chosen items): train.py keeping the best dev step, then the test
        split evaluated at the best step and at the end."""
        write_jsonl(self.runner.path(f"{name}_data.jsonl"), [{k: v for k, v in it.items() if k != "split"}
                                                               for it in chosen])
        evals = [["eval.py", "--model", m, "--qa", self.pool, "--split", "test", "--probe", test_probe, "--out",
                  os.path.join(m, "test.json")] for m in (os.path.join(self.runner.path(name), "best"),
                                                          self.runner.path(name))]
        train = [*self.unknown_train(name, seed, n), "--out_dir", self.runner.path(name), "--eval_qa", self.pool,
                 "--keep_best"]
        return name, [train, *evals]

    def curve_run(self, name, seed, n, kind, group):
        """The SliCK run `name` again, with the group of its items (kind: unknown or known) as the dev split."""
        curve_qa = self.runner.path(f"{name}_curve_{kind}.jsonl")
        write_jsonl(curve_qa, [{**it, "split": "dev"} for it in group])
        return (f"{name}_curve_{kind}", [[*self.unknown_train(name, seed, n), "--out_dir",
                                           self.runner.path(f"{name}_curve_{kind}"), "--eval_qa", curve_qa]])

    def collect(self, name=None):
        """Record the run `name` (if given), then the tables from the runs recorded so far (a missing one counts as
        None), saved: after every run."""
        if name:
            self.record(name)
        fracs, seeds = self.cfg["fracs"], self.seeds
        self.res["unknown"] = {str(frac): self.unknown_cell([self.done.get(self.unknown_name(frac, s), {})
                                                              for s in seeds]) for frac in fracs}
        self.res["unknown_curves"] = {
            kind: self.done.get(f"{self.unknown_name(self.mid, seeds[0])}_curve_{kind}", {}).get("curve", [])
            for kind in ("unknown", "known")}
        self.res["table2"] = {m: [self.done[n]["report"] for n in (self.gradual_name(m, s, self.ft) for s in seeds)
                                  if n in self.done] for m in GRADUAL_MODES}
        self.runner.save()

    def unknown_cell(self, rows):
        """One share's cell over seeds: test EM at the early stop and the end, by category, each seed's, the best
        step, the mean dev curve."""
        mean_std = self.runner.mean_std
        return {**{k: mean_std([r.get(k, {}).get("exact_match") for r in rows]) for k in ("early_stop", "end")},
                **{f"{k}_by_category": {c: mean_std([r.get(k, {}).get("by_category", {}).get(c) for r in rows])
                                        for c in CATEGORIES} for k in ("early_stop", "end")},
                **{f"per_seed_{k}": [r.get(k, {}).get("exact_match") for r in rows] for k in ("early_stop", "end")},
                "best_step": mean_std([r.get("best_step") for r in rows]),
                "curve": self.runner.mean_curve([r["curve"] for r in rows if "curve" in r])}


def write_jsonl(path, rows):
    """Rows to a JSONL file."""
    with open(path, "w") as out:
        out.writelines(json.dumps(r) + "\n" for r in rows)
