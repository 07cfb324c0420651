"""GPU trouble never stops the studio: no CUDA means the CPU with a notice, a failing GPU a retry there.

Most machines that run these tests have no GPU, so the GPU is simulated by a small model that
behaves as if its weights sat on one until it is moved (``SimulatedGPUModel``). Where CUDA is
present, ``test_real_cuda_out_of_memory_falls_back_to_the_cpu`` runs the real thing.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sefa_core.cli import main
from sefa_core.device import DEVICE_CHOICES, resolve_device, run_with_cpu_fallback
from sefa_core.models.dcgan import DCGANGenerator

IN_FEATURES, OUT_FEATURES = 4, 3
IMPOSSIBLE_BYTES = 1 << 50  # a petabyte: no GPU has it, so asking for it is a real CUDA OOM
CUDA_NOTICE = "CUDA is not available"


def without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


# ---- resolve_device ---------------------------------------------------------------------------
def test_cuda_without_cuda_falls_back_to_the_cpu_with_a_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    without_cuda(monkeypatch)
    choice = resolve_device("cuda")
    assert choice.device == torch.device("cpu")
    assert CUDA_NOTICE in choice.notice and "CPU" in choice.notice


@pytest.mark.parametrize(("requested", "has_cuda", "expected"), [
    ("auto", False, "cpu"), ("auto", True, "cuda"), ("cpu", True, "cpu"), ("cpu", False, "cpu"),
    ("cuda", True, "cuda"), ("CUDA", True, "cuda"), ("", False, "cpu"),
])  # fmt: skip
def test_device_asked_for_and_available_is_used_without_a_notice(
    requested: str, has_cuda: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_cuda)
    choice = resolve_device(requested)
    assert choice.device == torch.device(expected) and choice.notice == ""


def test_unknown_device_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda") as caught:
        resolve_device("tpu")
    assert "'tpu'" in str(caught.value) and DEVICE_CHOICES == ("auto", "cpu", "cuda")


def test_cli_shows_the_cpu_fallback_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a user of ``sefa ... --device cuda`` sees on a machine without CUDA."""
    without_cuda(monkeypatch)
    checkpoint = tmp_path / "dcgan.pt"
    torch.save({"netG_state_dict": DCGANGenerator([8, 16, 8, 3]).state_dict()}, checkpoint)
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\nmodels:\n  - {name: default, source: default}\n")
    output = tmp_path / "directions.npz"
    argv = ["--config", str(config), "factorize", str(checkpoint), "-o", str(output), "--device", "cuda"]
    assert main(argv) == 0 and output.is_file()
    assert CUDA_NOTICE in capsys.readouterr().err


# ---- run_with_cpu_fallback ----------------------------------------------------------------------
class SimulatedGPUModel(nn.Module):
    """A small model that acts as if it sat on a GPU until it is moved, and fails while there.

    The fallback reads ``parameters()[i].is_cuda`` to know where the model is: here that reports
    the pretended device. Moving the model (``.to``/``.cpu`` both go through ``_apply``) updates it
    from where the conversion actually sends a tensor. ``failure`` is raised by every forward
    pass made "on the GPU"; passes on the CPU compute for real.
    """

    def __init__(self, failure: BaseException | None) -> None:
        super().__init__()
        self.linear = nn.Linear(IN_FEATURES, OUT_FEATURES)
        self.on_gpu = True
        self.failure = failure
        self.passes: list[str] = []  # the device of each forward pass, in order

    def parameters(self, recurse: bool = True):
        for _ in super().parameters(recurse):
            yield SimpleNamespace(is_cuda=self.on_gpu)

    def _apply(self, fn, recurse: bool = True):
        self.on_gpu = fn(torch.zeros(())).device.type == "cuda"
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes.append("cuda" if self.on_gpu else "cpu")
        if self.on_gpu and self.failure is not None:
            raise self.failure
        return self.linear(x)


GPU_FAILURES = [
    pytest.param(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), id="cuda-oom"),
    pytest.param(RuntimeError("CUDA error: an illegal memory access was encountered"), id="cuda-error"),
    pytest.param(torch.AcceleratorError("CUDA error: unspecified launch failure"), id="accelerator-error"),
    pytest.param(torch.AcceleratorError("device-side assert triggered"), id="accelerator-error-by-type"),
    pytest.param(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"), id="cudnn-error"),
    pytest.param(
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        id="cublas",
    ),
]


