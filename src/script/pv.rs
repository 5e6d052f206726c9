//! Fills a [`Format`]'s pseudo-variables from the message. A value the
//! message does not have (no From header, a reply's Request-URI) is empty,
//! as Kamailio prints `<null>` only in its logs.

use std::io::Write as _;

use crate::cfg::pv::{Format, Part, Pv};
use crate::sip::{NameAddr, Scheme, Uri};

use super::ctx::{MsgCtx, VarValue};

/// Appends the formatted text to `out`.
/// One pseudo-variable's value, appended to `out`.
pub fn pv_into(v: &Pv, ctx: &MsgCtx<'_, '_>, out: &mut Vec<u8>) {
    value(v, ctx, out)
}

pub fn format_into(f: &Format, ctx: &MsgCtx<'_, '_>, out: &mut Vec<u8>) {
    for part in f.parts.iter() {
        match part {
            Part::Text(t) => out.extend_from_slice(t.as_bytes()),
            Part::Var(v) => value(v, ctx, out),
        }
    }
}

fn value(v: &Pv, ctx: &MsgCtx<'_, '_>, out: &mut Vec<u8>) {
    let msg = ctx.msg;
    match v {
        Pv::Ruri => out.extend_from_slice(ctx.uri()),
        Pv::RuriUser | Pv::RuriDomain | Pv::RuriPort => {
            if let Ok(u) = Uri::parse(ctx.uri()) {
                uri_part(v, &u, out);
            }
        }
        Pv::FromUri | Pv::FromUser | Pv::FromDomain => {
            if let Ok(na) = msg.from() {
                name_addr_part(v, na, out);
            }
        }
        Pv::ToUri | Pv::ToUser | Pv::ToDomain => {
            if let Ok(na) = msg.to() {
                name_addr_part(v, na, out);
            }
        }
        Pv::CallId => out.extend_from_slice(msg.call_id().unwrap_or(b"")),
        Pv::Method => match msg.cseq() {
            Ok(c) if !msg.is_request() => out.extend_from_slice(c.method_raw),
            _ => out.extend_from_slice(msg.method_raw()),
        },
        Pv::CSeq => {
            if let Ok(c) = msg.cseq() {
                let _ = write!(out, "{}", c.number);
            }
        }
        Pv::SrcIp => {
            let _ = write!(out, "{}", ctx.src.ip());
        }
        Pv::SrcPort => {
            let _ = write!(out, "{}", ctx.src.port());
        }
        Pv::UserAgent => header(ctx, "User-Agent", out),
        Pv::Status => {
            if let Some(s) = ctx.status {
                let _ = write!(out, "{s}");
            }
        }
        Pv::Reason => out.extend_from_slice(msg.reason()),
        Pv::Header(name) => header(ctx, name, out),
        Pv::DstUri => out.extend_from_slice(&ctx.st.dst_uri),
        Pv::Contact => header(ctx, "Contact", out),
        Pv::RecvIp => {
            let _ = write!(out, "{}", ctx.dst.ip());
        }
        Pv::RecvPort => {
            let _ = write!(out, "{}", ctx.dst.port());
        }
        Pv::Proto => out.extend_from_slice(ctx.proto.name().as_bytes()),
        Pv::Null => {}
        Pv::RetCode => {
            let _ = write!(out, "{}", ctx.st.last_ret);
        }
        Pv::Avp(_) | Pv::Xavp(_) | Pv::Sht(_) => out.extend_from_slice(&typed(v, ctx).text()),
        Pv::BranchIdx => {
            let _ = write!(out, "{}", ctx.st.branch_idx);
        }
        Pv::Var(i) => super::vars::text_into(*i, out),
        Pv::Tr(_) => out.extend_from_slice(&typed(v, ctx).text()),
        Pv::ForceSend => {
            if let Some(a) = ctx.st.force_send {
                let _ = write!(out, "udp:{a}");
            }
        }
        Pv::Branch => out.extend_from_slice(ctx.branches().next().unwrap_or_default()),
        Pv::Snd(field) => {
            let Some(to) = ctx.st.snd else { return };
            let _ = match field {
                crate::cfg::pv::SndField::Ip => write!(out, "{}", to.ip()),
                crate::cfg::pv::SndField::Port => write!(out, "{}", to.port()),
                crate::cfg::pv::SndField::Af if to.is_ipv6() => write!(out, "inet6"),
                crate::cfg::pv::SndField::Af => write!(out, "inet"),
                crate::cfg::pv::SndField::Proto => write!(out, "udp"),
            };
        }
    }
}

/// A pseudo-variable's value with its type: numbers where Kamailio's are
/// (`$cs`, `$sp`, `$Rp`, `$rs`, `$rp`, `$rc`, an int `$var`, `{s.len}`),
/// `$null` for an unset `$var` or `$avp`.
pub fn typed(v: &Pv, ctx: &MsgCtx<'_, '_>) -> VarValue {
    match v {
        Pv::Var(i) => super::vars::get(*i),
        Pv::Avp(i) => ctx.st.avps.get(*i).cloned().unwrap_or_default(),
        Pv::Xavp(x) => ctx
            .st
            .avps
            .xget(x.name, x.index.unwrap_or(0), x.field)
            .cloned()
            .unwrap_or_default(),
        Pv::Sht(r) => {
            let mut key = Vec::new();
            format_into(&r.key, ctx, &mut key);
            crate::modules::htable::get(r.table, &key)
        }
        Pv::Null => VarValue::Null,
        Pv::Tr(t) => t
            .trs
            .iter()
            .fold(typed(&t.pv, ctx), |v, tr| super::transform::apply(tr, v)),
        _ => {
            let mut out = Vec::new();
            value(v, ctx, &mut out);
            match v {
                Pv::CSeq
                | Pv::SrcPort
                | Pv::RecvPort
                | Pv::Status
                | Pv::RuriPort
                | Pv::RetCode
                | Pv::BranchIdx
                | Pv::Snd(crate::cfg::pv::SndField::Port) => {
                    VarValue::Int(VarValue::Str(out).int())
                }
                // What the message does not have (a header, `$du`) is `$null`.
                _ if out.is_empty() => VarValue::Null,
                _ => VarValue::Str(out),
            }
        }
    }
}

fn header(ctx: &MsgCtx<'_, '_>, name: &str, out: &mut Vec<u8>) {
    if let Some(h) = ctx.msg.named(name.as_bytes()).next() {
        out.extend_from_slice(ctx.msg.value(h));
    }
}

fn name_addr_part(v: &Pv, na: &NameAddr<'_>, out: &mut Vec<u8>) {
    match v {
        Pv::FromUri | Pv::ToUri => out.extend_from_slice(na.addr_spec),
        _ => {
            if let Ok(u) = na.uri() {
                uri_part(v, &u, out);
            }
        }
    }
}

fn uri_part(v: &Pv, u: &Uri<'_>, out: &mut Vec<u8>) {
    match v {
        Pv::RuriUser | Pv::FromUser | Pv::ToUser => out.extend_from_slice(u.user.unwrap_or(b"")),
        Pv::RuriDomain | Pv::FromDomain | Pv::ToDomain => out.extend_from_slice(u.host_raw),
        Pv::RuriPort => {
            let default = if u.scheme == Scheme::Sips { 5061 } else { 5060 };
            let _ = write!(out, "{}", u.port.unwrap_or(default));
        }
        _ => {}
    }
}
