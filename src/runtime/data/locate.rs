//! Finding dataset files: the search path and the optional download into the cache.
//!
//! Search order, per file: the `--data DIR` folder given on the command line, then
//! `$DNNC_DATA`, then the per-user cache (`$XDG_CACHE_HOME/dnnc`, else `~/.cache/dnnc`).
//! Each dataset lives in its own subfolder of a root (`mnist/`, `fashion_mnist/`, `imdb/`,
//! `cifar10/`) under its official file names. A file found nowhere is downloaded into the
//! cache with the `curl` program (no HTTP client is compiled in) when downloading is on,
//! checked against its published size and MD5, and renamed into place only when it is
//! whole, so a cache never holds a partial file under a real name. `DNNC_OFFLINE=1` turns
//! downloading off; tests always build a [`DataDirs`] with downloading off.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::DataError;
use super::md5::md5_of;

/// One file of a dataset and where it can be fetched from.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec {
    pub name: &'static str,
    /// Where to download it from, tried in order; empty when it has no public source.
    pub urls: &'static [&'static str],
    pub size: Option<u64>,
    pub md5: Option<&'static str>,
}

/// A dataset's folder under a data root and its files.
#[derive(Clone, Copy, Debug)]
pub struct DatasetFiles {
    pub folder: &'static str,
    pub files: &'static [FileSpec],
}

impl DatasetFiles {
    pub fn file(&self, name: &str) -> Option<&'static FileSpec> {
        self.files.iter().find(|f| f.name == name)
    }
}

// MNIST's home page has refused downloads at times, so a mirror comes first.
macro_rules! mnist_file {
    ($name:literal, $size:expr, $md5:literal) => {
        FileSpec {
            name: $name,
            urls: &[
                concat!("https://ossci-datasets.s3.amazonaws.com/mnist/", $name),
                concat!("https://yann.lecun.com/exdb/mnist/", $name),
            ],
            size: Some($size),
            md5: Some($md5),
        }
    };
}

