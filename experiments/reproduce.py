"""
Reproduce both papers on the biography world: every number of README's Results section, from nothing.

    python experiments/reproduce.py smoke               # every part of every regime, worlds of a few people (~3 min)
    python experiments/reproduce.py quick               # 1 seed, small worlds: a first look (~40 min, 2 CPU cores)
    python experiments/reproduce.py full                # README's tables, 3 seeds (2 cores: ~5 h scratch, 3.6 h pt)
    python experiments/reproduce.py full --only table2  # one part only (it reuses the finished runs it needs)
    python experiments/reproduce.py full --only large --jobs 8 --device cuda   # a bigger world and model on a GPU
    python experiments/report.py experiments/results/full/results.json        # the markdown tables

This file is the command line only: it makes a Runner (experiments/runner.py: runs, caches and records jobs) and hands
it to each regime's run(parts, runner), in this order:
  experiments/scratch.py     from scratch (a model trained on the very facts it is tested on): sweeps, table1, search,
                             table2, large (only when asked)
  experiments/pretrained.py  a base model that knows people learns new ones: pt_base, pt_sweeps, pt_table1, pt_table2,
                             pt_table1_docs (Table 2: experiments/slick.py)
  experiments/real.py        SmolLM2-135M learns new people; SliCK and gradual learning on EntityQuestions: real_base,
                             real_dev, real_table1, real_table2
  experiments/bf16.py        SmolLM2 in bf16: checked against fp32, Table 1's open controls in protocol (b): real_bf16
  experiments/instruct.py    Zhu et al.'s instruction-tuning claim: real_it (SmolLM2, bf16), pt_it (the tiny base),
                             it (from scratch)
Runs go to experiments/runs/MODE/NAME/ (a finished run is skipped when the script runs again; Ctrl-C (or `kill`)
stops it, and a train.py it stopped resumes); results to experiments/results/MODE/results.json. Every choice is made
on the dev split; the test split is read once, at a run's end.
"""
import argparse
import os
import signal
import time

from runner import ROOT, Runner  # (first: it puts the repository root on the path)
import bf16
import instruct
import pretrained
import real
import scratch

REGIMES = [scratch, pretrained, real, bf16, instruct]  # the order they run in
PARTS = [part for regime in REGIMES for part in regime.PARTS if part != "large"]  # large: only when asked


def get_args():
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=list(scratch.MODES), help="smoke (minutes: does every part run and report?), quick "
                   "(a first look, about 40 min on 2 CPU cores) or full (README's tables)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--only", nargs="+", default=None, choices=PARTS + ["large"],
                   help="parts to run (default: all but large)")
    p.add_argument("--root", default=os.path.join(ROOT, "experiments"), help="where runs/ and results/ go")
    p.add_argument("--eq_archive", default=os.environ.get("EQ_ARCHIVE"), help="the EntityQuestions release archive "
                   "(dataset.zip) for the real-model parts (default: $EQ_ARCHIVE, else data/entityquestions/prepare.py "
                   "downloads it and keeps it)")
    return p.parse_args()


def main():
    """The parts asked for, regime by regime, with one Runner; results.json saved at the end too."""
    args = get_args()
    # `kill` stops it as Ctrl-C does (a background run ignores Ctrl-C): Runner.batch stops the queue, train.py saves
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parts = args.only or PARTS
    runner = Runner(args.mode, args.root, scratch.MODES[args.mode], jobs=args.jobs, threads=args.threads,
                    device=args.device, eq_archive=args.eq_archive)
    for regime in REGIMES:
        if set(parts) & set(regime.PARTS):
            regime.run(parts, runner)
    runner.save()
    print(f"wrote {runner.results_path} ({(time.time() - runner.started) / 60:.1f} min this run)")


if __name__ == "__main__":
    main()
