//! The parser: `.dnn` text to AST, through pest. The only file that touches pest.
//!
//! Parsing never fails; it reports. The file is first split into top-level items with the
//! lexer (an item starts at a depth-0 `use`, `fn`, `layer`, `model`, `train` or `evaluate`,
//! together with the doc comments before it), and each chunk is parsed on its own, so one
//! syntax error does not hide the errors of later items. Nesting deeper than
//! [`MAX_NESTING`] is refused before pest sees it, which bounds the parser's recursion.

use super::ast::*;
use super::items::split_items;
use super::lexer::{Tok, tokenize};
use crate::diag::{Code, Diag};
use crate::source::{FileId, Span};
use pest::Parser;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/dnn.pest"]
struct DnnParser;

/// The result of parsing one file: as much AST as could be read, and every error.
#[derive(Debug, Default)]
pub struct Parsed {
    pub module: Module,
    pub diags: Vec<Diag>,
}

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::pipe, Assoc::Left))
        .op(Op::infix(Rule::or, Assoc::Left))
        .op(Op::infix(Rule::and, Assoc::Left))
        .op(Op::infix(Rule::eq, Assoc::Left)
            | Op::infix(Rule::ne, Assoc::Left)
            | Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::matmul, Assoc::Left))
        .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
        .op(Op::infix(Rule::pow, Assoc::Right))
        .op(Op::postfix(Rule::call) | Op::postfix(Rule::field))
});

/// Parses a whole file.
pub fn parse(file: FileId, text: &str) -> Parsed {
    // Bounds pest's work on pathological input, so that no input can make it hang.
    pest::set_call_limit(std::num::NonZeroUsize::new(50_000_000));
    // Track the literal tokens tried at the furthest position, for precise syntax errors.
    pest::set_error_detail(true);
    let mut out = Parsed::default();
    for (start, end) in split_items(file, text, &mut out.diags) {
        let chunk = &text[start..end];
        match DnnParser::parse(Rule::program, chunk) {
            Ok(mut pairs) => {
                let program = pairs.next().expect("pest returns the program rule");
                let mut b = Builder { file, base: start, diags: &mut out.diags };
                for item in program.into_inner() {
                    if item.as_rule() != Rule::EOI {
                        out.module.items.push(b.item(item));
                    }
                }
            }
            Err(e) => out.diags.push(syntax_error(file, start, chunk, &e)),
        }
    }
    out
}

/// A friendly name for what the grammar expected.
fn describe(rule: &Rule) -> &'static str {
    match rule {
        Rule::ident => "a name",
        Rule::int_lit | Rule::float_lit => "a number",
        Rule::string => "a string",
        Rule::expr | Rule::prefix | Rule::neg | Rule::not => "an expression",
        Rule::type_expr | Rule::tensor_type => "a type",
        Rule::dim => "a dimension",
        Rule::EOI => "the end of the item",
        Rule::param | Rule::params => "a parameter",
        Rule::pattern | Rule::wildcard => "a pattern",
        Rule::call => "`(`",
        Rule::field => "`.`",
        Rule::pipe
        | Rule::or
        | Rule::and
        | Rule::eq
        | Rule::ne
        | Rule::le
        | Rule::ge
        | Rule::lt
        | Rule::gt => "an operator",
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::matmul | Rule::pow => "an operator",
        Rule::expr_body => "`=`",
        Rule::ret_type => "`->`",
        Rule::doc | Rule::docs => "a doc comment",
        Rule::param_decl | Rule::state_decl | Rule::forward_decl => "`param`, `state`, `let` or `forward`",
        Rule::let_stmt => "`let`",
        Rule::setting => "a setting",
        Rule::step_block => "`step`",
        Rule::update_stmt | Rule::log_stmt => "`update` or `log`",
        Rule::use_item
        | Rule::fn_item
        | Rule::layer_item
        | Rule::model_item
        | Rule::train_item
        | Rule::evaluate_item => "an item (`use`, `fn`, `layer`, `model`, `train`, `evaluate`)",
        Rule::arg => "an argument",
        Rule::block => "`{`",
        Rule::paren => "`(`",
        Rule::list => "`[`",
        Rule::use_path | Rule::use_group => "a module path",
        Rule::fn_kind => "`fn`",
        Rule::closure => "a closure",
        Rule::bool_lit => "`true` or `false`",
        _ => "something else",
    }
}

