//! textops: `search`, `search_append`, `replace`, `subst` over the
//! received text, which the VM runs itself (`script/textops.rs`: built-ins
//! this module enables), and Kamailio's header actions (`actions.rs`:
//! `is_method`, `is_present_hf`, `append_hf`, `remove_hf`, and
//! `is_present_hf_re`/`remove_hf_re` by a regular expression on header
//! names, `append_to_reply` for the replies the script sends), a
//! runtime.

pub mod actions;

use crate::modules::def::{Hooks, Module, Routes, action};

pub static MODULE: Module = Module {
    name: "textops",
    params: &[],
    actions: &[
        action(
            "is_method",
            actions::IS_METHOD,
            (1, 1),
            actions::methods,
            Routes::ANY,
        ),
        action(
            "is_present_hf",
            actions::IS_PRESENT_HF,
            (1, 1),
            actions::header_name,
            Routes::ANY,
        ),
        action(
            "append_hf",
            actions::APPEND_HF,
            (1, 1),
            actions::header_text,
            Routes::ANY,
        ),
        action(
            "remove_hf",
            actions::REMOVE_HF,
            (1, 1),
            actions::header_name,
            Routes::ANY,
        ),
        action(
            "is_present_hf_re",
            actions::IS_PRESENT_HF_RE,
            (1, 1),
            actions::name_regex,
            Routes::ANY,
        ),
        action(
            "append_to_reply",
            actions::APPEND_TO_REPLY,
            (1, 1),
            actions::header_text,
            Routes::REQUEST.or(Routes::FAILURE),
        ),
        action(
            "remove_hf_re",
            actions::REMOVE_HF_RE,
            (1, 1),
            actions::name_regex,
            Routes::ANY,
        ),
    ],
    counters: &[],
    hooks: Some(&Hooks::runtime(actions::start)),
    unapplied: &[],
    check: None,
};
