"""PyTorch reference for the Fashion-MNIST MLP benchmark: same architecture, initial scheme, optimizer, batch,
normalisation and thread count as bench/AiMass.Bench.Training. Prints one JSON line per epoch and a summary."""
import gzip, json, sys, time
import numpy as np
import torch

def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)

def main():
    epochs, threads, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    x = torch.tensor(idx(f"{root}/train-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32)
    y = torch.tensor(idx(f"{root}/train-labels-idx1-ubyte.gz").astype(np.int64))
    tx = torch.tensor(idx(f"{root}/t10k-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32)
    ty = torch.tensor(idx(f"{root}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    norm = lambda t: (t / 255.0 - 0.2860) / 0.3530
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(42)
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], 64):
            idxs = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(norm(x[idxs])), y[idxs])
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            acc = (model(norm(tx)).argmax(1) == ty).float().mean().item()
        print(json.dumps({"epoch": epoch + 1, "seconds": seconds, "accuracy": acc}), flush=True)
    # VmHWM, not ru_maxrss: ru_maxrss keeps the high-water mark of the process that started us (across exec).
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_bytes": hwm * 1024}), flush=True)

main()
