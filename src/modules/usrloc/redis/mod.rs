//! usrloc's location table shared through Redis (issue 22, in progress):
//! several rser nodes, one table, no binding lost when a node dies.
//!
//! The design, as far as it is built:
//! - Every AOR is one Redis hash (`keys.rs`): a field per contact holding
//!   the binding (`record.rs`), and `#v`, the AOR's version. Its key and
//!   its bucket's change feed (a Redis Stream) share a hash tag, so one
//!   AOR and its feed entries live in one Redis Cluster slot.
//! - A REGISTER is decided in rser by the same §10.3 code as in memory
//!   (`registrar::decide`) on the AOR as read from Redis, then applied
//!   by a script that checks the version it was decided on, writes the
//!   changes, bumps the version, sets the key's expiry and appends the
//!   AOR's new bindings to the feed, all or nothing (`store.rs`); a
//!   version that moved meanwhile (another node saved the AOR) makes the
//!   node read and decide again. Two nodes racing on one AOR can then
//!   neither lose nor resurrect a binding.
//!
//! To come (the remaining parts): each node's shared-memory table
//! kept current from the feeds by a helper (snapshot first, then the
//! feeds from where the snapshot began), lookups served from it; save()
//! and the control methods on this store; connections owned by another
//! node reached through it; nonces and nonce counts shared; failure
//! handling (503 with Retry-After while Redis is gone, re-seeding a Redis
//! that lost its data); `stats` for feed lag and round trips.

pub mod feed;
pub mod keys;
pub mod record;
pub mod store;
