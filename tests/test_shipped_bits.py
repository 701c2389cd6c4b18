"""The shipped checkpoints give the bits they gave before text and series went behind the same
seams (issue 32): every reference here was recorded by the code before that change.

The NumPy backend's products are exact (model/numpy_backend.py), so its outputs are compared bit
for bit on any CPU; torch's float32 products are not, so they are compared to float tolerance.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from seqgen import Generator, SampleConfig, load_checkpoint
from seqgen.generate.generator import torch_model_from_checkpoint

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
WAVE = 0.8 * np.sin(2 * np.pi * np.arange(100) / 40)


def digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def test_shakespeare_feeds_and_samples_the_same_bits():
    ckpt = load_checkpoint(SHIPPED / "tinyshakespeare.safetensors")
    gen = Generator.from_checkpoint(ckpt, sampling=SampleConfig(temperature=0.8), seed=1)
    outputs = gen.feed("ROMEO:\n")
    assert digest(outputs) == "084db6163d7e2d9c"
    assert outputs[0, -1, :8].tolist() == [
        2.1022589206695557,
        -0.24811607599258423,
        -3.8603949546813965,
        -4.505503177642822,
        -3.026350736618042,
        2.7939376831054688,
        -3.5836362838745117,
        -1.0753108263015747,
    ]
    tokens = [int(t[0]) for t in gen.generate(200)]
    assert tokens[:20] == [24, 53, 53, 49, 1, 52, 53, 58, 1, 39, 52, 42, 1, 58, 46, 43, 1, 46, 43, 39]
    assert hashlib.sha256(bytes(tokens)).hexdigest()[:16] == "579fc91a6e3a650a"
    assert digest(gen.last_output) == "60f62abaa396a926"


def test_shakespeare_with_penalties_in_three_streams_samples_the_same_bits():
    ckpt = load_checkpoint(SHIPPED / "tinyshakespeare.safetensors")
    sampling = SampleConfig(temperature=0.9, top_k=20, repetition_penalty=1.3)
    gen = Generator.from_checkpoint(ckpt, sampling=sampling, seed=7)
    gen.reset(3)
    gen.feed("First Citizen:")
    assert digest(np.array(list(gen.generate(100)))) == "4c1dbe7a0e047e4a"


def test_shakespeare_on_torch_gives_the_same_logits():
    ckpt = load_checkpoint(SHIPPED / "tinyshakespeare.safetensors")
    runner = torch_model_from_checkpoint(ckpt)
    prime = Generator.from_checkpoint(ckpt).encode("ROMEO:\n")
    y, state = runner.forward(prime[None], runner.init_state(1))
    stepped, _ = runner.step(np.array([5]), state)
    np.testing.assert_allclose(
        y[0, -1, :8],
        [
            2.102257490158081,
            -0.24811655282974243,
            -3.8603971004486084,
            -4.505502700805664,
            -3.026350736618042,
            2.793937921524048,
            -3.5836360454559326,
            -1.0753108263015747,
        ],
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        stepped[0, :8],
        [
            0.5909704566001892,
            0.27797165513038635,
            -4.790043830871582,
            -4.284951210021973,
            -3.731478691101074,
            0.1327199637889862,
            -2.9708104133605957,
            -4.401287078857422,
        ],
        rtol=1e-5,
        atol=1e-6,
    )


def test_sine_feeds_and_continues_with_the_same_bits():
    ckpt = load_checkpoint(SHIPPED / "sine.safetensors")
    gen = Generator.from_checkpoint(ckpt, seed=3)
    assert digest(gen.feed(WAVE)) == "4d8fad987b2a26fa"
    values = np.array([v[0] for v in gen.generate(200)])
    assert values[:8].tolist() == [
        -4.362803093569589e-08,
        -0.125147658213962,
        -0.24721366748004886,
        -0.3631923406769584,
        -0.47022783697260073,
        -0.5656845314082325,
        -0.6472119223608841,
        -0.7128025131869178,
    ]
    assert digest(values) == "d718c3133f1c40d0"

    noisy = Generator.from_checkpoint(ckpt, sampling=SampleConfig(noise=0.05), seed=3)
    noisy.reset(2)
    noisy.feed(0.8 * np.sin(2 * np.pi * np.arange(100) / 25))
    assert digest(np.array(list(noisy.generate(100)))) == "4743c33657dab444"


def test_sine_on_torch_gives_the_same_outputs():
    runner = torch_model_from_checkpoint(load_checkpoint(SHIPPED / "sine.safetensors"))
    y, state = runner.forward(np.sin(np.arange(100) / 5.0)[None].astype(np.float32), runner.init_state(1))
    stepped, _ = runner.step(np.array([0.3], dtype=np.float32), state)
    np.testing.assert_allclose(
        y[0, -4:],
        [-0.00013181567192077637, -0.00011514872312545776, -9.72747802734375e-05, -8.04215669631958e-05],
        rtol=1e-5,
        atol=1e-7,
    )
    np.testing.assert_allclose(stepped, [-0.00012411922216415405], rtol=1e-5, atol=1e-7)


def test_the_pretrained_forecaster_forecasts_the_same_numbers():
    from seqgen.generate.zero_shot import zero_shot

    ckpt = load_checkpoint(SHIPPED / "forecaster.safetensors")
    t = np.arange(120)
    # Read in its own units only, and with the median of each quantile, as every forecast was when
    # these were recorded: reading a series in logs as well and pooling the readings' spread (the
    # defaults since) change the ensemble, not the network.
    y = 100 + 10 * np.sin(2 * np.pi * t / 12) + 0.5 * t
    made = zero_shot(ckpt, y, 12, 12, both_scales=False, pooled=False)
    # To 1e-9, not to the bit: the forecaster's products are plain float64 BLAS, whose last bits
    # follow the CPU's kernel (OpenBLAS's Sandybridge and Nehalem kernels each gave other bits than
    # Haswell's here) and the batch's shape (the three starts read in one pass since).
    np.testing.assert_allclose(
        np.median(made.paths, axis=0)[:3], [158.7748792198668, 163.9701913135851, 167.15587243719688], rtol=1e-9
    )
    np.testing.assert_allclose(
        made.paths[[0, 100, 199]][:, [0, 11]],
        [
            [153.96757755918534, 150.96717075733503],
            [158.79112985229554, 161.22329358214],
            [162.35701384875077, 171.14456774784713],
        ],
        rtol=1e-9,
    )
