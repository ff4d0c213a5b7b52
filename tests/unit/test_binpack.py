"""First-fit-decreasing estimate and placement."""

import pytest

from autoscaler.binpack import Bin, estimate_new_nodes, place_all

CPU, MEM = 2000, 8192


@pytest.mark.parametrize(
    ("pods", "upcoming", "new", "too_large"),
    [
        pytest.param([], 0, 0, 0, id="nothing pending"),
        pytest.param([(500, 512)] * 4, 0, 1, 0, id="four quarters fill one node"),
        pytest.param([(500, 512)] * 5, 0, 2, 0, id="a fifth quarter opens a second"),
        pytest.param(
            [(1200, 100), (800, 100), (800, 100), (1200, 100)], 0, 2, 0, id="decreasing order pairs big and small"
        ),
        pytest.param([(100, 5000)] * 3, 0, 3, 0, id="memory-bound"),
        pytest.param([(500, 512)] * 6, 1, 1, 0, id="capacity on its way is used first"),
        pytest.param([(500, 512)] * 3, 2, 0, 0, id="all fit on capacity on its way"),
        pytest.param([(2500, 100), (500, 100)], 0, 1, 1, id="a pod larger than a node is counted apart"),
    ],
)
def test_estimate_new_nodes(pods, upcoming, new, too_large):
    estimate = estimate_new_nodes(pods, CPU, MEM, [Bin(CPU, MEM)] * upcoming)
    assert (estimate.new_nodes, estimate.too_large) == (new, too_large)


def test_place_all_consumes_on_success():
    bins = [Bin(1000, 1000), Bin(500, 500)]
    assert place_all([(400, 100), (700, 100)], bins, CPU, MEM)
    assert [(b.cpu_m, b.mem_mib) for b in bins] == [(300, 900), (100, 400)]


def test_place_all_leaves_bins_untouched_on_failure():
    bins = [Bin(1000, 1000), Bin(500, 500)]
    assert not place_all([(900, 100), (600, 100)], bins, CPU, MEM)
    assert [(b.cpu_m, b.mem_mib) for b in bins] == [(1000, 1000), (500, 500)]