fn syntax_error(file: FileId, base: usize, chunk: &str, e: &pest::error::Error<Rule>) -> Diag {
    use pest::error::{ErrorVariant, InputLocation};
    let mut pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().map(|r| describe(r).to_string()).collect()
        }
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // The furthest position where any token (not only a rule) was tried is where the text
    // went wrong; what was tried there is what would have been accepted.
    if let Some(attempts) = e.parse_attempts()
        && attempts.max_position >= pos
    {
        // Rules by their friendly names, literal tokens in backticks; whitespace, comments,
        // character ranges and built-in rules left out. (pest does not export these types.)
        let mut tried: Vec<String> = attempts
            .call_stacks()
            .iter()
            .filter_map(|c| c.deepest.get_rule().or(c.parent.as_ref()))
            .map(|r| describe(r).to_string())
            .collect();
        for t in attempts.expected_tokens() {
            let token = t.to_string();
            let range = token.len() > 2 && token.contains("..") && token.chars().any(|c| c != '.');
            if !token.trim().is_empty()
                && !token.starts_with("//")
                && !token.starts_with("/*")
                && !range
                && token != "BUILTIN_RULE"
            {
                tried.push(format!("`{token}`"));
            }
        }
        if !tried.is_empty() {
            pos = attempts.max_position;
            expected = tried;
        }
    }
    let mut expected = summarize(expected);
    // pest tries `!keyword` past a keyword used as a name and reports the position after
    // it; the keyword itself is the culprit.
    if expected.iter().all(|n| n == "`_`" || n == "a name")
        && let Some(t) =
            tokenize(&chunk[..pos]).into_iter().rev().find(|t| !t.kind.is_some_and(Tok::is_trivia))
        && t.end == pos
        && t.kind.is_some_and(is_keyword)
    {
        pos = t.start;
        expected = vec!["a name".to_string()];
    }

    // Underline the offending token; at the end of the item, point just after its last token.
    let rest = &chunk[pos..];
    let first =
        tokenize(rest).into_iter().find(|t| !t.kind.is_some_and(|k| k.is_trivia() || k == Tok::DocComment));
    let (span, found) = match first {
        Some(t) if rest[..t.start].trim().is_empty() || t.start == 0 => {
            let start = pos + t.start;
            (Span::new(file, base + start, base + pos + t.end), Some(&rest[t.start..t.end]))
        }
        _ => {
            let end = last_code_end(&chunk[..pos]);
            (Span::new(file, base + end, base + end), None)
        }
    };
    let message = match found {
        Some(text) => format!("syntax error: unexpected `{text}`"),
        None => "syntax error: unexpected end of the item".to_string(),
    };
    let label = if expected.is_empty() {
        "unexpected here".to_string()
    } else {
        let names: Vec<&str> = expected.iter().map(String::as_str).collect();
        format!("expected {}", join_or(&names))
    };
    let mut d = Diag::error(Code::E0001, message, span, label);
    let keyword = found.filter(|t| tokenize(t).first().and_then(|k| k.kind).is_some_and(is_keyword));
    if found == Some(":") && expected.iter().any(|n| n == "`->`") {
        d = d.with_help("a return type is written after `->`, as in `fn f(x: f32) -> f32 = x`");
    } else if let Some(k) = keyword
        && expected.iter().any(|n| n == "a name")
    {
        d = d.with_note(format!("`{k}` is a keyword and cannot be used as a name"));
    }
    d
}

