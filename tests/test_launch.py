"""launch.py: a script run as a fork of the warm server behaves as `python script args` does (exit codes,
output, environment, working directory, argv, signals, timeouts), and LAUNCH_FORK=0 runs the same plain subprocess."""
import os
import signal
import subprocess
import sys

import pytest

from conftest import ENV, ROOT
from launch import run_script

SCRIPT = '''import os, sys, time
print("argv", sys.argv[1:], "cwd", os.getcwd(), "path0", sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
print("env", os.environ.get("MARK"), "main", __name__)
mode = sys.argv[1]
if mode == "ok":
    import torch
    print("threads", torch.get_num_threads())
print("to stderr", file=sys.stderr)
if mode == "code":
    sys.exit(3)
if mode == "message":
    sys.exit("a message")
if mode == "raise":
    raise ValueError("boom")
if mode == "sleep":
    time.sleep(60)
if mode == "kill":
    os.kill(os.getpid(), 9)
'''

@pytest.fixture(params=["fork", pytest.param("subprocess", marks=pytest.mark.slow)])
def launch(request, monkeypatch):
    if request.param == "subprocess":
        monkeypatch.setenv("LAUNCH_FORK", "0")
    return request.param

def test_a_script_runs_as_python_would_run_it(launch, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    env = {**ENV, "MARK": "m1", "OMP_NUM_THREADS": "1"}
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    assert run_script(script, ["ok", "x y"], env=env, stdout=out, stderr=err, cwd=ROOT) == 0
    text = out.read_text()
    assert f"argv ['ok', 'x y'] cwd {ROOT} path0 True" in text
    assert "env m1 main __main__" in text and "threads 1" in text
    assert err.read_text() == "to stderr\n" and "to stderr" not in text
    for mode, code, said in (("code", 3, ""), ("message", 1, "a message"), ("raise", 1, "ValueError: boom"),
                             ("kill", -signal.SIGKILL, "")):
        err.write_text("")
        assert run_script(script, [mode], env=env, stdout=out, stderr=err, cwd=ROOT) == code, mode
        assert said in err.read_text()
    with pytest.raises(subprocess.TimeoutExpired):
        run_script(script, ["sleep"], env=env, stdout=out, stderr=err, timeout=3)
    # another environment: another server
    assert run_script(script, ["ok"], env={**env, "MARK": "m2"}, stdout=out, cwd=tmp_path) == 0
    assert f"cwd {tmp_path}" in out.read_text().splitlines()[-3] and "env m2" in out.read_text().splitlines()[-2]

@pytest.mark.slow
def test_a_repo_script_started_from_the_server_matches_a_fresh_interpreter(tmp_path):
    """The same command line, forked or started afresh: the same output and exit code (train.py's help, an error)."""
    for args in (["--help"], ["--data", str(tmp_path / "absent.jsonl"), "--out_dir", str(tmp_path / "o")]):
        fresh = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args], cwd=ROOT, env=ENV,
                               capture_output=True, text=True)
        out, err = tmp_path / "o.txt", tmp_path / "e.txt"
        for f in (out, err):
            f.write_text("")
        assert run_script("train.py", args, env=ENV, stdout=out, stderr=err, cwd=ROOT) == fresh.returncode
        assert out.read_text() == fresh.stdout and err.read_text() == fresh.stderr

def test_a_script_that_runs_scripts_reuses_its_server(tmp_path):
    """gradual.py under reproduce.py: the inner runs go to the server the outer script came from (no second ~8 s
    import)."""
    (tmp_path / "inner.py").write_text("import os\nprint('inner', os.environ['LAUNCH_SERVER'])\n")
    (tmp_path / "outer.py").write_text(
        "import os, sys\nsys.path.insert(0, %r)\nimport launch\n"
        "code = launch.run_script(os.path.join(%r, 'inner.py'), [])\n"
        "print('outer', code, len(launch._servers), os.environ['LAUNCH_SERVER'])\n"
        % (ROOT, str(tmp_path)))
    out = tmp_path / "out.txt"
    assert run_script(tmp_path / "outer.py", [], env=ENV, stdout=out) == 0
    inner, outer = out.read_text().splitlines()
    assert outer.startswith("outer 0 0 ") and inner.split()[1] == outer.split()[3]  # one server, none started inside
