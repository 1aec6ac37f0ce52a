"""
Gradual learning (Li et al., arXiv 2410.05802) on SliCK categories: probe what the model knows, fine-tune
on the MaybeKnown facts, re-probe, fine-tune again on the facts that moved up plus a HighlyKnown replay,
and report knowledge gained, kept and lost. Every stage is a separate probe.py / train.py / eval.py
process whose command line is printed and saved (DIR/commands.sh), so any stage can be re-run alone;
a re-run of gradual.py skips the stages already finished.

    python gradual.py --model out --qa data/bios/qa.jsonl --out_dir runs/gradual --stage_steps 100
    python gradual.py --model out --qa data/bios/qa.jsonl --out_dir runs/one --baseline one_stage
    python gradual.py --model out --qa data/bios/qa.jsonl --out_dir runs/g --n_prompts 4 --samples 8 --lr 1e-4
    python gradual.py --nproc 8 --model Qwen/Qwen2-7B --qa qa.jsonl --out_dir runs/qwen --dtype bfloat16

Probe flags (--n_prompts, --samples, ...) go to every probe; flags gradual.py does not know go to every
train.py stage (and --dtype to every stage: train.py, probe.py, eval.py). Baselines with the same budget:
--baseline one_stage (MaybeKnown, both stages' steps in one run), two_rounds (stage 2 on MaybeKnown again),
random (stage 2 on random train items, as many as the gradual stage-2 set), all (every train item, both stages'
steps in one run). Probing the base model a second time with another seed gives the transition matrix of probe
noise alone, reported beside the real ones.
"""
import argparse
import json
import os
import random
import shlex
import subprocess
import sys

from data import CATEGORIES, DataError, Help, read_qa, write_json
from launch import run_script

HERE = os.path.dirname(os.path.abspath(__file__))
KNOWN = ("HighlyKnown", "MaybeKnown")
PROBE_FLAGS = (("--n_prompts", int, 10, "few-shot prompts per question (N_ex)"),
               ("--shots", int, 4, "exemplars per prompt"), ("--samples", int, 16, "sampled answers per prompt"),
               ("--temperature", float, 0.5, "sampling temperature"), ("--top_k", int, 40, "sampling top-k"),
               ("--probe_batch_size", int, 32, "questions per batch (probe.py's --batch_size)"))


def get_args(argv=None):
    """gradual.py's own flags, and the rest (passed to every train.py stage)."""
    argv = sys.argv[1:] if argv is None else argv
    epilog = None
    if "-h" in argv or "--help" in argv:  # train.py's own --help (quick: before torch loads) lists the flags passed on
        train_help = subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--help"],
                                    capture_output=True, text=True).stdout
        epilog = ("flags passed through to every train.py stage (train.py --help):\n"
                  + train_help[train_help.index("options:") + len("options:\n"):])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help, epilog=epilog)
    p.add_argument("--model", required=True, help="base model folder or hub id")
    p.add_argument("--qa", required=True, help="QA JSONL with train / dev / test splits")
    p.add_argument("--out_dir", required=True, help="folder for every stage's output and report.json")
    p.add_argument("--baseline", default="gradual", choices=["gradual", "one_stage", "two_rounds", "random", "all"])
    p.add_argument("--stage_steps", type=int, default=100, help="steps per stage (one_stage and all: twice that)")
    p.add_argument("--replay", type=float, default=0.2, help="share of HighlyKnown replay items in the stage-2 set")
    p.add_argument("--select_every", type=int, default=0, help="keep each stage's best model on dev, every N steps")
    p.add_argument("--nproc", type=int, default=int(os.environ.get("LOCAL_WORLD_SIZE", 1)), help="ranks per stage")
    p.add_argument("--seed", type=int, default=0, help="seed of the probes and the replay / random choice")
    for flag, kind, default, what in PROBE_FLAGS:
        p.add_argument(flag, type=kind, default=default, help=f"probe.py: {what}")
    p.add_argument("--fast", action="store_true", help="probe.py: exact one-pass scoring instead of sampling")
    p.add_argument("--eval_shots", type=int, default=0, help="eval.py --shots: test exact match few-shot (a model "
                   "not tuned to the QA format, e.g. an instruct LLM, answers zero-shot with a sentence or nothing)")
    return p.parse_known_args(argv)

def train_args(train_flags):
    """train.py's arguments for the pass-through flags: a misspelt or ill-typed flag stops gradual.py here,
    with train.py's own message and exit code 2, before any probe runs."""
    import train
    p = train.get_parser()
    p.prog, p.usage = "gradual.py", "gradual.py ... [train.py flags] (see gradual.py --help)"
    return p.parse_args(train_flags + ["--init_from", "base"])

