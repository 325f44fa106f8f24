#!/usr/bin/env python3
"""Split a busbar CPU profile by stage of the event path.

usage: bench/load/stages.py cpu.pprof [events]

Every sample of `go tool pprof -traces` is attributed to the first stage
below whose pattern matches its stack (leaf to root), so the shares add up
to 100 %. With the number of events handled during the profile (e.g. an
open-loop run at 2,000 ev/s for 15 s = 30000) it also prints µs per event.
The patterns follow busbar's package and function names: update them when
those move.
"""
import collections
import re
import subprocess
import sys

STAGES = [  # first match wins
    ("GC", r"runtime\.gcBgMarkWorker|runtime\.bgsweep|runtime\.bgscavenge|gcAssist"),
    ("ingest: JSON decode/validate (checkJSON, decodeStructured, batch Unmarshal)",
     r"sources/http\.(checkJSON|decodeStructured)|encoding/json\.Unmarshal\n(.*\n)*?.*sources/http\.\(\*Handler\)\.batch"),
    ("ingest: Normalize + Encode (SDK json.Marshal)", r"sources/http\.\(\*Handler\)\.prepare"),
    ("ingest: engine.Publish (JetStream publish, wait for PubAck)", r"engine\.\(\*Engine\)\.Publish"),
    ("ingest: rest of the handler (read body, answer)", r"sources/http\."),
    ("ingest: net/http server (parse request, write response)", r"net/http\.\(\*conn\)\.serve"),
    ("router: match", r"filters\."),
    ("router: publish copy to the target queue (wait for PubAck)", r"routers\.\(\*BusRouter\)\.(handOff|publishCopy)"),
    ("dispatcher: HTTP sink Deliver", r"sinks/http\.\(\*Sink\)\.Deliver|routers\.\(\*Dispatcher\)"),
    ("watermill router: goroutine per message, middleware, ack", r"ThreeDotsLabs/watermill"),
    ("HTTP client transport (sink connections)", r"net/http\.\(\*persistConn\)"),
    ("natsjs subscriber: pull loop, hand-out, track + AckSync", r"natsjs\.\(\*subscription\)"),
    ("nats-server: stream store (internalLoop, filestore)", r"\(\*stream\)\.internalLoop|fileStore|msgBlock"),
    ("nats-server: consumers (deliver, acks, pull requests)", r"nats-server/v2/server\.\(\*consumer\)"),
    ("nats-server: client connections (parse, route, flush)", r"nats-server"),
    ("nats.go client (read loop, flusher, callbacks, pub acks)", r"nats-io/nats%2ego|nats-io/nats\.go"),
    ("runtime: scheduler, stacks, other", r"runtime\."),
]

VALUE = re.compile(r"^\s*([0-9.]+)(ms|s|us|µs)\s")


def seconds(num, unit):
    return float(num) * {"s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}[unit]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = subprocess.run(["go", "tool", "pprof", "-traces", sys.argv[1]],
                         capture_output=True, text=True, check=True).stdout
    events = float(sys.argv[2]) if len(sys.argv) > 2 else 0
    per = collections.Counter()
    total = 0.0
    for block in out.split("-----------+-------------------------------------------------------")[1:]:
        lines = [l for l in block.strip("\n").split("\n") if l.strip()]
        while lines and not VALUE.match(lines[0]):
            lines = lines[1:]  # pprof labels
        if not lines:
            continue
        m = VALUE.match(lines[0])
        v = seconds(m.group(1), m.group(2))
        stack = "\n".join([lines[0][m.end():].strip()] + [l.strip() for l in lines[1:]])
        total += v
        for name, rx in STAGES:
            if re.search(rx, stack):
                per[name] += v
                break
        else:
            per["other"] += v
    head = f"total {total:.2f}s CPU"
    if events:
        head += f", {total / events * 1e6:.0f} µs per event"
    print(head)
    for name, v in per.most_common():
        line = f"{100 * v / total:5.1f}%  {v:6.2f}s"
        if events:
            line += f"  {v / events * 1e6:5.0f} µs/event"
        print(f"{line}  {name}")


if __name__ == "__main__":
    main()
