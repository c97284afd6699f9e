//! `Einsum`: a general implementation of numpy's einsum. The equation is parsed once
//! into labels; evaluation walks every combination of label values (exact, not fast).
//!
//! Labels are letters; the axes an ellipsis stands for get labels of their own
//! (`ELLIPSIS_BASE + k`, aligned to the right like numpy broadcasting).

use super::num::{expect_numeric, from_vals, numel, vals, Vals};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{Tensor, TypeInfo};
use crate::ops::util::input;
use crate::ops::InferCtx;

const ELLIPSIS_BASE: u32 = 1000;

/// One side of the equation: letters, and where the ellipsis sits (if any).
#[derive(Clone, Debug, PartialEq)]
struct Term {
    letters: Vec<u32>,
    /// Index in `letters` before which the ellipsis axes go.
    ellipsis: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Einsum {
    inputs: Vec<Term>,
    /// `None` for the implicit form (no `->`).
    output: Option<Term>,
}

pub fn parse(ctx: &NodeCtx) -> Result<Einsum, OpError> {
    let eq = ctx.required("equation", ctx.string("equation"))?;
    parse_equation(&eq)
}

fn parse_equation(eq: &str) -> Result<Einsum, OpError> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let inputs = lhs.split(',').map(parse_term).collect::<Result<Vec<_>, _>>()?;
    let output = rhs.map(parse_term).transpose()?;
    if let Some(o) = &output {
        let mut seen = o.letters.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != o.letters.len() {
            return Err(OpError::invalid(format!("Einsum output repeats a label: '{eq}'")));
        }
        if o.letters.iter().any(|l| !inputs.iter().any(|t| t.letters.contains(l))) {
            return Err(OpError::invalid(format!("Einsum output has a label no input has: '{eq}'")));
        }
    }
    Ok(Einsum { inputs, output })
}

fn parse_term(s: &str) -> Result<Term, OpError> {
    let mut letters = Vec::new();
    let mut ellipsis = None;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("...") {
            if ellipsis.is_some() {
                return Err(OpError::invalid(format!("Einsum term '{s}' has two ellipses")));
            }
            ellipsis = Some(letters.len());
            rest = r;
        } else if c.is_ascii_alphabetic() {
            letters.push(c as u32);
            rest = &rest[1..];
        } else {
            return Err(OpError::invalid(format!("Einsum term '{s}' has an invalid character '{c}'")));
        }
    }
    Ok(Term { letters, ellipsis })
}

/// Per-axis labels of every input, label sizes, and the output labels.
struct Plan {
    axes: Vec<Vec<u32>>,
    out: Vec<u32>,
    /// Every label with its size, output labels first.
    sizes: Vec<(u32, usize)>,
}

/// What code generation needs of a planned Einsum (see [`Einsum::labels`]).
pub struct EinsumLabels {
    /// Per input, the label of each axis (ellipsis axes expanded).
    pub axes: Vec<Vec<u32>>,
    /// Every label with its size, the output labels first and in output order.
    pub sizes: Vec<(u32, usize)>,
    /// How many of `sizes` are output labels; the rest are summed over.
    pub n_out: usize,
}

impl Einsum {
    /// The labels of the equation applied to operands of `shapes`: the same plan
    /// `eval` walks, exposed so lowering reproduces it exactly.
    pub fn labels(&self, shapes: &[&[usize]]) -> Result<EinsumLabels, OpError> {
        let p = self.plan(shapes)?;
        Ok(EinsumLabels { n_out: p.out.len(), axes: p.axes, sizes: p.sizes })
    }

