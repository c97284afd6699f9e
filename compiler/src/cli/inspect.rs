//! `edgec inspect`: what a model is made of, before and after folding.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use edgec::ir::Graph;
use edgec::pipeline::{prepare, Bindings};

fn print_histogram(h: &BTreeMap<String, usize>) {
    let mut rows: Vec<_> = h.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, n) in rows {
        println!("  {op:<28} {n:>6}");
    }
}

/// Elements and bytes of the constants the graph reads.
fn parameters(g: &Graph) -> (usize, usize) {
    g.used_constants().iter().fold((0, 0), |(n, b), &v| {
        let t = g.value(v).constant.as_ref().expect("used_constants are constants");
        (n + t.len(), b + t.byte_len())
    })
}

pub fn inspect(path: &Path, bindings: &Bindings) -> Result<i32> {
    let model = edgec::front::onnx::load(path)?;
    let g = &model.graph;
    let opsets: Vec<String> = g
        .opsets
        .iter()
        .map(|(d, v)| format!("{} {v}", if d.is_empty() { "ai.onnx" } else { d }))
        .collect();
    println!("model: {}", path.display());
    println!("  IR version {}, producer '{}', opsets: {}", model.ir_version, model.producer, opsets.join(", "));
    println!("inputs:");
    for &i in &g.inputs {
        let v = g.value(i);
        let d = v.declared.as_ref().expect("graph inputs are declared");
        println!("  {:<32} {:<8} {}", v.name, d.dtype.name(), d.dims_string());
    }
    println!("outputs:");
    for &o in &g.outputs {
        let v = g.value(o);
        match &v.declared {
            Some(d) => println!("  {:<32} {:<8} {}", v.name, d.dtype.name(), d.dims_string()),
            None => println!("  {:<32} (type not declared)", v.name),
        }
    }
    let (n, b) = parameters(g);
    println!("parameters: {n} ({b} bytes)");
    println!("ops before folding ({} nodes):", g.nodes.node_count());
    print_histogram(&g.op_histogram());

    let mut code = 0;
    if model.unsupported.is_empty() {
        println!("unsupported nodes: none");
        match prepare(model.graph.clone(), bindings) {
            Ok(folded) => {
                println!("inputs after binding shapes:");
                for &i in &folded.inputs {
                    let v = folded.value(i);
                    println!("  {:<32} {}", v.name, v.ty.as_ref().map(|t| t.to_string()).unwrap_or_default());
                }
                println!("outputs after inference:");
                for &o in &folded.outputs {
                    let v = folded.value(o);
                    println!("  {:<32} {}", v.name, v.ty.as_ref().map(|t| t.to_string()).unwrap_or_default());
                }
                let (n, b) = parameters(&folded);
                println!("weights after folding: {n} elements ({b} bytes)");
                println!("ops after folding ({} nodes):", folded.nodes.node_count());
                print_histogram(&folded.op_histogram());
            }
            Err(e @ edgec::Error::UnresolvedDim { .. }) => {
                println!("ops after folding: not computed: {e}");
            }
            Err(e) => {
                println!("ops after folding: not computed: {e}");
                code = e.exit_code();
            }
        }
    } else {
        println!("unsupported nodes ({}):", model.unsupported.len());
        for e in &model.unsupported {
            println!("  {e}");
        }
        code = 1;
    }
    Ok(code)
}