/// Groups what was expected so that the label stays short: the tokens that start an
/// expression become "an expression", infix operators "an operator", item keywords
/// "another item".
fn summarize(mut expected: Vec<String>) -> Vec<String> {
    const STARTERS: &[&str] = &[
        "`!`",
        "`\"`",
        "`(`",
        "`-`",
        "`[`",
        "`{`",
        "`|`",
        "`true`",
        "`false`",
        "`_`",
        "a name",
        "a number",
        "a string",
        "a closure",
        "`true` or `false`",
        "an expression",
    ];
    const OPERATORS: &[&str] = &[
        "`!=`",
        "`&&`",
        "`**`",
        "`*`",
        "`+`",
        "`-`",
        "`/`",
        "`<=`",
        "`<`",
        "`==`",
        "`>=`",
        "`>`",
        "`@`",
        "`|>`",
        "`||`",
        "an operator",
    ];
    const ITEMS: &[&str] = &["`evaluate`", "`fn`", "`layer`", "`model`", "`train`", "`use`"];
    expected.retain(|n| n != "something else");
    let count = |set: &[&str], e: &[String]| e.iter().filter(|n| set.contains(&n.as_str())).count();
    if expected.iter().any(|n| n == "an expression") || count(STARTERS, &expected) >= 4 {
        expected.retain(|n| !STARTERS.contains(&n.as_str()));
        expected.push("an expression".into());
    }
    if count(OPERATORS, &expected) >= 4 {
        // Calls and field accesses continue an operand just as operators do.
        expected.retain(|n| !OPERATORS.contains(&n.as_str()) && n != "`(`" && n != "`.`");
        expected.push("an operator".into());
    }
    if count(ITEMS, &expected) >= 3 {
        expected.retain(|n| !ITEMS.contains(&n.as_str()) && !n.starts_with("an item"));
        expected.push("another item".into());
    }
    expected.sort();
    expected.dedup();
    expected
}

/// The byte offset just after the last token that is not a comment or a newline.
fn last_code_end(text: &str) -> usize {
    tokenize(text)
        .iter()
        .rev()
        .find(|t| !t.kind.is_some_and(|k| k.is_trivia() || k == Tok::DocComment))
        .map_or(0, |t| t.end)
}

fn is_keyword(k: Tok) -> bool {
    matches!(
        k,
        Tok::Use
            | Tok::Fn
            | Tok::Layer
            | Tok::Param
            | Tok::State
            | Tok::Forward
            | Tok::Model
            | Tok::Train
            | Tok::Evaluate
            | Tok::Let
            | Tok::Step
            | Tok::Update
            | Tok::With
            | Tok::Minimizing
            | Tok::True
            | Tok::False
    )
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Builds AST nodes from pest pairs, shifting spans by the chunk's offset in the file.
struct Builder<'d> {
    file: FileId,
    base: usize,
    diags: &'d mut Vec<Diag>,
}

