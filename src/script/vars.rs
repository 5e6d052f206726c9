//! `$var(name)` values: the process's own, as Kamailio's, kept from one
//! message to the next and the same in every route the process runs
//! (request, failure, reply, branch). Per thread, which in a server is
//! the process; tests running side by side on threads do not meet (the
//! in-memory harness's workers, on one thread, share theirs).

use std::cell::RefCell;
use std::io::Write as _;

use super::ctx::VarValue;

thread_local! {
    static VARS: RefCell<Vec<VarValue>> = const { RefCell::new(Vec::new()) };
}

/// `$var` number `i` (`$null` if never set).
pub fn get(i: u16) -> VarValue {
    VARS.with_borrow(|v| v.get(usize::from(i)).cloned().unwrap_or_default())
}

/// Appends `$var` number `i`'s text to `out`.
pub fn text_into(i: u16, out: &mut Vec<u8>) {
    VARS.with_borrow(|v| match v.get(usize::from(i)) {
        Some(VarValue::Int(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(VarValue::Str(s)) => out.extend_from_slice(s),
        _ => {}
    })
}

/// Sets `$var` number `i` (indices are bounded by `cfg::pv::MAX_VARS`).
pub fn set(i: u16, value: VarValue) {
    VARS.with_borrow_mut(|v| {
        let i = usize::from(i);
        if v.len() <= i {
            v.resize(i + 1, VarValue::Null);
        }
        v[i] = value;
    })
}
