//! Choosing a deployment: weighted random among the candidates, then "power of two
//! choices" on load: draw two by weight and keep the one with fewer requests in flight per
//! unit of weight. With idle deployments (ties) the first draw wins, so the traffic splits
//! exactly by weight; under load the busier of two draws loses, which evens out the load
//! without a global view or a lock.

use rand::Rng;

/// A deployment as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub weight: u32,
    /// Requests in flight to its provider now.
    pub inflight: u64,
}

/// The index of the chosen candidate; `None` when there is none.
pub fn choose(candidates: &[Candidate], rng: &mut impl Rng) -> Option<usize> {
    let first = draw(candidates, rng)?;
    let second = draw(candidates, rng)?;
    let (a, b) = (&candidates[first], &candidates[second]);
    // a.inflight / a.weight <= b.inflight / b.weight, without division
    let first_is_lighter = u128::from(a.inflight) * u128::from(b.weight.max(1))
        <= u128::from(b.inflight) * u128::from(a.weight.max(1));
    Some(if first_is_lighter { first } else { second })
}

/// One weighted draw.
fn draw(candidates: &[Candidate], rng: &mut impl Rng) -> Option<usize> {
    let total: u64 = candidates.iter().map(|c| u64::from(c.weight.max(1))).sum();
    if total == 0 {
        return None;
    }
    let mut point = rng.gen_range(0..total);
    for (i, c) in candidates.iter().enumerate() {
        let w = u64::from(c.weight.max(1));
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn idle(weight: u32) -> Candidate {
        Candidate {
            weight,
            inflight: 0,
        }
    }

    #[test]
    fn idle_deployments_share_by_weight() {
        let mut rng = StdRng::seed_from_u64(7);
        let candidates = [idle(1), idle(3)];
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[choose(&candidates, &mut rng).unwrap()] += 1;
        }
        let share = f64::from(counts[1]) / 40_000.0;
        assert!((0.74..0.76).contains(&share), "{counts:?}");
    }

    #[test]
    fn the_less_loaded_of_two_draws_wins() {
        let mut rng = StdRng::seed_from_u64(7);
        let candidates = [
            Candidate {
                weight: 1,
                inflight: 50,
            },
            idle(1),
        ];
        let mut counts = [0u32; 2];
        for _ in 0..10_000 {
            counts[choose(&candidates, &mut rng).unwrap()] += 1;
        }
        // the loaded one wins only when both draws pick it: about a quarter of the time
        assert!((2_300..2_700).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn nothing_to_choose_from() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(choose(&[], &mut rng), None);
        assert_eq!(
            choose(&[idle(0)], &mut rng),
            Some(0),
            "weight 0 counts as 1"
        );
    }
}
