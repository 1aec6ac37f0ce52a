"""experiments/reproduce.py quick: every part of the Results pipeline runs and reports (about 20 min)."""
import json

import pytest

from conftest import run

@pytest.mark.slow
def test_reproduce_quick(tmp_path):
    run("experiments/reproduce.py", "quick", "--root", tmp_path, timeout=3600)
    r = json.load(open(tmp_path / "results" / "quick" / "results.json"))
    assert set(r["chosen"]) == {"K", "rho", "qa_lr", "ft_lr"}
    for arm in r["table1"].values():  # every arm of both protocols has a test exact match and the diagnostic
        assert arm["mixed"]["test_exact_match"] and arm["sequential"]["test_exact_match"] and arm["mixed"]["fact_loss_formats"]
    assert all(r["table2"][m] for m in ("gradual", "one_stage", "two_rounds", "random", "all"))
    report = run("experiments/report.py", tmp_path / "results" / "quick" / "results.json").stdout
    assert "Table 1" in report and "Table 2" in report
