//! The one kernel shape of the elementwise family: `out[i] = f(a[i'], b[i''], ...)` with
//! numpy broadcasting.
//!
//! When every input has the output's shape (or a single element) the kernel is one flat
//! loop over the elements, the form the backends vectorise best; otherwise it is a loop
//! nest over the output's shape with broadcast indices (stride 0 on broadcast dims), so
//! the innermost loop still walks the output contiguously. Each input element is loaded
//! once into a variable (a one-element constant becomes a literal), so `f` may use its
//! arguments several times.

use crate::lower::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{broadcast, linear, KernelBuilder};
use crate::ir::Tensor;
use crate::kir::{e, Expr, Ty};

/// Emits a kernel computing `out` from `ins` element by element: `f` gets the builder
/// (for temporaries) and the input elements, and returns the value to store.
pub fn map(
    cx: &mut LowerCx,
    out: &Operand,
    ins: &[&Operand],
    f: impl FnOnce(&mut KernelBuilder, &[Expr]) -> Expr,
) -> Result<(), OpError> {
    out.kty()?;
    let tys = ins.iter().map(|o| o.kty()).collect::<Result<Vec<_>, _>>()?;
    let shape = out.shape().to_vec();
    for o in ins {
        let lead = shape.len().checked_sub(o.shape().len());
        let fits = lead.is_some_and(|lead| o.shape().iter().zip(&shape[lead..]).all(|(&d, &n)| d == n || d == 1));
        if !fits {
            return Err(OpError::invalid(format!("input of shape {:?} does not broadcast to {shape:?}", o.shape())));
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    let mut k = cx.kernel("");
    let load = |k: &mut KernelBuilder, index: &dyn Fn(&Operand) -> Expr| -> Vec<Expr> {
        ins.iter()
            .zip(&tys)
            .map(|(o, &ty)| match o.konst.as_deref().filter(|t| t.len() == 1).and_then(|t| scalar_lit(t, ty)) {
                Some(lit) => lit,
                None => e::var(k.let_(ty, e::load(o.buf, index(o)))),
            })
            .collect()
    };
    if ins.iter().all(|o| o.shape() == shape.as_slice() || o.len() == 1) {
        k.for_(out.len(), |k, i| {
            let args = load(k, &|o: &Operand| if o.len() == 1 { e::idx(0) } else { i.clone() });
            let v = f(k, &args);
            k.store(out.buf, i, v);
        });
    } else {
        k.for_shape(&shape, |k, ix| {
            let args = load(k, &|o: &Operand| broadcast(o.shape(), ix));
            let v = f(k, &args);
            k.store(out.buf, linear(&shape, ix), v);
        });
    }
    cx.emit(k.finish());
    Ok(())
}

/// A one-element constant as a literal of its KIR type, so kernels with a constant
/// scalar operand (`x * 2`, Clip bounds, Pow exponents) carry no load.
fn scalar_lit(t: &Tensor, ty: Ty) -> Option<Expr> {
    Some(match (t, ty) {
        (Tensor::U64(a), Ty::I64) => e::i64(*a.iter().next()? as i64),
        (_, Ty::I64) => e::i64(*t.to_i64_vec()?.first()?),
        (_, Ty::I32) => e::i32(i32::try_from(*t.to_i64_vec()?.first()?).ok()?),
        (_, Ty::F32) => e::f32(*t.to_f64_vec().first()? as f32),
        (_, Ty::F64) => e::f64(*t.to_f64_vec().first()?),
        (_, Ty::Bool) => e::bool(*t.to_f64_vec().first()? != 0.0),
        (_, Ty::Index) => return None,
    })
}
