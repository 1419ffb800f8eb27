"""A study's runs on a Dask cluster: ``python -m harness run --scheduler tcp://HOST:PORT``.

The client (the study's process) connects to a Dask scheduler, sends the study's data file to every
worker once and submits each run as a task. On a worker the run still happens in a fresh process,
exactly as without a cluster (``harness.runner.execute``); a worker must have one thread, so that it
runs one run at a time, and a machine should have one worker. Results come back to the client,
which lands them with the study's own landing function, so runs.csv, epochs.csv and --resume work as
they do locally.

Placements:

- ``spread``: every run once, on whichever worker is free (Dask decides). Dask re-queues a run whose
  worker died; once ``distributed.scheduler.allowed-failures`` workers have died running it, the run
  is recorded with status 'lost'.
- ``every-machine``: each worker machine runs the whole plan (a cross-machine study). A run's key
  includes its machine and its task is pinned to that machine's worker. When that worker leaves,
  the machine's unfinished runs wait for a worker of the same machine (a restarted worker) and go to
  it, as Dask does in ``spread``; runs of a machine that is not back within ``REJOIN_GRACE_S`` once
  nothing else is left are recorded as 'lost'.

--resume runs 'lost' runs again. A machine is named by its host name; in every-machine placement,
workers that share a host (a test cluster, two workers started on one machine) are told apart as
HOST/WORKER-NAME, each running the whole plan.
"""
from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import dask
from distributed import Client, KilledWorker, get_worker
from distributed.core import rpc


from reports.folder.files import UsageError, write_atomic
from reports.folder.schema import LOST, RUN_COLUMNS
from reports.folder.sessions import record_machines

from .locks import machine_lock
from .environment import environment_record, machine_name, machine_record
from .plan import RunSpec, StudyPlan
from .runner import execute, runs_to_do

PLACEMENTS = ("spread", "every-machine")
CONNECT_TIMEOUT_S = 5.0
POLL_S = 1.0  # how often the client looks for results and at the cluster's workers
REJOIN_GRACE_S = 30.0  # how long, once nothing else is left, a machine's runs wait for it to come back


class ClusterError(UsageError):
    """The cluster cannot take the study (nothing answers at the address, no workers, workers with
    several threads or without the project): one line and exit status 2, before anything runs."""


class Task(NamedTuple):
    """One run to do, the machine it must run on (every-machine placement) or None (spread), and its
    place in the plan: a worker takes its runs in the plan's order (repeats outermost)."""

    spec: RunSpec
    machine: str | None
    order: int


# -- on the workers ------------------------------------------------------------------------------
def probe() -> dict:
    """On a worker, before any run: its host, cores and code version, which the client checks."""
    record = machine_record()
    return {key: record[key] for key in ("host", "cores", "git_commit")}


class _Silent:
    """The progress of a run on a worker: nobody watches it there (the client reports each result)."""

    def epoch(self, spec, epoch) -> None:
        pass


def remote_run(spec: RunSpec, plan: StudyPlan, data: bytes, digest: str, timeout: float, machine: str | None) -> dict:
    """On a worker: write the study's data file into the worker's folder once, run ``spec`` in a fresh
    process as the local runner does, and return its rows, named after this machine (``machine``, or
    the host name) and worker, with the machine's record. The run holds the machine's lock, waiting for
    a study running there (harness.locks)."""
    worker = get_worker()
    folder = Path(worker.local_directory)
    data_path = folder / f"mlp-study-{digest}.npz"
    if not data_path.exists():
        write_atomic(data_path, lambda tmp: tmp.write_bytes(data))
    command = [f"dask worker {worker.name}: {spec.label}"]
    with machine_lock(folder, command, wait=True, stream=sys.stderr, machine=machine), \
            tempfile.TemporaryDirectory(prefix="mlp-run-", dir=folder) as scratch:
        result = execute(spec, plan, data_path, Path(scratch), timeout, _Silent())
    names = {"machine": machine or machine_name(), "worker": str(worker.name)}
    result["run"].update(names)
    for epoch in result["epochs"]:
        epoch["machine"] = names["machine"]
    return {**result, "record": machine_record()}