    fn plan(&self, shapes: &[&[usize]]) -> Result<Plan, OpError> {
        if shapes.len() != self.inputs.len() {
            return Err(OpError::invalid(format!(
                "Einsum equation has {} operands, node has {}",
                self.inputs.len(),
                shapes.len()
            )));
        }
        let n_ell =
            self.inputs.iter().zip(shapes).map(|(t, s)| s.len().saturating_sub(t.letters.len())).max().unwrap_or(0);
        let axes =
            self.inputs.iter().zip(shapes).map(|(t, s)| expand(t, s.len(), n_ell)).collect::<Result<Vec<_>, _>>()?;
        let mut sizes: Vec<(u32, usize)> = Vec::new();
        for (labels, s) in axes.iter().zip(shapes) {
            for (&l, &d) in labels.iter().zip(s.iter()) {
                match sizes.iter_mut().find(|(x, _)| *x == l) {
                    None => sizes.push((l, d)),
                    Some((_, e)) if *e == d || d == 1 => {}
                    Some((_, e)) if *e == 1 => *e = d,
                    Some(_) => {
                        return Err(OpError::invalid(format!("Einsum label sizes disagree for shapes {shapes:?}")))
                    }
                }
            }
        }
        let ell: Vec<u32> = (0..n_ell as u32).map(|k| ELLIPSIS_BASE + k).collect();
        let out = match &self.output {
            Some(o) => {
                let mut v = o.letters.clone();
                if let Some(p) = o.ellipsis {
                    v.splice(p..p, ell.iter().copied());
                }
                v
            }
            None => {
                // Implicit: ellipsis axes, then letters used once, alphabetically.
                let mut once: Vec<u32> = sizes
                    .iter()
                    .map(|&(l, _)| l)
                    .filter(|&l| l < ELLIPSIS_BASE && axes.iter().flatten().filter(|&&x| x == l).count() == 1)
                    .collect();
                once.sort();
                ell.iter().copied().chain(once).collect()
            }
        };
        // Ellipsis axes the output keeps must exist; ones an input lacks broadcast.
        for &l in &out {
            if !sizes.iter().any(|(x, _)| *x == l) {
                sizes.push((l, 1));
            }
        }
        sizes.sort_by_key(|(l, _)| out.iter().position(|x| x == l).unwrap_or(usize::MAX));
        Ok(Plan { axes, out, sizes })
    }

    pub fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let types = (0..self.inputs.len()).map(|i| ctx.input(i)).collect::<Result<Vec<_>, _>>()?;
        let dtype = types.first().map(|t| t.dtype).ok_or_else(|| OpError::invalid("Einsum needs an input"))?;
        expect_numeric("Einsum input", dtype)?;
        let shapes: Vec<&[usize]> = types.iter().map(|t| t.shape.as_slice()).collect();
        let plan = self.plan(&shapes)?;
        let shape = out_shape(&plan);
        numel(&shape)?;
        Ok(vec![TypeInfo::new(dtype, shape)])
    }

    pub fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let ts = (0..self.inputs.len()).map(|i| input(inputs, i)).collect::<Result<Vec<_>, _>>()?;
        let dtype = ts.first().map(|t| t.dtype()).ok_or_else(|| OpError::invalid("Einsum needs an input"))?;
        expect_numeric("Einsum input", dtype)?;
        let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
        let plan = self.plan(&shapes)?;
        let shape = out_shape(&plan);
        numel(&plan.sizes.iter().map(|s| s.1).collect::<Vec<_>>())?;
        let vs: Vec<Vals> = ts.iter().map(|t| vals(t)).collect();
        let out = if vs.iter().all(|v| matches!(v, Vals::I(_))) {
            let data: Vec<&[i64]> = vs.iter().map(|v| if let Vals::I(x) = v { x.as_slice() } else { &[] }).collect();
            Vals::I(contract(&plan, &shapes, &data, 0, 1, |a, b| a.wrapping_mul(b), |a, b| a.wrapping_add(b)))
        } else {
            let fl: Vec<Vec<f64>> = ts.iter().map(|t| t.to_f64_vec()).collect();
            let data: Vec<&[f64]> = fl.iter().map(|v| v.as_slice()).collect();
            Vals::F(contract(&plan, &shapes, &data, 0.0, 1.0, |a, b| a * b, |a, b| a + b))
        };
        Ok(vec![from_vals(dtype, &shape, out)])
    }
}

