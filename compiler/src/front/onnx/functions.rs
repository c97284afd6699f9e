//! Model-local functions (`ModelProto.functions`, written by newer exporters): each
//! call is replaced by the function's body before import, with its values renamed
//! apart and attribute references (`ref_attr_name`) resolved from the call site.

use std::collections::HashMap;

use onnx_protobuf::{AttributeProto, FunctionProto, GraphProto, NodeProto};

use crate::error::{Error, Result};

/// Calls nested deeper than this are taken for recursion.
const MAX_DEPTH: usize = 32;

type Key = (String, String, String);

fn key(domain: &str, name: &str, overload: &str) -> Key {
    (domain.to_string(), name.to_string(), overload.to_string())
}

/// Expands every call of a local function in `g` (and in its subgraphs).
pub fn inline_functions(g: &mut GraphProto, functions: &[FunctionProto]) -> Result<()> {
    if functions.is_empty() {
        return Ok(());
    }
    let table: HashMap<Key, &FunctionProto> =
        functions.iter().map(|f| (key(&f.domain, &f.name, &f.overload), f)).collect();
    let mut counter = 0usize;
    g.node = expand(std::mem::take(&mut g.node), &table, &mut counter, 0)?;
    Ok(())
}

fn expand(nodes: Vec<NodeProto>, table: &HashMap<Key, &FunctionProto>, counter: &mut usize, depth: usize) -> Result<Vec<NodeProto>> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidModel("local functions call each other more than 32 deep (recursion?)".into()));
    }
    let mut out = Vec::with_capacity(nodes.len());
    for mut n in nodes {
        for a in n.attribute.iter_mut() {
            if let Some(g) = a.g.as_mut() {
                g.node = expand(std::mem::take(&mut g.node), table, counter, depth + 1)?;
            }
            for g in a.graphs.iter_mut() {
                g.node = expand(std::mem::take(&mut g.node), table, counter, depth + 1)?;
            }
        }
        let Some(f) = table.get(&key(&n.domain, &n.op_type, &n.overload)) else {
            out.push(n);
            continue;
        };
        *counter += 1;
        let body = instantiate(&n, f, *counter)?;
        out.extend(expand(body, table, counter, depth + 1)?);
    }
    Ok(out)
}

/// The function body for one call: formal names bound to the call's actual names,
/// internal names made unique, attribute references replaced.
fn instantiate(call: &NodeProto, f: &FunctionProto, id: usize) -> Result<Vec<NodeProto>> {
    let prefix = format!("{}__{}_{id}__", if call.name.is_empty() { &f.name } else { &call.name }, f.name);
    let mut rename: HashMap<String, String> = HashMap::new();
    for (k, formal) in f.input.iter().enumerate() {
        rename.insert(formal.clone(), call.input.get(k).cloned().unwrap_or_default());
    }
    for (k, formal) in f.output.iter().enumerate() {
        rename.insert(formal.clone(), call.output.get(k).cloned().unwrap_or_default());
    }
    let mut attrs: HashMap<&str, &AttributeProto> = f.attribute_proto.iter().map(|a| (a.name.as_str(), a)).collect();
    for a in &call.attribute {
        attrs.insert(a.name.as_str(), a);
    }
    let map = |name: &String, rename: &mut HashMap<String, String>| -> String {
        if name.is_empty() {
            return String::new();
        }
        rename.entry(name.clone()).or_insert_with(|| format!("{prefix}{name}")).clone()
    };
    let mut body = Vec::with_capacity(f.node.len());
    for n in &f.node {
        let mut n = n.clone();
        n.input = n.input.iter().map(|i| map(i, &mut rename)).collect();
        n.output = n.output.iter().map(|o| map(o, &mut rename)).collect();
        n.name = format!("{prefix}{}", n.name);
        let mut resolved = Vec::with_capacity(n.attribute.len());
        for a in n.attribute {
            if a.ref_attr_name.is_empty() {
                resolved.push(a);
                continue;
            }
            // An unset reference drops the attribute, so the op's default applies.
            if let Some(actual) = attrs.get(a.ref_attr_name.as_str()) {
                let mut v = (*actual).clone();
                v.name = a.name.clone();
                resolved.push(v);
            }
        }
        n.attribute = resolved;
        body.push(n);
    }
    Ok(body)
}
