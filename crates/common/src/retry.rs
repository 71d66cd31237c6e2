//! The pace of looking again at something not known yet (a write whose outcome is
//! unknown): a first pause of 50 ms, doubling up to a second, for as long as a bound
//! allows. Settling a purchase, replaying one and ending a reservation share it, so
//! they give up on the same terms.

use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Pauses between tries that end within a deadline.
#[derive(Debug, Clone)]
pub struct Backoff {
    deadline: Instant,
    pause: Duration,
}

impl Backoff {
    /// Tries from now until `bound` has passed.
    pub fn within(bound: Duration) -> Self {
        Self::until(Instant::now() + bound)
    }

    /// Tries until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Backoff {
            deadline,
            pause: FIRST_PAUSE,
        }
    }

    /// The pause to wait before the next try, or `None` when it would end past the
    /// deadline: time to give up.
    pub fn next_pause(&mut self) -> Option<Duration> {
        let pause = self.pause;
        if Instant::now() + pause >= self.deadline {
            return None;
        }
        self.pause = (pause * 2).min(LONGEST_PAUSE);
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_stop_at_the_deadline() {
        let mut backoff = Backoff::within(Duration::from_secs(3600));
        let pauses: Vec<u64> = (0..7)
            .map(|_| backoff.next_pause().unwrap().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            Backoff::within(Duration::from_millis(40)).next_pause(),
            None
        );
    }
}
