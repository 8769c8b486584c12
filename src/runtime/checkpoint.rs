//! Checkpoints: parameters and optimizer state in one safetensors file.
//!
//! Layout: parameter `<name>` is stored as tensor `param/<name>`, optimizer state tensor
//! `<name>` (see [`OptimizerState`]) as `opt/<name>`, all f32. The safetensors metadata
//! map holds `format` (= [`FORMAT`]), `model`, `optimizer`, `epoch`, `step`,
//! `optimizer_step` and `dnnc_version`. Saving is atomic ([`write_atomic`]): a crash leaves
//! the previous checkpoint or the new one, never a broken file. Loading checks everything
//! it reads and names the file and the tensor in every error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::runtime::fsutil::write_atomic;
use crate::runtime::optim::OptimizerState;

/// The value of the `format` metadata key.
pub const FORMAT: &str = "dnnc-checkpoint-1";
const PARAM: &str = "param/";
const OPT: &str = "opt/";

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointMeta {
    pub model: String,
    /// The optimizer's name as written (`Adam`), empty when no state is saved.
    pub optimizer: String,
    /// Completed epochs.
    pub epoch: u64,
    /// Completed training steps.
    pub step: u64,
    /// The version of dnnc that wrote the file.
    pub dnnc_version: String,
}

impl CheckpointMeta {
    /// Metadata stamped with this build's version.
    pub fn new(model: &str, optimizer: &str, epoch: u64, step: u64) -> CheckpointMeta {
        CheckpointMeta {
            model: model.to_string(),
            optimizer: optimizer.to_string(),
            epoch,
            step,
            dnnc_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A loaded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    /// Parameters without their `param/` prefix; in the expected order after `load_into`,
    /// sorted by name after `load`.
    pub params: Vec<(String, ArrayD<f32>)>,
    /// Optimizer state without the `opt/` prefix, sorted by name.
    pub optimizer: OptimizerState,
}

/// A checkpoint that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read checkpoint `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot save checkpoint `{path}`: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("checkpoint `{path}` is corrupt or truncated: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("checkpoint `{path}`: tensor `{name}` has dtype {dtype}, expected F32")]
    DType { path: PathBuf, name: String, dtype: String },
    #[error("checkpoint `{path}` has no parameter `{name}`")]
    Missing { path: PathBuf, name: String },
    #[error("checkpoint `{path}`: parameter `{name}` has shape {found:?} but the model expects {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("checkpoint `{path}` has a parameter `{name}` the model does not have")]
    Unexpected { path: PathBuf, name: String },
}

/// Little-endian bytes of a tensor in logical (row-major) order.
fn to_bytes(t: &ArrayD<f32>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(t.len() * 4);
    t.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    bytes
}

/// Writes parameters, optimizer state and metadata to `path` atomically.
pub fn save(
    path: &Path,
    params: &[(&str, &ArrayD<f32>)],
    optimizer: Option<&OptimizerState>,
    meta: &CheckpointMeta,
) -> Result<(), CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid { path: path.to_path_buf(), reason };
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in params {
        named.push((format!("{PARAM}{name}"), t.shape().to_vec(), to_bytes(t)));
    }
    for (name, t) in optimizer.map(|o| o.tensors.as_slice()).unwrap_or(&[]) {
        named.push((format!("{OPT}{name}"), t.shape().to_vec(), to_bytes(t)));
    }
    let mut names: Vec<&str> = named.iter().map(|(n, _, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(format!("tensor `{}` is given twice", w[0])));
    }
    let mut views = Vec::with_capacity(named.len());
    for (name, shape, bytes) in &named {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| invalid(e.to_string()))?;
        views.push((name.as_str(), view));
    }
    let info = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("model".to_string(), meta.model.clone()),
        ("optimizer".to_string(), meta.optimizer.clone()),
        ("epoch".to_string(), meta.epoch.to_string()),
        ("step".to_string(), meta.step.to_string()),
        ("optimizer_step".to_string(), optimizer.map_or(0, |o| o.step).to_string()),
        ("dnnc_version".to_string(), meta.dnnc_version.clone()),
    ]);
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| invalid(e.to_string()))?;
    write_atomic(path, &bytes).map_err(|source| CheckpointError::Write { path: path.to_path_buf(), source })
}

