"""Fan-out benchmark: N simulated xDS clients on ADS streams against one control plane.

`python -m bench.fanout` runs every server (baseline, go-control-plane, xdscp) at every N,
with the load generator (`bench.fanout.generator`) in a separate process. See
`bench/README-fanout.md`.
"""
