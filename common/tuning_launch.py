"""Distributed KerasTuner searches: one oracle (the chief) and N workers.

KerasTuner distributes a search through three environment variables, read
by every process that runs the same search script:

    KERASTUNER_TUNER_ID     "chief" for the oracle process, "tuner0", "tuner1", ...
                            for the workers (each worker needs its own ID)
    KERASTUNER_ORACLE_IP    address the chief listens on and the workers dial
    KERASTUNER_ORACLE_PORT  its port

The chief runs no trials: it hands out hyperparameters over gRPC, records
the results in the search directory and, once every trial is done, returns
from `tuner.search` (KerasTuner checks every 20 s), so the chief is the
process that reports the best trial. Workers train the trials. A worker
that dies mid-trial loses nothing: when it is started again with the SAME
tuner ID the oracle hands it the trial it was running, and the search goes
on. All processes must see the same `directory` (a shared filesystem on a
cluster).

On this machine, the launcher starts the chief and N workers running one
command, restarts workers that die, and waits for the chief:

    python -m hybridvision.common.tuning launch --workers 2 -- hybridvision orientation_light tune --tuner random --max-trials 8

The search script calls `hybridvision.common.tuning.search` as usual: on the chief it
writes best_config.yaml and trials.csv; on a worker it only trains and
returns `(None, tuner)`.

On a SLURM cluster, one task per process (task 0 is the chief), all tasks
running the same command: examples/slurm/tune_distributed.sbatch sets
KERASTUNER_ORACLE_IP to the first node of the job, KERASTUNER_ORACLE_PORT,
and KERASTUNER_TUNER_ID from SLURM_PROCID (0: chief, k: tuner{k-1}):

    sbatch examples/slurm/tune_distributed.sbatch

(A preempted worker task resumes its trial when requeued with the same ID.)
For data-parallel training of one model over several hosts see
examples/slurm/multihost_train.sbatch and common/distribute.py.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from hybridvision.common.config import OneLineErrorParser

log = logging.getLogger("hybridvision")

ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"


def role() -> str | None:
    """This process's part in a distributed search: "chief", "tunerN", or None (not distributed)."""
    if ENV_ORACLE_IP not in os.environ:
        return None
    missing = [name for name in (ENV_ORACLE_PORT, ENV_TUNER_ID) if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"{ENV_ORACLE_IP} is set but {', '.join(missing)} is not; set all three "
            f"({ENV_TUNER_ID}=chief|tuner0|..., {ENV_ORACLE_IP}, {ENV_ORACLE_PORT}) or none"
        )
    return os.environ[ENV_TUNER_ID]


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class Launcher:
    """Starts the chief and `workers` workers of one search command and supervises them.

    Args:
        command: the search script's command line (list of str), run by every process.
        workers: number of workers (tuner0 .. tuner{workers-1}).
        ip, port: where the chief listens (port 0 picks a free one).
        log_dir: one log file per process (chief.log, tuner0.log, ...).
        max_restarts: how often a worker that exits with an error or a
            signal is started again (same tuner ID, so it resumes its trial).
    """

    def __init__(self, command, workers: int, ip: str = "127.0.0.1", port: int = 0, log_dir="runs/launch",
                 max_restarts: int = 3):
        if not command:
            raise ValueError("give the search command after `--`, e.g. launch --workers 2 -- hybridvision x tune")
        if workers < 1:
            raise ValueError(f"--workers {workers}: need at least one worker")
        self.command = list(command)
        self.workers = int(workers)
        self.ip = ip
        self.port = int(port) or free_port(ip)
        self.log_dir = Path(log_dir)
        self.max_restarts = int(max_restarts)
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}

    def env(self, tuner_id: str) -> dict:
        return {**os.environ, ENV_TUNER_ID: tuner_id, ENV_ORACLE_IP: self.ip, ENV_ORACLE_PORT: str(self.port)}

    def start(self, tuner_id: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{tuner_id}.log", "a") as out:
            proc = subprocess.Popen(self.command, env=self.env(tuner_id), stdout=out, stderr=subprocess.STDOUT)
        self.procs[tuner_id] = proc
        log.info("started %s (pid %d), log %s", tuner_id, proc.pid, self.log_dir / f"{tuner_id}.log")
        return proc

    def run(self, poll_s: float = 0.5, timeout_s: float | None = None) -> int:
        """Start everything, restart dying workers, return the chief's exit code."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.start("chief")
        # Workers retry the connection themselves, but give the server a head start.
        time.sleep(1.0)
        for i in range(self.workers):
            self.start(f"tuner{i}")
        try:
            while True:
                chief = self.procs["chief"].poll()
                if chief is not None:
                    self._wait_workers(deadline)
                    return chief
                for tuner_id, proc in list(self.procs.items()):
                    code = proc.poll()
                    if tuner_id == "chief" or code in (None, 0):
                        continue
                    if self.restarts.get(tuner_id, 0) >= self.max_restarts:
                        raise RuntimeError(f"{tuner_id} exited with {code} {self.max_restarts + 1} times; see {self.log_dir}")
                    self.restarts[tuner_id] = self.restarts.get(tuner_id, 0) + 1
                    log.warning("%s exited with %s; restarting it (restart %d of %d) to resume its trial",
                                tuner_id, code, self.restarts[tuner_id], self.max_restarts)
                    self.start(tuner_id)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the search did not finish in {timeout_s} s; logs in {self.log_dir}")
                time.sleep(poll_s)
        finally:
            self.stop()

    def _wait_workers(self, deadline):
        for proc in self.procs.values():
            remaining = None if deadline is None else max(1.0, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = OneLineErrorParser(
        prog="python -m hybridvision.common.tuning launch",
        description="Run a KerasTuner search as one chief (oracle) and N workers on this machine. "
        "Usage: launch --workers N [options] -- <search command>",
    )
    parser.add_argument("--workers", type=int, required=True, help="number of worker processes")
    parser.add_argument("--ip", default="127.0.0.1", help="address the chief listens on")
    parser.add_argument("--port", type=int, default=0, help="the chief's port (0: a free one)")
    parser.add_argument("--log-dir", default=None, help="one log per process (default runs/launch/<time>)")
    parser.add_argument("--max-restarts", type=int, default=3, help="restarts per worker that dies")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    args = parser.parse_args(argv)
    # Plain logging: importing hybridvision.common.run would load TensorFlow into a process that trains nothing.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log_dir = args.log_dir or Path("runs/launch") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    launcher = Launcher(command, args.workers, ip=args.ip, port=args.port, log_dir=log_dir,
                        max_restarts=args.max_restarts)
    code = launcher.run(timeout_s=args.timeout)
    print(f"search finished: chief exit code {code}, worker restarts {sum(launcher.restarts.values())}, logs in {log_dir}")
    return code
