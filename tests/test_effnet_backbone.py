"""The ImageNet EfficientNet-Lite2 network: its frozen part stays as ImageNet trained it, grey inputs read
as three channels, and bad options name themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import embedlab
from embedlab.core.errors import ModelError
from embedlab.features.cnn import effnet_trunk, effnet_weights
from embedlab.nets import NETWORKS, fit_network, load_network_run
from embedlab.nets.models import GRAY_MEAN, GRAY_STD, build_module

SPEC = NETWORKS.create("effnet-lite2")


def test_fine_tuning_keeps_the_frozen_blocks_and_their_batch_statistics(sample, tmp_path):
    run = fit_network(sample / "real-vs-fake", "effnet-lite2",
                      {"size": 32, "input_size": 64, "freeze": 18, "face_crop": "never", "lr": 1e-2},
                      epochs=1, runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", device="cpu")
    reference = effnet_trunk(effnet_weights()).net
    trained = run.module.image_branch.net
    assert torch.equal(trained._conv_stem.weight, reference._conv_stem.weight)
    last_frozen, first_trained = trained._blocks[17], trained._blocks[18]
    assert torch.equal(last_frozen._project_conv.weight, reference._blocks[17]._project_conv.weight)
    # the frozen block's batch norm kept ImageNet's statistics through a training epoch
    assert torch.equal(last_frozen._bn2.running_mean, reference._blocks[17]._bn2.running_mean)
    assert not torch.equal(first_trained._project_conv.weight, reference._blocks[18]._project_conv.weight)
    assert not torch.equal(first_trained._bn2.running_mean, reference._blocks[18]._bn2.running_mean)
    # reopened from its folder, it predicts what it predicted when trained
    table = embedlab.datasets.load(sample / "real-vs-fake")
    a = run.predict(table, cache_dir=None, crops_dir=None)
    b = load_network_run(run.path).predict(table, cache_dir=None, crops_dir=None)
    np.testing.assert_array_equal(a.filter(like="proba_").to_numpy(), b.filter(like="proba_").to_numpy())


def test_a_grey_face_reads_as_the_same_face_in_colour():
    # both hold ImageNet's weights; only how they read their input differs
    grey_net = build_module(SPEC, SPEC.resolve({"channels": 1, "input_size": 64}), 7).eval()
    colour_net = build_module(SPEC, SPEC.resolve({"channels": 3, "input_size": 64}), 7).eval()
    v = torch.rand(2, 1, 48, 48)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    with torch.no_grad():
        grey = grey_net.embed((v - GRAY_MEAN) / GRAY_STD)
        colour = colour_net.embed((v.expand(-1, 3, -1, -1) - mean) / std)
    np.testing.assert_allclose(grey.numpy(), colour.numpy(), atol=1e-4)


def test_bad_options_name_the_option(tmp_path):
    with pytest.raises(ModelError, match="freeze"):
        build_module(SPEC, SPEC.resolve({"freeze": 22}), 2)
    with pytest.raises(ModelError, match="input_size"):
        build_module(SPEC, SPEC.resolve({"input_size": 16}), 2)
    with pytest.raises(ModelError, match="channels"):
        build_module(SPEC, SPEC.resolve({"channels": 2}), 2)
    with pytest.raises(ModelError, match="effnet-lite2 weights=.*missing.pth"):
        build_module(SPEC, SPEC.resolve({"weights": str(tmp_path / "missing.pth")}), 2)
