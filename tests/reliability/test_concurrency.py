"""Many invocations at once against moto's server: one acts at a time, max_nodes holds, the lease
never leaks, every manual event is applied once or answered with a reason.

How the invocations run, and why: each is its own process, which is what a concurrent Lambda
invocation is, a separate container. In one process, threads would share what a container owns
alone: the handler's cached Wiring (`autoscaler.handler._wiring`), Powertools' Parameters cache, and
Powertools' Metrics buffer and Logger state, which are module- and class-level and not made for
concurrent handlers (EMF documents of different invocations would mix, or a flush would race an add).
Threads would test a deployment that cannot exist. This file, run as a script, is the Lambda
runtime: it imports the handler and its adapters once (single-threaded, before any connection), then
forks one process per invocation (22 fresh interpreters would spend most of the test importing).
Each child builds its own container (`autoscaler.handler.wiring`: its clients, the SSM reads), says
it is ready; the test then releases them all at the same instant, and each calls the real
`autoscaler.handler.lambda_handler` with its event.

The invoker is modelled too: an invocation that raises (LeaseBusy after the handler's own wait, a
manual event whose idempotency record is still in progress) gets its event delivered again, to the
same container, after a short delay, as EventBridge's retry policy would (compressed from minutes).
Time is compressed in one more place: the handler's lease wait polls every LEASE_POLL_SCALE s
instead of every second (through the wiring's injectable `sleep`), so its 10 "seconds" pass in 2.

Each child records, with wall-clock times (one clock for all, same machine): its lease acquisitions
and releases (`Lease.acquire` / `release` of its wiring), the cycles it ran (`service.run_cycle`:
token, start, end, action, what it launched, workers alive at the end while still holding the
lease), its successful state saves, and every attempt's answer or error.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

RETRY_DELAY_S = 0.3
RETRY_BUDGET_S = 60.0
LEASE_POLL_SCALE = 0.2
MAX_NODES = 5


# -- the containers ----------------------------------------------------------------------------------------------


def zygote() -> None:
    """The Lambda runtime's init, once: import the handler and everything its wiring imports (and
    let botocore read its model files), then fork one container per spec path read from stdin.
    Writes the containers' exit codes to the path on the first line."""
    import boto3
    import kubernetes.client.api_client
    import kubernetes.client.configuration
    import kubernetes.client.rest  # noqa: F401
    from aws_lambda_powertools.utilities import parameters  # noqa: F401
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer  # noqa: F401

    import autoscaler.adapters.dynamodb
    import autoscaler.adapters.ec2
    import autoscaler.adapters.kube
    import autoscaler.adapters.prometheus
    import autoscaler.handler
    import autoscaler.wiring  # noqa: F401

    for service_name in ("ec2", "dynamodb", "ssm", "sns"):
        boto3.client(service_name)  # no request is made: only the service models are read

    status_path = sys.stdin.readline().strip()
    containers = []
    for line in sys.stdin:
        if not line.strip():
            break
        pid = os.fork()
        if pid == 0:  # the container
            code = 1
            try:
                container(line.strip())
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        containers.append((line.strip(), pid))
    codes = {path: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for path, pid in containers}
    Path(status_path).write_text(json.dumps(codes))


