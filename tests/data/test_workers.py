import os

import pytest

from ctxops.data.workers import ordered_map


def square_with_pid(value):
    return value * value, os.getpid()


def test_results_come_back_in_input_order_from_other_processes():
    results = list(ordered_map(square_with_pid, range(40), workers=2))
    assert [value for value, _ in results] == list(range(40))
    assert [out[0] for _, out in results] == [v * v for v in range(40)]
    assert {pid for _, (_, pid) in results} - {os.getpid()}  # the work ran in the workers


def test_the_input_is_read_only_as_fast_as_results_are_taken():
    pulled = []

    def values():
        for v in range(1000):
            pulled.append(v)
            yield v

    stream = ordered_map(square_with_pid, values(), workers=2, depth=4)
    next(stream)
    assert len(pulled) <= 5  # depth in flight, then the first result is handed out
    stream.close()


def fail_on_three(value):
    if value == 3:
        raise ValueError("three is bad")
    return value


def test_a_worker_error_reaches_the_caller_and_inline_runs_the_same():
    with pytest.raises(ValueError, match="three is bad"):
        list(ordered_map(fail_on_three, range(10), workers=2))
    assert list(ordered_map(fail_on_three, range(3), workers=1)) == [(0, 0), (1, 1), (2, 2)]
    # a finished or failed map leaves the process free for the next one
    assert [v for v, _ in ordered_map(square_with_pid, range(3), workers=2)] == [0, 1, 2]
