//! The sl module: stateless replies (`sl_send_reply`, `send_reply`,
//! `sl_reply_error`) and the filter that absorbs ACKs to them.

pub mod ack_filter;
pub mod actions;
pub mod reply;
pub mod signature;

pub use ack_filter::{AckFilter, AckVerdict};
pub use reply::{build_reply, reply_destination, reply_destination_forced};
pub use signature::Signature;

crate::server::shared::counters! { SlCounter, COUNTER_NAMES, {
    /// Stateless replies sent.
    Replies => "sl_replies",
    /// ACKs to our stateless replies, absorbed by the filter.
    AcksAbsorbed => "sl_acks_absorbed",
    /// Unsigned replies pushed out of the filter's table by newer ones.
    TableEvicted => "sl_table_evicted",
}}

/// sl's tables in shared memory: the ACK filter (its signature's secret
/// fresh at every start).
pub struct SlShm {
    pub filter: AckFilter,
}

/// Share of the region given to the table of unsigned stateless replies.
const SL_TABLE_SHARE: usize = 16;

/// In the master: the ACK filter. sl is always carved: the core replies
/// statelessly (400 to a broken request, tm's 481 and 503) whether or
/// not a script loads sl.
pub fn carve(
    _: &crate::cfg::Config,
    carver: &mut rser_shm::Carver<'_>,
    region: usize,
) -> Result<crate::modules::def::Carved, String> {
    let entries = (region / SL_TABLE_SHARE / AckFilter::BYTES_PER_ENTRY).max(64);
    let secret = crate::server::secret();
    let filter = AckFilter::carve(carver, Signature::new(&secret), entries)
        .ok_or("shared memory too small for sl's ACK filter")?;
    Ok(crate::modules::def::Carved {
        capacity: format!("{entries} stateless replies"),
        shm: Box::new(SlShm { filter }),
    })
}
