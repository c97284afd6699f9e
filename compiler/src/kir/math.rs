//! Transcendental functions as KIR primitives. (Not yet written: `expand` leaves the
//! program unchanged, and backends reject the remaining non-primitive ops.)

use super::Program;

/// Rewrites every non-primitive unary op (exp, log, tanh, erf, sin, ...) and `Pow` into
/// primitive KIR expressions, so backends compute them identically.
pub fn expand(program: &mut Program) {
    let _ = program;
}
