//! Unit tests of the journal: chaining, the checks of `verify`, segments.

use super::*;

fn time() -> crate::time::ConfirmedTime {
    crate::time::tests::confirmed_at("2026-11-25T10:00:00Z")
}

fn record(action: &str) -> Record {
    Record::new(time(), "alice", action)
        .ceremony("test")
        .input(Digest::of("in", b"input"))
        .output(Digest::of("out", b"output"))
}

fn journal_with(n: u64) -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    for i in 1..=n {
        let entry = journal.append(record(&format!("step.{i}"))).unwrap();
        assert_eq!(entry.seq, i);
    }
    (dir, journal)
}

fn broken_at(journal: &Journal) -> (u64, String) {
    match journal.verify() {
        Err(JournalError::BrokenChain { seq, problem }) => (seq, problem),
        other => panic!("tampering not detected: {other:?}"),
    }
}

#[test]
fn appends_are_numbered_chained_and_survive_reopening() {
    let (dir, journal) = journal_with(3);
    let head = journal.verify().unwrap();
    assert_eq!(head.seq, 3);
    let (entries, _) = journal.entries(&Selection::All).unwrap();
    assert_eq!(entries[0].prev, GENESIS);
    assert_eq!(entries[1].prev, entries[0].hash);
    assert_eq!(entries[2].hash, head.hash);
    drop(journal);
    let journal = Journal::open_existing(dir.path()).unwrap();
    assert_eq!(journal.verify().unwrap(), head);
    let next = journal.append(record("step.4")).unwrap();
    assert_eq!((next.seq, next.prev), (4, head.hash));
}

#[test]
fn a_second_process_is_refused_and_a_missing_journal_named() {
    let (dir, _journal) = journal_with(1);
    // sled locks the database per process; within one process a second open is refused too.
    let err = Journal::open(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::Locked(_)), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = Journal::open_existing(empty.path()).unwrap_err();
    assert!(matches!(err, JournalError::NotFound(_)), "{err}");
}

#[test]
fn bad_records_are_refused_before_anything_is_written() {
    let (_dir, journal) = journal_with(0);
    let err = journal.append(Record::new(time(), "", "x")).unwrap_err();
    assert!(err.to_string().contains("actor is empty"), "{err}");
    let err = journal
        .append(Record::new(time(), "mallory\u{1b}[2K", "x"))
        .unwrap_err();
    assert!(err.to_string().contains("control characters"), "{err}");
    assert_eq!(journal.verify().unwrap().seq, 0);
}

#[test]
fn an_edited_record_breaks_the_link_to_the_next() {
    let (_dir, journal) = journal_with(5);
    let stored = journal.records.get(3u64.to_be_bytes()).unwrap().unwrap();
    let mut entry = record::decode(&stored).unwrap();
    entry.record.actor = "mallory".into();
    let forged = record::encode(3, &entry.prev, &entry.record);
    journal.records.insert(3u64.to_be_bytes(), forged).unwrap();
    let (seq, problem) = broken_at(&journal);
    assert_eq!(seq, 4, "{problem}");
    assert!(problem.contains("between records 3 and 4"), "{problem}");
}

#[test]
fn a_removed_record_is_named() {
    let (_dir, journal) = journal_with(5);
    journal.records.remove(3u64.to_be_bytes()).unwrap();
    let (seq, problem) = broken_at(&journal);
    assert_eq!(seq, 3);
    assert!(problem.contains("record 3 is missing"), "{problem}");
}

#[test]
fn removing_the_last_record_is_caught_by_the_head() {
    let (_dir, journal) = journal_with(5);
    journal.records.remove(5u64.to_be_bytes()).unwrap();
    let (seq, problem) = broken_at(&journal);
    assert_eq!(seq, 5);
    assert!(problem.contains("removed from the end"), "{problem}");
    let err = journal.append(record("more")).unwrap_err();
    assert!(matches!(err, JournalError::BrokenChain { .. }), "{err}");
}

#[test]
fn reordered_records_are_named() {
    let (_dir, journal) = journal_with(5);
    let three = journal.records.get(3u64.to_be_bytes()).unwrap().unwrap();
    let four = journal.records.get(4u64.to_be_bytes()).unwrap().unwrap();
    journal.records.insert(3u64.to_be_bytes(), four).unwrap();
    journal.records.insert(4u64.to_be_bytes(), three).unwrap();
    let (seq, problem) = broken_at(&journal);
    assert_eq!(seq, 3);
    assert!(problem.contains("says it is record 4"), "{problem}");
}

#[test]
fn verify_head_compares_with_a_known_head() {
    let (_dir, journal) = journal_with(2);
    let head = journal.verify().unwrap();
    journal.verify_head(&head).unwrap();
    let mut other = head;
    other.hash[0] ^= 1;
    let err = journal.verify_head(&other).unwrap_err();
    assert!(matches!(err, JournalError::HeadMismatch { .. }), "{err}");
}

