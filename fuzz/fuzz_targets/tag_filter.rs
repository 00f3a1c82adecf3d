//! Tag filters: the first line is the filter (as in a `fluxcd.io/tag.<container>` annotation),
//! the others are tags. Never a panic; a filter that constructs compiles; the latest tag
//! matches, has a time when the filter orders by time, and does not depend on the order of the
//! candidates.

#![no_main]

use std::collections::BTreeMap;

use flux_core::TagFilter;
use flux_core::manifest::{TagCandidate, parse_version, policies_from_annotations};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, rest) = text.split_once('\n').unwrap_or((text, ""));
    let annotations = BTreeMap::from([("fluxcd.io/tag.app".to_owned(), pattern.to_owned())]);
    let _ = policies_from_annotations(&annotations);
    let Ok(filter) = TagFilter::new(pattern) else { return };
    let compiled = filter.compile().expect("a constructed filter compiles");
    let start = jiff::Timestamp::from_second(1_600_000_000).expect("a time");
    let candidates: Vec<TagCandidate> = rest
        .lines()
        .take(64)
        .enumerate()
        .map(|(i, tag)| {
            let _ = parse_version(tag);
            let created = (i % 3 != 2).then(|| start + jiff::SignedDuration::from_secs((i as i64 * 7919) % 1000));
            TagCandidate::new(tag, created)
        })
        .collect();
    let latest = compiled.latest(&candidates);
    if let Some(latest) = latest {
        assert!(compiled.matches(&latest.tag));
        assert!(!compiled.orders_by_time() || latest.created.is_some());
    }
    let reversed: Vec<TagCandidate> = candidates.iter().rev().cloned().collect();
    let other = compiled.latest(&reversed);
    assert_eq!(latest.map(|c| &c.tag), other.map(|c| &c.tag), "the choice depends on the order");
});
