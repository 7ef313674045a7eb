"""`kws-zoo train --workers N`: N training processes on this machine, a MultiWorkerMirroredStrategy cluster on
127.0.0.1, to try multi-worker training (and its fault tolerance) without a cluster.

Each worker is the ordinary `kws-zoo train` with TF_CONFIG naming the cluster and its index. TensorFlow's recovery
model for this strategy is the whole cluster restarting from the last backup: when a worker dies the others fail
at their next collective (or hang until a timeout), so the launcher ends them at once and starts all N again,
and every worker resumes from the chief's checkpoint or mid-epoch backup (recipe distribute.backup_every_steps).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from kws_zoo.core.errors import RunDirError

WORKERS_DIR = ".workers"  # pids and logs of the workers, inside the run directory


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held open together so they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def pid_file(run_dir: str, index: int) -> str:
    return os.path.join(run_dir, WORKERS_DIR, f"worker-{index}.pid")


def _start(train_args: list[str], run_dir: str, workers: int, attempt: int) -> list[subprocess.Popen]:
    ports = free_ports(workers)
    os.makedirs(os.path.join(run_dir, WORKERS_DIR), exist_ok=True)
    procs = []
    for i in range(workers):
        env = dict(os.environ, TF_CONFIG=tf_config(ports, i))
        with open(os.path.join(run_dir, WORKERS_DIR, f"worker-{i}.log"), "a") as log:
            log.write(f"--- attempt {attempt + 1}\n")
            log.flush()
            cmd = [sys.executable, "-c", "from kws_zoo.cli import main; main()", "train", *train_args]
            # the chief's progress bars (stderr) show on the terminal; everything else goes to the logs
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=None if i == 0 else subprocess.STDOUT))
        with open(pid_file(run_dir, i), "w") as f:
            f.write(str(procs[-1].pid))
    return procs


def _stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + grace_s
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local_workers(train_args: list[str], run_dir: str, workers: int, *, max_restarts: int = 3,
                      poll_s: float = 0.5) -> int:
    """Runs `kws-zoo train *train_args` (which must write to run_dir and ask for the multi_worker strategy) as
    `workers` local workers until all finish; restarts the whole group from its last backup when one fails, at most
    max_restarts times. Returns the number of restarts."""
    if workers < 2:
        raise RunDirError(f"--workers starts a cluster of at least 2 local workers, got {workers}")
    restarts = 0
    while True:
        procs = _start(train_args, run_dir, workers, restarts)
        try:
            while any(p.poll() is None for p in procs) and all(p.poll() in (None, 0) for p in procs):
                time.sleep(poll_s)  # until all have finished or one has failed
        finally:
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed or any(p.poll() is None for p in procs):
                _stop(procs)
        if not failed:
            return restarts
        if restarts >= max_restarts:
            codes = {i: procs[i].returncode for i in failed}
            raise RunDirError(f"{run_dir}: worker(s) {codes} failed {restarts + 1} times (exit codes); logs in "
                              f"{os.path.join(run_dir, WORKERS_DIR)}")
        restarts += 1
        print(f"worker(s) {failed} stopped (exit {[procs[i].returncode for i in failed]}); restarting all "
              f"{workers} from the last backup ({restarts}/{max_restarts})", file=sys.stderr, flush=True)
