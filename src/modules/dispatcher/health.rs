//! A destination's health as pure code: probe results and the script's
//! `ds_mark_dst` move it between active, trying (failing, not yet past
//! `ds_probing_threshold`) and inactive (back after `ds_inactive_threshold`
//! successes), as Kamailio's dispatcher does. Disabled is the operator's
//! word and probes do not change it.

use super::list::{FLAG_DISABLED, FLAG_INACTIVE, FLAG_PROBING, FLAG_TRYING};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    pub flags: u32,
    /// Consecutive failed probes.
    pub fails: u32,
    /// Consecutive answered probes while inactive.
    pub oks: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures before a destination is inactive (`ds_probing_threshold`).
    pub probing: u32,
    /// Successes before an inactive one is active again
    /// (`ds_inactive_threshold`).
    pub inactive: u32,
}

impl Health {
    /// Selection may use it.
    pub fn usable(&self) -> bool {
        self.flags & (FLAG_INACTIVE | FLAG_DISABLED) == 0
    }

    /// The outcome of one OPTIONS probe: a reply code `ds_ping_reply_codes`
    /// accepts, or none in time.
    pub fn probed(mut self, ok: bool, t: Thresholds) -> Health {
        if self.flags & FLAG_DISABLED != 0 {
            return self;
        }
        if ok {
            self.fails = 0;
            if self.flags & FLAG_INACTIVE != 0 {
                self.oks += 1;
                if self.oks >= t.inactive.max(1) {
                    self.flags &= !(FLAG_INACTIVE | FLAG_TRYING);
                    self.oks = 0;
                }
            } else {
                self.flags &= !FLAG_TRYING;
            }
        } else {
            self.oks = 0;
            self.fails += 1;
            if self.fails >= t.probing.max(1) {
                self.flags = (self.flags | FLAG_INACTIVE) & !FLAG_TRYING;
            } else {
                self.flags |= FLAG_TRYING;
            }
        }
        self
    }

    /// `ds_mark_dst(state)`: `a` active, `i` inactive, `t` trying, `d`
    /// disabled; `p` added keeps (or turns on) probing. Unknown letters:
    /// None.
    pub fn marked(mut self, state: &str) -> Option<Health> {
        let probing = state.contains('p');
        let base = state.replace('p', "");
        self.flags = match base.as_str() {
            "a" | "" => 0,
            "i" => FLAG_INACTIVE,
            "t" => FLAG_TRYING,
            "d" => FLAG_DISABLED,
            _ => return None,
        } | (self.flags & FLAG_PROBING)
            | if probing { FLAG_PROBING } else { 0 };
        self.fails = 0;
        self.oks = 0;
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        probing: 3,
        inactive: 2,
    };

    #[test]
    fn failures_past_the_threshold_make_it_inactive_and_successes_bring_it_back() {
        let mut h = Health::default();
        h = h.probed(false, T);
        assert!(h.usable() && h.flags & FLAG_TRYING != 0);
        h = h.probed(false, T).probed(false, T);
        assert!(!h.usable());
        h = h.probed(true, T);
        assert!(!h.usable(), "one success is not enough");
        h = h.probed(true, T);
        assert!(h.usable());
        assert_eq!(h.flags, 0);
    }

    #[test]
    fn a_success_resets_the_failures() {
        let h = Health::default()
            .probed(false, T)
            .probed(false, T)
            .probed(true, T);
        assert_eq!((h.fails, h.flags), (0, 0));
    }

    #[test]
    fn marks_and_disabled() {
        let h = Health::default().marked("ip").unwrap();
        assert_eq!(h.flags, FLAG_INACTIVE | FLAG_PROBING);
        assert!(!h.usable());
        let d = h.marked("d").unwrap();
        assert_eq!(
            d.probed(true, T).probed(true, T).flags & FLAG_DISABLED,
            FLAG_DISABLED
        );
        assert!(h.marked("x").is_none());
        assert_eq!(
            h.marked("a").unwrap().flags,
            FLAG_PROBING,
            "probing is kept"
        );
    }
}
