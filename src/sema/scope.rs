//! Modules and name resolution across files and the standard library.
//!
//! A module is one parsed file. Its scope holds its own definitions and what it imports
//! with `use`; a name not found there is looked up in the prelude (`std::activations`,
//! `std::math`, `std::losses`) and then among the built-in primitives. The standard library
//! is compiled into the binary, so an installed `dnnc` works from any folder, and parsed
//! once per process: its files take the first ids of every source map.

use super::builtins::Builtin;
use crate::diag::{Code, Diag, did_you_mean};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::{self, ast};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::LazyLock;

/// The standard library's modules, by name, with their text.
pub const STDLIB: &[(&str, &str)] = &[
    ("activations", include_str!("../../stdlib/activations.dnn")),
    ("math", include_str!("../../stdlib/math.dnn")),
    ("losses", include_str!("../../stdlib/losses.dnn")),
    ("layers", include_str!("../../stdlib/layers.dnn")),
];

/// The standard modules every file sees without a `use`.
const PRELUDE: &[&str] = &["activations", "math", "losses"];

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModuleId(pub usize);

/// What a name refers to at module level.
#[derive(Clone, Debug)]
pub enum DefRef {
    Fn(Rc<ast::FnDef>, ModuleId),
    Layer(Rc<ast::LayerDef>, ModuleId),
    Model(Rc<ast::ModelDef>, ModuleId),
    Builtin(Builtin),
}

impl DefRef {
    pub fn name(&self) -> &str {
        match self {
            DefRef::Fn(d, _) => &d.name.name,
            DefRef::Layer(d, _) => &d.name.name,
            DefRef::Model(d, _) => &d.name.name,
            DefRef::Builtin(b) => b.name(),
        }
    }

    /// Where it is defined, if in source.
    pub fn span(&self) -> Option<Span> {
        match self {
            DefRef::Fn(d, _) => Some(d.name.span),
            DefRef::Layer(d, _) => Some(d.name.span),
            DefRef::Model(d, _) => Some(d.name.span),
            DefRef::Builtin(_) => None,
        }
    }
}

pub struct Module {
    pub name: String,
    pub ast: ast::Module,
    pub names: HashMap<String, DefRef>,
}

/// Every module of one compilation.
pub struct Modules {
    pub list: Vec<Module>,
    prelude: Vec<ModuleId>,
}

impl Modules {
    /// Looks a name up from inside module `m`.
    pub fn lookup(&self, m: ModuleId, name: &str) -> Option<DefRef> {
        if let Some(d) = self.list[m.0].names.get(name) {
            return Some(d.clone());
        }
        for p in &self.prelude {
            if let Some(d) = self.list[p.0].names.get(name) {
                return Some(d.clone());
            }
        }
        Builtin::from_name(name).map(DefRef::Builtin)
    }

    /// Every name visible from module `m`, for "did you mean".
    pub fn visible_names(&self, m: ModuleId) -> Vec<String> {
        let mut names: Vec<String> = self.list[m.0].names.keys().cloned().collect();
        for p in &self.prelude {
            names.extend(self.list[p.0].names.keys().cloned());
        }
        names.extend(Builtin::ALL.iter().map(|b| b.name().to_string()));
        names
    }
}

/// The standard library parsed once per process. Its files always take the first file
/// ids of a [`SourceMap`], in `STDLIB` order, so that the cached spans stay valid.
static STD_PARSED: LazyLock<Vec<syntax::Parsed>> = LazyLock::new(|| {
    STDLIB.iter().enumerate().map(|(i, (_, text))| syntax::parse(FileId(i as u32), text)).collect()
});

/// Parses a file and every module it imports, transitively, and resolves imports.
pub fn load(
    entry_name: &str,
    entry_text: &str,
    sources: &mut SourceMap,
    diags: &mut Vec<Diag>,
) -> (Modules, ModuleId) {
    debug_assert!(sources.files().get(0).is_err(), "the standard library takes the first file ids");
    for (name, text) in STDLIB {
        sources.add(format!("<std>/{name}.dnn"), *text);
    }
    let mut loader = Loader { sources, diags, modules: Vec::new(), by_key: HashMap::new() };
    let prelude: Vec<ModuleId> = PRELUDE.iter().filter_map(|p| loader.std_module(p)).collect();
    let base = Path::new(entry_name).parent().map(Path::to_path_buf).unwrap_or_default();
    let entry =
        loader.add_module(entry_name.to_string(), entry_name.to_string(), entry_text.to_string(), Some(base));
    let Loader { modules, .. } = loader;
    (Modules { list: modules, prelude }, entry)
}

struct Loader<'a> {
    sources: &'a mut SourceMap,
    diags: &'a mut Vec<Diag>,
    modules: Vec<Module>,
    by_key: HashMap<String, ModuleId>,
}

