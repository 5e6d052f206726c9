//! The sl module: stateless replies (`sl_send_reply`, `send_reply`,
//! `sl_reply_error`) and the filter that absorbs ACKs to them.

pub mod ack_filter;
pub mod actions;
pub mod reply;
pub mod signature;

pub use ack_filter::{AckFilter, AckVerdict};
pub use reply::{build_reply, reply_destination};
pub use signature::Signature;
