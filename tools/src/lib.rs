//! Operator tools for rser. `rserctl` (subscriber management, the control
//! interface) arrives with the registrar issue.