impl Builder<'_> {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, self.base + s.start(), self.base + s.end())
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident { name: p.as_str().to_string(), span: self.span(&p) }
    }

    fn docs(&self, p: Pair<Rule>) -> Vec<String> {
        p.into_inner().map(|d| d.as_str().trim_start_matches("///").trim().to_string()).collect()
    }

    fn item(&mut self, p: Pair<Rule>) -> Item {
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut inner = p.into_inner();
        match rule {
            Rule::use_item => {
                let mut path: Vec<Ident> =
                    inner.next().expect("path").into_inner().map(|i| self.ident(i)).collect();
                let names = match inner.next() {
                    Some(group) => group.into_inner().map(|i| self.ident(i)).collect(),
                    // `use a::b::c` imports `c` from `a::b`.
                    None => path.pop().into_iter().collect(),
                };
                Item::Use(UseItem { path, names, span })
            }
            Rule::fn_item => {
                let doc = self.docs(inner.next().expect("docs"));
                let name = self.ident(inner.next().expect("name"));
                let params = self.params(inner.next().expect("params"));
                let (ret, body) = self.ret_and_body(inner);
                Item::Fn(FnDef { doc, name, params, ret, body, span })
            }
            Rule::model_item => {
                let doc = self.docs(inner.next().expect("docs"));
                let name = self.ident(inner.next().expect("name"));
                let params = self.params(inner.next().expect("params"));
                let (ret, body) = self.ret_and_body(inner);
                Item::Model(ModelDef { doc, name, params, ret, body, span })
            }
            Rule::layer_item => {
                let doc = self.docs(inner.next().expect("docs"));
                let name = self.ident(inner.next().expect("name"));
                let mut params = Vec::new();
                let mut members = Vec::new();
                for m in inner {
                    match m.as_rule() {
                        Rule::params => params = self.params(m),
                        _ => members.push(self.member(m)),
                    }
                }
                Item::Layer(LayerDef { doc, name, params, members, span })
            }
            Rule::train_item | Rule::evaluate_item => {
                let kind = if rule == Rule::train_item { TrainKind::Train } else { TrainKind::Evaluate };
                let model = self.ident(inner.next().expect("model"));
                let entries = inner.map(|e| self.train_entry(e)).collect();
                Item::Train(TrainDef { kind, model, entries, span })
            }
            other => unreachable!("not an item rule: {other:?}"),
        }
    }

    fn ret_and_body(&mut self, inner: Pairs<Rule>) -> (Option<TypeExpr>, Expr) {
        let mut ret = None;
        let mut body = None;
        for p in inner {
            match p.as_rule() {
                Rule::ret_type => ret = Some(self.type_expr(p.into_inner().next().expect("type"))),
                Rule::expr_body => body = Some(self.expr(p.into_inner().next().expect("expr"))),
                Rule::block => body = Some(self.block(p)),
                other => unreachable!("unexpected {other:?} in a signature"),
            }
        }
        (ret, body.expect("the grammar requires a body"))
    }

    fn params(&mut self, p: Pair<Rule>) -> Vec<Param> {
        p.into_inner().map(|q| self.param(q)).collect()
    }

    fn param(&mut self, p: Pair<Rule>) -> Param {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let doc = self.docs(inner.next().expect("docs"));
        let name = self.ident(inner.next().expect("name"));
        let ty = self.type_expr(inner.next().expect("type"));
        let default = inner.next().map(|d| self.expr(d));
        Param { doc, name, ty, default, span }
    }

    fn type_expr(&mut self, p: Pair<Rule>) -> TypeExpr {
        let span = self.span(&p);
        let inner = p.into_inner().next().expect("type body");
        match inner.as_rule() {
            Rule::ident | Rule::fn_kind => TypeExpr::Named { name: self.ident(inner), dims: None, span },
            Rule::tensor_type => {
                let mut parts = inner.into_inner();
                let name = self.ident(parts.next().expect("dtype"));
                let dims = parts.map(|d| self.dim(d)).collect();
                TypeExpr::Named { name, dims: Some(dims), span }
            }
            other => unreachable!("unexpected {other:?} in a type"),
        }
    }

    fn dim(&mut self, p: Pair<Rule>) -> DimExpr {
        let d = p.into_inner().next().expect("dim body");
        let span = self.span(&d);
        match d.as_rule() {
            Rule::ellipsis => DimExpr::Ellipsis(span),
            Rule::ident => DimExpr::Name(self.ident(d)),
            Rule::int_lit => match self.int(&d) {
                Some(n) => DimExpr::Lit(n, span),
                None => DimExpr::Lit(0, span),
            },
            other => unreachable!("unexpected {other:?} in a dimension"),
        }
    }

    fn member(&mut self, p: Pair<Rule>) -> Member {
        let span = self.span(&p);
        let rule = p.as_rule();
        match rule {
            Rule::param_decl | Rule::state_decl => {
                let mut inner = p.into_inner();
                let doc = self.docs(inner.next().expect("docs"));
                let name = self.ident(inner.next().expect("name"));
                let ty = self.type_expr(inner.next().expect("type"));
                let init = self.expr(inner.next().expect("init"));
                Member::Tensor(TensorDecl { doc, trainable: rule == Rule::param_decl, name, ty, init, span })
            }
            Rule::let_stmt => Member::Let(self.let_stmt(p)),
            Rule::forward_decl => {
                let mut inner = p.into_inner();
                let doc = self.docs(inner.next().expect("docs"));
                let params = self.params(inner.next().expect("params"));
                let (ret, body) = self.ret_and_body(inner);
                Member::Forward(ForwardDef { doc, params, ret, body, span })
            }
            other => unreachable!("unexpected {other:?} in a layer"),
        }
    }

    fn train_entry(&mut self, p: Pair<Rule>) -> TrainEntry {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::setting => {
                let mut inner = p.into_inner();
                let key = self.ident(inner.next().expect("key"));
                let value = self.expr(inner.next().expect("value"));
                TrainEntry::Setting { key, value }
            }
            Rule::let_stmt => TrainEntry::Let(self.let_stmt(p)),
            Rule::step_block => {
                let mut inner = p.into_inner();
                let pattern = self.pattern(inner.next().expect("pattern"));
                let body = inner.map(|s| self.step_stmt(s)).collect();
                TrainEntry::Step { pattern, body, span }
            }
            other => unreachable!("unexpected {other:?} in a train block"),
        }
    }

    fn step_stmt(&mut self, p: Pair<Rule>) -> StepStmt {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::let_stmt => StepStmt::Let(self.let_stmt(p)),
            Rule::update_stmt => {
                let mut inner = p.into_inner();
                let model = self.ident(inner.next().expect("model"));
                let optimizer = self.ident(inner.next().expect("optimizer"));
                let loss = self.expr(inner.next().expect("loss"));
                StepStmt::Update { model, optimizer, loss, span }
            }
            Rule::log_stmt => StepStmt::Log { values: p.into_inner().map(|e| self.expr(e)).collect(), span },
            other => unreachable!("unexpected {other:?} in a step"),
        }
    }

    fn let_stmt(&mut self, p: Pair<Rule>) -> LetStmt {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let pattern = self.pattern(inner.next().expect("pattern"));
        let value = self.expr(inner.next().expect("value"));
        LetStmt { pattern, value, span }
    }

    fn pattern(&mut self, p: Pair<Rule>) -> Pattern {
        let span = self.span(&p);
        let mut inner: Vec<Pair<Rule>> = p.into_inner().collect();
        if inner.len() == 1 && inner[0].as_rule() != Rule::pattern {
            let q = inner.remove(0);
            return match q.as_rule() {
                Rule::wildcard => Pattern::Wild(span),
                _ => Pattern::Name(self.ident(q)),
            };
        }
        Pattern::Tuple(inner.into_iter().map(|q| self.pattern(q)).collect(), span)
    }

    fn block(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let mut stmts = Vec::new();
        let mut value = None;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::let_stmt => stmts.push(self.let_stmt(q)),
                _ => value = Some(self.expr(q)),
            }
        }
        let value = Box::new(value.expect("a block ends with an expression"));
        Expr { kind: ExprKind::Block { stmts, value }, span }
    }

    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        let pairs = p.into_inner();
        // The Pratt parser's closures cannot each borrow `self` mutably, so they share a
        // builder through a RefCell; they are never called re-entrantly.
        let this =
            std::cell::RefCell::new(Builder { file: self.file, base: self.base, diags: &mut *self.diags });
        PRATT
            .map_primary(|q| this.borrow_mut().primary(q))
            .map_prefix(|op, rhs| {
                let span = this.borrow().span(&op).to(rhs.span);
                let u = if op.as_rule() == Rule::neg { UnOp::Neg } else { UnOp::Not };
                Expr { kind: ExprKind::Unary(u, Box::new(rhs)), span }
            })
            .map_postfix(|lhs, op| this.borrow_mut().postfix(lhs, op))
            .map_infix(|lhs, op, rhs| {
                let span = lhs.span.to(rhs.span);
                Expr { kind: ExprKind::Binary(binop(op.as_rule()), Box::new(lhs), Box::new(rhs)), span }
            })
            .parse(pairs)
    }

    fn postfix(&mut self, lhs: Expr, op: Pair<Rule>) -> Expr {
        let span = lhs.span.to(self.span(&op));
        match op.as_rule() {
            Rule::call => {
                let args = op.into_inner().map(|a| self.arg(a)).collect();
                Expr { kind: ExprKind::Call { callee: Box::new(lhs), args }, span }
            }
            Rule::field => {
                let name = self.ident(op.into_inner().next().expect("field name"));
                Expr { kind: ExprKind::Field(Box::new(lhs), name), span }
            }
            other => unreachable!("unexpected postfix {other:?}"),
        }
    }

    fn arg(&mut self, p: Pair<Rule>) -> Arg {
        let span = self.span(&p);
        let parts: Vec<Pair<Rule>> = p.into_inner().collect();
        match parts.len() {
            2 => {
                let mut it = parts.into_iter();
                let name = Some(self.ident(it.next().expect("name")));
                Arg { name, value: self.expr(it.next().expect("value")), span }
            }
            _ => Arg { name: None, value: self.expr(parts.into_iter().next().expect("value")), span },
        }
    }

    fn primary(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::int_lit => self.int(&p).map(ExprKind::Int).unwrap_or(ExprKind::Error),
            Rule::float_lit => self.float(&p).map(ExprKind::Float).unwrap_or(ExprKind::Error),
            Rule::string => self.string(&p).map(ExprKind::Str).unwrap_or(ExprKind::Error),
            Rule::bool_lit => ExprKind::Bool(p.as_str() == "true"),
            Rule::ident => ExprKind::Name(self.ident(p)),
            Rule::paren => {
                let mut items: Vec<Expr> = p.clone().into_inner().map(|e| self.expr(e)).collect();
                let trailing_comma = p.as_str().trim_end_matches(')').trim_end().ends_with(',');
                if items.len() == 1 && !trailing_comma {
                    // A parenthesized expression keeps its inner span for precise labels.
                    return items.remove(0);
                }
                ExprKind::Tuple(items)
            }
            Rule::list => ExprKind::List(p.into_inner().map(|e| self.expr(e)).collect()),
            Rule::block => return self.block(p),
            Rule::closure => {
                let mut params = Vec::new();
                let mut body = None;
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::ident => params.push(self.ident(q)),
                        _ => body = Some(self.expr(q)),
                    }
                }
                ExprKind::Closure { params, body: Box::new(body.expect("closure body")) }
            }
            other => unreachable!("unexpected primary {other:?}"),
        };
        Expr { kind, span }
    }

    fn int(&mut self, p: &Pair<Rule>) -> Option<i64> {
        let text: String = p.as_str().chars().filter(|c| *c != '_').collect();
        match text.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.diags.push(
                    Diag::error(
                        Code::E0004,
                        "integer literal out of range",
                        self.span(p),
                        "does not fit in i64",
                    )
                    .with_note("integer literals range from -9223372036854775808 to 9223372036854775807"),
                );
                None
            }
        }
    }

    fn float(&mut self, p: &Pair<Rule>) -> Option<f64> {
        let text: String = p.as_str().chars().filter(|c| *c != '_').collect();
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.diags.push(Diag::error(
                    Code::E0004,
                    "float literal out of range",
                    self.span(p),
                    "not finite in double precision",
                ));
                None
            }
        }
    }

    fn string(&mut self, p: &Pair<Rule>) -> Option<String> {
        let raw = p.as_str();
        let body = &raw[1..raw.len() - 1];
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                other => {
                    let shown = other.map(|c| format!("\\{c}")).unwrap_or_else(|| "\\".into());
                    self.diags.push(
                        Diag::error(
                            Code::E0005,
                            format!("unknown escape `{shown}`"),
                            self.span(p),
                            "in this string",
                        )
                        .with_help("the escapes are \\\\, \\\", \\n and \\t"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }
}

fn binop(rule: Rule) -> BinOp {
    match rule {
        Rule::pipe => BinOp::Pipe,
        Rule::or => BinOp::Or,
        Rule::and => BinOp::And,
        Rule::eq => BinOp::Eq,
        Rule::ne => BinOp::Ne,
        Rule::lt => BinOp::Lt,
        Rule::le => BinOp::Le,
        Rule::gt => BinOp::Gt,
        Rule::ge => BinOp::Ge,
        Rule::add => BinOp::Add,
        Rule::sub => BinOp::Sub,
        Rule::mul => BinOp::Mul,
        Rule::div => BinOp::Div,
        Rule::matmul => BinOp::MatMul,
        Rule::pow => BinOp::Pow,
        other => unreachable!("not a binary operator: {other:?}"),
    }
}
