"""experiments/reproduce.py smoke: every part of every regime's Results pipeline runs and reports, on worlds of a few
people; the Runner resumes a stopped run and stops on Ctrl-C; every run recorded in the committed results.json is
found by its name."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import ENV, ROOT, run

@pytest.mark.slow
def test_reproduce_smoke(tmp_path):
    run("experiments/reproduce.py", "smoke", "--root", tmp_path, timeout=1800)
    r = json.load(open(tmp_path / "results" / "smoke" / "results.json"))
    assert set(r["chosen"]) == {"K", "rho", "qa_lr", "ft_lr"}
    for arm in r["table1"].values():  # every arm of both protocols has a test exact match and the diagnostic
        assert (arm["mixed"]["test_exact_match"] and arm["sequential"]["test_exact_match"]
                and arm["mixed"]["fact_loss_formats"])
    assert all(r["table2"][m] for m in ("gradual", "one_stage", "two_rounds", "random", "all"))
    p = r["pretrained"]  # the pretrained regime: base per tier, both protocols with what was kept, SliCK's, gradual
    assert p["base"]["known_test"]["mean"] > p["base"]["new"]["mean"]
    assert set(p["chosen"]) == {"lr", "K", "rho", "ratio", "qa_lr", "ft_lr"}
    for arm in p["table1"].values():
        for protocol in ("mixed", "sequential"):
            assert (arm[protocol]["test_exact_match"] and arm[protocol]["known_test"]
                    and arm[protocol]["fact_loss_formats"])
    assert set(p["unknown"]) == {"0.0", "0.5", "1.0"}
    assert all(c["early_stop"] and c["end"] for c in p["unknown"].values())
    assert all(p["table2"][m] for m in ("gradual", "one_stage", "two_rounds", "random", "all"))
    q = r["real"]  # the real-model regime (a stand-in model in smoke): the base's kept set, dev choices, every arm
    assert q["base"]["kept_n"] > 0 and q["base"]["kept_em"] == 1.0
    assert set(q["chosen"]) == {"lr", "epochs", "K", "rho", "lora_lr", "small_rho"}
    assert len(q["table1"]) == 10
    assert all(c[p]["test"] and c[p]["kept"] and c[p]["tokens"] and c[p]["fact_loss_formats"]
               for c in q["table1"].values() for p in ("docs", "mixed"))
    # bf16 (real_bf16): the base probed and asked in both precisions; protocol (b) in bf16, every run asked for it
    assert q["precision_check"]["questions"] > 0 and len(q["precision_check"]["categories"]) == 2
    assert list(q["table1_bf16"])[:4] == ["baseline", "aug2", "aug2+sam0.05", "aug2_2x_epochs"]
    assert all(c["mixed"]["test"] and c["mixed"]["kept"] for c in q["table1_bf16"].values())
    bf16_logs = [d / "job.log" for d in (tmp_path / "runs" / "smoke").glob("real_*_bf16")]
    assert bf16_logs and all(line.count("--dtype bfloat16") == 1 for p in bf16_logs for line in open(p)
                             if line.startswith("$ "))
    # instruction tuning (real_it, pt_it, it from scratch): every arm on its seeds, zero-shot EM in the trained and a
    # held-out format, and what was kept (from scratch: nothing was known before, so nothing is asked)
    for it, kept in ((q["it"], True), (p["it"], True), (r["it"], False), (r["it_para"], False)):  # (it_para: from
        assert len(it["table"]) == 6 and all(c["test"] and c["heldout"] and bool(c["kept"]) == kept  # paraphrases)
                                             for c in it["table"].values())
        assert set(it["chosen"]) == {"lr", "epochs", "rho"}
    assert all(n in r["jobs"] for n in r["runs"])  # the from-scratch IT runs are kept like its other jobs
    t = q["slick"]  # its Table 2: shares by relation, SliCK's experiment with curves, gradual.py and its baselines
    assert t["shares_by_relation"]["train"]["all"]["n"] > 0 and set(t["unknown"]) == {"0.0", "0.5", "1.0"}
    assert all(c["early_stop"] and c["end"] and c["per_seed_end"] for c in t["unknown"].values())
    assert all(t["unknown_curves"].values())
    assert all(t["table2"][m] for m in ("gradual", "one_stage", "two_rounds", "random", "all"))
    later_session_from_scratch(tmp_path, r)
    runs = [d for d in (tmp_path / "runs" / "smoke").glob("real_*")
            if d.is_dir() and d.name.startswith(("real_docs", "real_mixed", "real_g_", "real_unk", "real_it_"))]
    assert not any(f.name == "trainer_state.pt" for d in runs for f in d.rglob("*"))  # pruned once recorded
    for d in runs:  # a later session without runs/: results.json says they are done
        shutil.rmtree(d)
    # ... but for the IT runs it lacks, which start from CPT checkpoints that are gone with runs/: trained again
    redo = sorted(n for n in q["runs"] if n.startswith("real_it_") and "sam" in n)
    results = json.load(open(tmp_path / "results" / "smoke" / "results.json"))
    for n in redo:
        del results["real"]["runs"][n]
    json.dump(results, open(tmp_path / "results" / "smoke" / "results.json", "w"))
    run("experiments/reproduce.py", "smoke", "--root", tmp_path, "--only", "real_dev", "real_table1", "real_table2",
        "real_it")
    again = json.load(open(tmp_path / "results" / "smoke" / "results.json"))["real"]
    assert again["table1"] == q["table1"] and again["slick"] == t and set(redo) <= set(again["runs"])
    assert {d.name for d in (tmp_path / "runs" / "smoke").glob("real_*") if d.is_dir() and d.name.startswith((
        "real_docs", "real_g_", "real_unk", "real_it_"))} == set(redo) | {c for c in q["runs"] if c.startswith(
            "real_docs") and c.endswith("_bf16")}
    report = run("experiments/report.py", tmp_path / "results" / "smoke" / "results.json").stdout
    assert "Table 1" in report and "Table 2" in report and "## The pretrained regime" in report
    assert "SliCK's experiment" in report
    assert "## The real model" in report and "What SmolLM2-135M-Instruct knows" in report
    if importlib.util.find_spec("matplotlib"):
        assert all((tmp_path / "results" / "smoke" / f).exists() for f in ("table1.png", "unknown.png", "curves.png"))

def test_a_stopped_run_resumes(tmp_path, monkeypatch):
    """A job whose train.py was stopped midway (SIGTERM at a session's end: it saves its step) goes on with --resume
    when reproduce.py runs it again; its other commands, and a run with no checkpoint, start as given. (That
    --resume ends with the uninterrupted run's weights is test_train's.)"""
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import runner
    ran = []
    monkeypatch.setattr(runner, "run_script", lambda script, args, **kw: ran.append([script, *args]) or 0)
    r = runner.Runner("smoke", str(tmp_path), {})
    a = r.path("a")
    cmds = [["train.py", "--out_dir", a, "--max_steps", 5], ["eval.py", "--model", a, "--out", tmp_path / "a.json"]]
    os.makedirs(a)
    assert r.run_job("a", cmds) and "--resume" not in ran[0]
    assert [c[c.index("--dtype") + 1] for c in ran] == ["float32", "float32"]  # the recorded numbers' precision
    os.remove(os.path.join(a, "job.json"))
    open(os.path.join(a, "trainer_state.pt"), "w").close()  # what a stopped train.py leaves
    ran.clear()
    assert r.run_job("a", cmds)
    assert ran[0][-1] == "--resume" and "--resume" not in ran[1]
    ran.clear()
    assert r.run_job("a", cmds) and not ran  # finished: skipped

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_kill_stops_it(tmp_path, sig):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) ends reproduce.py soon, with no job started after
    it: before, the thread pool's queue ran every remaining job of the batch while the interpreter exited. SIGTERM
    does the same for a run in the background, which ignores SIGINT (before, it stopped the jobs but not the queue)."""
    handler = signal.SIG_DFL if sig == signal.SIGINT else signal.SIG_IGN
    cmd = [sys.executable, "experiments/reproduce.py", "smoke", "--root", tmp_path, "--only", "sweeps", "--jobs", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, handler))
    try:
        seen = []
        for line in proc.stdout:  # the sweep's 3 jobs, one at a time: Ctrl-C when the first has ended
            seen.append(line)
            if line.startswith("  done"):
                os.killpg(proc.pid, sig)
                break
        out = "".join(seen) + proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1 and "reproduce.py: stopped" in out and "FAILED" not in out, out[-3000:]
    assert len(list((tmp_path / "runs" / "smoke").glob("*/job.json"))) < 3


