"""
Run the repo's scripts as processes of their own without paying for their imports every time. A fresh Python
that imports torch and transformers spends about 8 s of CPU on it (2 cores), more than a small stage's work:
gradual.py's stages, reproduce.py's jobs and the tests' runs are dozens of such processes. Here a server imports
them once and never computes; each script runs in a fork of it, so it starts in milliseconds, and is otherwise
the process `python SCRIPT ARGS` would be: its own memory, exit code, signals (Ctrl-C reaches it), argv and cwd.

    from data.launch import run_script
    code = run_script("train.py", ["--max_steps", "10", "--out_dir", "out"])            # like subprocess.run(...).returncode
    code = run_script("eval.py", [...], env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout="log.txt", stderr="log.txt")

Why a server and not a fork of the caller: a process that has run OpenMP work (any torch op on 2+ threads) hangs
in a forked child's first parallel op, and a caller with threads may fork with a lock held. The server never runs
a torch op and has one thread. One server per (calling thread, environment): libraries read some variables at import
(OMP_NUM_THREADS, HF_HUB_OFFLINE), so a server's environment is its scripts'. LAUNCH_FORK=0, or a system without
fork, runs plain subprocesses instead.
"""
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELOAD = ("torch", "transformers", "transformers.modeling_utils", "transformers.models.auto.modeling_auto",
           "transformers.models.auto.tokenization_auto", "transformers.models.llama.modeling_llama", "data", "augment", "eval")
_servers, _lock = {}, threading.Lock()

def run_script(path, args, env=None, stdout=None, stderr=None, timeout=None, cwd=None):
    """The exit code of `python path args...` run in `cwd` (default: this process's; negative: killed by that
    signal). stdout / stderr: file paths the script's output goes to (appended); None: this process's own."""
    env, cwd = dict(os.environ if env is None else env), os.path.abspath(cwd or os.getcwd())
    path, args = os.path.join(cwd, path), [str(a) for a in args]
    if os.environ.get("LAUNCH_FORK", "1") == "0" or not hasattr(os, "fork"):
        files = [open(f, "a") if f else None for f in (stdout, stderr)]
        try:
            return subprocess.run([sys.executable, path, *args], env=env, cwd=cwd, stdout=files[0], stderr=files[1], timeout=timeout).returncode
        finally:
            [f.close() for f in files if f]
    server = _server(env)
    out, err = (f and os.path.join(cwd, f) for f in (stdout, stderr))
    os.write(server.request, (json.dumps([path, args, cwd, out, err]) + "\n").encode())
    pid = int(_read_line(server.reply, None))
    try:
        return int(_read_line(server.reply, timeout))
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        _read_line(server.reply, None)
        raise subprocess.TimeoutExpired([path, *args], timeout) from None

def _read_line(fd, timeout):
    line = b""
    while not line.endswith(b"\n"):
        if timeout is not None and not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError("launch.py: the fork server died")
        line += chunk
    return line.decode()

def _server(env):
    """This thread's server for `env`, started on first use (its imports take the ~8 s once)."""
    key = (threading.get_ident(), tuple(sorted(env.items())))
    with _lock:
        server = _servers.get(key)
        if server is None or server.poll() is not None:
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            code = f"import sys; sys.path.insert(0, {ROOT!r}); from data.launch import serve; serve({req_r}, {rep_w})"
            server = subprocess.Popen([sys.executable, "-c", code], env=env, pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL)
            os.close(req_r)
            os.close(rep_w)
            server.request, server.reply = req_w, rep_r
            _servers[key] = server
    return server

def serve(requests, replies):
    """The server: import, then for each request fork, reply with the child's pid, wait, reply with its exit code.
    It ignores Ctrl-C (the terminal sends it to the whole group: the child handles it) and ends with its caller."""
    import importlib
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 (a missing optional package: the script imports what it needs itself)
            pass
    with os.fdopen(requests) as lines:
        for line in lines:
            path, args, cwd, out, err = json.loads(line)
            pid = os.fork()
            if pid == 0:
                os.close(replies)
                _child(path, args, cwd, out, err)
            os.write(replies, f"{pid}\n".encode())
            os.write(replies, f"{os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}\n".encode())

def _child(path, args, cwd, out, err):
    """In the fork: become `python path args` (default signal handlers, cwd, output files), run it, exit with its code."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 1
    try:
        os.chdir(cwd)
        for fd, name in ((1, out), (2, err)):
            if name:
                os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), fd)
        sys.argv, sys.path[:2] = [path, *args], [os.path.dirname(path)]  # the script's folder first, as python puts it
        runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as e:  # as the interpreter does: None is 0, an int is the code, anything else is printed and 1
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else print(e.code, file=sys.stderr) or 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 130
    except BaseException:  # noqa: BLE001 (an uncaught exception: its traceback and exit code 1, as python prints it)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
