//! Exponential backoff with jitter, for retrying a failed disk write or delivery: the delay
//! doubles from `min` up to `max`, and each wait is drawn from its upper half so that
//! retries of several gateways do not hit a recovering store in step.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The wait before the next retry: between half the current delay and all of it.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        let half = delay / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(5000));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(backoff.next);
            let delay = backoff.next_delay();
            let ceiling = *ceilings.last().unwrap_or(&ms(0));
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
        }
        let expected: Vec<_> = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(ceilings, expected);
        backoff.reset();
        assert!(backoff.next_delay() <= ms(100));
    }
}
