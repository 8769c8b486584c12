//! The stable text form of the AST (`dnnc ir --stage ast`): one S-expression per item,
//! spans left out so that the form survives reformatting. `dnnc fmt` is checked to keep
//! this form unchanged.

use super::ast::*;
use std::fmt::Write;

pub fn print_ast(m: &Module) -> String {
    let mut out = String::new();
    for item in &m.items {
        out.push_str(&item_text(item));
        out.push('\n');
    }
    out
}

fn item_text(item: &Item) -> String {
    match item {
        Item::Use(u) => {
            let path: Vec<&str> = u.path.iter().map(|i| i.name.as_str()).collect();
            let names: Vec<&str> = u.names.iter().map(|i| i.name.as_str()).collect();
            format!("(use {} {{{}}})", path.join("::"), names.join(" "))
        }
        Item::Fn(f) => format!(
            "(fn {}{} {}{}\n  {})",
            f.name.name,
            doc_text(&f.doc),
            params_text(&f.params),
            ret_text(&f.ret),
            expr_text(&f.body)
        ),
        Item::Model(m) => format!(
            "(model {}{} {}{}\n  {})",
            m.name.name,
            doc_text(&m.doc),
            params_text(&m.params),
            ret_text(&m.ret),
            expr_text(&m.body)
        ),
        Item::Layer(l) => {
            let mut s = format!("(layer {}{} {}", l.name.name, doc_text(&l.doc), params_text(&l.params));
            for m in &l.members {
                let _ = write!(s, "\n  {}", member_text(m));
            }
            s.push(')');
            s
        }
        Item::Train(t) => {
            let kw = if t.kind == TrainKind::Train { "train" } else { "evaluate" };
            let mut s = format!("({kw} {}", t.model.name);
            for e in &t.entries {
                let _ = write!(s, "\n  {}", entry_text(e));
            }
            s.push(')');
            s
        }
    }
}

fn doc_text(doc: &[String]) -> String {
    if doc.is_empty() { String::new() } else { format!(" (doc {:?})", doc.join("\n")) }
}

fn params_text(ps: &[Param]) -> String {
    let items: Vec<String> = ps
        .iter()
        .map(|p| {
            let default = p.default.as_ref().map(|d| format!(" = {}", expr_text(d))).unwrap_or_default();
            format!("({} {}{}{})", p.name.name, type_text(&p.ty), default, doc_text(&p.doc))
        })
        .collect();
    format!("(params {})", items.join(" "))
}

fn ret_text(r: &Option<TypeExpr>) -> String {
    r.as_ref().map(|t| format!(" (ret {})", type_text(t))).unwrap_or_default()
}

pub fn type_text(t: &TypeExpr) -> String {
    let TypeExpr::Named { name, dims, .. } = t;
    match dims {
        None => name.name.clone(),
        Some(ds) => {
            let parts: Vec<String> = ds
                .iter()
                .map(|d| match d {
                    DimExpr::Lit(n, _) => n.to_string(),
                    DimExpr::Name(i) => i.name.clone(),
                    DimExpr::Ellipsis(_) => "...".into(),
                })
                .collect();
            format!("{}[{}]", name.name, parts.join(", "))
        }
    }
}

fn member_text(m: &Member) -> String {
    match m {
        Member::Tensor(t) => format!(
            "({} {} {} = {}{})",
            if t.trainable { "param" } else { "state" },
            t.name.name,
            type_text(&t.ty),
            expr_text(&t.init),
            doc_text(&t.doc)
        ),
        Member::Let(l) => let_text(l),
        Member::Forward(f) => {
            format!("(forward {}{} {})", params_text(&f.params), ret_text(&f.ret), expr_text(&f.body))
        }
    }
}

fn entry_text(e: &TrainEntry) -> String {
    match e {
        TrainEntry::Setting { key, value } => format!("({} {})", key.name, expr_text(value)),
        TrainEntry::Let(l) => let_text(l),
        TrainEntry::Step { pattern, body, .. } => {
            let stmts: Vec<String> = body
                .iter()
                .map(|s| match s {
                    StepStmt::Let(l) => let_text(l),
                    StepStmt::Update { model, optimizer, loss, .. } => {
                        format!("(update {} {} {})", model.name, optimizer.name, expr_text(loss))
                    }
                    StepStmt::Log { values, .. } => {
                        format!("(log {})", values.iter().map(expr_text).collect::<Vec<_>>().join(" "))
                    }
                })
                .collect();
            format!("(step {} {})", pattern_text(pattern), stmts.join(" "))
        }
    }
}

fn let_text(l: &LetStmt) -> String {
    format!("(let {} {})", pattern_text(&l.pattern), expr_text(&l.value))
}

fn pattern_text(p: &Pattern) -> String {
    match p {
        Pattern::Name(i) => i.name.clone(),
        Pattern::Wild(_) => "_".into(),
        Pattern::Tuple(items, _) => {
            format!("({})", items.iter().map(pattern_text).collect::<Vec<_>>().join(" "))
        }
    }
}

pub fn expr_text(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Name(i) => i.name.clone(),
        ExprKind::Tuple(items) => {
            format!("(tuple {})", items.iter().map(expr_text).collect::<Vec<_>>().join(" "))
        }
        ExprKind::List(items) => format!("[{}]", items.iter().map(expr_text).collect::<Vec<_>>().join(" ")),
        ExprKind::Unary(op, x) => {
            format!("({} {})", if *op == UnOp::Neg { "neg" } else { "not" }, expr_text(x))
        }
        ExprKind::Binary(op, a, b) => format!("({} {} {})", op.symbol(), expr_text(a), expr_text(b)),
        ExprKind::Call { callee, args } => {
            let mut s = format!("(call {}", expr_text(callee));
            for a in args {
                match &a.name {
                    Some(n) => {
                        let _ = write!(s, " {}: {}", n.name, expr_text(&a.value));
                    }
                    None => {
                        let _ = write!(s, " {}", expr_text(&a.value));
                    }
                }
            }
            s.push(')');
            s
        }
        ExprKind::Field(b, f) => format!("(. {} {})", expr_text(b), f.name),
        ExprKind::Block { stmts, value } => {
            let mut s = "(block".to_string();
            for st in stmts {
                let _ = write!(s, " {}", let_text(st));
            }
            let _ = write!(s, " {})", expr_text(value));
            s
        }
        ExprKind::Closure { params, body } => {
            let ps: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            format!("(closure ({}) {})", ps.join(" "), expr_text(body))
        }
        ExprKind::Error => "(error)".into(),
    }
}