def container(spec_path: str) -> None:
    """One container: its own log, its own wiring (the cold start), then its event when told."""
    spec = json.loads(Path(spec_path).read_text())
    log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)

    from autoscaler import handler, service
    from autoscaler.config import Settings
    from node_fleet.local_invoke import LambdaContext

    w = handler.wiring(Settings.from_env(os.environ))  # the container's cold start
    # The lease wait's one-second polls (LEASE_WAIT_S of them) run five times faster; the
    # service still counts them as seconds.
    w.sleep = lambda seconds: time.sleep(seconds * LEASE_POLL_SCALE)
    record: dict[str, Any] = {"leases": [], "cycles": [], "saves": 0, "attempts": [], "built": time.time()}
    held: dict[str, dict[str, Any]] = {}

    acquire, release = w.lease.acquire, w.lease.release

    def acquire_recorded(owner: str, now: float, duration_s: float) -> bool:
        t0 = time.time()
        ok = acquire(owner, now, duration_s)
        if ok:
            held[owner] = {"owner": owner, "acquired": [t0, time.time()], "released": None}
            record["leases"].append(held[owner])
        return ok

    def release_recorded(owner: str) -> None:
        t0 = time.time()
        release(owner)
        if owner in held:
            held.pop(owner)["released"] = [t0, time.time()]

    w.lease.acquire, w.lease.release = acquire_recorded, release_recorded

    save = w.ports.state.save

    def save_counted(state: Any) -> Any:
        saved = save(state)
        record["saves"] += 1
        return saved

    w.ports.state.save = save_counted

    run_cycle = service.run_cycle

    def run_cycle_recorded(ports, settings, now, token, intent=None, gate=None, interruption=None):
        t0 = time.time()
        result = run_cycle(ports, settings, now, token, intent, gate, interruption)
        alive = sum(1 for i in ports.fleet.list_workers() if i.alive)  # still under the lease
        record["cycles"].append(
            {
                "token": token,
                "start": t0,
                "end": time.time(),
                "action": result.decision.action.value,
                "launched": list(result.outcome.launched),
                "terminated": list(result.outcome.terminated),
                "alive_after": alive,
            }
        )
        return result

    service.run_cycle = run_cycle_recorded

    Path(spec["ready"]).write_text("ready")
    go, runtime = Path(spec["go"]), os.getppid()
    while not go.exists():  # every container is built: all start at once
        if os.getppid() != runtime:  # the test gave up and killed the runtime
            return
        time.sleep(0.002)
    event = spec["event"]
    deadline = time.monotonic() + RETRY_BUDGET_S
    while True:
        context = LambdaContext("node-fleet-AutoscalerFunction", 512, 60, os.environ["AWS_REGION"])
        started = time.time()
        try:
            answer = handler.lambda_handler(copy.deepcopy(event), context)
        except Exception as exc:  # the invoker delivers the event again, to this warm container
            record["attempts"].append({"start": started, "error": type(exc).__name__, "message": str(exc)[:300]})
            if time.monotonic() > deadline:
                break
            time.sleep(RETRY_DELAY_S)
            continue
        record["attempts"].append({"start": started, "answer": answer})
        break
    record["done"] = time.time()
    Path(spec["out"]).write_text(json.dumps(record))


if __name__ == "__main__":
    zygote()
    sys.exit(0)


# -- the test ------------------------------------------------------------------------------------------------------

import pytest  # noqa: E402


def events(kit) -> list[tuple[str, dict[str, Any]]]:
    """22 invocations: schedule ticks, alarms (in ALARM: ALARM_ACTIONS says scale up by 2; one back
    to OK), manual events with distinct ids, and one manual event delivered three times."""
    found: list[tuple[str, dict[str, Any]]] = []
    found += [("tick", kit.tick_event()) for _ in range(9)]
    found += [("alarm", kit.alarm_event("ALARM")) for _ in range(4)]
    found += [("alarm-ok", kit.alarm_event("OK"))]
    found += [("manual", kit.manual_event("scale_up", count=1, reason=f"burst {i}")) for i in range(3)]
    found += [("manual", kit.manual_event("scale_up", count=2))]
    found += [("manual", kit.manual_event("set", desired=MAX_NODES + 3))]
    duplicated = kit.manual_event("scale_up", count=1, reason="sent three times")
    found += [("manual", duplicated)] + [("manual-dup", copy.deepcopy(duplicated)) for _ in range(2)]
    return found


