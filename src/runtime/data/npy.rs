//! NumPy `.npy` arrays and `.npz` archives of them.
//!
//! Accepted: format versions 1, 2 and 3; C order; the little-endian types `<f4`, `<f8`,
//! `<i4`, `<i8`, `|u1` and `|b1`. They map
//! to the host types: floats to `f32` (so `<f8` loses precision), integers to `i64`, bytes
//! and booleans to `u8`. Big-endian and Fortran-order arrays are refused with a message
//! saying how to convert them. Data length is checked against the shape before copying.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::error::{DataError, file_label};
use super::zip::ZipArchive;
use super::{Dataset, HostArray};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The fields of a `.npy` header that matter.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// The text after `'key':` in a header dict, trimmed.
fn value_of<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let at = dict.find(&format!("'{key}'")).or_else(|| dict.find(&format!("\"{key}\"")))?;
    let rest = &dict[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

fn parse_header(file: &str, dict: &str) -> Result<Header, DataError> {
    let bad = |what: &str| DataError::invalid(file, format!("npy header {what}: {}", dict.trim()));
    let descr_text = value_of(dict, "descr").ok_or_else(|| bad("has no 'descr'"))?;
    let quote = descr_text
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| bad("has a bad 'descr'"))?;
    let descr: String = descr_text[1..].chars().take_while(|c| *c != quote).collect();
    let fortran_text = value_of(dict, "fortran_order").ok_or_else(|| bad("has no 'fortran_order'"))?;
    let fortran_order = fortran_text.starts_with("True");
    if !fortran_order && !fortran_text.starts_with("False") {
        return Err(bad("has a bad 'fortran_order'"));
    }
    let shape_text = value_of(dict, "shape").ok_or_else(|| bad("has no 'shape'"))?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("has a bad 'shape'"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("has a bad 'shape'"))?;
    Ok(Header { descr, fortran_order, shape })
}

pub fn read_npy(path: &Path) -> Result<HostArray, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_npy(&file_label(path), &bytes)
}

/// Decodes the bytes of a `.npy` file; `file` names it in errors.
pub fn parse_npy(file: &str, bytes: &[u8]) -> Result<HostArray, DataError> {
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        let found = bytes.iter().take(4).fold(0u32, |acc, &b| (acc << 8) | b as u32);
        return Err(DataError::BadMagic {
            file: file.into(),
            found,
            expected: "0x934E554D (\\x93NUMPY, a .npy file)",
        });
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => {
            return Err(DataError::invalid(
                file,
                format!("unsupported .npy format version {v}.{}", bytes[7]),
            ));
        }
    };
    let end =
        start.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or_else(|| DataError::Truncated {
            file: file.into(),
            detail: format!("the header claims {header_len} bytes but the file has {}", bytes.len()),
        })?;
    let dict = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| DataError::invalid(file, "the .npy header is not text"))?;
    let header = parse_header(file, dict)?;
    if header.fortran_order {
        return Err(DataError::invalid(
            file,
            "array is in Fortran order; save it with np.save(f, np.ascontiguousarray(a))",
        ));
    }
    let descr = header.descr.as_str();
    if descr.starts_with('>') {
        return Err(DataError::invalid(
            file,
            format!(
                "big-endian dtype '{descr}' is not supported; convert with a.astype(a.dtype.newbyteorder('<'))"
            ),
        ));
    }
    let width: usize = match descr {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        "|u1" | "|b1" => 1,
        _ => {
            return Err(DataError::invalid(
                file,
                format!("dtype '{descr}' is not supported (use <f4, <f8, <i4, <i8, |u1 or |b1)"),
            ));
        }
    };
    let dims_text = header.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×");
    let expected = header
        .shape
        .iter()
        .try_fold(width, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::invalid(file, format!("shape {dims_text} overflows")))?;
    let data = &bytes[end..];
    if data.len() != expected {
        let detail =
            format!("shape {dims_text} of '{descr}' needs {expected} bytes of data, found {}", data.len());
        return Err(if data.len() < expected {
            DataError::Truncated { file: file.into(), detail }
        } else {
            DataError::invalid(file, detail)
        });
    }
    let shape = IxDyn(&header.shape);
    let build = |e: ndarray::ShapeError| DataError::invalid(file, e.to_string());
    fn le<const N: usize, T: 'static>(raw: &[u8], f: fn([u8; N]) -> T) -> impl Iterator<Item = T> + '_ {
        raw.chunks_exact(N).map(move |c| f(c.try_into().unwrap_or([0; N])))
    }
    Ok(match descr {
        "<f4" => HostArray::F32(
            ArrayD::from_shape_vec(shape, le(data, f32::from_le_bytes).collect()).map_err(build)?,
        ),
        "<f8" => HostArray::F32(
            ArrayD::from_shape_vec(shape, le(data, f64::from_le_bytes).map(|v| v as f32).collect())
                .map_err(build)?,
        ),
        "<i4" => HostArray::I64(
            ArrayD::from_shape_vec(shape, le(data, i32::from_le_bytes).map(i64::from).collect())
                .map_err(build)?,
        ),
        "<i8" => HostArray::I64(
            ArrayD::from_shape_vec(shape, le(data, i64::from_le_bytes).collect()).map_err(build)?,
        ),
        _ => HostArray::U8(ArrayD::from_shape_vec(shape, data.to_vec()).map_err(build)?),
    })
}