/// An input term's per-axis labels for an operand of rank `rank`; its ellipsis axes are
/// the last of the `n_ell` ellipsis labels (right-aligned, as numpy broadcasts).
fn expand(t: &Term, rank: usize, n_ell: usize) -> Result<Vec<u32>, OpError> {
    let n = t.letters.len();
    match t.ellipsis {
        None if rank == n => Ok(t.letters.clone()),
        Some(p) if rank >= n => {
            let k = rank - n;
            let mut v = t.letters[..p].to_vec();
            v.extend((n_ell - k..n_ell).map(|i| ELLIPSIS_BASE + i as u32));
            v.extend_from_slice(&t.letters[p..]);
            Ok(v)
        }
        _ => Err(OpError::invalid(format!("Einsum term has {n} labels for an operand of rank {rank}"))),
    }
}

fn out_shape(plan: &Plan) -> Vec<usize> {
    plan.out.iter().map(|l| plan.sizes.iter().find(|(x, _)| x == l).map_or(1, |s| s.1)).collect()
}

/// Sums, over every assignment of the labels, the product of the operands' elements;
/// the output labels come first in `plan.sizes`, so results are produced in order.
fn contract<T: Copy>(
    plan: &Plan,
    shapes: &[&[usize]],
    data: &[&[T]],
    zero: T,
    one: T,
    mul: impl Fn(T, T) -> T,
    add: impl Fn(T, T) -> T,
) -> Vec<T> {
    let dims: Vec<usize> = plan.sizes.iter().map(|s| s.1).collect();
    let n_out = plan.out.len();
    let out_len: usize = dims[..n_out].iter().product();
    let red_len: usize = dims[n_out..].iter().product();
    // For each operand and each label: the element stride (0 when absent or size 1).
    let strides: Vec<Vec<usize>> = plan
        .axes
        .iter()
        .zip(shapes)
        .map(|(labels, shape)| {
            let st = super::num::strides(shape);
            plan.sizes
                .iter()
                .map(|(l, _)| {
                    labels.iter().enumerate().filter(|&(i, x)| x == l && shape[i] != 1).map(|(i, _)| st[i]).sum()
                })
                .collect()
        })
        .collect();
    let mut idx = vec![0usize; dims.len()];
    let mut out = Vec::with_capacity(out_len);
    for o in 0..out_len {
        unravel(o, &dims[..n_out], &mut idx[..n_out]);
        let mut acc = zero;
        for r in 0..red_len {
            unravel(r, &dims[n_out..], &mut idx[n_out..]);
            let mut p = one;
            for (d, st) in data.iter().zip(&strides) {
                let off: usize = idx.iter().zip(st).map(|(i, s)| i * s).sum();
                p = mul(p, d[off]);
            }
            acc = add(acc, p);
        }
        out.push(acc);
    }
    out
}

fn unravel(mut i: usize, dims: &[usize], idx: &mut [usize]) {
    for k in (0..dims.len()).rev() {
        idx[k] = i % dims[k];
        i /= dims[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_output_is_sorted_single_labels() {
        let e = parse_equation("ij,jk").unwrap();
        let p = e.plan(&[&[2, 3], &[3, 4]]).unwrap();
        assert_eq!(out_shape(&p), vec![2, 4]);
    }

    #[test]
    fn batch_diagonal() {
        let e = parse_equation("...ii ->...i").unwrap();
        let p = e.plan(&[&[3, 5, 5]]).unwrap();
        assert_eq!(out_shape(&p), vec![3, 5]);
    }

    #[test]
    fn mismatched_operands_are_errors() {
        let cases: &[(&str, &[&[usize]])] = &[
            ("ii", &[&[2, 3]]),
            ("...ii", &[&[2]]),
            ("a...b", &[&[2]]),
            ("->", &[&[2]]),
            ("ab,ab", &[&[2, 3], &[3, 2]]),
            ("ab,bc", &[&[2, 3]]),
        ];
        for (eq, shapes) in cases {
            let e = parse_equation(eq).unwrap();
            let ts: Vec<Tensor> = shapes.iter().map(|s| Tensor::zeros(crate::ir::DType::F32, s)).collect();
            let refs: Vec<Option<&Tensor>> = ts.iter().map(Some).collect();
            assert!(e.eval(&refs).is_err(), "{eq}");
        }
        assert!(parse_equation("a.b").is_err());
        assert!(parse_equation("ab->aa").is_err());
        assert!(parse_equation("ab->c").is_err());
    }
}
