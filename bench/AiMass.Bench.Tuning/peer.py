"""Optuna 3.1's TPE on the same functions as AiMass.Bench.Tuning, for the side-by-side comparison.

Run by the benchmark itself:  /usr/bin/python3 peer.py SEEDS BUDGET
Prints one JSON object: {"regrets": {function: {sampler: [[regret at each checkpoint] per seed]}},
"overhead_ms": {sampler: ms per trial with 1000 completed trials}}.
"""
import json
import math
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEEDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
BUDGET = int(sys.argv[2]) if len(sys.argv) > 2 else 200
CHECKPOINTS = [c for c in (50, 100, 200) if c <= BUDGET]


def branin(t):
    x = t.suggest_float("x", -5, 10)
    y = t.suggest_float("y", 0, 15)
    b, c, tt = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - tt) * math.cos(x) + 10


A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(t):
    x = [t.suggest_float(f"x{i}", 0, 1) for i in range(6)]
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j] * 1e-4) ** 2 for j in range(6))) for i in range(4))


def levy10(t):
    x = [t.suggest_float(f"x{i}", -10, 10) for i in range(10)]
    w = [1 + (v - 1) / 4 for v in x]
    s = math.sin(math.pi * w[0]) ** 2
    s += sum((wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2) for wi in w[:-1])
    return s + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


def rosenbrock10(t):
    x = [t.suggest_float(f"x{i}", -5, 10) for i in range(10)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(9))


def conditional(t):
    f = t.suggest_categorical("f", ["a", "b", "c"])
    if f == "a":
        return 1 + abs(t.suggest_float("a1", -5, 5))
    if f == "b":
        return (t.suggest_float("b1", -5, 5) - 1.5) ** 2 + (t.suggest_float("b2", -5, 5) + 2) ** 2
    return 2 + abs(t.suggest_int("c1", 0, 100) - 37) / 10


FUNCTIONS = {"branin": (branin, 0.397887), "hartmann6": (hartmann6, -3.32237), "levy10": (levy10, 0.0),
             "rosenbrock10": (rosenbrock10, 0.0), "conditional": (conditional, 0.0)}


def run(function, optimum, seed):
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(function, n_trials=BUDGET)
    values = [t.value for t in study.trials]
    return [min(values[:c]) - optimum for c in CHECKPOINTS]


regrets = {name: {"optuna-tpe": [run(f, opt, s) for s in range(SEEDS)]} for name, (f, opt) in FUNCTIONS.items()}

# Sampler overhead: the time to sample one trial of Hartmann-6 once 1,000 trials are complete.
study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
study.optimize(hartmann6, n_trials=1000)
start = time.perf_counter()
study.optimize(hartmann6, n_trials=20)
overhead = (time.perf_counter() - start) / 20 * 1000
print(json.dumps({"checkpoints": CHECKPOINTS, "regrets": regrets, "overhead_ms": {"optuna-tpe": overhead}}))
