#!/usr/bin/env python3
"""Cross-check helper for cmp/tests/sched_saga.rs: schedules instances with the
HeftScheduler of the PyPI package anrg-saga and prints the makespans.

stdin:  {"instances": [{"tasks": [{"name": str, "cost": float}],
                        "edges": [{"source": str, "target": str, "size": float}],
                        "nodes": [{"name": str, "speed": float}],
                        "links": [{"a": str, "b": str, "strength": float}]}]}
stdout: {"makespans": [float, ...], "saga": "<version>"}

saga's model: a task runs cost / speed on a node, a dependency's data takes
size / strength between two nodes and nothing on the same node.
"""
import json
import logging
import sys
from importlib.metadata import version

from saga import Network, TaskGraph
from saga.schedulers import HeftScheduler

# TaskGraph.create warns when it adds a super source/sink (zero cost, zero data).
logging.disable(logging.WARNING)


def main() -> None:
    req = json.load(sys.stdin)
    out = []
    for inst in req["instances"]:
        network = Network.create(
            nodes=[(n["name"], float(n["speed"])) for n in inst["nodes"]],
            edges=[(l["a"], l["b"], float(l["strength"])) for l in inst["links"]],
        )
        graph = TaskGraph.create(
            tasks=[(t["name"], float(t["cost"])) for t in inst["tasks"]],
            dependencies=[
                (e["source"], e["target"], float(e["size"])) for e in inst["edges"]
            ],
        )
        schedule = HeftScheduler().schedule(network, graph)
        out.append(schedule.makespan)
    json.dump({"makespans": out, "saga": version("anrg-saga")}, sys.stdout)


if __name__ == "__main__":
    main()
