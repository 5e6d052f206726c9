//! Prometheus' text exposition format (version 0.0.4): one `# HELP`, one
//! `# TYPE` and one sample line per metric, names prefixed `rser_`.

use std::fmt::Write;

/// One metric as the control interface reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// `core`, `tm`, `sl`, `registrar`, `usrloc`, `auth`, `shm`.
    pub group: &'static str,
    pub name: String,
    pub value: u64,
    /// A level (table use) rather than a count that only grows.
    pub gauge: bool,
}

pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    for s in samples {
        let (kind, suffix) = if s.gauge {
            ("gauge", "")
        } else {
            ("counter", "_total")
        };
        let name = format!("rser_{}{suffix}", metric_name(&s.name));
        let _ = writeln!(out, "# HELP {name} rser {} {}", s.group, s.name);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", s.value);
    }
    out
}

/// Metric names allow `[a-zA-Z_:][a-zA-Z0-9_:]*`; ours are already close.
fn metric_name(n: &str) -> String {
    n.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_in_text_format() {
        let text = render(&[
            Sample {
                group: "core",
                name: "received".into(),
                value: 12,
                gauge: false,
            },
            Sample {
                group: "shm",
                name: "tm.live".into(),
                value: 3,
                gauge: true,
            },
        ]);
        assert_eq!(
            text,
            "# HELP rser_received_total rser core received\n# TYPE rser_received_total counter\n\
             rser_received_total 12\n# HELP rser_tm_live rser shm tm.live\n\
             # TYPE rser_tm_live gauge\nrser_tm_live 3\n"
        );
    }
}
