"""
Run the repo's scripts as processes of their own without paying for their imports every time. A fresh Python
that imports torch and transformers spends about 8 s of CPU on it (2 cores), more than a small stage's work:
gradual.py's stages, reproduce.py's jobs and the tests' runs are dozens of such processes. Here a server imports
them once and never computes; each script runs in a fork of it, so it starts in milliseconds, and is otherwise
the process `python SCRIPT ARGS` would be: its own memory, exit code, signals (Ctrl-C reaches it), argv and cwd.

    from launch import run_script
    code = run_script("train.py", ["--max_steps", "10", "--out_dir", "out"])  # like subprocess.run(...).returncode
    code = run_script("eval.py", [...], env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout="log.txt", stderr="log.txt")

Why a server and not a fork of the caller: a process that has run OpenMP work (any torch op on 2+ threads) hangs
in a forked child's first parallel op, and a caller with threads may fork with a lock held. The server never runs
a torch op and has one thread; it serves any number of callers at once (a handler, itself a fork, waits for each
script). One server per environment (libraries read some variables at import: OMP_NUM_THREADS, HF_HUB_OFFLINE),
started by the first call and ended with that process; a script it runs (gradual.py under reproduce.py) reaches
it through LAUNCH_SERVER when it passes no environment of its own. LAUNCH_FORK=0, or a system without fork, runs
plain subprocesses instead.
"""
import hashlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback

ROOT = os.path.dirname(os.path.abspath(__file__))
PRELOAD = ("torch", "transformers", "transformers.modeling_utils", "transformers.models.auto.modeling_auto",
           "transformers.models.auto.tokenization_auto", "transformers.models.llama.modeling_llama",
           "data", "augment", "model", "decode", "eval")
_servers, _lock = {}, threading.Lock()

def run_script(path, args, env=None, stdout=None, stderr=None, timeout=None, cwd=None):
    """The exit code of `python path args...` run in `cwd` (default: this process's; negative: killed by that
    signal). stdout / stderr: file paths the script's output goes to (appended); None: this process's own."""
    inherit, env, cwd = env is None, dict(os.environ if env is None else env), os.path.abspath(cwd or os.getcwd())
    path, args = os.path.join(cwd, path), [str(a) for a in args]
    if os.environ.get("LAUNCH_FORK", "1") == "0" or not hasattr(os, "fork"):
        files = [open(f, "a") if f else None for f in (stdout, stderr)]
        try:
            return subprocess.run([sys.executable, path, *args], env=env, cwd=cwd, stdout=files[0], stderr=files[1],
                                  timeout=timeout).returncode
        finally:
            [f.close() for f in files if f]
    out, err = (f and os.path.join(cwd, f) for f in (stdout, stderr))
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(_server(env, inherit))
        socket.send_fds(conn, [b"."], [1, 2])  # this process's stdout and stderr, for a script that writes to them
        conn.sendall((json.dumps([path, args, cwd, out, err]) + "\n").encode())
        replies = conn.makefile("rb")
        pid = int(replies.readline())
        conn.settimeout(timeout)
        try:
            return int(replies.readline())
        except (TimeoutError, socket.timeout):
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired([path, *args], timeout) from None

def _server(env, inherit):
    """The socket of the server for `env`: with `inherit` (no env of the caller's own), the one this process was
    forked from if any; else one this process started (its first call for `env` starts it: ~8 s of imports once)."""
    inherited = os.environ.get("LAUNCH_SERVER", "")
    # (its environment: this process's as it began, before imports added to it)
    if inherit and os.path.exists(inherited):
        return inherited
    key = hashlib.sha1(json.dumps(sorted(env.items())).encode()).hexdigest()[:12]
    with _lock:
        if key not in _servers:
            address = os.path.join(tempfile.mkdtemp(prefix="launch-"), key)
            alive_r, alive_w = os.pipe()  # the server ends when this process does (and the pipe's write end closes)
            ready_r, ready_w = os.pipe()
            code = (f"import sys; sys.path.insert(0, {ROOT!r}); from launch import serve; "
                    f"serve({address!r}, {alive_r}, {ready_w})")
            subprocess.Popen([sys.executable, "-c", code], env={**env, "LAUNCH_SERVER": address},
                             pass_fds=(alive_r, ready_w), stdin=subprocess.DEVNULL)
            os.close(alive_r)
            os.close(ready_w)
            ready = os.read(ready_r, 1)
            os.close(ready_r)
            if not ready:
                raise RuntimeError("launch.py: the fork server did not start")
            _servers[key] = (address, alive_w)
    return _servers[key][0]

def serve(address, alive, ready):
    """The server: import, listen, and for each connection fork a handler that forks the script, replies with its
    pid, waits, replies with its exit code. It ignores Ctrl-C (the terminal sends it to the whole group: the script
    handles it) and ends when its starter does."""
    import importlib
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional package: the script imports what it needs itself
            pass
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen(64)
    os.write(ready, b"1")
    os.close(ready)
    while select.select([listener, alive], [], [])[0] != [alive]:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            os.close(alive)
            _handle(conn)
        conn.close()
    os.unlink(address)
    os.rmdir(os.path.dirname(address))

def _handle(conn):
    """In a handler (a fork of the server): run one script in a fork of its own, report its pid and exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _, fds, _, _ = socket.recv_fds(conn, 1, 2)
    path, args, cwd, out, err = json.loads(conn.makefile("rb").readline())
    pid = os.fork()
    if pid == 0:
        conn.close()
        _child(path, args, cwd, out, err, fds)
    try:
        conn.sendall(f"{pid}\n".encode())
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        conn.sendall(f"{code}\n".encode())
    except OSError:  # the caller gave up (a timeout) or died
        pass
    os._exit(0)

def _child(path, args, cwd, out, err, fds):
    """In the script's fork: become `python path args` (default signal handlers, cwd, the caller's stdout and stderr
    or the files given), run, exit with its code."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 1
    try:
        os.chdir(cwd)
        for fd, name, caller in ((1, out, fds[0]), (2, err, fds[1])):
            os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if name else caller, fd)
        sys.argv, sys.path[:2] = [path, *args], [os.path.dirname(path)]  # the script's folder first, as python puts it
        runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as e:  # as the interpreter does: None is 0, an int is the code, anything else is printed and 1
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else print(e.code, file=sys.stderr) or 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 130
    except BaseException:  # an uncaught exception: its traceback and exit code 1, as python prints it
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
