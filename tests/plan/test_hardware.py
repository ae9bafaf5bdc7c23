import pytest

from ctxops.plan import CATALOGUE, UnknownGpuError, parse_gpu
from ctxops.plan.hardware import GiB, custom_device


def test_catalogue_covers_the_issue_list():
    for name in (
        "h100",
        "h100-pcie",
        "h200",
        "a100-40gb",
        "a100-80gb",
        "l40s",
        "l4",
        "a10g",
        "rtx4090",
        "rtx3090",
    ):
        assert name in CATALOGUE


@pytest.mark.parametrize(
    ("spec", "name", "count"),
    [
        ("h100", "h100", 1),
        ("h100x2", "h100", 2),
        ("H100x8", "h100", 8),
        ("rtx3090", "rtx3090", 1),
        ("a100", "a100-80gb", 1),
        ("l40s x4", "l40s", 4),
    ],
)
def test_parse_gpu(spec, name, count):
    device, n = parse_gpu(spec)
    assert (device.name, n) == (name, count)


def test_measured_memory_of_fixture_gpus():
    assert CATALOGUE["h100"].memory_bytes / GiB == pytest.approx(79.18, abs=0.01)
    assert CATALOGUE["rtx3090"].memory_bytes / GiB == pytest.approx(23.58, abs=0.01)
    assert CATALOGUE["h100"].bandwidth == 3.35e12


def test_unknown_gpu_lists_the_catalogue():
    with pytest.raises(UnknownGpuError) as err:
        parse_gpu("tpu-v5")
    assert "h100" in str(err.value) and "rtx3090" in str(err.value)


def test_cpu_is_measured():
    device, _ = parse_gpu("cpu")
    assert device.is_cpu and device.memory_bytes > 2**30 and device.bandwidth > 1e8


def test_custom_device_validation():
    assert custom_device(40, 1000, 100).bandwidth == 1e12
    with pytest.raises(ValueError):
        custom_device(0, 1000, 100)
