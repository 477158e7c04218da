"""The smp presets (tiny, paper): offline builds, one logit per pixel, sizes checked at
start-up. The authors' hand-written models (preset ``authors``) are in test_authors.py."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys

import pytest
import torch

from calfseg.models import (
    MODELS,
    build_model,
    check_input_size,
    count_parameters,
    describe_model,
    input_size_rule,
)

SMP_PRESETS = ("tiny", "paper")
PAIRS = list(itertools.product(MODELS, SMP_PRESETS))

# Parameter counts documented in docs/models.md (millions), with some slack for smp releases.
# These are smp models, not the authors' (whose exact counts test_authors.py checks).
PARAMETER_RANGES = {
    ("unet", "tiny"): (0.3, 0.6),  # tu-resnet10t, depth 3, decoder (32, 16, 8): 0.41 M
    ("deeplabv3", "tiny"): (0.3, 1.0),
    ("fpn", "tiny"): (4.0, 6.0),
    ("unet", "paper"): (28.0, 34.0),  # vgg16_bn U-Net: 30.42 M (authors' U-Net: 31.04 M)
    ("deeplabv3", "paper"): (24.0, 28.0),  # ResNet-34 + ASPP: 26.00 M (authors': 14.50 M)
    ("fpn", "paper"): (15.0, 18.5),  # resnet26 + panoptic FPN: 16.55 M (authors': 15.51 M)
}


def _no_network(*args, **kwargs):
    raise OSError("network access attempted while building a model")


@pytest.fixture(scope="module")
def models() -> dict[tuple[str, str], torch.nn.Module]:
    """Every (model, preset), built with network access made impossible."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket.socket, "connect_ex", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        torch.manual_seed(0)
        return {pair: build_model(pair[0], preset=pair[1]).eval() for pair in PAIRS}


def _valid_size(name: str, size: str) -> tuple[int, int]:
    rule = input_size_rule(name, size)
    return max(2 * rule.divisor, rule.minimum), max(3 * rule.divisor, rule.minimum + 1)


@pytest.mark.parametrize(("name", "size"), PAIRS)
@pytest.mark.slow
def test_model_maps_images_to_one_logit_per_pixel(models, name, size):
    h, w = _valid_size(name, size)
    check_input_size(name, size, h, w)
    with torch.no_grad():
        out = models[(name, size)](torch.randn(2, 1, h, w))
    assert out.shape == (2, 1, h, w) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "size"), PAIRS)
def test_size_rule_follows_the_encoders_output_stride(models, name, size):
    model, rule = models[(name, size)], input_size_rule(name, size)
    if model.requires_divisible_input_shape:  # DeepLabV3, FPN
        assert rule.divisor == rule.minimum == model.encoder.output_stride
    else:  # U-Net: any size, but every pooling stage needs a pixel to pool
        assert rule.divisor == 1 and rule.minimum == model.encoder.output_stride


@pytest.mark.parametrize("name", ["deeplabv3", "fpn"])
@pytest.mark.parametrize("size", SMP_PRESETS)
def test_size_that_is_not_a_multiple_is_rejected_with_sizes_that_work(models, name, size):
    d = input_size_rule(name, size).divisor
    bad = 2 * d + d // 2
    with pytest.raises(ValueError, match=rf"divisible by {d}; got {bad}x{2 * d}") as err:
        check_input_size(name, size, bad, 2 * d)
    assert f"try H = {2 * d} or {3 * d}" in str(err.value)
    # The check is not stricter than the model: smp itself refuses that size.
    with pytest.raises(RuntimeError, match="divisible"), torch.no_grad():
        models[(name, size)](torch.randn(2, 1, bad, 2 * d))


@pytest.mark.parametrize("size", SMP_PRESETS)
def test_unet_takes_odd_sizes_but_not_too_small_ones(models, size):
    minimum = input_size_rule("unet", size).minimum
    check_input_size("unet", size, minimum + 3, 2 * minimum + 1)
    with torch.no_grad():
        out = models[("unet", size)](torch.randn(2, 1, minimum + 3, 2 * minimum + 1))
    assert out.shape == (2, 1, minimum + 3, 2 * minimum + 1)
    too_small = minimum - 1
    with pytest.raises(ValueError, match=rf"at least {minimum}; got {too_small}x{minimum}"):
        check_input_size("unet", size, too_small, minimum)