def later_session_from_scratch(tmp_path, r):
    """The from-scratch regime keeps its jobs in results.json: a later session without runs/ skips them and makes the
    same tables, training again only the jobs it lacks and the weights they start from (their pre_ or gbase_ run)."""
    tables = ("sweeps", "table1", "search", "table2", "fact_loss_vs_test_em", "it", "it_para")
    kept = [d for d in (tmp_path / "runs" / "smoke").iterdir() if d.name in r["jobs"]]
    assert len(kept) == len(r["jobs"]) > 20 and all(rec["commands"] for rec in r["jobs"].values())
    for d in kept:
        shutil.rmtree(d)
    it = next(n for n in r["runs"] if n.startswith("scratch_it_baseline_sam"))  # (from pre_baseline_s0 too)
    redo = [f"seq_baseline_lr{r['chosen']['qa_lr']}_s0", f"gradual_lr{r['chosen']['ft_lr']}_s0", it]
    results = json.load(open(tmp_path / "results" / "smoke" / "results.json"))
    for n in redo:
        del results["jobs"][n]
    del results["runs"][it]
    json.dump(results, open(tmp_path / "results" / "smoke" / "results.json", "w"))
    run("experiments/reproduce.py", "smoke", "--root", tmp_path, "--only", "sweeps", "table1", "search", "table2", "it")
    again = json.load(open(tmp_path / "results" / "smoke" / "results.json"))
    assert {k: again.get(k) for k in tables} == {k: r.get(k) for k in tables}
    assert {d.name for d in (tmp_path / "runs" / "smoke").iterdir() if d.name in again["jobs"]} == {
        *redo, "pre_baseline_s0", "gbase_s0"}


