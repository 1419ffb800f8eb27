"""The Dask executor: a study's runs on a Dask cluster, ``python -m harness run --scheduler tcp://HOST:PORT``
(docs/cluster.md).

The client (the study's process) sends the study's data file to every Dask worker once and submits
each run as a task; on a Dask worker (one thread, one per machine) the run happens in a fresh worker
process as it does here (harness.one_run). Results come back to the client as they arrive, so
runs.csv, epochs.csv and --resume work as they do locally.

Placements: ``spread`` does every run once, on whichever Dask worker is free; Dask re-queues a run whose
Dask worker died, and once ``distributed.scheduler.allowed-failures`` of them have died running it, it is
'lost'. ``every-machine`` runs the whole plan on each machine (a run's key includes its machine, its task
is pinned to that machine's Dask worker); when that Dask worker leaves, the machine's unfinished runs wait
for a Dask worker of the same machine and go to it; those of a machine not back within ``REJOIN_GRACE_S``
once nothing else is left are 'lost'. --resume runs 'lost' runs again. A machine is named by its host
name; in every-machine placement, Dask workers that share a host are told apart as HOST/WORKER-NAME.
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
from types import SimpleNamespace
from typing import Callable, Iterator, NamedTuple

import dask
import pandas as pd
from distributed import Client, KilledWorker, get_worker
from distributed.core import rpc

from reports.folder.files import UsageError, write_atomic
from reports.folder.schema import LOST

from .environment import environment_record, machine_name, machine_record
from .locks import machine_lock
from .one_run import execute, run_result
from .plan import RunSpec, StudyPlan, runs_to_do
from .progress import Progress

PLACEMENTS = ("spread", "every-machine")
CONNECT_TIMEOUT_S = 5.0
POLL_S = 1.0  # how often the client looks for results and at the cluster's Dask workers
REJOIN_GRACE_S = 30.0  # how long, once nothing else is left, a machine's runs wait for it to come back


class ClusterError(UsageError):
    """The cluster cannot take the study (nothing answers at the address, no Dask workers, Dask workers
    with several threads or without the project): one line and exit status 2, before anything runs."""


class Task(NamedTuple):
    """One run to do, the machine it must run on (every-machine placement) or None (spread), and its
    place in the plan: a Dask worker takes its runs in the plan's order (repeats outermost)."""

    spec: RunSpec
    machine: str | None
    order: int


# -- on the Dask workers -------------------------------------------------------------------------
def probe() -> dict:
    """On a Dask worker, before any run: its host, cores and code version, which the client checks."""
    record = machine_record()
    return {key: record[key] for key in ("host", "cores", "git_commit")}


SILENT = SimpleNamespace(epoch=lambda spec, epoch: None)  # a run's epochs on a Dask worker: nobody watches there


def remote_run(spec: RunSpec, plan: StudyPlan, data: bytes, digest: str, timeout: float, machine: str | None) -> dict:
    """On a Dask worker: write the study's data file into the Dask worker's folder once, run ``spec`` in
    a fresh worker process as the local executor does, and return its rows, named after this machine
    (``machine``, or the host name) and Dask worker, with the machine's record. The run holds the
    machine's lock, waiting for a study running there (harness.locks)."""
    dask_worker = get_worker()
    folder = Path(dask_worker.local_directory)
    data_path = folder / f"mlp-study-{digest}.npz"
    if not data_path.exists():
        write_atomic(data_path, lambda tmp: tmp.write_bytes(data))
    command = [f"dask worker {dask_worker.name}: {spec.label}"]
    with machine_lock(folder, command, wait=True, stream=sys.stderr, machine=machine), \
            tempfile.TemporaryDirectory(prefix="mlp-run-", dir=folder) as scratch:
        result = execute(spec, plan, data_path, Path(scratch), timeout, SILENT)
    run = {**result["run"], "worker": str(dask_worker.name)}
    return {**run_result(spec, run, result["epochs"], machine or machine_name()), "record": machine_record()}


# -- on the client -------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _identity(address: str) -> dict:
    async with rpc(address, timeout=CONNECT_TIMEOUT_S) as scheduler:
        return await asyncio.wait_for(scheduler.identity(), CONNECT_TIMEOUT_S)


