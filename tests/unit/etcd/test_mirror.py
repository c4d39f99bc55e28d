"""PrefixMirror: the revision bookkeeping and diffing behind every prefix watch."""

from __future__ import annotations

from xdscp.etcd import KeyValue, PrefixMirror, WatchEvent, WatchEventType, prefix_range_end


def put(key: bytes, value: bytes, revision: int) -> WatchEvent:
    return WatchEvent(WatchEventType.PUT, key, value, revision)


def delete(key: bytes, revision: int) -> WatchEvent:
    return WatchEvent(WatchEventType.DELETE, key, b"", revision)


def test_watch_starts_after_the_list_header_revision_not_the_highest_mod_revision() -> None:
    """Rule 1: after a list at header revision R the watch starts at R + 1."""
    mirror = PrefixMirror()
    mirror.load([KeyValue(b"/a", b"1", mod_revision=3)], header_revision=10)
    assert mirror.next_watch_revision == 11


def test_resume_revision_follows_the_last_delivered_event() -> None:
    """Rule 2: a broken watch resumes from the last delivered event's revision + 1."""
    mirror = PrefixMirror()
    mirror.load([], header_revision=5)
    mirror.apply([put(b"/a", b"1", 6), put(b"/b", b"1", 9)])
    assert mirror.next_watch_revision == 10


def test_progress_notification_advances_the_resume_revision() -> None:
    """A progress notification at revision R means the watch can resume from R + 1."""
    mirror = PrefixMirror()
    mirror.load([], header_revision=5)
    mirror.progress(42)
    assert mirror.next_watch_revision == 43
    mirror.progress(7)
    assert mirror.next_watch_revision == 43


def test_replayed_events_are_dropped() -> None:
    """Events at or below the mirror's revision (a replay) change nothing."""
    mirror = PrefixMirror()
    mirror.load([KeyValue(b"/a", b"new", mod_revision=8)], header_revision=8)
    assert mirror.apply([put(b"/a", b"old", 7), delete(b"/a", 8)]) == []
    assert mirror.revisions[b"/a"] == 8


def test_events_of_one_transaction_share_a_revision_and_all_apply() -> None:
    """Several events with the same revision (one Txn) are all applied."""
    mirror = PrefixMirror()
    mirror.load([], header_revision=1)
    applied = mirror.apply([put(b"/a", b"1", 2), put(b"/b", b"2", 2)])
    assert [e.key for e in applied] == [b"/a", b"/b"]
    assert mirror.revisions == {b"/a": 2, b"/b": 2}


def test_delete_of_unknown_key_advances_revision_but_reports_nothing() -> None:
    """Deleting a key the mirror never had is not a change."""
    mirror = PrefixMirror()
    mirror.load([], header_revision=1)
    assert mirror.apply([delete(b"/x", 4)]) == []
    assert mirror.next_watch_revision == 5


def test_relist_after_compaction_yields_exact_diff() -> None:
    """Rule 3: a re-list is diffed: deletions, additions and changes, nothing else."""
    mirror = PrefixMirror()
    mirror.load(
        [
            KeyValue(b"/keep", b"k", 2),
            KeyValue(b"/gone", b"g", 3),
            KeyValue(b"/change", b"old", 4),
        ],
        header_revision=4,
    )
    changes = mirror.load(
        [KeyValue(b"/keep", b"k", 2), KeyValue(b"/change", b"new", 9), KeyValue(b"/new", b"n", 8)],
        header_revision=20,
    )
    assert changes == [
        delete(b"/gone", 20),
        put(b"/change", b"new", 9),
        put(b"/new", b"n", 8),
    ]
    assert mirror.next_watch_revision == 21
    assert mirror.revisions == {b"/keep": 2, b"/change": 9, b"/new": 8}


def test_prefix_range_end_matches_etcd_rule() -> None:
    """The range end increments the last byte below 0xff; all-0xff means every key."""
    assert prefix_range_end(b"/xdscp/") == b"/xdscp0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\0"
    assert prefix_range_end(b"") == b"\0"
