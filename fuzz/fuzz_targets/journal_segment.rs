//! The journal segment reader on arbitrary bytes: no panic, and an accepted segment round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rootcellar::journal::Segment;

fuzz_target!(|data: &[u8]| {
    if let Ok(segment) = Segment::from_json(data) {
        let again = Segment::from_json(&segment.to_json()).expect("a written segment reads back");
        assert_eq!(again, segment);
    }
});