def run(args, script, flags, distributed=True):
    """One stage: a repo script as its own process (torchrun where --nproc > 1), its command line saved."""
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"]
    launcher = [sys.executable] + ([] if args.nproc == 1 or not distributed else torchrun)
    cmd = launcher + [os.path.join(HERE, script)] + [str(f) for f in flags]
    line = shlex.join(cmd)
    print(f"\n$ {line}", flush=True)
    with open(os.path.join(args.out_dir, "commands.sh"), "a") as f:
        f.write(line + "\n")
    # one process per stage; without torchrun a fork of a server that has imported torch and transformers once
    # (launch.py): the process this command line starts, minus ~8 s of imports
    code = subprocess.run(cmd).returncode if len(launcher) > 1 else run_script(cmd[1], cmd[2:])
    if code != 0:
        sys.exit(f"gradual.py: stage failed: {line}")

def do_probe(args, model, split, name, seed=None):
    """probe.py on a split, unless done: {item id: SliCK category}."""
    out = os.path.join(args.out_dir, f"probe_{name}.jsonl")
    if not os.path.exists(out):  # probe.py writes atomically: present means finished
        flags = ["--model", model, "--qa", args.qa, "--split", split, "--out", out,
                 "--seed", args.seed if seed is None else seed]
        for flag, *_ in PROBE_FLAGS:
            flags += [flag.replace("probe_", ""), getattr(args, flag[2:])]
        run(args, "probe.py", flags + ["--dtype", args.dtype] + (["--fast"] if args.fast else []))
    with open(out) as f:
        return {r["id"]: r["category"] for r in map(json.loads, f)}

def do_train(args, init, items, name, train_flags, steps):
    """train.py on `items` from `init` for `steps` steps, unless done (a stopped one resumes): the model's folder."""
    out = os.path.join(args.out_dir, name)
    done = os.path.join(out, "DONE")
    if not os.path.exists(done):
        targs = train_args(train_flags)
        per_step = targs.batch_size * targs.grad_accum * args.nproc
        if len(items) < per_step:  # every step repeats every item: say so rather than train quietly
            print(f"gradual.py: warning: {name} trains on only {len(items)} item(s) for {steps} steps of {per_step} "
                  f"examples (each item about {steps * per_step // len(items)} times)", file=sys.stderr, flush=True)
        data = os.path.join(args.out_dir, f"{name}_data.jsonl")
        with open(data, "w") as f:
            f.writelines(json.dumps({k: v for k, v in it.items() if k != "split"}) + "\n" for it in items)
        flags = ["--init_from", init, "--data", data, "--out_dir", out, "--max_steps", steps,
                 "--seed", args.seed] + train_flags
        if args.select_every:
            flags += ["--eval_qa", args.qa, "--eval_every", args.select_every, "--keep_best"]
        if os.path.exists(os.path.join(out, "trainer_state.pt")):
            flags.append("--resume")  # an interrupted stage continues from its last checkpoint
        run(args, "train.py", flags)
        open(done, "w").close()
    return os.path.join(out, "best") if args.select_every and os.path.isdir(os.path.join(out, "best")) else out

def do_eval(args, model, name, test_categories):
    """eval.py's test exact match (by base category too), unless done."""
    out = os.path.join(args.out_dir, f"eval_{name}.json")
    if not os.path.exists(out):
        flags = ["--model", model, "--qa", args.qa, "--split", "test", "--out", out, "--probe", test_categories]
        run(args, "eval.py", flags + ["--shots", args.eval_shots, "--seed", args.seed, "--dtype", args.dtype],
            distributed=False)
    with open(out) as f:
        return json.load(f)

def transitions(before, after):
    """How many items went from each category (rows) to each (columns)."""
    return {a: {b: sum(before[k] == a and after[k] == b for k in before) for b in CATEGORIES} for a in CATEGORIES}

def knowledge(before, after):
    """Knowledge gained (to Highly/MaybeKnown from below), kept and lost (HighlyKnown), known before and after."""
    return {"gained": sum(before[k] not in KNOWN and after[k] in KNOWN for k in before),
            "kept": sum(before[k] == "HighlyKnown" and after[k] == "HighlyKnown" for k in before),
            "lost": sum(before[k] == "HighlyKnown" and after[k] != "HighlyKnown" for k in before),
            "known_before": sum(v in KNOWN for v in before.values()),
            "known_after": sum(v in KNOWN for v in after.values())}

def stage2_items(args, train_items, maybe, probes, rng):
    """Stage 2's set: gradual, the items that moved up in stage 1 plus a HighlyKnown replay (--replay of the set);
    two_rounds, MaybeKnown again; random, as many random train items."""
    moved = [train_items[k] for k, c in probes["base"].items()
             if c in ("WeaklyKnown", "Unknown") and probes["stage1"][k] in KNOWN]
    moved_ids = {it["id"] for it in moved}  # replay: no item twice
    highly = [train_items[k] for k, c in probes["stage1"].items() if c == "HighlyKnown" and k not in moved_ids]
    n_replay = min(len(highly), round(len(moved) * args.replay / (1 - args.replay)))
    n_random = min(len(train_items), len(moved) + n_replay)
    return {"gradual": moved + rng.sample(highly, n_replay), "two_rounds": maybe,  # (both drawn on every baseline,
            "random": rng.sample(list(train_items.values()), n_random)}[args.baseline]  # in this order: the seed's)