class WouldRun:
    """In place of Runner.run_job: runs nothing, notes each job's name and reports it unfinished."""

    def __init__(self):
        self.names = []

    def __call__(self, name, cmds):
        self.names.append(name)
        return False


def test_recorded_runs_are_skipped(tmp_path):
    """Every run that the committed experiments/results/full/results.json records (results["real"]["runs"] and
    results["real"]["slick"]["runs"]) is found by its name and skipped: the real regime's real_dev, real_table1 and
    real_table2, planned in full mode from that file alone (no runs folder, no SmolLM2, no EntityQuestions), start no
    job and leave every table as it is. A run name that changes fails here. (The from-scratch regime keeps its jobs in
    results.json's "jobs": test_reproduce_smoke checks a later session; the pretrained regime's runs are cached by
    the runs folder's job.json only.)"""
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import real
    import scratch
    from runner import Runner
    (tmp_path / "results" / "full").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "experiments", "results", "full", "results.json"), tmp_path / "results" / "full")
    runner = Runner("full", str(tmp_path), scratch.MODES["full"])
    runner.run_job = would_run = WouldRun()
    res, cfg = runner.results["real"], real.MODES["full"]
    before = json.loads(json.dumps(res))
    f = real.files(cfg, runner)  # paths only: nothing there
    real.dev(cfg, runner, f, res)
    real.table1(cfg, runner, f, res)
    real.table2(cfg, runner, f, str(tmp_path / "no_pool.jsonl"), res)
    assert would_run.names == []
    assert len(res["runs"]) == len(before["runs"]) >= 73 and len(res["slick"]["runs"]) == 34
    # the dev grid again: the same runs, in order (now with the fact losses that table1 recorded for four of them)
    assert list(res.pop("dev")) == list(before.pop("dev"))
    assert json.loads(json.dumps(res)) == before
    assert not os.path.exists(runner.runs)  # nothing prepared for a recorded run
