//! The revocations one instance knows of, in memory: token id → the holders that revoked
//! it and the last second the token could still authenticate a request. Fed by the
//! revocation stream (and by the instance's own revocations at once); bounded, because
//! a flood of logouts must not grow a service without limit: past its capacity the
//! ledger refuses entries and says it is incomplete, and the checks look revocations up
//! in Redis until it is whole again.

use std::collections::HashMap;

/// What the ledger knows of one token.
#[derive(Debug)]
struct Entry {
    /// Who revoked it (`1` for a logout, a refresh's own id): a withdrawal takes back
    /// one holder's revocation and leaves the others'.
    holders: Vec<Box<str>>,
    /// The last second (Unix time) in which the token could authenticate a request;
    /// after it, the entry says nothing a token check does not already refuse.
    until: u64,
}

/// The known revocations, at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct Ledger {
    entries: HashMap<Box<str>, Entry>,
    capacity: usize,
    /// An entry was refused for want of room: the ledger misses revocations until it is
    /// rebuilt from the stream.
    overflowed: bool,
    /// The second the entries were last pruned.
    pruned_at: u64,
}

impl Ledger {
    pub(crate) fn new(capacity: usize) -> Self {
        Ledger {
            entries: HashMap::new(),
            capacity,
            overflowed: false,
            pruned_at: 0,
        }
    }

    /// Records that `holder` revoked `jti` (a token usable through second `until`), at
    /// `now`. Nothing to record for a token already past `until`. With the ledger full
    /// (after pruning) the entry is refused and the ledger marked overflowed.
    pub(crate) fn revoke(&mut self, jti: &str, holder: &str, until: u64, now: u64) {
        if until < now {
            return;
        }
        if let Some(entry) = self.entries.get_mut(jti) {
            if !entry.holders.iter().any(|h| &**h == holder) {
                entry.holders.push(holder.into());
            }
            entry.until = entry.until.max(until);
            return;
        }
        if self.entries.len() >= self.capacity {
            self.prune(now);
        }
        if self.entries.len() >= self.capacity {
            self.overflowed = true;
            return;
        }
        self.entries.insert(
            jti.into(),
            Entry {
                holders: vec![holder.into()],
                until,
            },
        );
    }

    /// Takes back `holder`'s revocation of `jti`; the token stays revoked while another
    /// holder's revocation stands.
    pub(crate) fn withdraw(&mut self, jti: &str, holder: &str) {
        let Some(entry) = self.entries.get_mut(jti) else {
            return;
        };
        entry.holders.retain(|h| &**h != holder);
        if entry.holders.is_empty() {
            self.entries.remove(jti);
        }
    }

    /// Whether `jti` is revoked as far as the ledger knows, at second `now`.
    pub(crate) fn flags(&self, jti: &str, now: u64) -> bool {
        self.entries
            .get(jti)
            .is_some_and(|entry| entry.until >= now)
    }

    /// Drops the entries past their `until`, at most once a second.
    pub(crate) fn prune(&mut self, now: u64) {
        if self.pruned_at == now {
            return;
        }
        self.entries.retain(|_, entry| entry.until >= now);
        self.pruned_at = now;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Whether an overflowed ledger has room again (more than a tenth of its capacity
    /// free), so that rebuilding it from the stream is worth a try.
    pub(crate) fn has_room_again(&self) -> bool {
        self.overflowed && self.entries.len() < self.capacity - self.capacity / 10
    }

    /// Before the ledger is rebuilt from the whole stream: entries refused from now on
    /// mark it overflowed again.
    pub(crate) fn rebuilding(&mut self) {
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000;

    #[test]
    fn a_revocation_flags_its_token_through_its_last_second() {
        let mut ledger = Ledger::new(10);
        ledger.revoke("a", "1", NOW + 5, NOW);
        assert!(ledger.flags("a", NOW));
        assert!(ledger.flags("a", NOW + 5));
        assert!(!ledger.flags("a", NOW + 6));
        assert!(!ledger.flags("b", NOW));
    }

    #[test]
    fn a_withdrawal_takes_back_only_its_holders_revocation() {
        let mut ledger = Ledger::new(10);
        ledger.revoke("a", "refresh-1", NOW + 5, NOW);
        ledger.revoke("a", "1", NOW + 5, NOW);
        ledger.withdraw("a", "refresh-1");
        assert!(ledger.flags("a", NOW), "the logout's revocation stands");
        ledger.withdraw("a", "1");
        assert!(!ledger.flags("a", NOW));
        assert_eq!(ledger.len(), 0);
        // A withdrawal of what was never recorded changes nothing.
        ledger.withdraw("b", "1");
        ledger.revoke("c", "x", NOW + 5, NOW);
        ledger.withdraw("c", "y");
        assert!(ledger.flags("c", NOW));
    }

    #[test]
    fn the_same_revocation_twice_is_one() {
        let mut ledger = Ledger::new(10);
        ledger.revoke("a", "1", NOW + 5, NOW);
        ledger.revoke("a", "1", NOW + 5, NOW);
        ledger.withdraw("a", "1");
        assert!(!ledger.flags("a", NOW));
    }

    #[test]
    fn entries_past_their_last_second_are_pruned_and_never_recorded() {
        let mut ledger = Ledger::new(10);
        ledger.revoke("old", "1", NOW - 1, NOW);
        assert_eq!(ledger.len(), 0, "a token already past its last second");
        ledger.revoke("a", "1", NOW + 1, NOW);
        ledger.revoke("b", "1", NOW + 3, NOW);
        ledger.prune(NOW + 2);
        assert_eq!(ledger.len(), 1);
        assert!(ledger.flags("b", NOW + 2));
    }

    #[test]
    fn a_full_ledger_refuses_entries_and_says_so_until_it_has_room_again() {
        let mut ledger = Ledger::new(10);
        for n in 0..10 {
            ledger.revoke(&format!("t{n}"), "1", NOW + 1 + n % 2, NOW);
        }
        assert!(!ledger.overflowed());
        ledger.revoke("one-too-many", "1", NOW + 5, NOW);
        assert!(ledger.overflowed());
        assert!(!ledger.flags("one-too-many", NOW), "refused");
        assert!(!ledger.has_room_again());
        // Another holder of a known token takes no room.
        ledger.revoke("t0", "refresh", NOW + 1, NOW);
        // Half of them end at NOW + 1: pruned at NOW + 2, there is room again.
        ledger.prune(NOW + 2);
        assert!(ledger.has_room_again());
        ledger.rebuilding();
        assert!(!ledger.overflowed());
        ledger.revoke("one-too-many", "1", NOW + 5, NOW + 2);
        assert!(ledger.flags("one-too-many", NOW + 2));
    }

    #[test]
    fn a_full_ledger_prunes_before_it_refuses() {
        let mut ledger = Ledger::new(2);
        ledger.revoke("a", "1", NOW, NOW);
        ledger.revoke("b", "1", NOW, NOW);
        ledger.revoke("c", "1", NOW + 5, NOW + 1);
        assert!(!ledger.overflowed());
        assert!(ledger.flags("c", NOW + 1));
    }
}
