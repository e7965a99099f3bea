"""AsymFusion's two parameter-free ops (docs/design.md §5), on modality-major stacks [M*B, C, H, W].

`pixel_shift` and `channel_shuffle` are plain functions so they can be tested on hand-built tensors; `ShuffleShift`
holds one fusion point's settings and applies them inside a residual block or at a stage boundary.
Ring rule: modality m receives from m+1 mod M (for M = 2 this is the official swap).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

T = TypeVar("T")


def exchanged_channels(channels: int, fraction: float | None = None) -> int:
    """Channels a modality receives in a shuffle: official `C - 4*(C//5)`, or round(fraction*C) (ratio ablation)."""
    if fraction is None:
        return channels - 4 * (channels // 5)
    return max(0, min(channels, round(fraction * channels)))


def shift_group(channels: int, exchanged: int) -> int:
    """Channels per pixel-shift group: the non-exchanged channels split into 4 groups (official: C // 5)."""
    return (channels - exchanged) // 4


def from_next_modality(x: Tensor, num_modalities: int) -> Tensor:
    """Rows of modality (m+1) mod M placed where modality m was: what each modality receives under the ring rule.

    A concatenation of the modality chunks rather than `torch.roll`, which returns NCHW-contiguous output: under
    channels_last that would switch the rest of the network to mixed memory formats (slow elementwise kernels, ~8%
    of a CPU training step)."""
    chunks = x.chunk(num_modalities, dim=0)
    return torch.cat([*chunks[1:], chunks[0]], dim=0)


def _mixed(own: Tensor, received: Tensor, num_modalities: int, receivers: Sequence[bool] | None) -> Tensor:
    """`received` for receiving modalities, `own` for the others (unidirectional ablation)."""
    if receivers is None or all(receivers):
        return received
    mask = torch.tensor(list(receivers), device=own.device).view(num_modalities, *([1] * own.dim()))
    return torch.where(mask, received.unflatten(0, (num_modalities, -1)),
                       own.unflatten(0, (num_modalities, -1))).flatten(0, 1)


def _received(x: Tensor, num_modalities: int, symmetric: bool) -> Tensor:
    """What each modality receives: the next modality's rows (ring rule), or the mean over all (symmetric)."""
    if symmetric:
        mean = sum(x.chunk(num_modalities, dim=0)) / num_modalities  # elementwise: keeps x's memory format
        return torch.cat([mean] * num_modalities, dim=0)
    return from_next_modality(x, num_modalities)


def _cached(build: Callable[..., T]) -> Callable[..., T]:
    """Memoise a constant-table builder in eager mode. Tables are built outside inference_mode (a cached inference
    tensor could not be saved for backward later); under torch.compile the builder is traced instead, so the
    tables become graph constants and dynamo does not have to see through the cache."""
    cached = functools.lru_cache(maxsize=256)(build)

    @functools.wraps(build)
    def get(*args: Any) -> T:
        if torch.compiler.is_compiling():
            return build(*args)
        with torch.inference_mode(False):
            return cached(*args)
    return get


@_cached
def _exchanged_mask(channels: int, exchanged: int, device: torch.device) -> Tensor:
    return (torch.arange(channels, device=device) >= channels - exchanged).view(1, -1, 1, 1)


def _exchange(x: Tensor, incoming: Tensor, exchanged: int, num_modalities: int,
              receivers: Sequence[bool] | None) -> Tensor:
    # Whole-tensor exchange + a per-channel select instead of slicing the last channels out and concatenating them
    # back: slices along channels are strided under channels_last, the select is one vectorised elementwise kernel.
    mask = _exchanged_mask(x.shape[1], exchanged, x.device)
    return torch.where(mask, _mixed(x, incoming, num_modalities, receivers), x)


def channel_shuffle(x: Tensor, num_modalities: int, exchanged: int, receivers: Sequence[bool] | None = None,
                    symmetric: bool = False) -> Tensor:
    """Replace each modality's last `exchanged` channels by the next modality's (same indices); the rest stays.

    symmetric=True replaces them by the mean over all modalities instead (everyone gets the same: the ablation that
    tests whether the asymmetric exchange matters). `receivers[m]` False leaves modality m untouched.
    """
    if exchanged <= 0:
        return x
    return _exchange(x, _received(x, num_modalities, symmetric), exchanged, num_modalities, receivers)


@_cached
def _shift_table(channels: int, group: int, height: int, width: int, dtype: torch.dtype,
                 device: torch.device) -> tuple[Tensor, Tensor]:
    """Gather index [H*W, C] (flat source pixel of every output pixel and channel) and its 0/1 validity mask.

    Channel c is in shift group c // group (0 down, 1 right, 2 left, 3 up); groups >= 4 and pixels shifted in from
    outside the image get mask 0 (the official zero padding)."""
    h = torch.arange(height, device=device).view(-1, 1).expand(height, width)
    w = torch.arange(width, device=device).view(1, -1).expand(height, width)
    src_h, src_w = torch.stack([h - 1, h, h, h + 1]), torch.stack([w, w - 1, w + 1, w])  # down, right, left, up
    inside = (src_h >= 0) & (src_h < height) & (src_w >= 0) & (src_w < width)
    source = torch.where(inside, src_h * width + src_w, 0).flatten(1)  # [4, H*W]
    group_of = torch.arange(channels, device=device) // group
    shifted, k = group_of < 4, group_of.clamp(max=3)
    index = torch.where(shifted, source[k].T, 0)
    return index, (inside.flatten(1)[k].T & shifted).to(dtype)


def _shift(x: Tensor, group: int, add_to: Tensor | None = None) -> Tensor:
    """pixel_shift(x) (+ add_to): one gather and one fused multiply(-add) in x's memory format, instead of four
    strided slice copies into a zero tensor (those cost several kernels each in forward and backward)."""
    n, c, h, w = x.shape
    index, mask = _shift_table(c, group, h, w, x.dtype, x.device)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        flat, index = x.permute(0, 2, 3, 1).reshape(n, h * w, c), index.expand(n, -1, -1)  # a view: NHWC memory
        gathered, mask = flat.gather(1, index).view(n, h, w, c).permute(0, 3, 1, 2), mask.view(1, h, w, c)
        mask = mask.permute(0, 3, 1, 2)
    else:
        flat, index = x.reshape(n, c, h * w), index.T.expand(n, -1, -1)
        gathered, mask = flat.gather(2, index).view(n, c, h, w), mask.T.reshape(1, c, h, w)
    return gathered * mask if add_to is None else torch.addcmul(add_to, gathered, mask)


def pixel_shift(x: Tensor, group: int) -> Tensor:
    """Shifted copy of the first 4*group channels, zero elsewhere: group 0 moves down 1 px, group 1 right, group 2
    left, group 3 up; vacated pixels are zero. This is what a modality *sends*; see `ShuffleShift.merge`.
    """
    if group <= 0:
        return torch.zeros_like(x)
    return _shift(x, group)


def receive_shift(x: Tensor, shifted: Tensor, num_modalities: int, receivers: Sequence[bool] | None = None,
                  symmetric: bool = False) -> Tensor:
    """x_m + shifted_{m+1}: each modality adds the OTHER modality's shifted features (symmetric: the mean of all)."""
    return x + _mixed(torch.zeros_like(x), _received(shifted, num_modalities, symmetric), num_modalities, receivers)


class ShuffleShift(nn.Module):
    """One AsymFusion point for features of `channels` channels; holds settings only (zero parameters).

    Inside a block: `split` after the first conv-bn-relu (returns the shuffled features and what this point sends
    by pixel shift), `merge` after the second (adds the received shift, shuffles again). At a stage boundary,
    `forward` applies one shuffle and the shift exchange to the stage output.
    """

    def __init__(self, channels: int, num_modalities: int, *, shuffle: bool = True, shift: bool = True,
                 exchanged_fraction: float | None = None, receivers: Sequence[bool] | None = None,
                 symmetric: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.num_modalities = num_modalities
        self.exchanged = exchanged_channels(channels, exchanged_fraction) if shuffle else 0
        self.group = shift_group(channels, exchanged_channels(channels, exchanged_fraction)) if shift else 0
        self.receivers = list(receivers) if receivers is not None else None
        self.symmetric = symmetric

    def shuffle(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.num_modalities, self.exchanged, self.receivers, self.symmetric)

    def split(self, a: Tensor) -> tuple[Tensor, Tensor | None]:
        """Shuffle #1 of `a`, and what this point received from the other modality (unshifted) for `merge`.

        The ring exchange (or mean) is computed once and serves both ops: shifting the received rows equals
        receiving the shifted rows, since the shift acts on each sample alone."""
        if self.exchanged <= 0 and self.group <= 0:
            return a, None
        incoming = _received(a, self.num_modalities, self.symmetric)
        shuffled = a if self.exchanged <= 0 else _exchange(a, incoming, self.exchanged, self.num_modalities,
                                                            self.receivers)
        return shuffled, incoming if self.group > 0 else None

    def add_shift(self, x: Tensor, incoming: Tensor) -> Tensor:
        """x + pixel_shift(incoming) for the receiving modalities."""
        if self.receivers is None or all(self.receivers):
            return _shift(incoming, self.group, add_to=x)
        return x + _mixed(torch.zeros_like(x), _shift(incoming, self.group), self.num_modalities, self.receivers)

    def merge(self, b: Tensor, incoming: Tensor | None) -> Tensor:
        if incoming is not None:
            b = self.add_shift(b, incoming)
        return self.shuffle(b)

    def forward(self, x: Tensor) -> Tensor:
        shuffled, incoming = self.split(x)
        return shuffled if incoming is None else self.add_shift(shuffled, incoming)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, exchanged={self.exchanged}, shift_group={self.group}, "
                f"receivers={self.receivers}, symmetric={self.symmetric}")
