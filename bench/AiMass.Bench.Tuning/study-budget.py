"""Best accuracy against training budget for studies on a control plane: python3 study-budget.py SERVER STUDY...

A trial's budget is the training steps it ran (a pruned trial: up to the step it was stopped at); trials are taken in
the order they ended; the best is the best complete trial so far. One epoch is 469 steps (60,000 images, batch 128)."""
import json
import sys
import urllib.request
from datetime import datetime

STEPS_PER_EPOCH = 469
MARKS = [12, 24, 36, 48, 72]


def get(server, path):
    with urllib.request.urlopen(f"{server}/api/v1/studies/{path}") as response:
        return json.load(response)


def main(server, studies):
    print("| study | sampler | complete / pruned | epochs spent (72 without pruning) | wall time | best accuracy after "
          + ", ".join(f"{m}" for m in MARKS) + " epochs | best |")
    print("|---|---|---|---|---|---|---|")
    for name in studies:
        study = get(server, name)
        trials = get(server, f"{name}/trials?values=true")
        ended = []
        for t in trials:
            steps = max([v["step"] for v in t["intermediate"]] or [0])
            ended.append((t["ended_at"], steps, t["state"], t["value"]))
        ended.sort()
        used, best, at = 0.0, None, {}
        for _, steps, state, value in ended:
            used += steps / STEPS_PER_EPOCH
            if state == "complete" and (best is None or value > best):
                best = value
            for mark in MARKS:
                if used <= mark:
                    at[mark] = best
        wall = (datetime.fromisoformat(study["ended_at"]) - datetime.fromisoformat(study["created_at"])).total_seconds()
        curve = ", ".join("-" if at.get(m) is None else f"{at[m]:.4f}" for m in MARKS)
        print(f"| {name} | {study['sampler']} | {study['complete']} / {study['pruned']} | {used:.1f} | {wall:.0f} s | {curve} | {best:.4f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
