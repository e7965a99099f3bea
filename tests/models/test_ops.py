"""AsymFusion's ops on hand-built tensors: exact channels moved, pixels shifted, zero fill, who receives what."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asymfusion.models import channel_shuffle, pixel_shift
from asymfusion.models.fusion.ops import ShuffleShift, exchanged_channels, receive_shift

GRID = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])


def _stack(num_modalities: int, channels: int) -> torch.Tensor:
    """[M*1, C, 1, 1] with value 10*m + c, so every entry names its modality and channel."""
    values = [[10.0 * m + c for c in range(channels)] for m in range(num_modalities)]
    return torch.tensor(values).view(num_modalities, channels, 1, 1)


@pytest.mark.parametrize("channels, exchanged", [(64, 16), (128, 28), (256, 52), (512, 104), (5, 1), (10, 2)])
def test_official_exchanged_channel_rule(channels: int, exchanged: int) -> None:
    assert exchanged_channels(channels) == exchanged


def test_pixel_shift_moves_four_groups_down_right_left_up_with_zero_fill() -> None:
    x = torch.stack([GRID * (c + 1) for c in range(5)]).unsqueeze(0)  # C=5 -> group of 1, channel 4 not shifted
    out = pixel_shift(x, group=1)[0]
    assert torch.equal(out[0], torch.tensor([[0.0, 0, 0], [1, 2, 3], [4, 5, 6]]))  # down
    assert torch.equal(out[1], 2 * torch.tensor([[0.0, 1, 2], [0, 4, 5], [0, 7, 8]]))  # right
    assert torch.equal(out[2], 3 * torch.tensor([[2.0, 3, 0], [5, 6, 0], [8, 9, 0]]))  # left
    assert torch.equal(out[3], 4 * torch.tensor([[4.0, 5, 6], [7, 8, 9], [0, 0, 0]]))  # up
    assert torch.equal(out[4], torch.zeros(3, 3))  # exchanged channels contribute zeros


def test_pixel_shift_matches_the_official_padding_and_crop_indexing() -> None:
    x = torch.randn(2, 11, 5, 6)  # g = 2, k = 8
    h, w = x.shape[-2:]
    expected = torch.zeros_like(x)
    for index, (dh, dw) in enumerate([(-1, 0), (0, -1), (0, 1), (1, 0)]):  # the official `pos` table
        group = slice(2 * index, 2 * index + 2)
        expected[:, group] = F.pad(x[:, group], (1, 1, 1, 1))[:, :, dh + 1:h + dh + 1, dw + 1:w + dw + 1]
    assert torch.equal(pixel_shift(x, group=2), expected)


def test_channel_shuffle_two_modalities_swaps_only_the_last_channels() -> None:
    x = _stack(2, 10)  # exchanged = 10 - 4*2 = 2: channels 8, 9
    out = channel_shuffle(x, num_modalities=2, exchanged=2).flatten(1)
    assert out[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 18, 19]
    assert out[1].tolist() == [10, 11, 12, 13, 14, 15, 16, 17, 8, 9]


def test_channel_shuffle_three_modalities_follows_the_ring_rule() -> None:
    x = _stack(3, 5)  # exchanged = 1: channel 4; m receives from m+1 mod 3
    out = channel_shuffle(x, num_modalities=3, exchanged=1).flatten(1)
    assert out[:, 4].tolist() == [14, 24, 4]
    assert torch.equal(out[:, :4], x.flatten(1)[:, :4])


def test_channel_shuffle_keeps_batch_rows_within_their_modality() -> None:
    x = torch.arange(2 * 3 * 5, dtype=torch.float).view(6, 5, 1, 1)  # M=2, B=3
    out = channel_shuffle(x, num_modalities=2, exchanged=1).flatten(1)
    assert out[:, 4].tolist() == x.flatten(1)[[3, 4, 5, 0, 1, 2], 4].tolist()


def test_unidirectional_shuffle_changes_only_the_receiver() -> None:
    x = _stack(2, 5)
    out = channel_shuffle(x, 2, 1, receivers=[True, False]).flatten(1)
    assert out[0].tolist() == [0, 1, 2, 3, 14]
    assert out[1].tolist() == [10, 11, 12, 13, 14]


def test_symmetric_shuffle_gives_every_modality_the_mean() -> None:
    out = channel_shuffle(_stack(3, 5), 3, 1, symmetric=True).flatten(1)
    assert out[:, 4].tolist() == [14.0, 14.0, 14.0]  # mean of 4, 14, 24


def test_each_modality_receives_the_next_modalitys_shifted_features() -> None:
    b = torch.zeros(3, 1, 1, 1)
    sent = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1)
    assert receive_shift(b, sent, 3).flatten().tolist() == [2, 3, 1]
    assert receive_shift(b[:2], sent[:2], 2).flatten().tolist() == [2, 1]
    assert receive_shift(b[:2], sent[:2], 2, receivers=[False, True]).flatten().tolist() == [0, 1]


def test_fusion_point_in_a_block_matches_steps_two_to_six_for_two_modalities() -> None:
    a = torch.randn(4, 10, 4, 4)  # M=2, B=2, C=10: g=2, k=8
    point = ShuffleShift(10, num_modalities=2)
    shuffled, received = point.split(a)
    a0, a1 = a[:2], a[2:]
    swapped = [torch.cat([a0[:, :8], a1[:, 8:]], 1), torch.cat([a1[:, :8], a0[:, 8:]], 1)]
    assert torch.equal(shuffled, torch.cat(swapped))
    assert torch.equal(received, torch.cat([a1, a0]))  # unshifted: merge shifts it
    b = torch.randn(4, 10, 4, 4)
    merged = point.merge(b, received)
    b0, b1 = b[:2] + pixel_shift(a1, 2), b[2:] + pixel_shift(a0, 2)
    assert torch.equal(merged, torch.cat([torch.cat([b0[:, :8], b1[:, 8:]], 1), torch.cat([b1[:, :8], b0[:, 8:]], 1)]))


def test_fusion_point_switches_and_ratio() -> None:
    a = torch.randn(4, 10, 4, 4)
    assert ShuffleShift(10, 2, shuffle=False).split(a)[0] is a
    assert ShuffleShift(10, 2, shift=False).split(a)[1] is None
    half = ShuffleShift(10, 2, exchanged_fraction=0.5)
    assert (half.exchanged, half.group) == (5, 1)
    assert sum(p.numel() for p in half.parameters()) == 0


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("symmetric", [False, True])
def test_fusion_point_keeps_the_channels_last_memory_format(num_modalities: int, symmetric: bool) -> None:
    # A fusion point that returned NCHW tensors would make every following channels_last conv reorder its input.
    x = torch.randn(num_modalities * 2, 10, 6, 6).contiguous(memory_format=torch.channels_last)
    point = ShuffleShift(10, num_modalities, symmetric=symmetric)
    out = point(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, point(x.contiguous()))  # same values in either format


def _official_shift(x: torch.Tensor, group: int) -> torch.Tensor:
    """The official code's indexing: zero-pad by one pixel, crop each of the four groups at its offset."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    for index, (dh, dw) in enumerate([(-1, 0), (0, -1), (0, 1), (1, 0)]):
        part = slice(group * index, group * (index + 1))
        out[:, part] = F.pad(x[:, part], (1, 1, 1, 1))[:, :, dh + 1:h + dh + 1, dw + 1:w + dw + 1]
    return out


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("num_modalities, options", [
    (2, {}), (3, {}), (2, {"symmetric": True}), (3, {"symmetric": True}), (2, {"receivers": [False, True]}),
    (2, {"exchanged_fraction": 0.5}), (2, {"shuffle": False}), (2, {"shift": False}),
])
def test_fusion_point_forward_and_gradients_equal_the_step_by_step_definition(
        channels_last: bool, num_modalities: int, options: dict) -> None:
    # split/merge compute the ring exchange once and shift what was received; the definition shifts what is sent.
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    a, b = (torch.randn(num_modalities * 2, 11, 5, 6).contiguous(memory_format=fmt) for _ in range(2))
    point = ShuffleShift(11, num_modalities, **options)
    receivers, symmetric = point.receivers, point.symmetric

    def definition(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shuffled = channel_shuffle(a, num_modalities, point.exchanged, receivers, symmetric)
        if point.group > 0:
            b = receive_shift(b + 0 * shuffled.sum(), _official_shift(a, point.group), num_modalities, receivers,
                              symmetric)
        return channel_shuffle(b, num_modalities, point.exchanged, receivers, symmetric), shuffled

    def ours(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shuffled, received = point.split(a)
        return point.merge(b + 0 * shuffled.sum(), received), shuffled

    grads = []
    for fn in (definition, ours):
        a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
        merged, shuffled = fn(a_, b_)
        (merged * torch.arange(merged.numel()).view_as(merged).sin() + shuffled.cos()).sum().backward()
        grads.append((merged.detach(), shuffled.detach(), a_.grad, b_.grad))
    for expected, got in zip(*grads):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert grads[1][0].is_contiguous(memory_format=fmt)


def test_pixel_shift_gradient_is_the_opposite_shift() -> None:
    x = torch.randn(2, 10, 4, 5, requires_grad=True)
    upstream = torch.randn(2, 10, 4, 5)
    (pixel_shift(x, 2) * upstream).sum().backward()
    down, right, left, up = (upstream[:, 2 * k:2 * k + 2] for k in range(4))
    expected = torch.zeros_like(x)
    expected[:, 0:2, :-1] = down[:, :, 1:]        # a pixel moved down gets its gradient from the row below
    expected[:, 2:4, :, :-1] = right[:, :, :, 1:]
    expected[:, 4:6, :, 1:] = left[:, :, :, :-1]
    expected[:, 6:8, 1:] = up[:, :, :-1]
    assert torch.equal(x.grad, expected)


def test_fusion_point_trains_after_its_first_call_ran_in_inference_mode() -> None:
    # The ops cache their index and mask tensors; one made under inference_mode could not be saved for backward.
    point = ShuffleShift(7, 2)
    with torch.inference_mode():
        point(torch.randn(2, 7, 3, 3))
    x = torch.randn(2, 7, 3, 3, requires_grad=True)
    point.merge(*point.split(x)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_fusion_point_compiles_as_one_graph_with_eager_values_and_gradients() -> None:
    # Under torch.compile the constant tables are traced (no lru_cache for dynamo to see through, no graph break).
    import warnings

    torch._dynamo.reset()
    point = ShuffleShift(11, 2)
    compiled = torch.compile(lambda a, b: point.merge(point.split(a)[0] + b, point.split(a)[1]), backend="aot_eager",
                             fullgraph=True)
    a, b = torch.randn(4, 11, 5, 6), torch.randn(4, 11, 5, 6)
    grads = []
    for fn in (lambda a, b: point.merge(point.split(a)[0] + b, point.split(a)[1]), compiled):
        a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn(a_, b_)
        (out * out).sum().backward()
        assert not [w for w in caught if "lru_cache" in str(w.message)]
        grads.append((out.detach(), a_.grad, b_.grad))
    for eager, comp in zip(*grads):
        torch.testing.assert_close(comp, eager)
