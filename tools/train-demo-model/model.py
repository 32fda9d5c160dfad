"""RWKV-7 ("x070") for training on CPU, in BlinkDL's parameter layout and key names (head size 64).

state_dict() keys are exactly those of a BlinkDL RWKV-7 .pth (emb.weight, blocks.0.ln0.*, blocks.i.ln1/ln2,
blocks.i.att.{x_r,x_w,x_k,x_v,x_a,x_g,w0,w1,w2,a0,a1,a2,v0,v1,v2,g1,g2,k_k,k_a,r_k,receptance.weight,key.weight,
value.weight,output.weight,ln_x.weight,ln_x.bias}, blocks.i.ffn.{x_k,key.weight,value.weight}, ln_out.*, head.weight);
v0/v1/v2 are absent in layer 0. Init follows BlinkDL's RWKV-v7 train_temp model.
The WKV recurrence is computed in chunks of 16 tokens (exact, a unit-lower-triangular solve per chunk).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

HEAD_SIZE = 64
CHUNK = 16


def _lora_dim(C, f):
    return max(32, int(round((f * (C ** 0.5)) / 32) * 32))


def _ortho(shape, scale):
    x = torch.empty(shape)
    gain = math.sqrt(shape[0] / shape[1]) if shape[0] > shape[1] else 1.0
    nn.init.orthogonal_(x, gain=gain * scale)
    return x


class TimeMix(nn.Module):
    def __init__(self, C, layer_id, n_layer):
        super().__init__()
        H, N = C // HEAD_SIZE, HEAD_SIZE
        self.layer_id, self.H, self.N = layer_id, H, N
        r01 = layer_id / (n_layer - 1) if n_layer > 1 else 0.0
        r10 = 1.0 - layer_id / n_layer
        ddd = (torch.arange(C, dtype=torch.float32) / C).view(1, 1, C)
        self.x_r = nn.Parameter(1.0 - torch.pow(ddd, 0.2 * r10))
        self.x_w = nn.Parameter(1.0 - torch.pow(ddd, 0.9 * r10))
        self.x_k = nn.Parameter(1.0 - (torch.pow(ddd, 0.9 * r10) + 0.4 * r01))
        self.x_v = nn.Parameter(1.0 - (torch.pow(ddd, 0.4 * r10) + 0.6 * r01))
        self.x_a = nn.Parameter(1.0 - torch.pow(ddd, 0.9 * r10))
        self.x_g = nn.Parameter(1.0 - torch.pow(ddd, 0.2 * r10))
        n = torch.arange(C, dtype=torch.float32)
        linear = n / (C - 1) - 0.5
        zigzag = ((n % N) - ((N - 1) / 2)) / ((N - 1) / 2)
        zigzag = zigzag * zigzag.abs()
        www = -6 + 6 * (n / (C - 1)) ** (1 + 1 * r01 ** 0.3)
        D = _lora_dim(C, 2.5)
        self.w0 = nn.Parameter((www + 0.5 + zigzag * 2.5).view(1, 1, C))
        self.w1 = nn.Parameter(torch.zeros(C, D))
        self.w2 = nn.Parameter(_ortho((D, C), 0.1))
        D = _lora_dim(C, 2.5)
        self.a0 = nn.Parameter((torch.zeros(C) - 0.19 + zigzag * 0.3 + linear * 0.4).view(1, 1, C))
        self.a1 = nn.Parameter(torch.zeros(C, D))
        self.a2 = nn.Parameter(_ortho((D, C), 0.1))
        if layer_id != 0:
            D = _lora_dim(C, 1.7)
            self.v0 = nn.Parameter((torch.zeros(C) + 0.73 - linear * 0.4).view(1, 1, C))
            self.v1 = nn.Parameter(torch.zeros(C, D))
            self.v2 = nn.Parameter(_ortho((D, C), 0.1))
        D = _lora_dim(C, 5)
        self.g1 = nn.Parameter(torch.zeros(C, D))
        self.g2 = nn.Parameter(_ortho((D, C), 0.1))
        self.k_k = nn.Parameter((torch.zeros(C) + 0.71 - linear * 0.1).view(1, 1, C))
        self.k_a = nn.Parameter(torch.zeros(1, 1, C) + 1.02)
        self.r_k = nn.Parameter(torch.zeros(H, N) - 0.04)
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        s = 1.0 / math.sqrt(C)
        nn.init.uniform_(self.receptance.weight, -0.5 * s, 0.5 * s)
        nn.init.uniform_(self.key.weight, -0.05 * s, 0.05 * s)
        nn.init.uniform_(self.value.weight, -0.5 * s, 0.5 * s)
        nn.init.zeros_(self.output.weight)
        self.ln_x = nn.GroupNorm(H, C, eps=64e-5)
        with torch.no_grad():
            self.ln_x.weight.copy_(torch.full((C,), ((1 + layer_id) / n_layer) ** 0.7))

    def forward(self, x, v_first, x_prev, S):
        """x [B,T,C] (after ln1); x_prev [B,C]; S [B,H,N,N] value-major. Returns out, v_first, x_last, S."""
        B, T, C = x.shape
        H, N = self.H, self.N
        xx = torch.cat([x_prev.unsqueeze(1), x[:, :-1]], dim=1) - x
        xr, xw, xk = x + xx * self.x_r, x + xx * self.x_w, x + xx * self.x_k
        xv, xa, xg = x + xx * self.x_v, x + xx * self.x_a, x + xx * self.x_g
        r = self.receptance(xr)
        w = torch.tanh(xw @ self.w1) @ self.w2
        k = self.key(xk)
        v = self.value(xv)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, p=2.0).view(B, T, C)
        k = k * (1 + (a - 1) * self.k_a)
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        logw = -0.606531 * torch.sigmoid(self.w0 + w)  # log of the decay; 0.606531 = exp(-0.5)
        y, S = wkv_chunked(r, logw, k, v, -kk, kk * a, S, H, N)
        y = self.ln_x(y.reshape(B * T, C)).view(B, T, C)
        y = y + ((r * k * self.r_k.view(1, 1, C)).view(B, T, H, N).sum(-1, keepdim=True) * v.view(B, T, H, N)).view(B, T, C)
        return self.output(y * g), v_first, x[:, -1], S


def wkv_chunked(r, logw, k, v, al, be, S, H, N, L=CHUNK):
    with torch.autocast(r.device.type, enabled=False):
        return _wkv_chunked_f32(r, logw, k, v, al, be, S, H, N, L)


def _wkv_chunked_f32(r, logw, k, v, al, be, S, H, N, L):
    """S_t = S_{t-1} diag(w_t) + (S_{t-1} al_t) be_t^T + v_t k_t^T ; y_t = S_t r_t  (S value-major [N_v, N_k]).

    Within a chunk, z_t = S_{t-1} al_t satisfies a unit-lower-triangular system; everything except a few
    64x64 products per chunk is computed for all chunks at once."""
    B, T, C = r.shape
    # the chunked form multiplies exp(+c) by exp(-c): keep it in f32 even when the projections ran in bf16
    r, logw, k, v, al, be, S = (t.float() for t in (r, logw, k, v, al, be, S))
    pad = (-T) % L
    if pad:
        z = lambda t: F.pad(t, (0, 0, 0, pad))
        r, k, v, al, be = z(r), z(k), z(v), z(al), z(be)
        logw = F.pad(logw, (0, 0, 0, pad))  # log w = 0 (w = 1) and k = v = 0 in the padding: S unchanged
    Tp = T + pad
    NC = Tp // L
    f = lambda t: t.view(B, NC, L, H, N).permute(0, 3, 1, 2, 4)  # [B,H,NC,L,N]
    r, logw, k, v, al, be = f(r), f(logw), f(k), f(v), f(al), f(be)
    c = torch.cumsum(logw, dim=3)  # inclusive
    cp = c - logw  # exclusive
    cL = c[:, :, :, -1:, :]  # [B,H,NC,1,N]
    r_d = r * torch.exp(c)
    a_d = al * torch.exp(cp)
    k_i = k * torch.exp(-c)
    b_i = be * torch.exp(-c)
    k_e = k * torch.exp(cL - c)
    b_e = be * torch.exp(cL - c)
    dL = torch.exp(cL).squeeze(3)  # [B,H,NC,N]
    strict = torch.tril(torch.ones(L, L, dtype=torch.bool, device=r.device), diagonal=-1)
    incl = torch.tril(torch.ones(L, L, dtype=torch.bool, device=r.device))
    A = (a_d @ b_i.transpose(-1, -2)).masked_fill(~strict, 0.0)
    Bm = (a_d @ k_i.transpose(-1, -2)).masked_fill(~strict, 0.0)
    Rb = (r_d @ b_i.transpose(-1, -2)).masked_fill(~incl, 0.0)
    Rk = (r_d @ k_i.transpose(-1, -2)).masked_fill(~incl, 0.0)
    I = torch.eye(L, dtype=r.dtype, device=r.device)
    M = I - A
    # Z = M^{-1} (a_d S0^T + Bm V) = Pa S0^T + ZV
    Pa = torch.linalg.solve_triangular(M, a_d, upper=False, unitriangular=True)  # [B,H,NC,L,N]
    ZV = torch.linalg.solve_triangular(M, Bm @ v, upper=False, unitriangular=True)  # [B,H,NC,L,N]
    Py = r_d + Rb @ Pa  # y = Py S0^T + Yc
    Yc = Rb @ ZV + Rk @ v
    Send_c = v.transpose(-1, -2) @ k_e + ZV.transpose(-1, -2) @ b_e  # [B,H,NC,N,N]
    PaT_be = Pa.transpose(-1, -2) @ b_e  # S_end = S0*dL + S0 (Pa^T b_e) + Send_c
    ys = []
    # unbind once (slicing inside the loop would zero-fill a full-size gradient per chunk in backward)
    Py_, Yc_, dL_ = Py.unbind(2), Yc.unbind(2), dL.unsqueeze(-2).unbind(2)
    PaT_be_, Send_c_ = PaT_be.unbind(2), Send_c.unbind(2)
    for ci in range(NC):
        ys.append(Py_[ci] @ S.transpose(-1, -2) + Yc_[ci])
        S = S * dL_[ci] + S @ PaT_be_[ci] + Send_c_[ci]
    y = torch.stack(ys, dim=2)  # [B,H,NC,L,N]
    y = y.permute(0, 2, 3, 1, 4).reshape(B, Tp, H * N)[:, :T]
    return y, S


def wkv_loop(r, logw, k, v, al, be, S, H, N):
    """Reference step-by-step recurrence (for tests)."""
    B, T, C = r.shape
    f = lambda t: t.view(B, T, H, N)
    r, w, k, v, al, be = f(r), f(torch.exp(logw)), f(k), f(v), f(al), f(be)
    ys = []
    for t in range(T):
        S = S * w[:, t].unsqueeze(-2) + (S @ al[:, t].unsqueeze(-1)) @ be[:, t].unsqueeze(-2) \
            + v[:, t].unsqueeze(-1) @ k[:, t].unsqueeze(-2)
        ys.append((S @ r[:, t].unsqueeze(-1)).squeeze(-1))
    return torch.stack(ys, 1).reshape(B, T, C), S


class ChannelMix(nn.Module):
    def __init__(self, C, layer_id, n_layer):
        super().__init__()
        r10 = 1.0 - layer_id / n_layer
        ddd = (torch.arange(C, dtype=torch.float32) / C).view(1, 1, C)
        self.x_k = nn.Parameter(1.0 - torch.pow(ddd, r10 ** 4))
        self.key = nn.Linear(C, 4 * C, bias=False)
        self.value = nn.Linear(4 * C, C, bias=False)
        s = 1.0 / math.sqrt(C)
        nn.init.uniform_(self.key.weight, -0.5 * s, 0.5 * s)
        nn.init.zeros_(self.value.weight)

    def forward(self, x, x_prev):
        xx = torch.cat([x_prev.unsqueeze(1), x[:, :-1]], dim=1) - x
        k = x + xx * self.x_k
        k = torch.relu(self.key(k)) ** 2
        return self.value(k), x[:, -1]


class Block(nn.Module):
    def __init__(self, C, layer_id, n_layer):
        super().__init__()
        self.layer_id = layer_id
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = TimeMix(C, layer_id, n_layer)
        self.ffn = ChannelMix(C, layer_id, n_layer)


class RWKV7(nn.Module):
    def __init__(self, vocab_size, n_embd, n_layer):
        super().__init__()
        self.vocab_size, self.n_embd, self.n_layer = vocab_size, n_embd, n_layer
        self.n_head = n_embd // HEAD_SIZE
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.blocks = nn.ModuleList([Block(n_embd, i, n_layer) for i in range(n_layer)])
        self.ln_out = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        gain = 0.5 * math.sqrt(vocab_size / n_embd) if vocab_size > n_embd else 0.5
        nn.init.orthogonal_(self.head.weight, gain=gain)

    def zero_state(self, B):
        C, H, N = self.n_embd, self.n_head, HEAD_SIZE
        z = lambda *shape: torch.zeros(*shape, device=self.emb.weight.device)
        return [[z(B, C), z(B, H, N, N), z(B, C)] for _ in range(self.n_layer)]

    def forward(self, idx, state=None, return_state=False):
        """idx [B,T] -> logits [B,T,V]; state: list per layer of [att_x_prev [B,C], wkv [B,H,N,N], ffn_x_prev [B,C]]."""
        B, T = idx.shape
        if state is None:
            state = self.zero_state(B)
        x = self.emb(idx)
        x = self.blocks[0].ln0(x)
        v_first = None
        new_state = []
        for i, blk in enumerate(self.blocks):
            ax, S, fx = state[i]
            xa, v_first, ax2, S2 = blk.att(blk.ln1(x), v_first, ax, S)
            x = x + xa
            xf, fx2 = blk.ffn(blk.ln2(x), fx)
            x = x + xf
            new_state.append([ax2, S2, fx2])
        logits = self.head(self.ln_out(x))
        return (logits, new_state) if return_state else logits

    def n_params(self):
        return sum(p.numel() for p in self.parameters())
