//! Unit tests of the journal file format: frames, headers, and replay
//! across damage and the zeros written ahead of the end.

use super::*;

fn forget(id: u64) -> Record {
    Record::Forget { run_id: id }
}

fn journal_of(records: &[Record]) -> Vec<u8> {
    let mut bytes = HEADER.to_vec();
    for r in records {
        encode_frame(&mut bytes, r).expect("encodes");
    }
    bytes
}

#[test]
fn frames_read_back_in_order() {
    let records = vec![forget(1), forget(2), forget(3)];
    let bytes = journal_of(&records);
    let replay = read_frames(&bytes, HEADER.len());
    assert_eq!(replay.records, records);
    assert_eq!(replay.end, bytes.len() as u64);
    assert!(replay.skipped.is_empty());
}

#[test]
fn frame_layout_is_length_crc_payload() {
    let mut buf = Vec::new();
    encode_frame(&mut buf, &forget(1)).expect("encodes");
    let payload = br#"{"t":"forget","run_id":1}"#;
    assert_eq!(buf[..4], (payload.len() as u32).to_le_bytes());
    assert_eq!(buf[4..8], crc32fast::hash(payload).to_le_bytes());
    assert_eq!(&buf[8..], payload);
}

#[test]
fn headers_are_told_apart() {
    assert_eq!(check_header(b""), Header::Empty);
    assert_eq!(check_header(HEADER), Header::Valid(HEADER.len()));
    let newer = check_header(b"tickd-journal v2\n");
    assert!(
        matches!(&newer, Header::Bad(why) if why.contains("\"2\"")),
        "{newer:?}"
    );
    assert!(matches!(check_header(b"garbage"), Header::Bad(_)));
}

#[test]
fn a_zeroed_tail_ends_the_records_quietly() {
    // The room written ahead of the end, or a power loss extending the
    // file with zeros: no record, no damage.
    let records = [forget(1), forget(2)];
    let mut bytes = journal_of(&records);
    let end = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 4096]);
    let replay = read_frames(&bytes, HEADER.len());
    assert_eq!(replay.records, records);
    assert!(replay.skipped.is_empty(), "{:?}", replay.skipped);
    assert_eq!(replay.end, end);
}

#[test]
fn a_torn_frame_before_the_zeros_is_a_torn_tail_of_its_own_size() {
    // A write cut short inside the room written ahead: the part that
    // reached the disk, then zeros.
    let mut bytes = journal_of(&[forget(1)]);
    let mut torn = Vec::new();
    encode_frame(&mut torn, &forget(2)).expect("encodes");
    torn.truncate(torn.len() - 3);
    let at = bytes.len() as u64;
    bytes.extend_from_slice(&torn);
    bytes.extend_from_slice(&[0; 4096]);
    let replay = read_frames(&bytes, HEADER.len());
    assert_eq!(replay.records, vec![forget(1)]);
    let [skipped] = &replay.skipped[..] else {
        panic!("one stretch skipped: {:?}", replay.skipped);
    };
    assert!(skipped.at_tail);
    assert_eq!((skipped.offset, skipped.bytes), (at, torn.len() as u64));
}

#[test]
fn damage_before_more_data_is_skipped_and_the_rest_read() {
    let mut bytes = journal_of(&[forget(1), forget(2), forget(3)]);
    let second = HEADER.len() + (bytes.len() - HEADER.len()) / 3;
    bytes[second + 10] ^= 0x20;
    let replay = read_frames(&bytes, HEADER.len());
    assert_eq!(replay.records, vec![forget(1), forget(3)]);
    let [skipped] = &replay.skipped[..] else {
        panic!("one stretch skipped: {:?}", replay.skipped);
    };
    assert!(!skipped.at_tail);
    assert_eq!(skipped.offset, second as u64);
    assert!(skipped
        .describe()
        .contains("records after it were recovered"));
}

#[test]
fn a_flipped_length_bit_loses_only_its_frame() {
    // Every bit of the length field of the middle frame, flipped in
    // turn: too long (past the end or over the limit), too short, zero.
    let records = [forget(1), forget(22), forget(333)];
    let clean = journal_of(&records);
    let second = HEADER.len() + (clean.len() - HEADER.len()) / 3;
    for bit in 0..32 {
        let mut bytes = clean.clone();
        bytes[second + bit / 8] ^= 1 << (bit % 8);
        let replay = read_frames(&bytes, HEADER.len());
        assert_eq!(replay.records, vec![forget(1), forget(333)], "bit {bit}");
        assert_eq!(replay.skipped.len(), 1, "bit {bit}");
        assert!(!replay.skipped[0].at_tail, "bit {bit}: not a torn tail");
    }
}

#[test]
fn only_damage_no_good_frame_follows_is_a_torn_tail() {
    let mut bytes = journal_of(&[forget(1), forget(2)]);
    let last = HEADER.len() + (bytes.len() - HEADER.len()) / 2;
    // The last frame's length flipped to past the end of the file.
    bytes[last + 2] ^= 0x01;
    let replay = read_frames(&bytes, HEADER.len());
    assert_eq!(replay.records, vec![forget(1)]);
    assert!(replay.skipped[0].at_tail);
    assert!(replay.skipped[0].describe().contains("torn"));
}

#[test]
fn oversized_records_are_refused_and_leave_the_buffer_alone() {
    let mut buf = b"keep".to_vec();
    let big = Record::Scheduled {
        job: "x".repeat(MAX_PAYLOAD),
        at: crate::time::now(),
    };
    let err = encode_frame(&mut buf, &big).expect_err("too big");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(buf, b"keep");
}
