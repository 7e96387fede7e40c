"""benchmarks/gpu_check.sh, the one-command check for a lent GPU machine, works where it can be tried."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
BENCH = ROOT / "benchmarks" / "bench_training.py"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")


def _run(tmp_path, **env):
    # GPU_CHECK_INSTALL=0: a test must never install anything into the environment running it.
    full = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "GPU_CHECK_INSTALL": "0", **env}
    return subprocess.run(["bash", str(SCRIPT)], check=False, env=full, capture_output=True, text=True, timeout=120)


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_without_cuda_it_stops_with_a_clear_message_before_tests_and_benchmark(tmp_path):
    res = _run(tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "CUDA is not available" in res.stdout
    summary = (tmp_path / "summary.txt").read_text()
    assert "CUDA is not available" in summary and "torch.cuda.is_available(): False" in summary
    if shutil.which("nvidia-smi") is None:
        assert "nvidia-smi: not found" in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.txt"]  # no tests, no benchmark


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_a_spent_budget_skips_steps_but_every_step_is_reported(tmp_path):
    # A dry run on the CPU with no time left: tests and benchmark are skipped, each reported as a
    # failure, and the summary is still written.
    res = _run(tmp_path, GPU_CHECK_DEVICE="cpu", GPU_CHECK_BUDGET="1")
    assert res.returncode == 1, res.stdout + res.stderr
    summary = (tmp_path / "summary.txt").read_text()
    assert "tests: skipped, the 1s budget is spent" in summary
    assert "bench: skipped, the 1s budget is spent" in summary
    assert "benchmark: no results" in summary and "gpu utilisation: no samples" in summary
    lm = importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("peft") is not None
    if lm:  # the language-model step runs only where transformers and peft import
        assert "bench_lm: skipped, the 1s budget is spent" in summary
    assert summary.rstrip().endswith(f"RESULT: FAILED steps: bench{' bench_lm' if lm else ''} tests")


def test_the_benchmark_takes_the_flags_and_cases_the_check_uses():
    help_text = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--device", "--cases", "--repeat", "--out"):
        assert flag in help_text
    lm_help = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_lm.py"), "--help"], capture_output=True,
                             text=True, check=True, cwd=ROOT / "benchmarks").stdout
    for flag in ("--device", "--models", "--n", "--epochs", "--out"):  # what step 5 passes
        assert flag in lm_help
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))  # it imports benchmarks/_output.py
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(BENCH.parent))
    cases = re.search(r'GPU_CHECK_CASES:-([\w,]+)\}', SCRIPT.read_text()).group(1).split(",")
    assert cases and set(cases) <= set(bench.CASES)
