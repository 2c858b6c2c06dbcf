from sfsync.extensions.streaming import ReplayTracker


def test_stores_nothing_while_an_earlier_notification_is_in_flight():
    tracker = ReplayTracker()
    for replay_id in (5, 7, 9):
        tracker.received(replay_id)

    assert tracker.done(9) is None
    assert tracker.done(7) is None
    assert tracker.done(5) == 9


def test_moves_forward_in_order():
    tracker = ReplayTracker()
    tracker.received(1)
    tracker.received(3)

    assert tracker.done(1) == 1
    assert tracker.done(3) == 3
