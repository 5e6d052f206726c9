//! textops: `search`, `search_append`, `replace`, `subst` over the
//! received text. The VM runs them itself (`script/textops.rs`): they are
//! built-ins this module only enables.

use crate::modules::def::Module;

pub static MODULE: Module = Module::params_only("textops", &[]);
