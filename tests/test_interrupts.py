"""Ctrl-C held back over a section that must not be cut (`latent_sweep.interrupts`)."""

from __future__ import annotations

import signal
import threading

import pytest

from latent_sweep.interrupts import interrupt_after


def test_ctrl_c_inside_the_section_is_raised_once_it_is_done():
    before = signal.getsignal(signal.SIGINT)
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after():
            signal.raise_signal(signal.SIGINT)
            finished.append(True)  # the section goes on to its end
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_quiet_section_raises_nothing_and_an_error_in_it_passes_through():
    with interrupt_after():
        pass
    with pytest.raises(ValueError), interrupt_after():
        raise ValueError("inside")


def test_off_the_main_thread_the_section_runs_as_it_is():
    seen = []

    def section() -> None:
        with interrupt_after():
            seen.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=section)
    worker.start()
    worker.join()
    assert seen == [signal.getsignal(signal.SIGINT)]
