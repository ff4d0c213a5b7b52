"""The project's own pod CSV: one row a pod."""

from __future__ import annotations

import csv
from pathlib import Path

from node_fleet.sim.workload import DEFAULT_USAGE, OWNER_KINDS, REPLICA_SET, PodSpec, TraceError, Workload

from .reading import bad, finite, names_the_file, num, open_text, pods_horizon, positive_int, read_header

POD_CSV_COLUMNS = ("name", "start_s", "end_s", "cpu_m", "mem_mib", "usage", "owner_kind")
"""Header of the pod CSV. The last two columns may be left out, `owner_kind` alone or both: every
pod then uses DEFAULT_USAGE, and is a ReplicaSet's."""
_HEADERS = (list(POD_CSV_COLUMNS), list(POD_CSV_COLUMNS[:-1]), list(POD_CSV_COLUMNS[:-2]))


@names_the_file
def load_pods_csv(path: str | Path) -> Workload:
    """Read the project's pod CSV: header `name,start_s,end_s,cpu_m,mem_mib,usage,owner_kind`.

    `usage` is optional (column absent or cell empty: DEFAULT_USAGE, 0.6), and so is `owner_kind`
    (absent or empty: ReplicaSet; a Job's pod evicted starts its work over). An empty `end_s` means
    the pod runs to the end of the replay. Every row is checked: name non-empty and unique, start_s
    a finite number >= 0, end_s (when given) finite and > start_s, cpu_m and mem_mib positive
    integers, usage in [0, 1], owner_kind one of OWNER_KINDS. Blank lines are skipped.

    The workload is named after the file's stem. Its horizon is the latest start or end of any pod
    plus HORIZON_MARGIN_S (900 s), so the replay also shows the cluster shrinking afterwards; the
    horizon is not stored in the file, so a `write_pods_csv` round trip keeps the pods, not the
    horizon.
    """
    path = Path(path)
    pods: list[PodSpec] = []
    seen: dict[str, int] = {}
    with open_text(path) as f:
        reader = csv.reader(f)
        header = read_header(path, reader, POD_CSV_COLUMNS)
        if header not in _HEADERS:
            raise TraceError(
                f"{path} line {reader.line_num}: expected the header {','.join(POD_CSV_COLUMNS)!r} "
                f"(the owner_kind column, or both it and usage, may be left out), got {','.join(header)!r}"
            )
        width = len(header)
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            line = reader.line_num
            if len(row) != width:
                raise TraceError(f"{path} line {line}: expected {width} fields, got {len(row)}")
            cells = dict(zip(header, (c.strip() for c in row), strict=True))
            where = f"{path} line {line}"
            name = cells["name"]
            if not name:
                bad(where, "name", "a non-empty name", row[0])
            if name in seen:
                bad(where, "name", f"a unique name (already on line {seen[name]})", name)
            seen[name] = line
            start = finite(where, "start_s", cells["start_s"], minimum=0.0)
            end: float | None = None
            if cells["end_s"]:
                end = finite(where, "end_s", cells["end_s"])
                if end <= start:
                    bad(where, "end_s", f"a number > start_s ({cells['start_s']}) or empty", cells["end_s"])
            cpu = positive_int(where, "cpu_m", cells["cpu_m"])
            mem = positive_int(where, "mem_mib", cells["mem_mib"])
            usage = DEFAULT_USAGE
            if cells.get("usage"):
                usage = finite(where, "usage", cells["usage"])
                if not 0.0 <= usage <= 1.0:
                    bad(where, "usage", "a number in [0, 1]", cells["usage"])
            owner_kind = cells.get("owner_kind") or REPLICA_SET
            if owner_kind not in OWNER_KINDS:
                bad(where, "owner_kind", f"one of {', '.join(OWNER_KINDS)} or empty", owner_kind)
            pods.append(PodSpec(name, start, end, cpu, mem, usage, owner_kind=owner_kind))
    if not pods:
        raise TraceError(f"{path}: no pods after the header")
    return Workload(
        name=path.stem,
        pods=tuple(pods),
        horizon_s=pods_horizon(pods),
        description=f"{len(pods)} pods from {path}",
    )


def write_pods_csv(workload: Workload, path: str | Path) -> None:
    """Write `workload`'s pods in the pod CSV format (`load_pods_csv` reads them back unchanged).

    Times are written exactly (whole numbers without a decimal point, others as Python's shortest
    round-tripping repr); `end_s` is empty for a pod that runs to the end.
    """
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(POD_CSV_COLUMNS)
        for p in workload.pods:
            end = "" if p.end_s is None else num(p.end_s)
            writer.writerow([p.name, num(p.start_s), end, p.cpu_m, p.mem_mib, num(p.usage), p.owner_kind])