@pytest.mark.parametrize("failure", GPU_FAILURES)
def test_gpu_failure_moves_the_model_to_the_cpu_and_retries(failure: BaseException) -> None:
    model = SimulatedGPUModel(failure)
    x = torch.randn(2, IN_FEATURES)
    result, notice = run_with_cpu_fallback(model, lambda: model(x))
    assert model.passes == ["cuda", "cpu"] and not model.on_gpu
    assert all(not p.is_cuda for p in model.parameters())
    torch.testing.assert_close(result, model.linear(x), rtol=0, atol=0)
    assert "CPU" in notice and type(failure).__name__ in notice


def test_work_that_succeeds_runs_once_with_no_notice() -> None:
    model = SimulatedGPUModel(failure=None)
    result, notice = run_with_cpu_fallback(model, lambda: model(torch.ones(1, IN_FEATURES)))
    assert notice == "" and model.passes == ["cuda"] and model.on_gpu
    assert result.shape == (1, OUT_FEATURES)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ValueError("codes must be (N, 100)"), id="value-error"),
        pytest.param(
            RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x4 and 5x3)"), id="shape-error"
        ),
        pytest.param(RuntimeError("expected scalar type Float but found Long"), id="dtype-error"),
        pytest.param(KeyboardInterrupt(), id="ctrl-c"),
    ],
)
def test_errors_unrelated_to_the_gpu_are_raised_unchanged(error: BaseException) -> None:
    model = SimulatedGPUModel(error)
    with pytest.raises(type(error)) as caught:
        run_with_cpu_fallback(model, lambda: model(torch.ones(1, IN_FEATURES)))
    assert caught.value is error
    assert model.passes == ["cuda"] and model.on_gpu, "no retry, and the model stays where it was"


def test_gpu_like_error_from_a_model_already_on_the_cpu_is_raised() -> None:
    """Nothing to fall back to: the error is the user's to see."""
    model = SimulatedGPUModel(None).cpu()
    oom = torch.OutOfMemoryError("CUDA out of memory")

    def work() -> torch.Tensor:
        model(torch.ones(1, IN_FEATURES))
        raise oom

    with pytest.raises(torch.OutOfMemoryError) as caught:
        run_with_cpu_fallback(model, work)
    assert caught.value is oom and model.passes == ["cpu"]


def test_failure_of_the_cpu_retry_is_raised() -> None:
    model = SimulatedGPUModel(torch.OutOfMemoryError("CUDA out of memory"))
    calls: list[str] = []

    def work() -> torch.Tensor:
        calls.append("cuda" if model.on_gpu else "cpu")
        if not model.on_gpu:
            raise MemoryError("the CPU is out of memory too")
        return model(torch.ones(1, IN_FEATURES))

    with pytest.raises(MemoryError):
        run_with_cpu_fallback(model, work)
    assert calls == ["cuda", "cpu"]


def test_cuda_cache_is_emptied_after_the_move(monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed attempt's GPU memory goes back to the driver instead of staying cached."""
    with_cuda(monkeypatch)
    events: list[str] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty_cache"))
    model = SimulatedGPUModel(torch.OutOfMemoryError("CUDA out of memory"))
    real_apply = model._apply
    monkeypatch.setattr(model, "_apply", lambda fn, recurse=True: events.append("move") or real_apply(fn))
    run_with_cpu_fallback(model, lambda: model(torch.ones(1, IN_FEATURES)))
    assert events == ["move", "empty_cache"]


def test_simulated_model_reports_where_it_is_like_a_real_one() -> None:
    """The simulation is honest: the fallback's own check and the move behave as on real weights."""
    model = SimulatedGPUModel(None)
    assert all(p.is_cuda for p in model.parameters())
    model.to("cpu")
    assert not any(p.is_cuda for p in model.parameters())
    assert all(not p.is_cuda for p in nn.Module.parameters(model)), "the real weights are on the CPU"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_cuda_out_of_memory_falls_back_to_the_cpu() -> None:
    generator = DCGANGenerator([8, 16, 8, 3]).eval()
    codes = generator.sample(2, seed=0)
    expected = generator.synthesize(codes)
    generator.to("cuda")

    def work() -> torch.Tensor:
        if generator.device.type == "cuda":
            torch.empty(IMPOSSIBLE_BYTES, dtype=torch.uint8, device="cuda")  # a real CUDA OOM
        return generator.synthesize(codes)

    images, notice = run_with_cpu_fallback(generator, work)
    assert generator.device.type == "cpu" and images.device.type == "cpu"
    assert "OutOfMemoryError" in notice
    torch.testing.assert_close(images, expected, rtol=0, atol=0)