@dataclass
class DaskExecutor:
    """The study's runs on the Dask workers of the scheduler at ``scheduler``, placed by ``placement``;
    connected and checked on entering (a ClusterError, one line, when the cluster cannot be used). The
    interface: harness.study.Executor; its machines are recorded as their first results come back."""

    scheduler: str
    placement: str = "spread"
    stream: object = sys.stderr
    client: Client | None = None
    addresses: dict[str, str | None] = field(default_factory=dict)  # machine -> its Dask worker's address now
    hosts_shared: set[str] = field(default_factory=set)  # hosts with several Dask workers at the start
    facts: dict[str, dict] = field(default_factory=dict)  # Dask worker address -> probe()

    def __enter__(self) -> DaskExecutor:
        if self.placement not in PLACEMENTS:
            raise ClusterError(f"unknown placement {self.placement!r}; choose from {', '.join(PLACEMENTS)}")
        try:  # a plain check first: a Client that cannot connect leaves tracebacks behind when collected
            identity = asyncio.run(_identity(self.scheduler))
        except Exception as exc:  # noqa: BLE001 - any failure to talk to it means: no scheduler there
            raise ClusterError(f"cannot reach a Dask scheduler at {self.scheduler} within {CONNECT_TIMEOUT_S:.0f} s "
                               f"({_one_line(exc)})") from None
        if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
            raise ClusterError(f"{self.scheduler} answers but is not a Dask scheduler")
        self.client = Client(self.scheduler, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
        try:
            self.check()
        except BaseException:
            self.client.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def say(self, text: str) -> None:
        print(f"cluster: {text}", file=self.stream, flush=True)

    def check(self) -> None:
        """Dask workers present, one thread each, able to import the project; machines named; warnings said."""
        address = self.client.scheduler.address
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(f"the scheduler at {address} has no workers: start one per machine with "
                               f"'dask worker {address} --nworkers 1 --nthreads 1'") from None
        workers = self.dask_workers()
        for addr, info in workers.items():
            if info["nthreads"] != 1:
                raise ClusterError(f"worker {info['name']} at {addr} has {info['nthreads']} threads: it would run "
                                   "several runs at once; start workers with --nthreads 1")
        self.facts = self.probe(list(workers), strict=True)
        self.hosts_shared = {host for host, n in Counter(fact["host"] for fact in self.facts.values()).items() if n > 1}
        for host in sorted(self.hosts_shared):
            names = sorted(str(workers[a]["name"]) for a, fact in self.facts.items() if fact["host"] == host)
            self.say(f"warning: workers {', '.join(names)} share the host {host}: their runs take turns on the same "
                     "cores at the same time and disturb each other's timings (start one worker per machine)")
        if self.placement == "every-machine":
            self.addresses = dict(sorted((self.machine_of(self.facts[a]["host"], workers[a]["name"]), a)
                                         for a in workers))
        commit = environment_record()["git_commit"]
        for addr, fact in self.facts.items():
            if fact["git_commit"] != commit:
                self.say(f"warning: worker {workers[addr]['name']} runs code version {fact['git_commit']}, "
                         f"this client {commit}")
        described = ", ".join(self.addresses) if self.addresses else f"{len(workers)} worker(s)"
        self.say(f"{address}, placement {self.placement}: {described}")

    def dask_workers(self) -> dict[str, dict]:
        """The scheduler's Dask workers now, address -> info. (Client.scheduler_info can return a copy
        without workers when the client's periodic refresh overwrites it in between.)"""
        return self.client.sync(self.client.scheduler.identity, n_workers=-1)["workers"]

    def probe(self, addresses: list[str], strict: bool) -> dict[str, dict]:
        """probe() on the given Dask workers; one that cannot run it stops the study (strict) or is left out."""
        answers = self.client.run(probe, workers=addresses, on_error="return")
        for addr, answer in answers.items():
            if strict and isinstance(answer, BaseException):
                if type(answer) is Exception and answer.args and isinstance(answer.args[0], BaseException):
                    answer = answer.args[0]  # how Dask hands back an error it could not unpickle
                raise ClusterError(f"worker at {addr} cannot run the study's code ({_one_line(answer)}): start "
                                   "it with this project importable (pip install -e . or PYTHONPATH=CHECKOUT)")
        return {addr: answer for addr, answer in answers.items() if not isinstance(answer, BaseException)}

    def machine_of(self, host: str, worker_name) -> str:
        """The machine a Dask worker stands for: its host, or HOST/WORKER-NAME on a host shared at the start."""
        return f"{host}/{worker_name}" if host in self.hosts_shared else host

    def runs_to_do(self, plan: StudyPlan, done: pd.DataFrame) -> list[Task]:
        """The runs still to do: once each (spread), or every machine's own (every-machine); what the
        machines' cores mean for the plan's thread counts is said."""
        specs = plan.runs()
        threads = max((spec.threads for spec in specs), default=1)
        for fact in {fact["host"]: fact for fact in self.facts.values()}.values():
            if fact["cores"] < threads:
                self.say(f"warning: {fact['host']} has {fact['cores']} cores, fewer than the plan's {threads} threads: "
                         "its runs oversubscribe it (choose --threads)")
            elif fact["cores"] > threads:
                self.say(f"note: {fact['host']} has {fact['cores']} cores and the plan uses up to {threads} threads "
                         "(thread counts come from the client's machine; --threads sets them)")
        if self.placement == "spread":
            return [Task(spec, None, i) for i, spec in enumerate(runs_to_do(specs, done))]
        return [Task(spec, machine, i) for machine in self.addresses
                for i, spec in enumerate(runs_to_do(specs, done, machine))]

    def machines(self) -> dict:
        return {}

    def results(self, todo: list[Task], plan: StudyPlan, data_path: Path, scratch: Path, timeout: float,
                progress: Progress) -> Iterator[tuple[RunSpec, dict]]:
        """Submit the runs, yield each result as it comes back, follow Dask workers that leave and come
        back. ``scratch`` is not used: each Dask worker keeps the data in its own folder."""
        data_bytes = Path(data_path).read_bytes()
        digest = hashlib.sha256(data_bytes).hexdigest()[:16]
        data = self.client.scatter(data_bytes, broadcast=True, hash=False)
        batch = _Batch(self, progress,
                       lambda task: self.client.submit(remote_run, task.spec, plan, data, digest, timeout, task.machine,
                                                       pure=False, priority=-task.order, **self.pinned(task)))
        try:
            yield from batch.results(todo)
        finally:
            if batch.pending:  # stopped early: nothing should go on running for a client that is gone
                self.client.cancel(list(batch.pending))
        for machine in sorted({m for m, _ in batch.counts}, key=str):
            counts = ", ".join(f"{n} {status}" for (m, status), n in sorted(batch.counts.items(), key=str)
                               if m == machine)
            self.say(f"{machine or 'no machine in particular'}: {counts}")

    def pinned(self, task: Task) -> dict:
        """The submit options that keep a task on its machine's Dask worker (every-machine), or none."""
        if task.machine is None:
            return {}
        return dict(workers=[self.addresses[task.machine]], allow_other_workers=False)

    def outcome(self, future, task: Task) -> dict:
        """The rows of a finished task, or a 'lost' / 'failed' row saying what became of it."""
        if future.status == "finished":
            return future.result()
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                return _lost(task, f"{exc.allowed_failures + 1} workers died while running it "
                             f"(the last: {exc.last_worker.address})")
            return _lost(task, f"the task failed on the cluster: {_one_line(exc)}", status="failed")
        return _lost(task, f"the scheduler dropped the task ({future.status})")


def _lost(task: Task, why: str, status: str = LOST) -> dict:
    """The row of a run that never came back (or, with ``status`` 'failed', whose task failed)."""
    return run_result(task.spec, {"status": status, "error": why}, machine=task.machine)


class _Batch:
    """The client's side of one call of DaskExecutor.results: tasks in flight, machines away, results
    handed on (counted per machine and status)."""

    def __init__(self, executor: DaskExecutor, progress, submit: Callable[[Task], object]):
        self.executor, self.progress, self.submit_task = executor, progress, submit
        self.pending: dict = {}  # future -> (task, times its Dask worker died before it finished)
        self.waiting: dict[str, list[tuple[Task, int]]] = {}  # machine -> its runs, while its Dask worker is away
        self.left_at: dict[str, float] = {}
        self.known = set(executor.facts)  # Dask worker addresses seen (probed if they might be a study machine's)
        self.unusable: set[str] = set()  # Dask workers that cannot run the study's code
        self.no_workers_since: float | None = None
        self.counts: Counter = Counter()  # (machine, status) -> runs handed on
        self.allowed = dask.config.get("distributed.scheduler.allowed-failures")

    def submit(self, task: Task, attempts: int = 0) -> None:
        self.pending[self.submit_task(task)] = (task, attempts)

    def finished(self, task: Task, result: dict) -> tuple[RunSpec, dict]:
        row = result["run"]
        self.counts[(row["machine"], row["status"])] += 1
        self.progress.start(task.spec)
        return task.spec, result

    def results(self, todo: list[Task]) -> Iterator[tuple[RunSpec, dict]]:
        for task in todo:
            self.submit(task)
        while self.pending or self.waiting:
            finished = [future for future in self.pending if future.done()]
            if not finished:  # results are small and runs take seconds: looking once a second is enough
                time.sleep(POLL_S)
            for future in finished:
                task, _ = self.pending.pop(future)
                yield self.finished(task, self.executor.outcome(future, task))
            for task, result in self.look_at_workers(time.monotonic()):
                yield self.finished(task, result)

    def look_at_workers(self, now: float) -> list[tuple[Task, dict]]:
        """Warn of new Dask workers with several threads; follow the machines (every-machine), or give up
        on a cluster without Dask workers (spread): the runs lost meanwhile."""
        workers = self.executor.dask_workers()
        new = [a for a in workers if a not in self.known]
        self.known.update(new)
        for addr in new:
            if workers[addr]["nthreads"] != 1:
                self.executor.say(f"warning: worker {workers[addr]['name']} at {addr} joined with "
                                  f"{workers[addr]['nthreads']} threads: it may run several runs at once")
        if self.executor.placement == "every-machine":
            return self.follow_machines(workers, now)
        if workers:
            self.no_workers_since = None
        elif self.pending:  # spread: Dask waits for workers forever; a study gives up after a while
            self.no_workers_since = self.no_workers_since or now
            if now - self.no_workers_since > REJOIN_GRACE_S:
                self.executor.client.cancel(list(self.pending))
                lost = [(task, _lost(task, f"no worker in the cluster for {REJOIN_GRACE_S:.0f} s"))
                        for task, _ in self.pending.values()]
                self.pending.clear()
                return lost
        return []

    def follow_machines(self, workers: dict, now: float) -> list[tuple[Task, dict]]:
        """every-machine: the unfinished runs of a machine whose Dask worker left wait for it; a Dask worker
        of the same machine (restarted, or the machine back) gets them; runs of a machine not back in time
        are lost (returned)."""
        addresses, lost = self.executor.addresses, []
        for machine, addr in addresses.items():
            if addr is None or addr in workers:
                continue
            addresses[machine] = None
            gone = [f for f, (task, _) in self.pending.items() if task.machine == machine]
            self.executor.client.cancel(gone)
            self.waiting.setdefault(machine, []).extend(
                (task, attempts + 1) for task, attempts in (self.pending.pop(f) for f in gone))
            self.left_at[machine] = now
            self.executor.say(f"{machine} left (its worker {addr} is gone); "
                              f"its {len(self.waiting[machine])} unfinished run(s) wait for it")
        unprobed = [a for a in workers if a not in self.executor.facts and a not in self.unusable]
        if self.waiting and unprobed:
            found = self.executor.probe(unprobed, strict=False)
            self.executor.facts.update(found)
            self.unusable.update(set(unprobed) - set(found))
        if self.waiting:
            for addr in [a for a in workers if a in self.executor.facts and a not in addresses.values()]:
                machine = self.executor.machine_of(self.executor.facts[addr]["host"], workers[addr]["name"])
                if machine in self.waiting and addresses.get(machine, addr) is None:
                    addresses[machine] = addr
                    self.executor.say(f"{machine} is back (worker {addr}): its runs go to it")
                    for task, attempts in self.waiting.pop(machine):
                        if attempts <= self.allowed:
                            self.submit(task, attempts)
                        else:
                            why = f"its machine's worker died {attempts} times before it finished"
                            lost.append((task, _lost(task, why)))
        if not self.pending:
            for machine in [m for m in self.waiting if now - self.left_at[m] > REJOIN_GRACE_S]:
                why = f"its machine left the cluster and was not back within {REJOIN_GRACE_S:.0f} s"
                lost += [(task, _lost(task, why)) for task, _ in self.waiting.pop(machine)]
        return lost