/// Reads a checkpoint, checking its structure and that every tensor is f32.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes =
        std::fs::read(path).map_err(|source| CheckpointError::Read { path: path.to_path_buf(), source })?;
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_path_buf(), reason };
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let info = header.metadata().clone().unwrap_or_default();
    let text = |key: &str| info.get(key).cloned().ok_or_else(|| corrupt(format!("metadata has no `{key}`")));
    let number = |key: &str| {
        let value = text(key)?;
        value.parse::<u64>().map_err(|_| corrupt(format!("metadata `{key}` is `{value}`, not a count")))
    };
    let format = text("format").map_err(|_| corrupt("it is not a dnnc checkpoint (no `format`)".into()))?;
    if format != FORMAT {
        return Err(corrupt(format!("unknown format `{format}`, expected `{FORMAT}`")));
    }
    let meta = CheckpointMeta {
        model: text("model")?,
        optimizer: text("optimizer")?,
        epoch: number("epoch")?,
        step: number("step")?,
        dnnc_version: text("dnnc_version")?,
    };
    let mut params = Vec::new();
    let mut opt = Vec::new();
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in tensors {
        if view.dtype() != Dtype::F32 {
            let dtype = format!("{:?}", view.dtype());
            return Err(CheckpointError::DType { path: path.to_path_buf(), name, dtype });
        }
        let data: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let t = ArrayD::from_shape_vec(IxDyn(view.shape()), data)
            .map_err(|e| corrupt(format!("tensor `{name}`: {e}")))?;
        if let Some(p) = name.strip_prefix(PARAM) {
            params.push((p.to_string(), t));
        } else if let Some(o) = name.strip_prefix(OPT) {
            opt.push((o.to_string(), t));
        } else {
            return Err(corrupt(format!("tensor `{name}` is neither `{PARAM}...` nor `{OPT}...`")));
        }
    }
    let optimizer = OptimizerState { step: number("optimizer_step")?, tensors: opt };
    Ok(Checkpoint { meta, params, optimizer })
}