/// Loads features and labels from the arrays `x_name` and `y_name` of a `.npz` archive
/// (each stored as `<name>.npy`; NumPy's `np.savez(f, x=..., y=...)` writes them so).
pub fn read_npz(path: &Path, x_name: &str, y_name: &str) -> Result<Dataset, DataError> {
    let file = file_label(path);
    let archive = ZipArchive::open(path)?;
    let load = |name: &str| -> Result<HostArray, DataError> {
        let member = format!("{name}.npy");
        let bytes = archive.read(&member).ok_or_else(|| {
            DataError::invalid(&file, format!("no array `{name}` (has: {})", archive.names().join(", ")))
        })??;
        parse_npy(&format!("{file}:{member}"), &bytes)
    };
    let (x, y) = (load(x_name)?, load(y_name)?);
    if x.len() != y.len() {
        return Err(DataError::invalid(
            file,
            format!("`{x_name}` has {} samples but `{y_name}` has {}", x.len(), y.len()),
        ));
    }
    let classes = match &y {
        HostArray::I64(y) if y.iter().all(|&v| v >= 0) => y.iter().max().map(|&m| m as usize + 1),
        _ => None,
    };
    let x_scale = if matches!(x, HostArray::U8(_)) { 1.0 / 255.0 } else { 1.0 };
    Ok(Dataset { name: file, x, y, x_scale, classes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file built by hand from the format spec (not by this module).
    fn npy(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend([version, 0]);
        let header = format!("{dict}\n");
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn every_supported_type_decodes() {
        let f4: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = parse_npy("a", &npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", &f4))
            .unwrap();
        assert_eq!(got, HostArray::F32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.5, -2.0]).unwrap()));
        let i4: Vec<u8> = [-7i32, 9, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }";
        let got = parse_npy("b", &npy(2, dict, &i4)).unwrap();
        assert_eq!(got, HostArray::I64(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![-7, 9, 0, 1]).unwrap()));
        let f8: Vec<u8> = 0.25f64.to_le_bytes().to_vec();
        let dict = "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (1,)}";
        assert_eq!(parse_npy("c", &npy(3, dict, &f8)).unwrap().shape(), &[1]);
        let dict = "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }";
        assert_eq!(
            parse_npy("d", &npy(1, dict, &[1, 0, 1])).unwrap(),
            HostArray::U8(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1, 0, 1]).unwrap())
        );
    }

    #[test]
    fn unsupported_layouts_are_refused_with_advice() {
        let data = [0u8; 8];
        let fortran = npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }", &data);
        assert!(parse_npy("f", &fortran).unwrap_err().to_string().contains("Fortran order"));
        let big = npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", &data);
        assert!(parse_npy("b", &big).unwrap_err().to_string().contains("big-endian dtype '>f4'"));
        let short = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", &data);
        let err = parse_npy("s.npy", &short).unwrap_err().to_string();
        assert_eq!(err, "s.npy: truncated: shape 3 of '<f4' needs 12 bytes of data, found 8");
        assert!(matches!(parse_npy("m", b"PK\x03\x04xxxxxxxx"), Err(DataError::BadMagic { .. })));
    }

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/small.npz")
    }

    #[test]
    fn npz_written_like_numpy_loads() {
        let ds = read_npz(&fixture(), "x", "y").unwrap();
        let want_x = vec![0.5, 1.0, -2.0, 3.25, 4.0, 5.5];
        assert_eq!(ds.x, HostArray::F32(ArrayD::from_shape_vec(IxDyn(&[3, 2]), want_x).unwrap()));
        assert_eq!(ds.y, HostArray::I64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![2, 0, 1]).unwrap()));
        assert_eq!(ds.classes, Some(3));
        let err = read_npz(&fixture(), "x", "labels").unwrap_err().to_string();
        assert!(err.contains("no array `labels` (has: x.npy, y.npy)"), "{err}");
    }

    #[test]
    fn corrupt_npz_member_fails_its_crc() {
        let mut bytes = std::fs::read(fixture()).unwrap();
        // The last float of x.npy (stored uncompressed) sits right before y's local header.
        let y_header = bytes.windows(4).rposition(|w| w == b"PK\x03\x04").unwrap();
        bytes[y_header - 1] ^= 0x40;
        let archive = ZipArchive::parse("c.npz", bytes).unwrap();
        let err = archive.read("x.npy").unwrap().unwrap_err().to_string();
        assert!(err.contains("CRC-32"), "{err}");
        assert!(ZipArchive::parse("n.npz", b"not a zip".to_vec()).is_err());
    }
}