class Watcher(threading.Thread):
    """Samples the worker count (EC2's pending and running workers) and the lease's owner while the
    invocations run."""

    def __init__(self, cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.counts: list[int] = []
        self.owners: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            self.counts.append(len(self.cluster.alive()))
            item = self.cluster.lease_item()
            if item is not None:
                self.owners.add(item["owner"]["S"])
            time.sleep(0.05)


@pytest.fixture
def burst(cluster, kit, tmp_path):
    """Run every invocation of events() at once, each in its own container; returns their records."""
    cluster.set(MAX_NODES=str(MAX_NODES))
    invocations = events(kit)
    go = tmp_path / "go"
    specs = []
    for i, (kind, event) in enumerate(invocations):
        spec = {"event": event, "go": str(go)}
        spec |= {name: str(tmp_path / f"{i}.{name}") for name in ("out", "ready", "log")}
        path = tmp_path / f"{i}.spec.json"
        path.write_text(json.dumps(spec))
        specs.append((kind, event, spec, path))
    status = tmp_path / "status.json"
    t0 = time.time()
    with (tmp_path / "zygote.log").open("wb") as zygote_log:
        zygote = subprocess.Popen(  # this file, run by this interpreter
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=zygote_log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            cwd=tmp_path,
        )
    try:
        lines = [str(status)] + [str(path) for *_, path in specs] + [""]
        zygote.stdin.write(("\n".join(lines) + "\n").encode())
        zygote.stdin.close()
        cluster.wait(
            lambda: all(Path(s["ready"]).exists() for _, _, s, _ in specs) or zygote.poll() is not None,
            timeout_s=90,
            what="every container built",
        )
        assert zygote.poll() is None, "a container failed to start: " + (tmp_path / "zygote.log").read_text()
        watcher = Watcher(cluster)
        watcher.start()
        started = time.time()
        go.write_text("go")
        zygote.wait(timeout=RETRY_BUDGET_S + 60)
        watcher.stop.set()
        watcher.join()
    finally:
        if zygote.poll() is None:
            zygote.kill()
            zygote.wait()
    print(f"containers built in {started - t0:.1f}s, ran in {time.time() - started:.1f}s")
    exits = json.loads(status.read_text())
    records = []
    for kind, event, spec, path in specs:
        assert exits[str(path)] == 0, (
            f"{kind} {event['id']} exited {exits[str(path)]}: " + Path(spec["log"]).read_text()
        )
        records.append({"kind": kind, "event": event, **json.loads(Path(spec["out"]).read_text())})
    logs = "".join(Path(s["log"]).read_text(errors="replace") for _, _, s, _ in specs)
    return {"records": records, "watcher": watcher, "go": started, "logs": logs}


def test_many_invocations_at_once_act_one_at_a_time_within_max_and_leave_no_lease(cluster, kit, burst):
    records, watcher = burst["records"], burst["watcher"]
    seeded = len(cluster.stack.seeded_workers)
    assert len(records) >= 20

    # They did run at once: every one made its first attempt as soon as the go signal came, many of
    # them before the first cycle had ended, and ticks found the lease taken.
    firsts = [r["attempts"][0]["start"] for r in records]
    assert max(firsts) - burst["go"] < 5.0, f"first attempts spread over {max(firsts) - burst['go']:.2f}s"
    first_end = min(c["end"] for r in records for c in r["cycles"])
    assert sum(1 for t in firsts if t < first_end) >= len(records) // 3, "the invocations did not overlap"
    # Ticks: acted, or said the lease was taken; never an error.
    for r in (r for r in records if r["kind"] == "tick"):
        (attempt,) = r["attempts"]
        assert attempt.get("answer", {}).get("status") in ("acted", "lease_taken"), attempt
    taken = [
        r for r in records if r["kind"] == "tick" and r["attempts"][0].get("answer", {}).get("status") == "lease_taken"
    ]
    assert taken, "no tick met a lease holder"

    # Only one holds the lease at any moment: the windows in which a holder surely held it (from
    # the end of its acquiring call to the start of its releasing one) never overlap, and every
    # cycle ran inside its own invocation's window.
    windows = []
    for r in records:
        for lease in r["leases"]:
            assert lease["released"] is not None, f"{r['kind']} {lease['owner']} never released the lease"
            windows.append((lease["acquired"][1], lease["released"][0], r["kind"], lease["owner"]))
    windows.sort()
    for before, after in itertools.pairwise(windows):
        assert before[1] <= after[0], f"two holders at once: {before} and {after}"
    cycles = sorted((c["start"], c["end"], r["kind"], c["token"]) for r in records for c in r["cycles"])
    assert len(cycles) == len(windows), "exactly one cycle per lease held"
    for (start, end, kind, token), (held_from, held_to, _, owner) in zip(cycles, windows, strict=True):
        assert owner == token and held_from <= start and end <= held_to, f"{kind} {token} acted outside its lease"
    assert watcher.owners <= {w[3] for w in windows}, "the lease was only ever held by a recorded cycle"

    # The worker count never exceeds MAX_NODES: sampled throughout, and at the end of every cycle
    # while its lease was still held. And capacity asked far beyond it was granted up to it.
    assert watcher.counts and max(watcher.counts) <= MAX_NODES, max(watcher.counts)
    assert all(c["alive_after"] <= MAX_NODES for r in records for c in r["cycles"])
    launched = [i for r in records for c in r["cycles"] for i in c["launched"]]
    assert len(launched) == len(set(launched)) == MAX_NODES - seeded
    assert len(cluster.alive()) == MAX_NODES

    # No lost update: every state save was made on the version before it (the lease serialized them).
    assert not [a for r in records for a in r["attempts"] if a.get("error") == "StaleStateError"]
    assert cluster.state().version == sum(r["saves"] for r in records)

    # Alarms in ALARM and manual events: raised only LeaseBusy or "in progress" (then delivered
    # again), and finally acted, with the reasons.
    retried = 0
    for r in (r for r in records if r["kind"] in ("alarm", "manual", "manual-dup")):
        *errors, final = r["attempts"]
        assert {e["error"] for e in errors} <= {"LeaseBusy", "IdempotencyAlreadyInProgressError"}, errors
        retried += len(errors)
        answer = final.get("answer")
        assert answer is not None, f"{r['kind']} {r['event']['id']} never answered: {r['attempts']}"
        assert answer["status"] == "acted" and answer["reasons"], answer
    (ok,) = [r for r in records if r["kind"] == "alarm-ok"]
    assert ok["attempts"][-1]["answer"]["status"] == "ignored" and not ok["leases"]

    # Every manual event applied once: one cycle for its id, whatever the number of deliveries.
    # The copies of the duplicated one were answered from its idempotency record: the same answer,
    # with no cycle of their own.
    cycles_by_token: dict[str, int] = {}
    for r in records:
        for c in r["cycles"]:
            cycles_by_token[c["token"]] = cycles_by_token.get(c["token"], 0) + 1
    for r in (r for r in records if r["kind"] in ("alarm", "manual")):
        assert cycles_by_token.get(r["event"]["id"]) == 1, f"{r['kind']} {r['event']['id']} acted {cycles_by_token}"
    dups = [r for r in records if r["kind"] == "manual-dup"]
    (original,) = [r for r in records if r["kind"] == "manual" and r["event"]["id"] == dups[0]["event"]["id"]]
    owner = [r for r in [original, *dups] if r["cycles"]]
    assert len(owner) == 1, "one delivery of the duplicated event ran the cycle"
    answers = [r["attempts"][-1]["answer"] for r in [original, *dups]]
    assert all(a == answers[0] for a in answers), answers
    # Launch tokens: each worker launched carries the token of the one cycle that launched it.
    launched_by = {i: c["token"] for r in records for c in r["cycles"] for i in c["launched"]}
    for instance in cluster.alive().values():
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        if instance["InstanceId"] in launched_by:
            assert tags["node-fleet.io/launch-token"].rsplit(":", 1)[0] == launched_by[instance["InstanceId"]]

    # The lease never leaks: none is left, and the next tick takes it and acts.
    assert cluster.lease_item() is None
    answer = cluster.tick()
    assert answer["status"] == "acted", answer
    assert cluster.lease_item() is None
    assert kit.CANARY not in burst["logs"], "a secret in a container's log"
    print(f"{len(records)} invocations, {len(windows)} cycles, {retried} redeliveries")


def test_a_dead_holders_lease_expires_and_the_next_tick_takes_it(cluster):
    """The lease of an invocation that died holding it blocks ticks until it expires, no longer."""
    cluster.set(LEASE_DURATION_S="30")
    w = cluster.wiring()
    dead = str(uuid.uuid4())
    assert w.lease.acquire(dead, time.time(), 30)
    assert cluster.tick()["status"] == "lease_taken"
    assert cluster.lease_item()["owner"]["S"] == dead
    answer = cluster.tick(offset=31)
    assert answer["status"] == "acted", answer
    assert cluster.lease_item() is None, "the new holder released it; the dead one's is gone"
