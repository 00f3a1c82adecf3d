//! Which live replica owns which unit: consistent hashing with bounded loads (Mirrokni, Thorup
//! and Zadimoghaddam, 2016). A pure function of the unit names and the replica ids, so every
//! replica that sees the same members computes the same assignment without talking to the others.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Points each replica has on the ring: enough for an even spread at a few replicas.
const POINTS_PER_REPLICA: usize = 64;

/// The most units one replica may own: ceil(1.25 × units / replicas) (0 without replicas).
pub fn capacity(units: usize, replicas: usize) -> usize {
    if replicas == 0 {
        return 0;
    }
    (5 * units).div_ceil(4 * replicas)
}

/// A stable 64-bit hash (the first 8 bytes of SHA-256): the same in every process and version.
fn hash(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// The owner of each unit among `replicas`: each unit goes to the first replica clockwise from
/// the unit's hash on a ring of the replicas' points that owns fewer than
/// [`capacity`]`(units, replicas)` units, units taken in the order of their hashes. Duplicate
/// names count once; without replicas the map is empty. Removing one of N replicas moves its
/// units and, through the load bound, a few more (10 → 9 over 1,000 units moves 8 to 12%,
/// where `hash % N` moves 90%).
pub fn assign<U: AsRef<str>, R: AsRef<str>>(units: &[U], replicas: &[R]) -> BTreeMap<String, String> {
    let mut members: Vec<&str> = replicas.iter().map(AsRef::as_ref).collect();
    members.sort_unstable();
    members.dedup();
    let mut names: Vec<&str> = units.iter().map(AsRef::as_ref).collect();
    names.sort_unstable();
    names.dedup();
    let mut owners = BTreeMap::new();
    if members.is_empty() {
        return owners;
    }
    let mut ring: Vec<(u64, usize)> = members
        .iter()
        .enumerate()
        .flat_map(|(i, m)| (0..POINTS_PER_REPLICA).map(move |p| (hash(&format!("{m}#{p}")), i)))
        .collect();
    ring.sort_unstable();
    let cap = capacity(names.len(), members.len());
    let mut loads = vec![0usize; members.len()];
    let mut order: Vec<(u64, &str)> = names.iter().map(|u| (hash(u), *u)).collect();
    order.sort_unstable();
    for (h, unit) in order {
        let start = ring.partition_point(|(point, _)| *point < h);
        // cap × members ≥ units, so some replica always has room within one turn.
        let owner = (0..ring.len()).map(|k| ring[(start + k) % ring.len()].1).find(|&i| loads[i] < cap);
        if let Some(i) = owner {
            loads[i] += 1;
            owners.insert(unit.to_owned(), members[i].to_owned());
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn moved(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> usize {
        a.iter().filter(|(unit, owner)| b.get(*unit) != Some(owner)).count()
    }

    fn max_load(owners: &BTreeMap<String, String>) -> usize {
        let mut loads: BTreeMap<&str, usize> = BTreeMap::new();
        owners.values().for_each(|o| *loads.entry(o).or_default() += 1);
        loads.values().copied().max().unwrap_or(0)
    }

    #[test]
    fn capacity_is_a_quarter_above_the_mean_rounded_up() {
        assert_eq!(capacity(30, 3), 13);
        assert_eq!(capacity(30, 4), 10);
        assert_eq!(capacity(1000, 9), 139);
        assert_eq!(capacity(1, 3), 1);
        assert_eq!(capacity(5, 0), 0);
    }

    #[test]
    fn every_unit_has_one_owner_within_the_bound_whatever_the_order_of_the_inputs() {
        for (units, replicas) in [(30, 3), (30, 4), (1000, 10), (7, 9), (1, 1)] {
            let units = names("unit-", units);
            let replicas = names("fluxd-", replicas);
            let owners = assign(&units, &replicas);
            assert_eq!(owners.len(), units.len());
            assert!(owners.values().all(|o| replicas.contains(o)));
            assert!(max_load(&owners) <= capacity(units.len(), replicas.len()));
            let (mut u, mut r) = (units.clone(), replicas.clone());
            u.reverse();
            r.reverse();
            assert_eq!(assign(&u, &r), owners, "a pure function of the sets");
        }
        assert!(assign(&names("u", 3), &Vec::<String>::new()).is_empty());
    }

    #[test]
    fn ten_to_nine_replicas_over_a_thousand_units_moves_at_most_fifteen_percent() {
        let units = names("team-", 1000);
        let ten = names("fluxd-", 10);
        let before = assign(&units, &ten);
        for gone in &ten {
            let nine: Vec<String> = ten.iter().filter(|r| *r != gone).cloned().collect();
            let after = assign(&units, &nine);
            let moved = moved(&before, &after);
            eprintln!("10 -> 9 replicas, {gone} removed: {moved} of 1,000 units moved");
            assert!(moved <= 150, "removing {gone} moved {moved} of 1,000 units");
            assert!(max_load(&after) <= capacity(1000, 9));
            // Its own units must move; the rest is the load bound's doing.
            let own = before.values().filter(|o| *o == gone).count();
            assert!(moved >= own);
        }
    }

    #[test]
    fn a_fourth_replica_takes_a_bounded_share_of_thirty_units() {
        let units = names("u", 30);
        let three = names("replica-", 3);
        let four = names("replica-", 4);
        let before = assign(&units, &three);
        let after = assign(&units, &four);
        // ceil(30 / 4) to the newcomer, plus slack for the load bound's cascade.
        let moved = moved(&before, &after);
        assert!(moved <= 30usize.div_ceil(4) + 4, "{moved} units moved");
        assert!(after.values().any(|o| o == "replica-3"));
    }
}