#[test]
fn segments_round_trip_and_detect_tampering() {
    let (_dir, journal) = journal_with(4);
    journal
        .append(Record::new(time(), "bob", "other").ceremony("second"))
        .unwrap();
    let segment = journal.export(&Selection::Ceremony("test".into())).unwrap();
    assert_eq!(segment.entries().len(), 4);
    assert_eq!(segment.journal_head().seq, 5);
    let json = segment.to_json();
    assert_eq!(Segment::from_json(&json).unwrap(), segment);
    assert!(segment.to_text().contains("step.3"));

    let text = String::from_utf8(json.clone()).unwrap();
    let altered = text.replacen("\"alice\"", "\"mallory\"", 1);
    let err = Segment::from_json(altered.as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .contains("record 1: its hash does not match"),
        "{err}"
    );

    let mut doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    doc["records"].as_array_mut().unwrap().remove(1);
    let err = Segment::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("records missing or reordered"),
        "{err}"
    );

    let whole = journal.export(&Selection::All).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&whole.to_json()).unwrap();
    doc["journal_head"]["sha256"] = serde_json::json!(hex::encode([7u8; 32]));
    let err = Segment::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("does not match the journal head"),
        "{err}"
    );

    let err = journal
        .export(&Selection::Ceremony("none".into()))
        .unwrap_err();
    assert!(matches!(err, JournalError::EmptyRange(_)), "{err}");
    let range = journal.export(&Selection::Range(2..=3)).unwrap();
    assert_eq!(
        range.entries().iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3]
    );
}

#[test]
fn a_snapshot_cut_short_by_a_crash_does_not_lock_the_journal_out() {
    // What `kill -9` left behind while sled was writing a snapshot: a `.generating` file cut
    // short, named after a later log position than any finished snapshot. sled 0.34 would read
    // it and refuse to open ("Read corrupted data").
    let (dir, journal) = journal_with(3);
    let head = journal.verify().unwrap();
    drop(journal);
    let db = dir.path().join(JOURNAL_DIR);
    std::fs::write(db.join("snap.7FFFFFFFFFFFFFFF.generating"), b"cut sho").unwrap();
    let journal = Journal::open_existing(dir.path()).unwrap();
    assert_eq!(journal.verify().unwrap(), head);
    assert!(!db.join("snap.7FFFFFFFFFFFFFFF.generating").exists());
    journal.append(record("step.4")).unwrap();
    assert_eq!(journal.verify().unwrap().seq, 4);
}

#[test]
fn a_record_earlier_than_the_last_is_refused_and_nothing_is_written() {
    let (_dir, journal) = journal_with(2);
    let earlier = crate::time::tests::confirmed_at("2026-11-25T09:59:59Z");
    let err = journal
        .append(Record::new(earlier, "mallory", "tuf.rotate"))
        .unwrap_err();
    match &err {
        JournalError::TimeWentBackwards {
            seq, previous_seq, ..
        } => assert_eq!((*seq, *previous_seq), (3, 2)),
        other => panic!("not refused as backwards: {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("2026-11-25T09:59:59Z") && text.contains("2026-11-25T10:00:00Z"),
        "{text}"
    );
    assert_eq!(journal.verify().unwrap().seq, 2);
    // The same second is not backwards.
    journal.append(record("step.3")).unwrap();
}

#[test]
fn verify_names_a_record_whose_time_goes_backwards() {
    // A journal written by an older rootcellar (or by hand) with a record dated earlier than
    // the one before it: the chain holds, but verify reports the time.
    let (_dir, journal) = journal_with(2);
    let head = journal.head().unwrap();
    let earlier = crate::time::tests::confirmed_at("2020-01-01T00:00:00Z");
    let encoded = record::encode(3, &head.hash, &Record::new(earlier, "alice", "tuf.rotate"));
    let hash = record::hash(&encoded);
    journal.records.insert(3u64.to_be_bytes(), encoded).unwrap();
    let mut new_head = 3u64.to_be_bytes().to_vec();
    new_head.extend_from_slice(&hash);
    journal.meta.insert(b"head", new_head).unwrap();
    let err = journal.verify().unwrap_err();
    match err {
        JournalError::TimeWentBackwards {
            seq, previous_seq, ..
        } => assert_eq!((seq, previous_seq), (3, 2)),
        other => panic!("a backwards record passed verify: {other}"),
    }
    // Listing still works: the record is reported, not hidden. A segment carrying it (in a
    // response bundle) is refused by whoever reads it.
    assert_eq!(journal.entries(&Selection::All).unwrap().0.len(), 3);
    let segment = journal.export(&Selection::All).unwrap();
    let err = Segment::from_json(&segment.to_json()).unwrap_err();
    assert!(
        err.to_string()
            .contains("record 3: its time 2020-01-01T00:00:00Z is earlier than record 2's"),
        "{err}"
    );
}
