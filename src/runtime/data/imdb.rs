//! The IMDB sentiment dataset: reviews in a tarball to padded token-id sequences.
//!
//! Reads `imdb/aclImdb_v1_labeled_repack.tar.gz` (or any tarball with the official
//! `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` layout) with `flate2` + `tar`,
//! tokenizes with [`super::text`], builds the vocabulary from the TRAIN reviews only, and
//! fits every review to `length` ids. Labels: pos = 1, neg = 0. Samples are sorted by
//! (label, id) and then shuffled with a fixed seed, so that neither the order in the
//! tarball nor Keras-style "last 20 % for validation" splits see one class only.
//!
//! Encoding the 50,000 reviews takes seconds, so the result (both splits) is cached under
//! `<cache>/imdb/`, in a file keyed by vocabulary size, length, padding side and the
//! tarball's size and modification time, written atomically (temporary file, fsync,
//! rename). A cache file that does not match its key or is damaged is ignored and rebuilt.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};

use super::error::{DataError, file_label};
use super::locate::{DataDirs, IMDB};
use super::mnist::Split;
use super::text::{Pad, Vocabulary, fit_into, for_each_token};
use super::{Dataset, HostArray};
use crate::runtime::rng::Rng;

/// What to build: vocabulary size (ids < `vocab`), sequence length, split, padding side.
#[derive(Clone, Debug, PartialEq)]
pub struct ImdbOptions {
    pub vocab: usize,
    pub length: usize,
    pub split: Split,
    pub pad: Pad,
    /// Read and write the encoded cache (when the search path has a cache folder).
    pub cache: bool,
}

impl Default for ImdbOptions {
    fn default() -> Self {
        ImdbOptions { vocab: 10_000, length: 200, split: Split::Train, pad: Pad::Front, cache: true }
    }
}

/// Both splits, encoded: `x` is row-major `[n, length]`.
#[derive(Clone, Debug, PartialEq)]
struct Encoded {
    train: (Vec<i64>, Vec<i64>),
    test: (Vec<i64>, Vec<i64>),
}

/// Loads a split of IMDB from the `imdb/` folder of the data search path.
pub fn imdb(dirs: &DataDirs, options: &ImdbOptions) -> Result<Dataset, DataError> {
    let paths = dirs.locate(&IMDB, &[IMDB.files[0].name])?;
    let cache = if options.cache { dirs.cache.as_deref() } else { None };
    load_tarball(&paths[0], options, cache)
}