# -- on the client -------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _identity(address: str) -> dict:
    async with rpc(address, timeout=CONNECT_TIMEOUT_S) as scheduler:
        return await asyncio.wait_for(scheduler.identity(), CONNECT_TIMEOUT_S)


def connect(scheduler: str, placement: str, stream=sys.stderr) -> "Cluster":
    """Connect to the scheduler and check its workers; a ClusterError (one line) when it cannot be used."""
    if placement not in PLACEMENTS:
        raise ClusterError(f"unknown placement {placement!r}; choose from {', '.join(PLACEMENTS)}")
    try:  # a plain check first: a Client that cannot connect leaves tracebacks behind when collected
        identity = asyncio.run(_identity(scheduler))
    except Exception as exc:  # noqa: BLE001 - any failure to talk to it means: no scheduler there
        raise ClusterError(f"cannot reach a Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S:.0f} s "
                           f"({_one_line(exc)})") from None
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        raise ClusterError(f"{scheduler} answers but is not a Dask scheduler")
    client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    try:
        cluster = Cluster(client, placement, stream)
        cluster.check()
    except BaseException:
        client.close()
        raise
    return cluster


@dataclass
class Cluster:
    """A connected Dask client, the placement, and the machines of the study (every-machine)."""

    client: Client
    placement: str
    stream: object = sys.stderr
    machines: dict[str, str | None] = field(default_factory=dict)  # machine -> address of its worker now
    hosts_shared: set[str] = field(default_factory=set)  # hosts with several workers at the start
    facts: dict[str, dict] = field(default_factory=dict)  # worker address -> probe()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def say(self, text: str) -> None:
        print(f"cluster: {text}", file=self.stream, flush=True)

    def check(self) -> None:
        """Workers present, one thread each, able to import the project; machines named; warnings said."""
        address = self.client.scheduler.address
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(f"the scheduler at {address} has no workers: start one per machine with "
                               f"'dask worker {address} --nworkers 1 --nthreads 1'") from None
        workers = self.workers()
        for addr, info in workers.items():
            if info["nthreads"] != 1:
                raise ClusterError(f"worker {info['name']} at {addr} has {info['nthreads']} threads: it would run "
                                   "several runs at once; start workers with --nthreads 1")
        self.facts = self._probe(list(workers), strict=True)
        hosts = Counter(fact["host"] for fact in self.facts.values())
        self.hosts_shared = {host for host, n in hosts.items() if n > 1}
        for host in sorted(self.hosts_shared):
            names = sorted(str(workers[a]["name"]) for a, fact in self.facts.items() if fact["host"] == host)
            self.say(f"warning: workers {', '.join(names)} share the host {host}: their runs take turns on the same "
                     "cores at the same time and disturb each other's timings (start one worker per machine)")
        if self.placement == "every-machine":
            self.machines = dict(sorted((self._name(self.facts[a]["host"], workers[a]["name"]), a) for a in workers))
        commit = environment_record()["git_commit"]
        for addr, fact in self.facts.items():
            if fact["git_commit"] != commit:
                self.say(f"warning: worker {workers[addr]['name']} runs code version {fact['git_commit']}, "
                         f"this client {commit}")
        described = ", ".join(self.machines) if self.machines else f"{len(workers)} worker(s)"
        self.say(f"{address}, placement {self.placement}: {described}")

    def workers(self) -> dict[str, dict]:
        """The scheduler's workers now, address -> info. (Client.scheduler_info can return a copy without
        workers when the client's periodic refresh overwrites it in between.)"""
        return self.client.sync(self.client.scheduler.identity, n_workers=-1)["workers"]

    def _probe(self, addresses: list[str], strict: bool) -> dict[str, dict]:
        """probe() on the given workers; one that cannot run it stops the study (strict) or is left out."""
        answers = self.client.run(probe, workers=addresses, on_error="return")
        facts = {}
        for addr, answer in answers.items():
            if isinstance(answer, BaseException):
                if type(answer) is Exception and answer.args and isinstance(answer.args[0], BaseException):
                    answer = answer.args[0]  # how Dask hands back an error it could not unpickle
                if strict:
                    raise ClusterError(f"worker at {addr} cannot run the study's code ({_one_line(answer)}): start "
                                       "it with this project importable (pip install -e . or PYTHONPATH=CHECKOUT)")
                continue
            facts[addr] = answer
        return facts

    def _name(self, host: str, worker_name) -> str:
        return f"{host}/{worker_name}" if host in self.hosts_shared else host

    def todo(self, specs: list[RunSpec], runs) -> list[Task]:
        """The runs still to do: once each (spread), or every machine's own (every-machine)."""
        threads = max((spec.threads for spec in specs), default=1)
        for fact in {fact["host"]: fact for fact in self.facts.values()}.values():
            if fact["cores"] < threads:
                self.say(f"warning: {fact['host']} has {fact['cores']} cores, fewer than the plan's {threads} threads: "
                         "its runs oversubscribe it (choose --threads)")
            elif fact["cores"] > threads:
                self.say(f"note: {fact['host']} has {fact['cores']} cores and the plan uses up to {threads} threads "
                         "(thread counts come from the client's machine; --threads sets them)")
        if self.placement == "spread":
            return [Task(spec, None, i) for i, spec in enumerate(runs_to_do(specs, runs))]
        return [Task(spec, machine, i) for machine in self.machines
                for i, spec in enumerate(runs_to_do(specs, runs, machine))]

    def run(self, todo: list[Task], plan: StudyPlan, data_path: Path, timeout: float,
            land: Callable[[RunSpec, dict], None], environment: Path, progress) -> None:
        """Submit the runs, land each result as it comes back, follow workers that leave and come back."""
        data_bytes = Path(data_path).read_bytes()
        digest = hashlib.sha256(data_bytes).hexdigest()[:16]
        data = self.client.scatter(data_bytes, broadcast=True, hash=False)
        session = _Session(self, land, environment, progress,
                           lambda task: self.client.submit(remote_run, task.spec, plan, data, digest, timeout,
                                                           task.machine, pure=False, priority=-task.order,
                                                           **self._pinned(task)))
        try:
            session.go(todo)
        finally:
            if session.pending:  # interrupted: nothing should go on running for a client that is gone
                self.client.cancel(list(session.pending))
        for machine in sorted({m for m, _ in session.counts}, key=str):
            counts = ", ".join(f"{n} {status}" for (m, status), n in sorted(session.counts.items(), key=str)
                               if m == machine)
            self.say(f"{machine or 'no machine in particular'}: {counts}")

    def _pinned(self, task: Task) -> dict:
        if task.machine is None:
            return {}
        return dict(workers=[self.machines[task.machine]], allow_other_workers=False)

    def _result(self, future, task: Task) -> dict:
        """The rows of a finished task, or a 'lost' / 'failed' row saying what became of it."""
        if future.status == "finished":
            return future.result()
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                return _row(task.spec, LOST, f"{exc.allowed_failures + 1} workers died while running it "
                            f"(the last: {exc.last_worker.address})", task.machine)
            return _row(task.spec, "failed", f"the task failed on the cluster: {_one_line(exc)}", task.machine)
        return _row(task.spec, LOST, f"the scheduler dropped the task ({future.status})", task.machine)


