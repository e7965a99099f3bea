"""AsymFusion's two parameter-free ops (DESIGN.md §5), on modality-major stacks [M*B, C, H, W].

`pixel_shift` and `channel_shuffle` are plain functions so they can be tested on hand-built tensors; `ShuffleShift`
holds one fusion point's settings and applies them inside a residual block or at a stage boundary.
Ring rule: modality m receives from m+1 mod M (for M = 2 this is the official swap).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


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


def channel_shuffle(x: Tensor, num_modalities: int, exchanged: int, receivers: Sequence[bool] | None = None,
                    symmetric: bool = False) -> Tensor:
    """Replace each modality's last `exchanged` channels by the next modality's (same indices); the rest stays.

    symmetric=True replaces them by the mean over all modalities instead (everyone gets the same: the ablation that
    tests whether the asymmetric exchange matters). `receivers[m]` False leaves modality m untouched.
    """
    if exchanged <= 0:
        return x
    # Whole-tensor exchange + a per-channel select instead of slicing the last channels out and concatenating them
    # back: slices along channels are strided under channels_last, the select is one vectorised elementwise kernel.
    if symmetric:
        mean = sum(x.chunk(num_modalities, dim=0)) / num_modalities  # elementwise: keeps x's memory format
        incoming = torch.cat([mean] * num_modalities, dim=0)
    else:
        incoming = from_next_modality(x, num_modalities)
    exchanged_mask = (torch.arange(x.shape[1], device=x.device) >= x.shape[1] - exchanged).view(1, -1, 1, 1)
    return torch.where(exchanged_mask, _mixed(x, incoming, num_modalities, receivers), x)


def pixel_shift(x: Tensor, group: int) -> Tensor:
    """Shifted copy of the first 4*group channels, zero elsewhere: group 0 moves down 1 px, group 1 right, group 2
    left, group 3 up; vacated pixels are zero. This is what a modality *sends*; see `ShuffleShift.merge`.
    """
    out = torch.zeros_like(x)
    g = group
    if g <= 0:
        return out
    out[:, 0 * g:1 * g, 1:, :] = x[:, 0 * g:1 * g, :-1, :]  # down
    out[:, 1 * g:2 * g, :, 1:] = x[:, 1 * g:2 * g, :, :-1]  # right
    out[:, 2 * g:3 * g, :, :-1] = x[:, 2 * g:3 * g, :, 1:]  # left
    out[:, 3 * g:4 * g, :-1, :] = x[:, 3 * g:4 * g, 1:, :]  # up
    return out


def receive_shift(x: Tensor, shifted: Tensor, num_modalities: int, receivers: Sequence[bool] | None = None,
                  symmetric: bool = False) -> Tensor:
    """x_m + shifted_{m+1}: each modality adds the OTHER modality's shifted features (symmetric: the mean of all)."""
    if symmetric:
        incoming = shifted.unflatten(0, (num_modalities, -1)).mean(0, keepdim=True)
        incoming = incoming.expand(num_modalities, *incoming.shape[1:]).flatten(0, 1)
    else:
        incoming = from_next_modality(shifted, num_modalities)
    return x + _mixed(torch.zeros_like(x), incoming, num_modalities, receivers)


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
        sent = pixel_shift(a, self.group) if self.group > 0 else None
        return self.shuffle(a), sent

    def merge(self, b: Tensor, sent: Tensor | None) -> Tensor:
        if sent is not None:
            b = receive_shift(b, sent, self.num_modalities, self.receivers, self.symmetric)
        return self.shuffle(b)

    def forward(self, x: Tensor) -> Tensor:
        shuffled, sent = self.split(x)
        if sent is None:
            return shuffled
        return receive_shift(shuffled, sent, self.num_modalities, self.receivers, self.symmetric)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, exchanged={self.exchanged}, shift_group={self.group}, "
                f"receivers={self.receivers}, symmetric={self.symmetric}")
