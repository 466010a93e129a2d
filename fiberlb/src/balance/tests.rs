//! Statistical tests of each balancing algorithm.

use super::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("b{i}")).collect()
}

fn up(weights: &[u32]) -> Vec<Candidate> {
    weights.iter().map(|&weight| Candidate { weight, active: 0, eligible: true }).collect()
}

fn counts(balancer: &Balancer, candidates: &[Candidate], picks: usize) -> Vec<usize> {
    let mut counts = vec![0; candidates.len()];
    for i in 0..picks {
        counts[balancer.pick(candidates, Some(maglev::key_of(i))).expect("a pick")] += 1;
    }
    counts
}

#[test]
fn round_robin_takes_turns_and_skips_what_is_not_eligible() {
    let balancer = Balancer::new(Algorithm::RoundRobin, &names(3));
    let mut candidates = up(&[1, 1, 1]);
    assert_eq!(counts(&balancer, &candidates, 300), vec![100, 100, 100]);
    candidates[1].eligible = false;
    let c = counts(&balancer, &candidates, 300);
    assert_eq!(c[1], 0);
    assert_eq!(c[0] + c[2], 300);
    candidates[0].eligible = false;
    candidates[2].eligible = false;
    assert_eq!(balancer.pick(&candidates, None), None);
}

#[test]
fn weighted_round_robin_gives_shares_by_weight_spread_out() {
    let balancer = Balancer::new(Algorithm::WeightedRoundRobin, &names(3));
    let candidates = up(&[5, 1, 1]);
    let order: Vec<usize> = (0..7).map(|_| balancer.pick(&candidates, None).unwrap()).collect();
    assert_eq!(order, vec![0, 0, 1, 0, 2, 0, 0], "nginx's smooth sequence");
    assert_eq!(counts(&balancer, &candidates, 7000), vec![5000, 1000, 1000]);
}

#[test]
fn least_connections_and_two_choices_prefer_the_idle() {
    let mut candidates = up(&[1, 1, 1]);
    candidates[0].active = 10;
    candidates[1].active = 2;
    candidates[2].active = 5;
    let least = Balancer::new(Algorithm::LeastConnections, &names(3));
    assert_eq!(least.pick(&candidates, None), Some(1));
    // Weight counts: 5 in flight on weight 4 is less loaded than 2 on weight 1.
    candidates[2].weight = 4;
    assert_eq!(least.pick(&candidates, None), Some(2));
    // Two choices never picks the busiest of three (it loses to whichever it is paired with,
    // or is paired with itself only 1 time in 9).
    let two = Balancer::new(Algorithm::PowerOfTwo, &names(3));
    let c = counts(&two, &up(&[1, 1, 1]), 3000);
    assert!(c.iter().all(|&n| n > 600), "every backend gets a share when all are idle: {c:?}");
    let mut busy = up(&[1, 1, 1]);
    busy[0].active = 100;
    let c = counts(&two, &busy, 9000);
    assert!(c[0] < 1500, "the busy backend is picked only when paired with itself: {c:?}");
}

#[test]
fn maglev_spreads_evenly_keeps_keys_and_moves_few_when_one_goes() {
    let balancer = Balancer::new(Algorithm::Maglev, &names(5));
    let candidates = up(&[1; 5]);
    let c = counts(&balancer, &candidates, 50_000);
    assert!(c.iter().all(|&n| (8_500..11_500).contains(&n)), "within 15% of an even share: {c:?}");
    // The same key lands on the same backend every time, and on another balancer (node) too.
    let other = Balancer::new(Algorithm::Maglev, &names(5));
    for key in 0..1000u64 {
        assert_eq!(balancer.pick(&candidates, Some(key)), other.pick(&candidates, Some(key)));
    }
    // One backend down: only its keys move.
    let mut less = candidates.clone();
    less[3].eligible = false;
    let moved = (0..10_000u64)
        .filter(|&k| {
            let before = balancer.pick(&candidates, Some(k)).unwrap();
            let after = balancer.pick(&less, Some(k)).unwrap();
            before != after && before != 3
        })
        .count();
    assert_eq!(moved, 0, "keys of the backends still up stay where they were");
}
