//! The Redis keys of a client key's limits and spend, and the settlement of a budget
//! reservation there: what both the group-committed checks ([`super::group`]) and the store
//! ([`super::redis`]) write. Every key carries the client key's hash tag, so a Redis Cluster
//! keeps them on one slot.

use crate::state::{Redis, StateError};

static SPEND_SETTLE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("spend_settle.lua")));

/// The hash holding one (key, model) window.
pub fn window_key(key_id: &str, model: &str) -> String {
    format!("cai:rl:{{{key_id}}}:{model}")
}

/// The counter of a key's spend (micro-USD): settled costs plus the worst cases reserved by
/// requests not yet settled. The window script reads it and reserves in it; settlement adds
/// real cost − reservation.
pub fn spend_key(key_id: &str) -> String {
    format!("cai:spend:{{{key_id}}}")
}

/// The key's budget reservations not yet settled, scored by when they expire.
pub fn held_key(key_id: &str) -> String {
    format!("cai:held:{{{key_id}}}")
}

/// Runs `spend_settle.lua` for one reservation (`member` empty: none) and a real cost.
pub(super) async fn settle_in_redis(
    redis: &Redis,
    key_id: &str,
    member: &str,
    reserved: u64,
    cost: u64,
) -> Result<i64, StateError> {
    let mut call = SPEND_SETTLE.prepare_invoke();
    call.key(spend_key(key_id))
        .key(held_key(key_id))
        .arg(member)
        .arg(reserved)
        .arg(cost);
    redis
        .run("spend", move |mut c| {
            Box::pin(async move { call.invoke_async(&mut c).await })
        })
        .await
}