def print_report(report):
    """The report as tables: categories and test EM by stage, the transitions, knowledge gained / kept / lost."""
    print(f"\n{'':<8}" + "".join(f"{c:>13}" for c in CATEGORIES) + f"{'test EM':>10}")
    for stage, counts in report["categories"].items():
        em = report["test_exact_match"].get(stage)
        print(f"{stage:<8}" + "".join(f"{counts[c]:>13}" for c in CATEGORIES)
              + (f"{100 * em:>9.1f}%" if em is not None else ""))
    for name, m in {**report["transitions"], "probe noise (base, 2 seeds)": report["probe_noise"]}.items():
        print(f"\n{name}: rows = before, columns = after")
        for a in CATEGORIES:
            print(f"  {a:<12}" + "".join(f"{m[a][b]:>13}" for b in CATEGORIES))
    for name, k in report["knowledge"].items():
        print(f"{name}: gained {k['gained']}, kept {k['kept']}, lost {k['lost']} "
              f"(known {k['known_before']} -> {k['known_after']})")
    for stage in [s for s in ("stage1", "stage2") if f"{s}_skipped" in report]:
        print(f"{stage[:-1]} {stage[-1]} skipped: {report[stage + '_skipped']}")

def main(argv=None):
    """Probe the base (twice: probe noise), stage 1, re-probe, stage 2, evaluate every model, write report.json."""
    args, train_flags = get_args(argv)
    if int(os.environ.get("RANK", 0)) != 0:
        return  # launched under torchrun: rank 0 drives the stages, each of them a torchrun of its own
    args.dtype = train_args(train_flags).dtype  # train.py's flag, passed on to every probe and evaluation too
    os.makedirs(args.out_dir, exist_ok=True)
    try:
        train_items = {it["id"]: it for it in read_qa(args.qa, "train")}
        read_qa(args.qa, "test")
    except DataError as e:
        print(f"gradual.py: {e}", file=sys.stderr)
        sys.exit(2)
    rng = random.Random(args.seed)
    probes = {"base": do_probe(args, args.model, "train", "base")}
    noise = do_probe(args, args.model, "train", "base_seed2", seed=args.seed + 1)
    test_categories = os.path.join(args.out_dir, "probe_base_test.jsonl")
    do_probe(args, args.model, "test", "base_test")
    maybe = [train_items[k] for k, c in probes["base"].items() if c == "MaybeKnown"]
    models = {"base": args.model}
    one_run = args.baseline in ("one_stage", "all")
    stage1 = list(train_items.values()) if args.baseline == "all" else maybe
    if stage1:
        models["stage1"] = do_train(args, args.model, stage1, "stage1", train_flags,
                                    args.stage_steps * (2 if one_run else 1))
        probes["stage1"] = do_probe(args, models["stage1"], "train", "stage1")
    stage2 = [] if one_run or not stage1 else stage2_items(args, train_items, maybe, probes, rng)
    if stage2:
        models["stage2"] = do_train(args, models["stage1"], stage2, "stage2", train_flags, args.stage_steps)
        probes["stage2"] = do_probe(args, models["stage2"], "train", "stage2")
    evals = {name: do_eval(args, m, name, test_categories) for name, m in models.items()}
    stages = list(probes)
    # and base -> the last stage where that is not a pair already (base->base: nothing trained)
    pairs = list(zip(stages, stages[1:])) + ([("base", stages[-1])] if len(stages) != 2 else [])
    report = {
        "baseline": args.baseline, "n_train_items": len(train_items), "n_stage1": len(stage1),
        "categories": {s: {c: sum(v == c for v in probes[s].values()) for c in CATEGORIES} for s in stages},
        "transitions": {f"{a}->{b}": transitions(probes[a], probes[b]) for a, b in zip(stages, stages[1:])},
        "probe_noise": transitions(probes["base"], noise),
        "knowledge": {f"{a}->{b}": knowledge(probes[a], probes[b]) for a, b in pairs},
        "test_exact_match": {s: e["exact_match"] for s, e in evals.items()},
        "test_exact_match_by_category": {s: {c: v["exact_match"] for c, v in e.get("by_category", {}).items()}
                                         for s, e in evals.items()},
    }
    if not one_run:
        report["n_stage2"] = len(stage2)
    # an empty stage is a legitimate outcome of the method, reported as such: the last model trained is the result
    if not stage1:
        report["stage1_skipped"] = ("the base model has no MaybeKnown items (probe_base.jsonl), "
                                    "so stage 1 had nothing to train on")
    if not one_run and not stage2:
        report["stage2_skipped"] = ("no items moved up in stage 1 (WeaklyKnown / Unknown -> HighlyKnown / MaybeKnown), "
                                    "so stage 2 had nothing to train on" if stage1 else "stage 1 was skipped")
    write_json(os.path.join(args.out_dir, "report.json"), report)
    print_report(report)

if __name__ == "__main__":
    main()