/// Loads a split from a tarball, using `<cache_root>/imdb/` for the encoded cache if given.
pub fn load_tarball(
    tarball: &Path,
    options: &ImdbOptions,
    cache_root: Option<&Path>,
) -> Result<Dataset, DataError> {
    if options.vocab < 3 || options.length == 0 {
        return Err(DataError::Usage(format!(
            "imdb needs a vocabulary of at least 3 ids and a length of at least 1, got {} and {}",
            options.vocab, options.length
        )));
    }
    let meta = std::fs::metadata(tarball).map_err(|e| DataError::io(tarball, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    let key = CacheKey {
        vocab: options.vocab as u64,
        length: options.length as u64,
        pad: options.pad,
        size: meta.len(),
        mtime,
    };
    let cache_file = cache_root.map(|root| root.join(IMDB.folder).join(key.file_name()));
    let encoded = match cache_file.as_deref().and_then(|f| read_cache(f, &key)) {
        Some(hit) => hit,
        None => {
            let encoded = encode_tarball(tarball, options)?;
            if let Some(file) = &cache_file {
                // The cache only saves time: failing to write it is not an error.
                let _ = write_cache(file, &key, &encoded);
            }
            encoded
        }
    };
    let (x, y) = match options.split {
        Split::Train => encoded.train,
        Split::Test => encoded.test,
    };
    let n = y.len();
    let name = format!("imdb ({})", options.split.name());
    let x = ArrayD::from_shape_vec(IxDyn(&[n, options.length]), x)
        .map_err(|e| DataError::invalid(&name, e.to_string()))?;
    let y = ArrayD::from_shape_vec(IxDyn(&[n]), y).map_err(|e| DataError::invalid(&name, e.to_string()))?;
    Ok(Dataset { name, x: HostArray::I64(x), y: HostArray::I64(y), x_scale: 1.0, classes: Some(2) })
}

/// One review: its label, its id within its folder, and its interned words.
struct Review {
    label: i64,
    id: u64,
    words: Vec<u32>,
}

/// Where an archive member belongs: (is train, label, id), or `None` for other files.
fn classify(path: &Path) -> Option<(bool, i64, &str)> {
    let parts: Vec<&str> = path.iter().filter_map(|c| c.to_str()).collect();
    let [.., split, class, file] = parts[..] else { return None };
    let train = match split {
        "train" => true,
        "test" => false,
        _ => return None,
    };
    let label = match class {
        "pos" => 1,
        "neg" => 0,
        _ => return None,
    };
    file.ends_with(".txt").then_some((train, label, file))
}

fn encode_tarball(tarball: &Path, options: &ImdbOptions) -> Result<Encoded, DataError> {
    let file = file_label(tarball);
    let gz = std::fs::File::open(tarball).map_err(|e| DataError::io(tarball, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(gz)));
    let broken = |e: std::io::Error| DataError::Gzip { file: file.clone(), detail: e.to_string() };
    let mut interned: HashMap<String, u32> = HashMap::new();
    let mut words: Vec<String> = Vec::new();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut text = String::new();
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let path = entry.path().map_err(broken)?.into_owned();
        let Some((is_train, label, name)) = classify(&path) else { continue };
        let id = name.split('_').next().and_then(|i| i.parse::<u64>().ok()).ok_or_else(|| {
            DataError::invalid(&file, format!("{}: review file names are <id>_<rating>.txt", path.display()))
        })?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(broken)?;
        text.clear();
        text.push_str(&String::from_utf8_lossy(&bytes));
        let mut review = Review { label, id, words: Vec::new() };
        for_each_token(&text, |t| {
            // Look up before inserting: most tokens are known words, and `entry` would
            // allocate a key for each of the ~12 million tokens.
            let w = match interned.get(t) {
                Some(&w) => w,
                None => {
                    let w = words.len() as u32;
                    interned.insert(t.to_string(), w);
                    words.push(t.to_string());
                    w
                }
            };
            review.words.push(w);
        });
        if is_train { train.push(review) } else { test.push(review) }
    }
    if train.is_empty() || test.is_empty() {
        return Err(DataError::invalid(
            file,
            "no reviews under aclImdb/train/{pos,neg}/ or aclImdb/test/{pos,neg}/ in this tarball",
        ));
    }
    let mut counts = vec![0u64; words.len()];
    train.iter().flat_map(|r| &r.words).for_each(|&w| counts[w as usize] += 1);
    let ranked = words.iter().zip(&counts).filter(|(_, c)| **c > 0).map(|(w, c)| (w.clone(), *c));
    let vocab = Vocabulary::from_counts(ranked, options.vocab);
    let table: Vec<i64> = words.iter().map(|w| vocab.id(w)).collect();
    let encode = |mut reviews: Vec<Review>, stream: u64| {
        reviews.sort_by_key(|r| (r.label, r.id));
        Rng::derive(113, stream).shuffle(&mut reviews);
        let mut x = vec![0i64; reviews.len() * options.length];
        let mut ids = Vec::new();
        for (r, row) in reviews.iter().zip(x.chunks_exact_mut(options.length)) {
            ids.clear();
            ids.extend(r.words.iter().map(|&w| table[w as usize]));
            fit_into(&ids, options.pad, row);
        }
        (x, reviews.iter().map(|r| r.label).collect())
    };
    Ok(Encoded { train: encode(train, 0), test: encode(test, 1) })
}

/// What a cache file must match to be used.
#[derive(Clone, Debug, PartialEq)]
struct CacheKey {
    vocab: u64,
    length: u64,
    pad: Pad,
    size: u64,
    mtime: u64,
}

const CACHE_MAGIC: &[u8; 8] = b"DNNCIMDB";
const CACHE_VERSION: u32 = 2;

impl CacheKey {
    fn file_name(&self) -> String {
        let pad = if self.pad == Pad::Front { "front" } else { "back" };
        format!("encoded-v{}-len{}-{pad}-{}-{}.bin", self.vocab, self.length, self.size, self.mtime)
    }

    /// Bytes per stored id: 2 while every id fits in a u16.
    fn id_width(&self) -> usize {
        if self.vocab <= 1 << 16 { 2 } else { 4 }
    }

    fn header(&self) -> Vec<u8> {
        let mut out = CACHE_MAGIC.to_vec();
        out.extend(CACHE_VERSION.to_le_bytes());
        for v in [self.vocab, self.length, u64::from(self.pad == Pad::Back), self.size, self.mtime] {
            out.extend(v.to_le_bytes());
        }
        out
    }
}

fn write_cache(path: &Path, key: &CacheKey, data: &Encoded) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let mut out = key.header();
    for (x, y) in [&data.train, &data.test] {
        out.extend((y.len() as u64).to_le_bytes());
        // Ids are below the vocabulary size, which the key holds and fixes the width by.
        if key.id_width() == 2 {
            x.iter().for_each(|&id| out.extend((id as u16).to_le_bytes()));
        } else {
            x.iter().for_each(|&id| out.extend((id as u32).to_le_bytes()));
        }
        out.extend(y.iter().map(|&l| l as u8));
    }
    let part: PathBuf = folder.join(format!(".{}.part.{}", file_label(path), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&part)?;
        std::io::Write::write_all(&mut f, &out)?;
        f.sync_all()?;
        std::fs::rename(&part, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// The cached encoding, or `None` if the file is absent, of another key, or damaged.
fn read_cache(path: &Path, key: &CacheKey) -> Option<Encoded> {
    let bytes = std::fs::read(path).ok()?;
    let header = key.header();
    let mut rest = bytes.strip_prefix(&header[..])?;
    let length = usize::try_from(key.length).ok()?;
    let mut split = || -> Option<(Vec<i64>, Vec<i64>)> {
        let n = usize::try_from(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?)).ok()?;
        let width = key.id_width();
        let x_bytes = n.checked_mul(length)?.checked_mul(width)?;
        let x_end = 8usize.checked_add(x_bytes)?;
        let y_end = x_end.checked_add(n)?;
        let raw = rest.get(8..x_end)?.chunks_exact(width);
        let x: Vec<i64> = if width == 2 {
            raw.map(|c| i64::from(u16::from_le_bytes([c[0], c[1]]))).collect()
        } else {
            raw.map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
        };
        let y: Vec<i64> = rest.get(x_end..y_end)?.iter().map(|&b| i64::from(b)).collect();
        if x.iter().any(|&id| id as u64 >= key.vocab) || y.iter().any(|&l| l > 1) {
            return None;
        }
        rest = &rest[y_end..];
        Some((x, y))
    };
    let (train, test) = (split()?, split()?);
    rest.is_empty().then_some(Encoded { train, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnnc-imdb-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("imdb")).unwrap();
        dir
    }

    /// A tarball in the release's layout, with files the loader must skip.
    fn tiny_tarball(root: &Path) -> PathBuf {
        let files = [
            ("aclImdb/README", "not a review"),
            ("aclImdb/train/urls_pos.txt", "http://example/0"),
            ("aclImdb/train/pos/0_9.txt", "Great great film"),
            ("aclImdb/train/pos/1_8.txt", "great acting<br />fine"),
            ("aclImdb/train/neg/0_1.txt", "Bad film, bad bad"),
            ("aclImdb/train/neg/1_2.txt", "boring film"),
            ("aclImdb/test/pos/0_10.txt", "zebra zebra zebra zebra great"),
            ("aclImdb/test/neg/0_3.txt", "bad zebra"),
        ];
        let path = root.join("imdb").join(IMDB.files[0].name);
        let gz =
            flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (name, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, text.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
        path
    }

    fn rows(ds: &Dataset) -> Vec<(Vec<i64>, i64)> {
        let (HostArray::I64(x), HostArray::I64(y)) = (&ds.x, &ds.y) else {
            panic!("imdb arrays are not i64")
        };
        let mut out: Vec<_> = x
            .outer_iter()
            .zip(y.iter())
            .map(|(r, &l)| (r.iter().copied().collect::<Vec<i64>>(), l))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn tiny_tarball_encodes_with_a_train_only_vocabulary() {
        let root = temp("encode");
        tiny_tarball(&root);
        // Train counts: bad 3, film 3, great 3, acting 1, boring 1, fine 1; vocab 6 keeps
        // bad=2, film=3, great=4, acting=5. `zebra` is frequent only in test: out of vocabulary.
        let options = ImdbOptions { vocab: 6, length: 4, split: Split::Train, pad: Pad::Front, cache: false };
        let dirs = DataDirs::only(&root);
        let train = imdb(&dirs, &options).unwrap();
        assert_eq!(train.x.shape(), &[4, 4]);
        assert_eq!(
            rows(&train),
            vec![(vec![0, 0, 1, 3], 0), (vec![0, 4, 4, 3], 1), (vec![0, 4, 5, 1], 1), (vec![2, 3, 2, 2], 0)]
        );
        let test = imdb(&dirs, &ImdbOptions { split: Split::Test, ..options.clone() }).unwrap();
        assert_eq!(rows(&test), vec![(vec![0, 0, 2, 1], 0), (vec![1, 1, 1, 4], 1)]);
        let back = imdb(&dirs, &ImdbOptions { split: Split::Test, pad: Pad::Back, ..options }).unwrap();
        assert_eq!(rows(&back), vec![(vec![1, 1, 1, 1], 1), (vec![2, 1, 0, 0], 0)]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cache_is_written_reused_and_rebuilt_when_damaged() {
        let root = temp("cache");
        let tarball = tiny_tarball(&root);
        let cache = root.join("cache");
        let options = ImdbOptions { vocab: 6, length: 3, split: Split::Train, pad: Pad::Front, cache: true };
        let fresh = load_tarball(&tarball, &options, Some(&cache)).unwrap();
        let files: Vec<PathBuf> =
            std::fs::read_dir(cache.join("imdb")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let cached_bytes = std::fs::read(&files[0]).unwrap();
        assert_eq!(load_tarball(&tarball, &options, Some(&cache)).unwrap(), fresh);
        let key = {
            let meta = std::fs::metadata(&tarball).unwrap();
            let mtime =
                meta.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
            CacheKey { vocab: 6, length: 3, pad: Pad::Front, size: meta.len(), mtime }
        };
        // A planted cache file of the same key is what the loader returns: it reads the cache.
        let planted = Encoded { train: (vec![5, 4, 3], vec![1]), test: (vec![2, 2, 2], vec![0]) };
        write_cache(&files[0], &key, &planted).unwrap();
        let HostArray::I64(x) = load_tarball(&tarball, &options, Some(&cache)).unwrap().x else {
            panic!("not i64")
        };
        assert_eq!(x.iter().copied().collect::<Vec<_>>(), vec![5, 4, 3]);
        std::fs::write(&files[0], &cached_bytes).unwrap();
        assert!(read_cache(&files[0], &key).is_some());
        assert!(read_cache(&files[0], &CacheKey { length: 4, ..key.clone() }).is_none());
        std::fs::write(&files[0], &cached_bytes[..cached_bytes.len() - 3]).unwrap();
        assert!(read_cache(&files[0], &key).is_none());
        assert_eq!(load_tarball(&tarball, &options, Some(&cache)).unwrap(), fresh);
        assert_eq!(std::fs::read(&files[0]).unwrap(), cached_bytes, "the damaged cache was not rewritten");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn corrupt_or_empty_tarballs_are_named_errors() {
        let root = temp("corrupt");
        let path = tiny_tarball(&root);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let options = ImdbOptions { cache: false, ..ImdbOptions::default() };
        let err = load_tarball(&path, &options, None).unwrap_err().to_string();
        assert!(err.starts_with("aclImdb_v1_labeled_repack.tar.gz: "), "{err}");
        std::fs::write(&path, b"").unwrap();
        assert!(load_tarball(&path, &options, None).is_err());
        assert!(load_tarball(&path, &ImdbOptions { vocab: 2, ..options }, None).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