def test_paper_unet_really_cannot_take_smaller_images(models):
    with pytest.raises(RuntimeError), torch.no_grad():
        models[("unet", "paper")](torch.randn(2, 1, 24, 32))


@pytest.mark.parametrize("name", MODELS)
def test_every_accepted_tiny_size_runs(models, name):
    model = models[(name, "tiny")]
    rule = input_size_rule(name, "tiny")
    d, m = rule.divisor, rule.minimum
    for h, w in [(m, m), (m, m + 2 * d), (m + 2 * d, m + d), (4 * m, 4 * m)]:
        check_input_size(name, "tiny", h, w)
        with torch.no_grad():
            assert model(torch.randn(2, 1, h, w)).shape == (2, 1, h, w)


def test_size_message_names_the_model_and_encoder():
    with pytest.raises(ValueError) as err:
        check_input_size("fpn", "tiny", 80, 20, encoder="resnet18")
    assert str(err.value) == (
        "FPN with encoder resnet18 (preset 'tiny') needs H and W divisible by 32; "
        "got 80x20: try H = 64 or 96, W = 32"
    )
    with pytest.raises(ValueError, match="height must be a positive integer"):
        check_input_size("unet", "tiny", 0, 64)


@pytest.mark.parametrize(("name", "size"), PAIRS)
def test_parameter_count_is_in_the_documented_range(models, name, size):
    low, high = PARAMETER_RANGES[(name, size)]
    assert low * 1e6 <= count_parameters(models[(name, size)]) <= high * 1e6
    assert "M parameters" in describe_model(models[(name, size)])


def test_paper_deeplabv3_has_output_stride_32_and_no_dilation(models):
    model = models[("deeplabv3", "paper")]
    dilations = {m.dilation for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)}
    assert dilations == {(1, 1)}
    with torch.no_grad():
        features = model.encoder(torch.randn(2, 1, 64, 64))
    assert features[-1].shape[-2:] == (2, 2)
    rates = [m.dilation for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {(6, 6), (12, 12), (18, 18)} <= set(rates)


def test_overrides_and_encoder_choice_change_the_size_rule():
    assert input_size_rule("deeplabv3", "paper", encoder_output_stride=16).divisor == 16
    assert input_size_rule("fpn", "paper", encoder="resnet18").divisor == 32
    rule = input_size_rule("unet", "tiny", encoder_depth=4, decoder_channels=(64, 32, 16, 8))
    assert rule.minimum == 16
    model = build_model("unet", encoder="resnet18", in_channels=3)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1, 32, 32)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: build_model("segnet"),
            "unknown model 'segnet' (did you mean 'unet'.); valid names: unet, deeplabv3, fpn",
        ),
        (lambda: build_model("unet", preset="huge"), "unknown preset 'huge'"),
        (lambda: build_model("unet", encoder_weights="imagenet"), "never downloads"),
        (lambda: build_model("fpn", encoder_depth=4), "FPN needs encoder_depth=5"),
        (lambda: build_model("unet", encoder_depth=4), "decoder_channels has 3"),
        (lambda: build_model("deeplabv3", encoder_output_stride=4), "must be one of"),
        (lambda: build_model("unet", in_channels=0), "in_channels must be a positive"),
        (lambda: build_model("unet", encoder_name="resnet18"), "encoder=..."),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.slow
def test_importing_the_factory_does_not_import_smp():
    code = (
        "import sys, calfseg.models\n"
        "print(','.join(m for m in ('segmentation_models_pytorch', 'timm') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", MODELS)
def test_every_tiny_parameter_gets_a_gradient(name):
    """No unused parameters (DDP would need find_unused_parameters=True): the depth-reduced
    tiny presets use timm encoders, which drop the stages they do not run."""
    torch.manual_seed(0)
    model = build_model(name, preset="tiny").train()
    x = torch.randn(2, 1, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.8).float()
    torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
