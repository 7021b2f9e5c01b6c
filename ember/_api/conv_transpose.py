"""The transposed convolution (torch.nn.functional.conv_transpose2d): the adjoint of Conv2d.

A conv y = conv(x, w) with w (C_out, C_in/G, KH, KW) is a linear map of x; its transpose (its
vector–Jacobian product in x) is what ``ops.conv.Conv2d.backward`` computes as grad_x:
col2im(wᵀ g). The transposed convolution is that map applied to an input u: the same array w
read as (C_in_T, C_out_T/G, KH, KW), PyTorch's layout for ConvTranspose2d's weight, so

    forward:  z = col2im(wᵀ u) cropped by the padding, + b        (ops.conv's grad_x formula)
    backward: grad_u = conv2d(grad_z, w)                            (the adjoint of the adjoint)
              grad_w = Σ_n u · im2col(grad_z)ᵀ                      (ops.conv's grad_w with the roles
                                                                     of input and output swapped)
              grad_b = Σ_{n,h,w} grad_z

Output size (PyTorch's): H_out = (H − 1)·S − 2P + D·(K − 1) + output_padding + 1. The extra
output_padding rows and columns (< S, or < D) receive only the bias: no window reaches them.
Source: Dumoulin & Visin 2016, "A guide to convolution arithmetic for deep learning", section 4;
PyTorch 2.13's ConvTranspose2d.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Context, Function
from ..ops import conv as _conv


def out_size(n, k, s, p, d, op):
    """(n − 1)·s − 2p + d·(k − 1) + op + 1: the transposed convolution's output length."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


class ConvTranspose2d(Function):
    """z = conv_transpose2d(u, w, b): u (N, C_in, H, W), w (C_in, C_out/G, KH, KW), b (C_out,) ->
    z (N, C_out, H_out, W_out); float32/float64. Arguments: stride, padding, output_padding,
    groups, dilation (pairs, validated by the caller)."""

    @staticmethod
    def forward(ctx, u, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1,
                dilation=(1, 1)):
        N, C_in, H, W = u.shape
        G, (Cg, KH, KW) = groups, w.shape[1:]
        OH, OW = (out_size(n, k, s, p, d, op) for n, k, s, p, d, op in
                  zip((H, W), (KH, KW), stride, padding, dilation, output_padding))
        wg = w.reshape(G, C_in // G, Cg * KH * KW)                        # (G, C_in/G, K)
        g = u.reshape(N, G, C_in // G, H * W)
        cols = np.matmul(wg.swapaxes(-1, -2), g).reshape(N, G * Cg, KH, KW, H, W)   # wᵀ u
        padded = (N, G * Cg, OH + 2 * padding[0], OW + 2 * padding[1])
        z = _conv.unpad2d(_conv.col2im(cols, padded, *stride, *dilation), *padding)
        if b is not None:
            z = z + b[:, None, None]
        ctx.save_for_backward(u, w)
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups = stride, padding, dilation, groups
        ctx.has_bias = b is not None
        return np.ascontiguousarray(z)

    @staticmethod
    def backward(ctx, grad_z):
        u, w = ctx.saved_tensors
        need = ctx.needs_input_grad
        conv = Context(_conv.Conv2d, None, (need[0], need[1], False))
        gu = _conv.Conv2d.forward(conv, grad_z, w, None, ctx.stride, ctx.padding, ctx.dilation, ctx.groups)   # (N, C_in, ≥H, ≥W)
        H, W = u.shape[2:]
        grad_w = None
        if need[1]:   # the conv's weight gradient, u as its output gradient (zero where gu is larger)
            g = np.zeros_like(gu)
            g[:, :, :H, :W] = u
            grad_w = _conv.Conv2d.backward(conv, g)[1]
        grad_u = np.ascontiguousarray(gu[:, :, :H, :W]) if need[0] else None
        grad_b = grad_z.sum(axis=(0, 2, 3)) if ctx.has_bias and need[2] else None
        return grad_u, grad_w, grad_b
