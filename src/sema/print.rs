//! The stable text form of a checked program (`dnnc ir --stage typed`): each model's
//! graph, then each training block's settings and graphs.

use super::{Program, TrainSpec};
use crate::ir::print_graph;
use crate::syntax::ast::TrainKind;
use std::fmt::Write;

pub fn print_program(p: &Program) -> String {
    let mut out = String::new();
    for m in &p.models {
        out.push_str(&print_graph(&m.graph));
        out.push('\n');
    }
    for t in &p.trains {
        out.push_str(&print_train(t));
        out.push('\n');
    }
    out
}

fn print_train(t: &TrainSpec) -> String {
    let mut out = String::new();
    let kw = if t.kind == TrainKind::Train { "train" } else { "evaluate" };
    let _ = writeln!(out, "{kw} {} {{", t.model);
    let _ = writeln!(out, "  data = {}", runtime_text(&t.data));
    if let Some(v) = &t.validation_data {
        let _ = writeln!(out, "  validation_data = {}", runtime_text(v));
    }
    if let Some(l) = &t.loss {
        let _ = writeln!(out, "  loss = {l} (labels: {:?}, from_logits: {})", t.label_kind, t.from_logits);
    }
    if let Some(o) = &t.optimizer {
        let _ = writeln!(out, "  optimizer = {}", runtime_text(o));
    }
    if let Some(s) = &t.schedule {
        let _ = writeln!(out, "  schedule = {}", runtime_text(s));
    }
    let s = &t.settings;
    if t.kind == TrainKind::Train {
        let _ = writeln!(
            out,
            "  epochs = {}, batch = {}, validation = {}, seed = {}, shuffle = {}",
            s.epochs, s.batch, s.validation, s.seed, s.shuffle
        );
    } else {
        let _ = writeln!(out, "  batch = {}", s.batch);
    }
    for (k, v) in &s.extra {
        let _ = writeln!(out, "  {k} = {v:?}");
    }
    let metrics: Vec<String> = t.metrics.iter().map(runtime_text).collect();
    let _ = writeln!(out, "  metrics = [{}]", metrics.join(", "));
    if let Some(g) = &t.train_graph {
        for line in print_graph(g).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    for line in print_graph(&t.eval_graph).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("}\n");
    out
}

fn runtime_text(r: &super::RuntimeValue) -> String {
    if r.args.is_empty() {
        return r.name.clone();
    }
    let args: Vec<String> = r.args.iter().map(|(k, v)| format!("{k}: {}", literal_text(v))).collect();
    format!("{}({})", r.name, args.join(", "))
}

fn literal_text(l: &super::Literal) -> String {
    match l {
        super::Literal::Int(n) => n.to_string(),
        super::Literal::Float(v) => format!("{v:?}"),
        super::Literal::Bool(b) => b.to_string(),
        super::Literal::Str(s) => format!("{s:?}"),
        super::Literal::List(items) => {
            format!("[{}]", items.iter().map(literal_text).collect::<Vec<_>>().join(", "))
        }
    }
}