class _Session:
    """The client's side of one cluster study: tasks in flight, machines away, results landed."""

    def __init__(self, cluster: Cluster, land, environment: Path, progress, submit: Callable[[Task], object]):
        self.cluster, self.land_rows, self.environment, self.progress, self.submit_task = (
            cluster, land, environment, progress, submit)
        self.pending: dict = {}  # future -> (task, times its worker died before it finished)
        self.waiting: dict[str, list[tuple[Task, int]]] = {}  # machine -> its runs, while its worker is away
        self.left_at: dict[str, float] = {}
        self.known = set(cluster.facts)  # worker addresses seen (probed if they might be a study machine's)
        self.recorded: set[str] = set()  # machines whose record is in environment.json (this session)
        self.unusable: set[str] = set()  # workers that cannot run the study's code
        self.no_workers_since: float | None = None
        self.counts: Counter = Counter()  # (machine, status) -> runs landed
        self.allowed = dask.config.get("distributed.scheduler.allowed-failures")

    def submit(self, task: Task, attempts: int = 0) -> None:
        self.pending[self.submit_task(task)] = (task, attempts)

    def land(self, task: Task, result: dict) -> None:
        row = result["run"]
        if "record" in result and row["machine"] not in self.recorded:
            record_machines(self.environment, {row["machine"]: result["record"]})
            self.recorded.add(row["machine"])
        self.counts[(row["machine"], row["status"])] += 1
        self.progress.start(task.spec)
        self.land_rows(task.spec, result)

    def go(self, todo: list[Task]) -> None:
        for task in todo:
            self.submit(task)
        while self.pending or self.waiting:
            finished = [future for future in self.pending if future.done()]
            if not finished:  # results are small and runs take seconds: looking once a second is enough
                time.sleep(POLL_S)
            for future in finished:
                task, _ = self.pending.pop(future)
                self.land(task, self.cluster._result(future, task))
            self.look_at_workers(time.monotonic())

    def look_at_workers(self, now: float) -> None:
        workers = self.cluster.workers()
        new = [a for a in workers if a not in self.known]
        self.known.update(new)
        for addr in new:
            if workers[addr]["nthreads"] != 1:
                self.cluster.say(f"warning: worker {workers[addr]['name']} at {addr} joined with "
                                 f"{workers[addr]['nthreads']} threads: it may run several runs at once")
        if self.cluster.placement == "every-machine":
            self.follow_machines(workers, now)
        elif workers:
            self.no_workers_since = None
        elif self.pending:  # spread: Dask waits for workers forever; a study gives up after a while
            self.no_workers_since = self.no_workers_since or now
            if now - self.no_workers_since > REJOIN_GRACE_S:
                self.cluster.client.cancel(list(self.pending))
                for task, _ in list(self.pending.values()):
                    self.land(task, _row(task.spec, LOST, f"no worker in the cluster for {REJOIN_GRACE_S:.0f} s"))
                self.pending.clear()

    def follow_machines(self, workers: dict, now: float) -> None:
        """every-machine: the unfinished runs of a machine whose worker left wait for it; a worker of the
        same machine (restarted, or the machine back) gets them; runs of a machine not back in time are lost."""
        machines = self.cluster.machines
        for machine, addr in machines.items():
            if addr is None or addr in workers:
                continue
            machines[machine] = None
            gone = [f for f, (task, _) in self.pending.items() if task.machine == machine]
            self.cluster.client.cancel(gone)
            self.waiting.setdefault(machine, []).extend(
                (task, attempts + 1) for task, attempts in (self.pending.pop(f) for f in gone))
            self.left_at[machine] = now
            self.cluster.say(f"{machine} left (its worker {addr} is gone); "
                             f"its {len(self.waiting[machine])} unfinished run(s) wait for it")
        unprobed = [a for a in workers if a not in self.cluster.facts and a not in self.unusable]
        if self.waiting and unprobed:
            found = self.cluster._probe(unprobed, strict=False)
            self.cluster.facts.update(found)
            self.unusable.update(set(unprobed) - set(found))
        if self.waiting:
            for addr in [a for a in workers if a in self.cluster.facts and a not in machines.values()]:
                machine = self.cluster._name(self.cluster.facts[addr]["host"], workers[addr]["name"])
                if machine in self.waiting and machines.get(machine, addr) is None:
                    machines[machine] = addr
                    self.cluster.say(f"{machine} is back (worker {addr}): its runs go to it")
                    for task, attempts in self.waiting.pop(machine):
                        if attempts <= self.allowed:
                            self.submit(task, attempts)
                        else:
                            why = f"its machine's worker died {attempts} times before it finished"
                            self.land(task, _row(task.spec, LOST, why, machine))
        if not self.pending:
            for machine in [m for m in self.waiting if now - self.left_at[m] > REJOIN_GRACE_S]:
                why = f"its machine left the cluster and was not back within {REJOIN_GRACE_S:.0f} s"
                for task, _ in self.waiting.pop(machine):
                    self.land(task, _row(task.spec, LOST, why, machine))


def _row(spec: RunSpec, status: str, error: str, machine: str | None = None) -> dict:
    base = {k: v for k, v in spec.to_dict().items() if k in RUN_COLUMNS}
    return {"run": {**base, "status": status, "error": error, "machine": machine}, "epochs": []}