macro_rules! fashion_file {
    ($name:literal, $md5:literal) => {
        FileSpec {
            name: $name,
            urls: &[concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", $name)],
            size: None,
            md5: Some($md5),
        }
    };
}

/// MNIST: sizes and sums from the data README (they match the official release).
pub const MNIST: DatasetFiles = DatasetFiles {
    folder: "mnist",
    files: &[
        mnist_file!("train-images-idx3-ubyte.gz", 9_912_422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        mnist_file!("train-labels-idx1-ubyte.gz", 28_881, "d53e105ee54ea40749a09fcbcd1e9432"),
        mnist_file!("t10k-images-idx3-ubyte.gz", 1_648_877, "9fb629c4189551a2d022fa330f9573f3"),
        mnist_file!("t10k-labels-idx1-ubyte.gz", 4_542, "ec29112dd5afa0611ce80d1b7f02629c"),
    ],
};

/// Fashion-MNIST: the sums published by Zalando Research with the dataset.
pub const FASHION_MNIST: DatasetFiles = DatasetFiles {
    folder: "fashion_mnist",
    files: &[
        fashion_file!("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        fashion_file!("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        fashion_file!("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        fashion_file!("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ],
};

/// IMDB: the repacked tarball has no public source, so it is never downloaded.
pub const IMDB: DatasetFiles = DatasetFiles {
    folder: "imdb",
    files: &[FileSpec {
        name: "aclImdb_v1_labeled_repack.tar.gz",
        urls: &[],
        size: Some(28_630_761),
        md5: Some("aaaf14d0f0a611a7058e8962a95c5eee"),
    }],
};

macro_rules! cifar_file {
    ($name:literal) => {
        FileSpec { name: $name, urls: &[], size: Some(10000 * 3073), md5: None }
    };
}

/// CIFAR-10, binary version: the batches come inside one tarball upstream
/// (`cifar-10-binary.tar.gz`), so they are not downloaded one by one.
pub const CIFAR10: DatasetFiles = DatasetFiles {
    folder: "cifar10",
    files: &[
        cifar_file!("data_batch_1.bin"),
        cifar_file!("data_batch_2.bin"),
        cifar_file!("data_batch_3.bin"),
        cifar_file!("data_batch_4.bin"),
        cifar_file!("data_batch_5.bin"),
        cifar_file!("test_batch.bin"),
    ],
};

/// The data search path and whether missing files may be downloaded.
#[derive(Clone, Debug, Default)]
pub struct DataDirs {
    /// `--data DIR`.
    pub explicit: Option<PathBuf>,
    /// `$DNNC_DATA`.
    pub env: Option<PathBuf>,
    /// The per-user cache root (`~/.cache/dnnc`); downloads go here.
    pub cache: Option<PathBuf>,
    pub download: bool,
    /// Seconds one download may take before `curl` gives up.
    pub timeout_secs: u64,
}

impl DataDirs {
    /// The search path of a normal run: `--data`, `$DNNC_DATA`, the cache; downloading on
    /// unless `DNNC_OFFLINE` is set to anything but `0` or the empty string.
    pub fn from_env(explicit: Option<&Path>) -> DataDirs {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let cache = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("dnnc"));
        let offline = var("DNNC_OFFLINE").is_some_and(|v| v != "0");
        DataDirs {
            explicit: explicit.map(Path::to_path_buf),
            env: var("DNNC_DATA").map(PathBuf::from),
            cache,
            download: !offline,
            timeout_secs: 900,
        }
    }

    /// Only the given folder, never downloading: what tests use.
    pub fn only(dir: &Path) -> DataDirs {
        DataDirs { explicit: Some(dir.to_path_buf()), timeout_secs: 900, ..DataDirs::default() }
    }

    /// The roots in search order, without repeats.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for root in [&self.explicit, &self.env, &self.cache].into_iter().flatten() {
            if !roots.contains(root) {
                roots.push(root.clone());
            }
        }
        roots
    }

    /// The paths of the named files of a dataset, each searched along the path and
    /// downloaded when allowed. Fails naming every file still missing.
    pub fn locate(&self, dataset: &DatasetFiles, names: &[&str]) -> Result<Vec<PathBuf>, DataError> {
        let roots = self.roots();
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let mut download_errors = Vec::new();
        for name in names {
            let hit = roots.iter().map(|r| r.join(dataset.folder).join(name)).find(|p| p.is_file());
            match hit {
                Some(path) => found.push(path),
                None => match self.try_download(dataset, name) {
                    Ok(Some(path)) => found.push(path),
                    Ok(None) => missing.push(*name),
                    Err(e) => {
                        download_errors.push(e.to_string());
                        missing.push(*name);
                    }
                },
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        Err(DataError::Missing(self.missing_message(dataset, &missing, &roots, &download_errors)))
    }

    fn missing_message(
        &self,
        dataset: &DatasetFiles,
        missing: &[&str],
        roots: &[PathBuf],
        errors: &[String],
    ) -> String {
        let folders: Vec<String> =
            roots.iter().map(|r| r.join(dataset.folder).display().to_string()).collect();
        let mut msg = format!("dataset `{}`: missing {}", dataset.folder, missing.join(", "));
        if folders.is_empty() {
            msg.push_str("; no data folder to search (pass --data DIR, or set DNNC_DATA or HOME)");
            return msg;
        }
        msg.push_str(&format!("; searched {}", folders.join(", ")));
        for e in errors {
            msg.push_str(&format!("; {e}"));
        }
        if !self.download && missing.iter().any(|m| dataset.file(m).is_some_and(|f| !f.urls.is_empty())) {
            msg.push_str("; downloading is off (DNNC_OFFLINE)");
        }
        let target = self.cache.as_ref().or(roots.first()).map(|r| r.join(dataset.folder));
        if let Some(target) = target {
            msg.push_str(&format!(
                "; put {} in {}/ or pass --data DIR",
                missing.join(", "),
                target.display()
            ));
        }
        if dataset.folder == CIFAR10.folder {
            msg.push_str(" (the .bin files of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz)");
        }
        msg
    }

    /// Downloads one file into the cache when that is allowed and it has a source.
    fn try_download(&self, dataset: &DatasetFiles, name: &str) -> Result<Option<PathBuf>, DataError> {
        let (Some(cache), true) = (&self.cache, self.download) else { return Ok(None) };
        let Some(spec) = dataset.file(name) else { return Ok(None) };
        if spec.urls.is_empty() {
            return Ok(None);
        }
        let dest = cache.join(dataset.folder).join(name);
        let mut last = None;
        for url in spec.urls {
            match download(url, &dest, spec, self.timeout_secs) {
                Ok(()) => return Ok(Some(dest)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| DataError::Usage(format!("{name}: no download source"))))
    }
}

/// Fetches `url` with curl into a temporary file beside `dest`, checks its size and MD5
/// against `spec`, and renames it into place. Nothing is left behind on failure.
pub fn download(url: &str, dest: &Path, spec: &FileSpec, timeout_secs: u64) -> Result<(), DataError> {
    let fail = |detail: String| DataError::Download { url: url.to_string(), detail };
    let folder = dest.parent().ok_or_else(|| fail("destination has no folder".into()))?;
    std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    let part = folder.join(format!(".{}.part.{}", spec.name, std::process::id()));
    let result = (|| {
        let status = Command::new("curl")
            .args([
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--connect-timeout",
                "20",
                "--max-time",
            ])
            .arg(timeout_secs.to_string())
            .arg("--output")
            .arg(&part)
            .arg(url)
            .status();
        match status {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail("the `curl` program is not installed".into()));
            }
            Err(e) => return Err(fail(format!("cannot run curl: {e}"))),
            Ok(s) if !s.success() => return Err(fail(format!("curl exited with {s}"))),
            Ok(_) => {}
        }
        verify(&part, spec).map_err(fail)?;
        let file = std::fs::File::open(&part).map_err(|e| DataError::io(&part, e))?;
        file.sync_all().map_err(|e| DataError::io(&part, e))?;
        std::fs::rename(&part, dest).map_err(|e| DataError::io(dest, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// Checks a file's size and MD5 against what its publisher states.
pub fn verify(path: &Path, spec: &FileSpec) -> Result<(), String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if let Some(size) = spec.size
        && len != size
    {
        return Err(format!("got {len} bytes, expected {size}"));
    }
    if let Some(expected) = spec.md5 {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let got = md5_of(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
        if got != expected {
            return Err(format!("md5 {got}, expected {expected}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnnc-locate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn explicit_folder_comes_before_env_and_cache() {
        let root = temp("order");
        for sub in ["a", "b", "c"] {
            std::fs::create_dir_all(root.join(sub).join("mnist")).unwrap();
        }
        std::fs::write(root.join("b/mnist/t10k-labels-idx1-ubyte.gz"), b"b").unwrap();
        std::fs::write(root.join("c/mnist/t10k-labels-idx1-ubyte.gz"), b"c").unwrap();
        std::fs::write(root.join("c/mnist/t10k-images-idx3-ubyte.gz"), b"c").unwrap();
        let dirs = DataDirs {
            explicit: Some(root.join("a")),
            env: Some(root.join("b")),
            cache: Some(root.join("c")),
            ..DataDirs::default()
        };
        let got = dirs.locate(&MNIST, &["t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]).unwrap();
        assert_eq!(got[0], root.join("b/mnist/t10k-labels-idx1-ubyte.gz"));
        assert_eq!(got[1], root.join("c/mnist/t10k-images-idx3-ubyte.gz"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn missing_files_error_names_every_file_and_folder() {
        let root = temp("missing");
        let dirs = DataDirs {
            explicit: Some(root.join("x")),
            cache: Some(root.join("cache")),
            ..DataDirs::default()
        };
        let err =
            dirs.locate(&MNIST, &["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]).unwrap_err();
        let msg = err.to_string();
        for needle in [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            &root.join("x/mnist").display().to_string(),
            &format!("in {}/ or pass --data DIR", root.join("cache/mnist").display()),
            "downloading is off",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in {msg}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    /// `curl` fetches `file://` URLs too, which tests the download path without a network.
    #[test]
    fn download_checks_the_md5_and_leaves_nothing_behind_on_failure() {
        let root = temp("download");
        let source = root.join("source.bin");
        std::fs::write(&source, b"abc").unwrap();
        let url: &'static str = Box::leak(format!("file://{}", source.display()).into_boxed_str());
        let good = FileSpec {
            name: "f.bin",
            urls: &[],
            size: Some(3),
            md5: Some("900150983cd24fb0d6963f7d28e17f72"),
        };
        let bad = FileSpec { md5: Some("00000000000000000000000000000000"), ..good };
        let dest = root.join("cache/f.bin");
        match download(url, &dest, &bad, 30) {
            Err(DataError::Download { detail, .. }) if detail.contains("not installed") => return,
            Err(e) => assert!(e.to_string().contains("md5 900150983cd24fb0d6963f7d28e17f72"), "{e}"),
            Ok(()) => panic!("a wrong md5 was accepted"),
        }
        let leftovers: Vec<_> = std::fs::read_dir(root.join("cache")).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        download(url, &dest, &good, 30).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        let _ = std::fs::remove_dir_all(&root);
    }
}
