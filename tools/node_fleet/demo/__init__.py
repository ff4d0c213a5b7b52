"""`make demo`, `node-fleet invoke --local` and the latency benchmark: the real handlers, as
template.yaml deploys them, against the embedded stack (`node_fleet.stack`). Never used by the
deployed Lambda.

- `functions`: call a template function in this process the way `sam local invoke` would (handler
  path and environment resolved by `node_fleet.local_invoke`), with the stack's environment; fresh
  events built from the files in events/ (a new id and time; a Function URL request signed with the
  stack's HMAC key and a fresh timestamp).
- `flux`: a Flux-like object set (Kustomizations flux-system -> infrastructure -> apps) whose status
  a scenario changes: a reconcile starts (Ready=Unknown, Reconciling=True/Progressing) and ends
  (Ready=True with a new revision in status.history).
- `scenario`: the demo's story, a table of phases and the step each runs.
- `timing`: its timers (normal and `--quick`) and the settings the functions get.
- `record`: what a run sees (a look at the cluster, samples, cycles) and the expectations it checks.
- `render`: the timeline's lines and the summary.
- `run`: runs the scenario on an accelerated schedule (both functions get their ticks), prints the
  live timeline and the summary, checks the expectations, and stops everything it started.
- `plot`: the PNG of a run (matplotlib Agg, imported when drawing).
- `local`: `node-fleet invoke FUNCTION --event FILE --local`.

Nothing here is imported by the Lambda's code path; each module imports the stack lazily or at its
top, never the other way round.
"""
