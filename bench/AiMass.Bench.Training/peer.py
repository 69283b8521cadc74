"""PyTorch reference for the Fashion-MNIST benchmarks: same architecture, initialisation scheme, optimizer, schedule,
batch, normalisation and thread count as bench/AiMass.Bench.Training.
  python3 peer.py mlp|cnn EPOCHS THREADS ROOT [MAX_BATCHES]
Prints one JSON line per epoch and a summary line. With MAX_BATCHES, each epoch stops after that many batches (for
references too slow to run whole epochs here): seconds_per_batch is then what to compare, and accuracy is partial."""
import gzip, json, math, sys, time
import numpy as np
import torch

def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)

def model_of(kind):
    nn = torch.nn
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(
        nn.Unflatten(1, (1, 28)),
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

def main():
    kind, epochs, threads, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    max_batches = int(sys.argv[5]) if len(sys.argv) > 5 else None
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    x = torch.tensor(idx(f"{root}/train-images-idx3-ubyte.gz"), dtype=torch.float32)
    y = torch.tensor(idx(f"{root}/train-labels-idx1-ubyte.gz").astype(np.int64))
    tx = torch.tensor(idx(f"{root}/t10k-images-idx3-ubyte.gz"), dtype=torch.float32)
    ty = torch.tensor(idx(f"{root}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    norm = lambda t: (t / 255.0 - 0.2860) / 0.3530
    model = model_of(kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    per_epoch = math.ceil(x.shape[0] / 64) if max_batches is None else min(max_batches, math.ceil(x.shape[0] / 64))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(42)
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(x.shape[0], generator=g)
        batches = 0
        for i in range(0, x.shape[0], 64):
            if max_batches is not None and batches >= max_batches:
                break
            idxs = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(norm(x[idxs])), y[idxs])
            loss.backward()
            opt.step()
            sched.step()
            batches += 1
        seconds = time.perf_counter() - start
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, tx.shape[0], 500):
                correct += (model(norm(tx[i:i + 500])).argmax(1) == ty[i:i + 500]).sum().item()
        print(json.dumps({"epoch": epoch + 1, "seconds": seconds, "batches": batches, "seconds_per_batch": seconds / batches,
                          "accuracy": correct / tx.shape[0]}), flush=True)
    # VmHWM, not ru_maxrss: ru_maxrss keeps the high-water mark of the process that started us (across exec).
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_bytes": hwm * 1024}), flush=True)

main()
