"""The authors' three models (preset ``authors``): their exact parameter counts, layers,
input sizes and the errors for options that do not apply.

The counts are docs/method.md section 5's, measured there by instantiating the authors' classes;
the structural facts are read from the authors' files (models/*.py of
masa-byte/MICCAI-Submission)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from calfseg.models import (
    MODEL_PRESETS,
    MODELS,
    build_model,
    check_input_size,
    count_parameters,
    describe_model,
    get_preset,
    input_size_rule,
)

AUTHORS_COUNTS = {"unet": 31_042_369, "deeplabv3": 14_502_209, "fpn": 15_514_305}


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_model(name, preset="authors").eval() for name in MODELS}


def test_authors_is_a_preset():
    assert "authors" in MODEL_PRESETS
    assert {"tiny", "paper"} <= set(MODEL_PRESETS)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_is_the_authors(models, name):
    assert count_parameters(models[name]) == AUTHORS_COUNTS[name]
    assert count_parameters(models[name], trainable_only=True) == AUTHORS_COUNTS[name]
    assert describe_model(models[name]) == (
        f"authors-{name}: {AUTHORS_COUNTS[name] / 1e6:.2f} M parameters "
        f"({AUTHORS_COUNTS[name]:,}, all trainable)"
    )


def test_deeplabv3_parts_have_the_authors_counts(models):
    model = models["deeplabv3"]
    assert count_parameters(model.encoder) == 9_779_776
    assert count_parameters(model.aspp) == 4_131_840
    assert count_parameters(model.head) == 590_593


def test_fpn_parts_have_the_authors_counts(models):
    model = models["fpn"]
    assert count_parameters(model.encoder) == 13_939_904
    assert count_parameters(model.head) == 1_574_401


def _first_conv_weights(model: nn.Module) -> int:
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return first.out_channels * first.kernel_size[0] * first.kernel_size[1]


@pytest.mark.parametrize("name", MODELS)
def test_in_channels_is_honoured(models, name):
    model = build_model(name, preset="authors", in_channels=3)
    # Only the first convolution grows: by one kernel per extra channel.
    extra = 2 * _first_conv_weights(models[name])
    assert count_parameters(model) == AUTHORS_COUNTS[name] + extra
    size = input_size_rule(name, "authors").divisor * 2 if name != "fpn" else 40
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, size, size)).shape == (2, 1, size, size)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow
def test_maps_256x256_to_one_logit_per_pixel(models, name):
    check_input_size(name, "authors", 256, 256)
    with torch.no_grad():
        out = models[name](torch.randn(2, 1, 256, 256))
    assert out.shape == (2, 1, 256, 256) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_unet_has_the_1024_channel_bottleneck_at_one_sixteenth(models):
    model = models["unet"]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert max(c.out_channels for c in convs) == 1024
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels, u.stride) for u in ups] == [
        (1024, 512, (2, 2)),
        (512, 256, (2, 2)),
        (256, 128, (2, 2)),
        (128, 64, (2, 2)),
    ]
    seen = {}
    handle = model.bottleneck.register_forward_hook(lambda m, i, o: seen.update(out=o.shape))
    with torch.no_grad():
        model(torch.randn(1, 1, 64, 96))
    handle.remove()
    assert seen["out"] == (1, 1024, 4, 6)
    # Every 3x3 convolution keeps its bias (the authors' nn.Conv2d default).
    assert all(c.bias is not None for c in convs)


def test_deeplabv3_encoder_is_plain_and_strided_32(models):
    model = models["deeplabv3"]
    encoder = model.encoder
    assert isinstance(encoder, nn.Sequential)
    # A flat chain of conv / BN / ReLU / pooling: no module that could add a shortcut.
    plain = (nn.Sequential, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d)
    assert all(isinstance(m, plain) for m in encoder.modules())
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 + 4 + 6 + 3  # stem + one conv per block of [3, 4, 6, 3]
    assert [c.kernel_size for c in convs[:2]] == [(7, 7), (3, 3)]
    assert all(c.bias is None and c.dilation == (1, 1) for c in convs)
    assert sum(c.stride == (2, 2) for c in convs) == 4  # with the max pooling: stride 32
    with torch.no_grad():
        assert encoder(torch.randn(1, 1, 64, 96)).shape == (1, 512, 2, 3)
    rates = {m.dilation for m in model.aspp.modules() if isinstance(m, nn.Conv2d)}
    assert rates == {(1, 1), (6, 6), (12, 12), (18, 18)}
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.aspp.modules())


def test_fpn_encoder_is_a_bottleneck_resnet_and_predicts_from_p2(models):
    model = models["fpn"]
    with torch.no_grad():
        features = model.encoder(torch.randn(1, 1, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [
        (256, 16, 16),
        (512, 8, 8),
        (1024, 4, 4),
        (2048, 2, 2),
    ]
    blocks = [len(stage) for stage in model.encoder.stages]
    assert blocks == [2, 2, 2, 2]
    # One 3x3 convolution in the head: the smoothing of P2 (no P3-P5 smoothing).
    head_3x3 = [
        m for m in model.head.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert len(head_3x3) == 1


def test_fpn_block_adds_its_shortcut(models):
    block = models["fpn"].encoder.stages[0][1]  # identity shortcut: 256 -> 256, stride 1
    x = torch.randn(1, 256, 4, 4)
    with torch.no_grad():
        residual = block.expand(block.spatial(block.reduce(x)))
        assert torch.allclose(block(x), torch.relu(residual + x))


def test_size_rules():
    assert (
        input_size_rule("unet", "authors").divisor,
        input_size_rule("unet", "authors").minimum,
    ) == (16, 16)
    assert input_size_rule("deeplabv3", "authors").divisor == 32
    assert input_size_rule("fpn", "authors").divisor == 1


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        (
            "unet",
            (250, 256),
            "the authors' U-Net (preset 'authors') needs H and W divisible by 16; "
            "got 250x256: try H = 240 or 256",
        ),
        (
            "deeplabv3",
            (256, 200),
            "the authors' DeepLabV3 (preset 'authors') needs H and W divisible by 32; "
            "got 256x200: try W = 192 or 224",
        ),
    ],
)
def test_a_size_the_model_cannot_take_names_the_sizes_that_work(models, name, size, message):
    with pytest.raises(ValueError) as err:
        check_input_size(name, "authors", *size)
    assert str(err.value) == message
    # The model itself refuses it with the same message, instead of failing in torch.cat
    # (U-Net) or returning 32 * ceil(H / 32) rows (the authors' DeepLabV3).
    with pytest.raises(ValueError) as err, torch.no_grad():
        models[name](torch.randn(1, 1, *size))
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("name", "size"), [("unet", (16, 48)), ("deeplabv3", (32, 96)), ("fpn", (37, 53))]
)
def test_smallest_and_odd_accepted_sizes_run(models, name, size):
    check_input_size(name, "authors", *size)
    with torch.no_grad():
        assert models[name](torch.randn(2, 1, *size)).shape == (2, 1, *size)


def test_fpn_takes_any_size(models):
    with torch.no_grad():
        for h, w in [(1, 1), (5, 7), (33, 31)]:
            check_input_size("fpn", "authors", h, w)
            assert models["fpn"](torch.randn(2, 1, h, w)).shape == (2, 1, h, w)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow
def test_every_parameter_gets_a_finite_gradient(name):
    torch.manual_seed(1)
    model = build_model(name, preset="authors").train()
    x = torch.randn(2, 1, 32, 32)
    y = (torch.rand(2, 1, 32, 32) > 0.7).float()
    torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: build_model("unet", preset="authors", encoder="resnet18"),
            "encoder='resnet18' does not apply to preset 'authors'",
        ),
        (
            lambda: build_model("fpn", preset="authors", decoder_pyramid_channels=64),
            "preset 'authors' takes no smp options (got decoder_pyramid_channels)",
        ),
        (
            lambda: check_input_size("deeplabv3", "authors", 256, 256, encoder_output_stride=16),
            "takes no smp options (got encoder_output_stride)",
        ),
        (lambda: get_preset("unet", "authors"), "has no smp encoder or options"),
        (lambda: build_model("unet", preset="author"), "valid presets: tiny, paper, authors"),
        (lambda: build_model("unet", preset="authors", in_channels=0), "in_channels must be"),
    ],
)
def test_options_that_do_not_apply_are_named(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