impl Loader<'_> {
    fn std_module(&mut self, name: &str) -> Option<ModuleId> {
        let key = format!("std::{name}");
        if let Some(&id) = self.by_key.get(&key) {
            return Some(id);
        }
        let index = STDLIB.iter().position(|(n, _)| *n == name)?;
        let parsed = &STD_PARSED[index];
        Some(self.register(key, parsed.module.clone(), parsed.diags.clone(), None))
    }

    /// Parses and registers a module; `dir` is where its relative imports are found.
    fn add_module(&mut self, key: String, display: String, text: String, dir: Option<PathBuf>) -> ModuleId {
        let file = self.sources.add(display, text);
        let parsed = syntax::parse(file, self.sources.text(file));
        self.register(key, parsed.module, parsed.diags, dir)
    }

    /// Registers a parsed module: its definitions, then its imports (which may load more
    /// modules). `dir` is `None` for the standard library.
    fn register(
        &mut self,
        key: String,
        ast: ast::Module,
        diags: Vec<Diag>,
        dir: Option<PathBuf>,
    ) -> ModuleId {
        self.diags.extend(diags);
        let id = ModuleId(self.modules.len());
        self.by_key.insert(key.clone(), id);
        self.modules.push(Module { name: key, ast, names: HashMap::new() });

        // Own definitions first, then imports (which may load more modules).
        let items = self.modules[id.0].ast.items.clone();
        let mut names: HashMap<String, DefRef> = HashMap::new();
        let mut define = |name: &ast::Ident, def: DefRef, diags: &mut Vec<Diag>| {
            if let Some(prev) = names.get(&name.name) {
                let mut d = Diag::error(
                    Code::E0103,
                    format!("`{}` is defined more than once", name.name),
                    name.span,
                    "defined again here",
                );
                if let Some(s) = prev.span() {
                    d = d.with_label(s, "first defined here");
                }
                diags.push(d);
            } else {
                names.insert(name.name.clone(), def);
            }
        };
        for item in &items {
            match item {
                ast::Item::Fn(f) => define(&f.name, DefRef::Fn(Rc::new(f.clone()), id), self.diags),
                ast::Item::Layer(l) => define(&l.name, DefRef::Layer(Rc::new(l.clone()), id), self.diags),
                ast::Item::Model(m) => define(&m.name, DefRef::Model(Rc::new(m.clone()), id), self.diags),
                _ => {}
            }
        }
        for item in &items {
            if let ast::Item::Use(u) = item {
                for (name, def) in self.resolve_use(u, dir.as_deref()) {
                    define(&name, def, self.diags);
                }
            }
        }
        self.modules[id.0].names = names;
        id
    }

    fn resolve_use(&mut self, u: &ast::UseItem, dir: Option<&Path>) -> Vec<(ast::Ident, DefRef)> {
        let path: Vec<&str> = u.path.iter().map(|i| i.name.as_str()).collect();
        let path_span = match (u.path.first(), u.path.last()) {
            (Some(a), Some(b)) => a.span.to(b.span),
            _ => u.span,
        };
        let module = match path.as_slice() {
            ["std", name] => match self.std_module(name) {
                Some(m) => m,
                None => {
                    let names: Vec<&str> = STDLIB.iter().map(|(n, _)| *n).collect();
                    let mut d = Diag::error(
                        Code::E0102,
                        format!("there is no module `std::{name}`"),
                        path_span,
                        "unknown module",
                    )
                    .with_note(format!(
                        "the standard modules are {}",
                        names.iter().map(|n| format!("`std::{n}`")).collect::<Vec<_>>().join(", ")
                    ));
                    if let Some(s) = did_you_mean(name, names.iter().copied()) {
                        d = d.with_help(format!("did you mean `std::{s}`?"));
                    }
                    self.diags.push(d);
                    return Vec::new();
                }
            },
            [] => {
                self.diags.push(Diag::error(
                    Code::E0102,
                    "a `use` needs a module path",
                    u.span,
                    "no module named",
                ));
                return Vec::new();
            }
            segments => {
                let Some(dir) = dir else {
                    self.diags.push(Diag::error(
                        Code::E0102,
                        "the standard library imports only from `std`",
                        path_span,
                        "not a standard module",
                    ));
                    return Vec::new();
                };
                let mut file = dir.to_path_buf();
                for s in segments {
                    file.push(s);
                }
                file.set_extension("dnn");
                let key = file.to_string_lossy().into_owned();
                if let Some(&m) = self.by_key.get(&key) {
                    m
                } else {
                    match std::fs::read(&file) {
                        Ok(bytes) => match String::from_utf8(bytes) {
                            Ok(text) => {
                                let sub_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                                self.add_module(key.clone(), key, text, Some(sub_dir))
                            }
                            Err(e) => {
                                self.diags.push(Diag::error(
                                    Code::E0002,
                                    format!(
                                        "`{}` is not valid UTF-8 (byte {})",
                                        file.display(),
                                        e.utf8_error().valid_up_to()
                                    ),
                                    path_span,
                                    "imported here",
                                ));
                                return Vec::new();
                            }
                        },
                        Err(e) => {
                            self.diags.push(
                                Diag::error(
                                    Code::E0102,
                                    format!("cannot read module `{}`: {e}", segments.join("::")),
                                    path_span,
                                    format!("looked for {}", file.display()),
                                )
                                .with_note(
                                    "a module path names a `.dnn` file relative to the importing file",
                                ),
                            );
                            return Vec::new();
                        }
                    }
                }
            }
        };
        let mut out = Vec::new();
        for name in &u.names {
            match self.modules[module.0].names.get(&name.name) {
                Some(def) => out.push((name.clone(), def.clone())),
                _ => {
                    let candidates: Vec<String> = self.modules[module.0].names.keys().cloned().collect();
                    let mut d = Diag::error(
                        Code::E0102,
                        format!("`{}` is not defined in `{}`", name.name, self.modules[module.0].name),
                        name.span,
                        "not found in this module",
                    );
                    if let Some(s) = did_you_mean(&name.name, candidates.iter().map(String::as_str)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.diags.push(d);
                }
            }
        }
        out
    }
}
