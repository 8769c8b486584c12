"""Writes the peers' CIFAR-shaped stand-in (common._cifar_shaped_proxy: MNIST digits padded
to 32x32, tinted with a random colour over a random background plus pixel noise; 50k train
/ 10k test) to disk in the CIFAR-10 binary format, so that dnnc trains on the same images
as the peers' `--synthetic-cifar` B3. Pixels are rounded to bytes (the format's precision).

    python write_cifar_proxy.py PEERS_DIR DATA_DIR OUT_ROOT   # writes OUT_ROOT/cifar10/*.bin
"""
import os
import sys

import numpy as np

peers, data, out = sys.argv[1:4]
sys.path.insert(0, peers)
import common  # noqa: E402

xtr, ytr, xte, yte = common._cifar_shaped_proxy(data)  # NCHW float32 in [0, 1]
folder = os.path.join(out, "cifar10")
os.makedirs(folder, exist_ok=True)


def write(name, x, y):
    n = len(y)
    records = np.empty((n, 1 + 3 * 32 * 32), np.uint8)
    records[:, 0] = y.astype(np.uint8)
    records[:, 1:] = np.rint(x.reshape(n, -1) * 255.0).clip(0, 255).astype(np.uint8)
    records.tofile(os.path.join(folder, name))


per = len(ytr) // 5
for b in range(5):
    write(f"data_batch_{b + 1}.bin", xtr[b * per:(b + 1) * per], ytr[b * per:(b + 1) * per])
write("test_batch.bin", xte, yte)
print(f"wrote {len(ytr)} + {len(yte)} CIFAR-format records under {folder}")