/// Reads a checkpoint for a model whose parameters have these names and shapes: every
/// one must be present with its shape, and no other parameter may be. The parameters
/// come back in the order of `expected`. Optimizer state is checked by
/// [`Optimizer::import_state`](crate::runtime::optim::Optimizer::import_state).
pub fn load_into(path: &Path, expected: &[(String, Vec<usize>)]) -> Result<Checkpoint, CheckpointError> {
    let mut ckpt = load(path)?;
    if let Some((name, _)) = ckpt.params.iter().find(|(n, _)| !expected.iter().any(|(e, _)| e == n)) {
        return Err(CheckpointError::Unexpected { path: path.to_path_buf(), name: name.clone() });
    }
    let mut found: HashMap<String, ArrayD<f32>> = ckpt.params.drain(..).collect();
    for (name, shape) in expected {
        let Some(t) = found.remove(name) else {
            return Err(CheckpointError::Missing { path: path.to_path_buf(), name: name.clone() });
        };
        if t.shape() != shape.as_slice() {
            return Err(CheckpointError::Shape {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: shape.clone(),
                found: t.shape().to_vec(),
            });
        }
        ckpt.params.push((name.clone(), t));
    }
    Ok(ckpt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rng::Rng;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnnc-ckpt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn random(shape: &[usize], rng: &mut Rng) -> ArrayD<f32> {
        let n = shape.iter().product();
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.normal() as f32).collect()).expect("shape")
    }

    struct Fixture {
        params: Vec<(String, ArrayD<f32>)>,
        opt: OptimizerState,
        meta: CheckpointMeta,
    }

    impl Fixture {
        fn new() -> Fixture {
            let mut rng = Rng::new(1);
            let params = vec![
                ("dense_1.w".to_string(), random(&[4, 3], &mut rng)),
                ("dense_1.b".to_string(), random(&[3], &mut rng)),
            ];
            let tensors = vec![("dense_1.w/m".to_string(), random(&[4, 3], &mut rng))];
            let opt = OptimizerState { step: 17, tensors };
            Fixture { params, opt, meta: CheckpointMeta::new("Mlp", "Adam", 2, 17) }
        }

        fn expected(&self) -> Vec<(String, Vec<usize>)> {
            self.params.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect()
        }

        fn save(&self, path: &Path) -> Result<(), CheckpointError> {
            let refs: Vec<(&str, &ArrayD<f32>)> = self.params.iter().map(|(n, t)| (n.as_str(), t)).collect();
            save(path, &refs, Some(&self.opt), &self.meta)
        }
    }

    #[test]
    fn round_trip_keeps_every_tensor_and_the_metadata() {
        let dir = scratch("round");
        let path = dir.join("m.safetensors");
        let fx = Fixture::new();
        fx.save(&path).expect("save");
        let ck = load_into(&path, &fx.expected()).expect("load");
        assert_eq!(ck.params, fx.params);
        assert_eq!(ck.optimizer, fx.opt);
        assert_eq!(ck.meta, fx.meta);
        // The file is a plain safetensors file other tools can read: check the names directly.
        let bytes = fs::read(&path).expect("read");
        let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
        let mut names = st.names();
        names.sort_unstable();
        assert_eq!(names, ["opt/dense_1.w/m", "param/dense_1.b", "param/dense_1.w"]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn non_contiguous_tensors_are_saved_in_logical_order() {
        let dir = scratch("layout");
        let path = dir.join("t.safetensors");
        let t = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("shape");
        let transposed = t.t().to_owned();
        let view = t.t().into_owned();
        save(&path, &[("x", &view)], None, &CheckpointMeta::new("m", "", 0, 0)).expect("save");
        let ck = load(&path).expect("load");
        assert_eq!(ck.params[0].1, transposed);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn truncated_and_garbage_files_are_corrupt_and_named() {
        let dir = scratch("corrupt");
        let path = dir.join("m.safetensors");
        let fx = Fixture::new();
        fx.save(&path).expect("save");
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..bytes.len() - 5]).expect("truncate");
        let err = load(&path).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("m.safetensors"), "{err}");
        fs::write(&path, b"not a checkpoint at all").expect("write");
        assert!(matches!(load(&path), Err(CheckpointError::Corrupt { .. })));
        // A valid safetensors file without dnnc metadata is not a checkpoint either.
        let t = [0u8; 4];
        let view = TensorView::new(Dtype::F32, vec![1], &t).expect("view");
        fs::write(&path, safetensors::serialize([("param/x", view)], None).expect("ser")).expect("write");
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("not a dnnc checkpoint"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_unexpected_and_misshapen_parameters_are_named() {
        let dir = scratch("validate");
        let path = dir.join("m.safetensors");
        let fx = Fixture::new();
        fx.save(&path).expect("save");
        let mut want = fx.expected();
        want.push(("dense_2.w".to_string(), vec![3, 1]));
        match load_into(&path, &want) {
            Err(CheckpointError::Missing { name, .. }) => assert_eq!(name, "dense_2.w"),
            other => panic!("expected a missing-tensor error, got {other:?}"),
        }
        assert!(matches!(load_into(&path, &want[..1]), Err(CheckpointError::Unexpected { .. })));
        let mut bad = fx.expected();
        bad[0].1 = vec![3, 4];
        let err = load_into(&path, &bad).unwrap_err();
        match &err {
            CheckpointError::Shape { name, expected, found, .. } => {
                assert_eq!(
                    (name.as_str(), expected.as_slice(), found.as_slice()),
                    ("dense_1.w", &[3, 4][..], &[4, 3][..])
                );
            }
            other => panic!("expected a shape error, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("[4, 3]") && msg.contains("[3, 4]") && msg.contains("dense_1.w"), "{msg}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn non_f32_tensors_are_rejected() {
        let dir = scratch("dtype");
        let path = dir.join("m.safetensors");
        let data = [0u8; 8];
        // Complete metadata, so that the dtype check is what fails.
        let fx = Fixture::new();
        let mut info: HashMap<String, String> = HashMap::from([("format".into(), FORMAT.into())]);
        for (k, v) in
            [("model", "m"), ("optimizer", ""), ("epoch", "0"), ("step", "0"), ("optimizer_step", "0")]
        {
            info.insert(k.into(), v.into());
        }
        info.insert("dnnc_version".into(), fx.meta.dnnc_version.clone());
        let view = TensorView::new(Dtype::I64, vec![1], &data).expect("view");
        fs::write(&path, safetensors::serialize([("param/x", view)], Some(info)).expect("ser"))
            .expect("write");
        assert!(matches!(load(&path), Err(CheckpointError::DType { name, .. }) if name == "param/x"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_save_leaves_the_existing_checkpoint_intact() {
        let dir = scratch("failed");
        let path = dir.join("m.safetensors");
        let fx = Fixture::new();
        fx.save(&path).expect("save");
        let before = fs::read(&path).expect("read");
        // A save that fails before writing: the same tensor twice.
        let t = ArrayD::zeros(IxDyn(&[2]));
        let dup = [("a", &t), ("a", &t)];
        assert!(matches!(save(&path, &dup, None, &fx.meta), Err(CheckpointError::Invalid { .. })));
        assert_eq!(fs::read(&path).expect("read"), before);
        // Into a folder that does not exist: an error naming the path.
        let err = fx.save(&dir.join("nope").join("m.safetensors")).unwrap_err();
        assert!(matches!(err, CheckpointError::Write { .. }) && err.to_string().contains("nope"), "{err}");
        // Into a read-only folder. Root may write anyway; either way the file must be a
        // complete checkpoint, the old or the new one, with no temporary left behind.
        #[cfg(unix)]
        read_only_folder(&dir, &path, &before);
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    fn read_only_folder(dir: &Path, path: &Path, before: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        let fx = Fixture::new();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).expect("chmod");
        let mut newer = Fixture::new();
        newer.meta.epoch = 3;
        let result = newer.save(path);
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let ck = load_into(path, &fx.expected()).expect("still a valid checkpoint");
        match result {
            Err(_) => assert_eq!(fs::read(path).expect("read"), before),
            Ok(()) => assert_eq!(ck.meta.epoch, 3),
        }
        assert_eq!(fs::read_dir(dir).expect("list").count(), 1, "a temporary file was left behind");
    }
}
