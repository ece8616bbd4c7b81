"""The cyclic garbage collector's pause around bulk work (``fabric_core.collector``)."""

from __future__ import annotations

import gc
import threading

import pytest
from fabric_core.collector import collector_paused


@pytest.fixture(autouse=True)
def collector_enabled_after():
    yield
    gc.enable()


def test_a_pause_turns_the_collector_off_and_back_on():
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_pause_ending_in_an_error_still_turns_it_back_on():
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_pauses_in_threads_turn_it_on_when_the_last_ends():
    gc.enable()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["after the first ended"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"after the first ended": False}
    assert gc.isenabled()


def test_pauses_that_keep_overlapping_still_collect_now_and_then(monkeypatch):
    """A pause ending while another goes on collects once the collector has been off for
    CATCH_UP_SECONDS; the collector stays off for the pause still running."""
    from fabric_core import collector

    gc.enable()
    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        monkeypatch.setattr(collector, "CATCH_UP_SECONDS", 3600.0)
        with collector_paused():
            with collector_paused():
                pass
            assert collections == []  # not off for long yet
            monkeypatch.setattr(collector, "CATCH_UP_SECONDS", 0.0)
            with collector_paused():
                pass
            assert collections == [2] and not gc.isenabled()
    finally:
        gc.callbacks.remove(count)
    assert gc.isenabled()
