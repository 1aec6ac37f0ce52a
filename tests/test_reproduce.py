"""experiments/reproduce.py smoke: every part of both regimes' Results pipeline runs and reports, on worlds of a few people."""
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
        assert arm["mixed"]["test_exact_match"] and arm["sequential"]["test_exact_match"] and arm["mixed"]["fact_loss_formats"]
    assert all(r["table2"][m] for m in ("gradual", "one_stage", "two_rounds", "random", "all"))
    p = r["pretrained"]  # the pretrained regime: base per tier, both protocols with what was kept, SliCK's experiment, gradual
    assert p["base"]["known_test"]["mean"] > p["base"]["new"]["mean"]
    assert set(p["chosen"]) == {"lr", "K", "rho", "ratio", "qa_lr", "ft_lr"}
    for arm in p["table1"].values():
        for protocol in ("mixed", "sequential"):
            assert arm[protocol]["test_exact_match"] and arm[protocol]["known_test"] and arm[protocol]["fact_loss_formats"]
    assert set(p["unknown"]) == {"0.0", "0.5", "1.0"} and all(c["early_stop"] and c["end"] for c in p["unknown"].values())
    assert all(p["table2"][m] for m in ("gradual", "one_stage", "two_rounds", "random", "all"))
    q = r["real"]  # the real-model regime (a stand-in model in smoke): the base's kept set, dev choices, every arm in both protocols
    assert q["base"]["kept_n"] > 0 and q["base"]["kept_em"] == 1.0 and set(q["chosen"]) == {"lr", "epochs", "K", "rho", "lora_lr"}
    assert len(q["table1"]) == 10 and all(c[p]["test"] and c[p]["kept"] and c[p]["tokens"] and c[p]["fact_loss_formats"]
                                          for c in q["table1"].values() for p in ("docs", "mixed"))
    t = q["slick"]  # its Table 2: shares by relation, SliCK's experiment with curves, gradual.py and its baselines
    assert t["shares_by_relation"]["train"]["all"]["n"] > 0 and set(t["unknown"]) == {"0.0", "0.5", "1.0"}
    assert all(c["early_stop"] and c["end"] and c["per_seed_end"] for c in t["unknown"].values()) and all(t["unknown_curves"].values())
    assert all(t["table2"][m] for m in ("gradual", "one_stage", "two_rounds", "random", "all"))
    runs = [d for d in (tmp_path / "runs" / "smoke").glob("real_*") if d.is_dir() and d.name.startswith(("real_docs", "real_mixed", "real_g_", "real_unk"))]
    assert not any(f.name == "trainer_state.pt" for d in runs for f in d.rglob("*"))  # pruned once recorded
    for d in runs:  # a later session without runs/: results.json says they are done
        shutil.rmtree(d)
    run("experiments/reproduce.py", "smoke", "--root", tmp_path, "--only", "real_dev", "real_table1", "real_table2")
    again = json.load(open(tmp_path / "results" / "smoke" / "results.json"))["real"]
    assert again["table1"] == q["table1"] and again["slick"] == t
    assert not [d for d in (tmp_path / "runs" / "smoke").glob("real_*") if d.is_dir() and d.name.startswith(("real_docs", "real_g_", "real_unk"))]
    report = run("experiments/report.py", tmp_path / "results" / "smoke" / "results.json").stdout
    assert "Table 1" in report and "Table 2" in report and "## The pretrained regime" in report and "SliCK's experiment" in report
    assert "## The real model" in report and "What SmolLM2-135M-Instruct knows" in report
    if importlib.util.find_spec("matplotlib"):
        assert all((tmp_path / "results" / "smoke" / f).exists() for f in ("table1.png", "unknown.png", "curves.png"))

def test_a_stopped_run_resumes(tmp_path, monkeypatch):
    """A job whose train.py was stopped midway (SIGTERM at a session's end: it saves its step) goes on with --resume
    when reproduce.py runs it again; its other commands, and a run with no checkpoint, start as given. (That
    --resume ends with the uninterrupted run's weights is test_train's.)"""
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import reproduce
    ran = []
    monkeypatch.setattr(reproduce, "run_script", lambda script, args, **kw: ran.append([script, *args]) or 0)
    cmds = [["train.py", "--out_dir", tmp_path / "a", "--max_steps", 5], ["eval.py", "--model", tmp_path / "a", "--out", tmp_path / "a.json"]]
    (tmp_path / "a").mkdir()
    assert reproduce.run_job("a", cmds, str(tmp_path / "a"), 1, "cpu") and "--resume" not in ran[0]
    (tmp_path / "a" / "job.json").unlink()
    (tmp_path / "a" / "trainer_state.pt").touch()  # what a stopped train.py leaves
    ran.clear()
    assert reproduce.run_job("a", cmds, str(tmp_path / "a"), 1, "cpu")
    assert ran[0][-1] == "--resume" and "--resume" not in ran[1]
    ran.clear()
    assert reproduce.run_job("a", cmds, str(tmp_path / "a"), 1, "cpu") and not ran  # finished: skipped

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_kill_stops_it(tmp_path, sig):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) ends reproduce.py soon, with no job started after
    it: before, the thread pool's queue ran every remaining job of the batch while the interpreter exited. SIGTERM
    does the same for a run in the background, which ignores SIGINT (before, it stopped the jobs but not the queue)."""
    proc = subprocess.Popen([sys.executable, "experiments/reproduce.py", "smoke", "--root", tmp_path, "--only", "sweeps", "--jobs", "1"],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL if sig == signal.SIGINT else signal.SIG_IGN))
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
