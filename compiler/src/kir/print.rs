//! A readable text form of KIR, for debugging, reports and tests.

use std::fmt::{self, Display, Formatter, Write};

use super::{BinOp, BufKind, Expr, Kernel, Lit, Program, Stmt, UnOp};

impl Display for Program {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, b) in self.buffers.iter().enumerate() {
            let kind = match &b.kind {
                BufKind::Input(k) => format!("input {k}"),
                BufKind::Output(k) => format!("output {k}"),
                BufKind::Weight(_) => "weight".into(),
                BufKind::Temp => "temp".into(),
            };
            writeln!(f, "b{i}: {}{:?} {kind} ({})", b.dtype, b.shape, b.name)?;
        }
        for k in &self.kernels {
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

impl Display for Kernel {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel {} {{", self.name)?;
        let mut s = String::new();
        block(&mut s, &self.body, 1)?;
        f.write_str(&s)?;
        writeln!(f, "}}")
    }
}

fn block(out: &mut String, stmts: &[Stmt], depth: usize) -> fmt::Result {
    let pad = "  ".repeat(depth);
    for s in stmts {
        match s {
            Stmt::Loop { var, extent, body } => {
                writeln!(out, "{pad}for v{} in 0..{extent} {{", var.0)?;
                block(out, body, depth + 1)?;
                writeln!(out, "{pad}}}")?;
            }
            Stmt::Set { var, value } => writeln!(out, "{pad}v{} = {}", var.0, ExprFmt(value))?,
            Stmt::Store { buf, index, value } => writeln!(out, "{pad}b{}[{}] = {}", buf.0, ExprFmt(index), ExprFmt(value))?,
            Stmt::If { cond, then, els } => {
                writeln!(out, "{pad}if {} {{", ExprFmt(cond))?;
                block(out, then, depth + 1)?;
                if !els.is_empty() {
                    writeln!(out, "{pad}}} else {{")?;
                    block(out, els, depth + 1)?;
                }
                writeln!(out, "{pad}}}")?;
            }
            Stmt::Fail(code) => writeln!(out, "{pad}fail {code}")?,
        }
    }
    Ok(())
}

struct ExprFmt<'a>(&'a Expr);

fn binop(op: BinOp) -> &'static str {
    use BinOp::*;
    match op {
        Add => "+",
        Sub => "-",
        Mul => "*",
        Div => "/",
        Rem => "%",
        And => "&",
        Or => "|",
        Xor => "^",
        Shl => "<<",
        Shr => ">>",
        UShr => ">>>",
        Dot2 => "dot2",
        Eq => "==",
        Ne => "!=",
        Lt => "<",
        Le => "<=",
        Gt => ">",
        Ge => ">=",
        Min => "min",
        Max => "max",
        Pow => "pow",
    }
}

impl Display for ExprFmt<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Expr::Lit(l) => match l {
                Lit::F32(v) => write!(f, "{v:?}f"),
                Lit::F64(v) => write!(f, "{v:?}d"),
                Lit::I32(v) => write!(f, "{v}i"),
                Lit::I64(v) => write!(f, "{v}l"),
                Lit::Index(v) => write!(f, "{v}"),
                Lit::Bool(v) => write!(f, "{v}"),
            },
            Expr::Var(v) => write!(f, "v{}", v.0),
            Expr::Load { buf, index } => write!(f, "b{}[{}]", buf.0, ExprFmt(index)),
            Expr::Unary(op, a) => match op {
                UnOp::Neg => write!(f, "-{}", ExprFmt(a)),
                UnOp::Not => write!(f, "!{}", ExprFmt(a)),
                op => write!(f, "{}({})", format!("{op:?}").to_lowercase(), ExprFmt(a)),
            },
            Expr::Binary(op @ (BinOp::Min | BinOp::Max | BinOp::Pow), a, b) => {
                write!(f, "{}({}, {})", binop(*op), ExprFmt(a), ExprFmt(b))
            }
            Expr::Binary(op, a, b) => write!(f, "({} {} {})", ExprFmt(a), binop(*op), ExprFmt(b)),
            Expr::Select(c, a, b) => write!(f, "({} ? {} : {})", ExprFmt(c), ExprFmt(a), ExprFmt(b)),
            Expr::Cast(t, a) => write!(f, "{}({})", format!("{t:?}").to_lowercase(), ExprFmt(a)),
            Expr::Bitcast(t, a) => write!(f, "bits_{}({})", format!("{t:?}").to_lowercase(), ExprFmt(a)),
            Expr::Fma(a, b, c) => write!(f, "fma({}, {}, {})", ExprFmt(a), ExprFmt(b), ExprFmt(c)),
        }
    }
}
