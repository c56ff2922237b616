# The training step of bench/train_step.ts in PyTorch, for measuring jetfold's ratio to it in one run.
# Optional: nothing in jetfold needs Python. Usage: python3 bench/peers/train_step_torch.py [steps=10] [threads=2]
# Same model: 2 layers, d=128, 4 heads, T=64, batch 8, vocab 256, SwiGLU 512, Adam written out as in the TS bench.
import math
import sys
import time

import torch

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
V, D, H, S, B, L = 256, 128, 4, 64, 8, 2
HD, HID = D // H, 4 * D
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8

gen = torch.Generator().manual_seed(0)


def w(shape, fan_in):
    return (torch.randn(*shape, generator=gen) / math.sqrt(fan_in)).requires_grad_()


params = [w([V, D], 1), w([S, D], 1), torch.ones(D, requires_grad=True), w([D, V], D)]
for _ in range(L):
    params += [torch.ones(D, requires_grad=True), w([D, D], D), w([D, D], D), w([D, D], D), w([D, D], D),
               torch.ones(D, requires_grad=True), w([D, HID], D), w([D, HID], D), w([HID, D], HID)]
causal = torch.tril(torch.ones(S, S, dtype=torch.bool))


def rms(x, g):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-5) * g


def loss_of(x, y):
    tok, pos, lnf, head = params[:4]
    h = (tok[x] + pos).reshape(B * S, D)
    for l in range(L):
        ln1, wq, wk, wv, wo, ln2, w1, w3, w2 = params[4 + 9 * l:13 + 9 * l]
        a = rms(h, ln1)
        heads = lambda t: t.reshape(B, S, H, HD).permute(0, 2, 1, 3)
        q, k, v = heads(a @ wq), heads(a @ wk), heads(a @ wv)
        scores = torch.where(causal, q @ k.transpose(-1, -2) / math.sqrt(HD), torch.tensor(-1e9))
        att = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(B * S, D)
        h = h + att @ wo
        a2 = rms(h, ln2)
        h = h + (torch.nn.functional.silu(a2 @ w1) * (a2 @ w3)) @ w2
    return torch.nn.functional.cross_entropy(rms(h, lnf) @ head, y)


data = torch.randint(0, V, (B, S + 1), generator=gen)
xs, ys = data[:, :-1], data[:, 1:].reshape(-1)
m = [torch.zeros_like(p) for p in params]
v = [torch.zeros_like(p) for p in params]


def step(t):
    loss = loss_of(xs, ys)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        c1, c2 = 1 / (1 - B1 ** t), 1 / (1 - B2 ** t)
        for p, g, mi, vi in zip(params, grads, m, v):
            mi.mul_(B1).add_(g, alpha=1 - B1)
            vi.mul_(B2).addcmul_(g, g, value=1 - B2)
            p.sub_(mi * (c1 * LR) / ((vi * c2).sqrt() + EPS))
    return loss


step(1)
step(2)
times = []
for t in range(3, STEPS + 3):
    t0 = time.perf_counter()
    last = step(t).item()
    times.append((time.perf_counter() - t0) * 1000)
print("sorted ms:", " ".join(f"{t:.0f}" for t in sorted(times)))
times.sort()
mean = sum(times) / len(times)
print(f"torch {torch.__version__} {torch.get_num_threads()} threads: {mean:.1f} ms/step mean, "
      f"{times[len(times) // 2]:.1f} median, {B * S / mean * 1000:.0f} tokens/s, loss {last:.3f}")
