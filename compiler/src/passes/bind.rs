//! Fixes every graph input's shape: declared fixed dimensions, `--dim SYMBOL=VALUE` for
//! symbolic ones, `--input-shape NAME=D0,...` for whole inputs.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::ir::{DimSpec, Graph, TypeInfo};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShapeBindings {
    pub dims: BTreeMap<String, usize>,
    pub input_shapes: BTreeMap<String, Vec<usize>>,
}

pub fn bind(g: &mut Graph, b: &ShapeBindings) -> Result<()> {
    let names: Vec<String> = g.inputs.iter().map(|&i| g.value(i).name.clone()).collect();
    for name in b.input_shapes.keys() {
        if !names.contains(name) {
            return Err(Error::Usage(format!(
                "--input-shape names '{name}', which is not an input of the model (inputs: {})",
                names.join(", ")
            )));
        }
    }
    let mut symbols = BTreeSet::new();
    for &id in &g.inputs.clone() {
        let v = g.value(id);
        let declared = v.declared.clone().ok_or_else(|| Error::InvalidModel(format!("input '{}' has no type", v.name)))?;
        let shape = if let Some(s) = b.input_shapes.get(&v.name) {
            if let Some(dims) = &declared.dims {
                let conflict = dims.len() != s.len()
                    || dims.iter().zip(s).any(|(d, &x)| matches!(d, DimSpec::Fixed(f) if *f != x));
                if conflict {
                    return Err(Error::Usage(format!(
                        "--input-shape {}={} does not fit the declared shape {}",
                        v.name,
                        s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
                        declared.dims_string()
                    )));
                }
                for d in dims {
                    if let DimSpec::Symbol(sym) = d {
                        symbols.insert(sym.clone());
                    }
                }
            }
            s.clone()
        } else {
            let dims = declared.dims.as_ref().ok_or_else(|| Error::UnresolvedDim {
                input: v.name.clone(),
                symbol: "?".into(),
                axis: 0,
                shape: "an undeclared shape".into(),
            })?;
            let mut shape = Vec::with_capacity(dims.len());
            for (axis, d) in dims.iter().enumerate() {
                shape.push(match d {
                    DimSpec::Fixed(n) => *n,
                    DimSpec::Symbol(sym) => {
                        symbols.insert(sym.clone());
                        *b.dims.get(sym).ok_or_else(|| Error::UnresolvedDim {
                            input: v.name.clone(),
                            symbol: sym.clone(),
                            axis,
                            shape: declared.dims_string(),
                        })?
                    }
                    DimSpec::Unknown => {
                        return Err(Error::UnresolvedDim {
                            input: v.name.clone(),
                            symbol: "?".into(),
                            axis,
                            shape: declared.dims_string(),
                        })
                    }
                });
            }
            shape
        };
        let ty = TypeInfo::new(declared.dtype, shape);
        if ty.bytes().is_none() {
            return Err(Error::Usage(format!("input '{}' of shape {:?} is too large to address", v.name, ty.shape)));
        }
        g.value_mut(id).ty = Some(ty);
    }
    for sym in b.dims.keys() {
        if !symbols.contains(sym) {
            return Err(Error::Usage(format!(
                "--dim {sym}=...: no input has the symbolic dimension '{sym}'{}",
                if symbols.is_empty() { String::new() } else { format!(" (symbols: {})", symbols.iter().cloned().collect::<Vec<_>>().join(", ")) }
            )));
        }
    }
    Ok(())
}

impl ShapeBindings {
    /// These bindings completed from a set of concrete inputs (test data): every graph
    /// input with a dimension the user left open takes the data's shape. `verify` uses
    /// it so a model with symbolic dimensions runs at the shapes of its test data; what
    /// the user fixed with `--dim`/`--input-shape` stays, and a conflict with the data
    /// is reported when the data is checked against the compiled shapes.
    pub fn completed_from(&self, g: &Graph, inputs: &[crate::ir::Tensor]) -> ShapeBindings {
        let mut b = self.clone();
        for (&id, t) in g.inputs.iter().zip(inputs) {
            let v = g.value(id);
            if b.input_shapes.contains_key(&v.name) {
                continue;
            }
            let open = match v.declared.as_ref().and_then(|d| d.dims.as_ref()) {
                None => true,
                Some(dims) => dims.iter().any(|d| match d {
                    DimSpec::Fixed(_) => false,
                    DimSpec::Symbol(s) => !b.dims.contains_key(s),
                    DimSpec::Unknown => true,
                }),
            };
            if open {
                b.input_shapes.insert(v.name.clone(), t.shape().to_vec());
            }
        }
        b
    }
}
