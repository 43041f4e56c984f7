"""The debouncer times a breach and a release from the reading that showed it (issue 10, 1).

The engine may decide later than the reading's own timestamp (the loop was busy, a reading
arrived late); the set and clear delays still count from the reading. Found by mutation
testing: counting from the decision instead survived every other test, because there the
decision and the reading always share one instant.
"""

from __future__ import annotations

from gateway.control.debounce import Debounced

DELAYS = {"set_delay_s": 1.5, "clear_delay_s": 5.0}


def test_a_breach_sets_its_delay_after_the_reading_not_after_the_decision() -> None:
    d = Debounced()
    assert d.update("breach", now_s=10.0, seen_s=9.0, **DELAYS) is None
    assert d.update("breach", now_s=10.4, seen_s=10.4, **DELAYS) is None
    assert d.update("breach", now_s=10.5, seen_s=10.5, **DELAYS) == "raised"  # 9.0 + 1.5
    assert d.active


def test_a_release_clears_its_delay_after_the_reading_not_after_the_decision() -> None:
    d = Debounced()
    d.update("breach", now_s=0.0, seen_s=0.0, **DELAYS)
    assert d.update("breach", now_s=1.5, seen_s=1.5, **DELAYS) == "raised"
    assert d.update("ok", now_s=20.0, seen_s=18.0, **DELAYS) is None
    assert d.update("ok", now_s=22.9, seen_s=22.9, **DELAYS) is None
    assert d.update("ok", now_s=23.0, seen_s=23.0, **DELAYS) == "cleared"  # 18.0 + 5.0


def test_a_reading_stamped_after_the_decision_counts_from_the_decision() -> None:
    d = Debounced()
    assert d.update("breach", now_s=10.0, seen_s=12.0, **DELAYS) is None  # never from the future
    assert d.update("breach", now_s=11.5, seen_s=11.5, **DELAYS) == "raised"
