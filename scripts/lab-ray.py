#!/usr/bin/env python3
"""Run a `posenc lab sweep` grid on a Ray cluster: one Ray task per cell, results gathered and
merged on the driver.

    scripts/lab-ray.py --address HOST:PORT --out DIR [--posenc PATH] [--cpus-per-cell 1] -- SWEEP-ARGS...

SWEEP-ARGS are those of `posenc lab sweep` without --out and --shard, for example
`--schemes all --tasks copy,lm --seeds 0,1,2 --steps 600`. The driver asks posenc for the grid
(`posenc lab sweep SWEEP-ARGS --plan`), submits cell i as `posenc lab sweep SWEEP-ARGS --shard i/N`
in a scratch directory on the worker, and receives the cell's JSON (and the grid's sweep.json) as
the task's result, so workers need the posenc binary at the same path but no shared file
system. Cells already finished in DIR are not submitted again. The driver then writes each cell
into DIR/ray-shards/i/ and runs `posenc lab merge` into DIR (table, summary.json, plot).

Needs `pip install ray` (scripts/install-ray.sh installs it into a cache outside the checkout).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def plan(posenc, sweep_args):
    out = subprocess.run([posenc, "lab", "sweep", *sweep_args, "--plan"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def run_cell(posenc, sweep_args, index, count):
    """One cell on a worker: a scratch sweep directory with only this shard, read back."""
    with tempfile.TemporaryDirectory(prefix="posenc-lab-cell-") as scratch:
        cmd = [posenc, "lab", "sweep", *sweep_args, "--shard", f"{index}/{count}", "--out", scratch, "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cell {index}/{count} failed ({done.returncode}): {done.stderr.strip()}")
        cells = os.path.join(scratch, "cells")
        files = [f for f in os.listdir(cells) if f.endswith(".json")]
        if len(files) != 1:
            raise RuntimeError(f"cell {index}/{count}: expected one cell file, found {files}")
        with open(os.path.join(scratch, "sweep.json")) as f:
            spec = f.read()
        with open(os.path.join(cells, files[0])) as f:
            cell = f.read()
        return {"index": index, "name": files[0], "spec": spec, "cell": cell}


def write_atomic(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", required=True, help="Ray cluster address, HOST:PORT of a running head (ray start --head)")
    p.add_argument("--out", required=True, help="output sweep directory (cells, table, plot)")
    p.add_argument("--posenc", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "posenc"),
                   help="posenc binary, at the same path on every node (default: this checkout's target/release/posenc)")
    p.add_argument("--cpus-per-cell", type=float, default=1.0, help="CPUs Ray reserves per cell (default 1)")
    p.add_argument("sweep_args", nargs=argparse.REMAINDER, help="-- then the arguments of posenc lab sweep")
    a = p.parse_args()
    sweep_args = a.sweep_args[1:] if a.sweep_args[:1] == ["--"] else a.sweep_args
    for bad in ("--out", "--shard", "--plan"):
        if bad in sweep_args:
            p.error(f"{bad} is set by lab-ray.py, not in SWEEP-ARGS")
    posenc = os.path.abspath(a.posenc)
    if not os.access(posenc, os.X_OK):
        p.error(f"--posenc {posenc} is not an executable (cargo build --release -p posenc-cli)")

    grid = plan(posenc, sweep_args)
    count = grid["count"]
    todo = [c for c in grid["cells"] if not os.path.exists(os.path.join(a.out, "cells", c["id"] + ".json"))]
    print(f"grid of {count} cells, {len(todo)} to run on {a.address}", file=sys.stderr)

    import ray  # imported late so --help works without Ray

    ray.init(address=a.address, log_to_driver=False)
    task = ray.remote(num_cpus=a.cpus_per_cell, max_retries=1)(run_cell)
    pending = [task.remote(posenc, sweep_args, c["index"], count) for c in todo]
    shards = os.path.join(a.out, "ray-shards")
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        r = ray.get(ready[0])
        d = os.path.join(shards, str(r["index"]))
        write_atomic(os.path.join(d, "sweep.json"), r["spec"])
        write_atomic(os.path.join(d, "cells", r["name"]), r["cell"])
        print(f"cell {r['index']} done: {r['name']}", file=sys.stderr)
    ray.shutdown()

    dirs = [os.path.join(shards, d) for d in sorted(os.listdir(shards), key=int)] if os.path.isdir(shards) else []
    merge = [posenc, "lab", "merge", *dirs, "--out", a.out] if dirs else None
    if merge is None:
        print("nothing new to merge", file=sys.stderr)
        return 0
    return subprocess.run(merge).returncode


if __name__ == "__main__":
    sys.exit(main())
