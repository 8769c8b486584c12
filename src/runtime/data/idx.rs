//! IDX files (the MNIST format), gzip-compressed or raw.
//!
//! Layout: magic `00 00 TT RR` (TT the element type, RR the rank), one big-endian u32 per
//! dimension, then the elements, big-endian, row-major. A file is accepted only if the data
//! is exactly as long as the dimensions say. A corrupt header cannot make the reader
//! allocate more than the file holds: sizes use checked arithmetic, and the data is read
//! with a limit one byte past what the header promises.

use std::io::Read;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::HostArray;
use super::error::{DataError, file_label};

/// The elements of an IDX file, in their stored type.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// A decoded IDX file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

impl IdxArray {
    /// Converts to the host types: `u8` stays, integers widen to `i64`, floats become `f32`.
    pub fn into_host(self) -> HostArray {
        let shape = IxDyn(&self.dims);
        // The element count equals the product of the dims by construction.
        let build_err = "IdxArray holds exactly prod(dims) elements";
        match self.data {
            IdxData::U8(v) => HostArray::U8(ArrayD::from_shape_vec(shape, v).expect(build_err)),
            IdxData::I8(v) => HostArray::I64(widen(shape, v.into_iter().map(i64::from))),
            IdxData::I16(v) => HostArray::I64(widen(shape, v.into_iter().map(i64::from))),
            IdxData::I32(v) => HostArray::I64(widen(shape, v.into_iter().map(i64::from))),
            IdxData::F32(v) => HostArray::F32(ArrayD::from_shape_vec(shape, v).expect(build_err)),
            IdxData::F64(v) => HostArray::F32(widen(shape, v.into_iter().map(|x| x as f32))),
        }
    }
}

fn widen<T>(shape: IxDyn, values: impl Iterator<Item = T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(shape, values.collect()).expect("IdxArray holds exactly prod(dims) elements")
}

/// Reads an IDX file, gunzipping it first if it starts with the gzip magic `1f 8b`.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_idx(&file_label(path), &bytes)
}

/// Decodes IDX bytes (gzip-compressed or raw); `file` names the source in errors.
pub fn parse_idx(file: &str, bytes: &[u8]) -> Result<IdxArray, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut reader = flate2::read::GzDecoder::new(bytes);
        parse_stream(file, &mut reader, true)
    } else {
        let mut reader = bytes;
        parse_stream(file, &mut reader, false)
    }
}

fn element_type(code: u8) -> Option<(&'static str, usize)> {
    Some(match code {
        0x08 => ("u8", 1),
        0x09 => ("i8", 1),
        0x0B => ("i16", 2),
        0x0C => ("i32", 4),
        0x0D => ("f32", 4),
        0x0E => ("f64", 8),
        _ => return None,
    })
}

fn read_up_to(
    file: &str,
    reader: &mut dyn Read,
    buf: &mut Vec<u8>,
    limit: u64,
    gz: bool,
) -> Result<(), DataError> {
    reader.take(limit).read_to_end(buf).map(|_| ()).map_err(|e| {
        if gz {
            DataError::Gzip { file: file.to_string(), detail: e.to_string() }
        } else {
            DataError::invalid(file, format!("read failed: {e}"))
        }
    })
}

fn parse_stream(file: &str, reader: &mut dyn Read, gz: bool) -> Result<IdxArray, DataError> {
    let mut head = Vec::with_capacity(4);
    read_up_to(file, reader, &mut head, 4, gz)?;
    if head.len() < 4 {
        return Err(DataError::Truncated {
            file: file.into(),
            detail: format!("{} bytes, too short for the 4-byte magic number", head.len()),
        });
    }
    let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let element = element_type(head[2]);
    let (Some((type_name, width)), [0, 0, _, rank]) = (element, [head[0], head[1], head[2], head[3]]) else {
        return Err(DataError::BadMagic {
            file: file.into(),
            found: magic,
            expected: "0x0000080X (an IDX file)",
        });
    };
    let rank = rank as usize;
    let mut dim_bytes = Vec::with_capacity(4 * rank);
    read_up_to(file, reader, &mut dim_bytes, 4 * rank as u64, gz)?;
    if dim_bytes.len() < 4 * rank {
        return Err(DataError::Truncated {
            file: file.into(),
            detail: format!("the header ends after {} of its {rank} dimensions", dim_bytes.len() / 4),
        });
    }
    let dims: Vec<usize> =
        dim_bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let dims_text = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×");
    let too_big = || DataError::invalid(file, format!("header dimensions {dims_text} overflow"));
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(too_big)?;
    let expected = count.checked_mul(width).ok_or_else(too_big)?;
    // One byte more than promised reveals trailing data; the capacity grows with what the
    // stream really holds, so a lying header costs nothing.
    let mut data = Vec::new();
    read_up_to(file, reader, &mut data, expected as u64 + 1, gz)?;
    let what = if width == 1 { "bytes".to_string() } else { format!("bytes ({type_name})") };
    if data.len() < expected {
        return Err(DataError::Truncated {
            file: file.into(),
            detail: format!("header says {dims_text} = {expected} {what} of data, found {}", data.len()),
        });
    }
    if data.len() > expected {
        return Err(DataError::invalid(
            file,
            format!("header says {dims_text} = {expected} {what} of data, but more follows"),
        ));
    }
    let data = decode(head[2], &data);
    Ok(IdxArray { dims, data })
}

fn decode(code: u8, raw: &[u8]) -> IdxData {
    fn be<const N: usize, T>(raw: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
    }
    match code {
        0x08 => IdxData::U8(raw.to_vec()),
        0x09 => IdxData::I8(raw.iter().map(|&b| b as i8).collect()),
        0x0B => IdxData::I16(be(raw, i16::from_be_bytes)),
        0x0C => IdxData::I32(be(raw, i32::from_be_bytes)),
        0x0D => IdxData::F32(be(raw, f32::from_be_bytes)),
        _ => IdxData::F64(be(raw, f64::from_be_bytes)),
    }
}

/// Encodes `u8` data as an IDX file, gzip-compressed if asked: for test fixtures and
/// stand-in datasets.
pub fn encode_idx_u8(dims: &[usize], data: &[u8], gzip: bool) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    if !gzip {
        return out;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &out).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_gzip_round_trip() {
        let data: Vec<u8> = (0..24).collect();
        for gz in [false, true] {
            let got = parse_idx("f", &encode_idx_u8(&[2, 3, 4], &data, gz)).unwrap();
            assert_eq!(got.dims, vec![2, 3, 4]);
            assert_eq!(got.data, IdxData::U8(data.clone()));
        }
    }

    #[test]
    fn big_endian_wide_types_decode() {
        // Hand-built: i32 [2] = [-2, 258], f32 [1] = [1.5].
        let ints = [0, 0, 0x0C, 1, 0, 0, 0, 2, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 1, 2];
        assert_eq!(parse_idx("i", &ints).unwrap().data, IdxData::I32(vec![-2, 258]));
        let floats = [0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3F, 0xC0, 0, 0];
        assert_eq!(parse_idx("f", &floats).unwrap().data, IdxData::F32(vec![1.5]));
    }

    #[test]
    fn truncated_files_say_what_the_header_promised() {
        let full = encode_idx_u8(&[3, 2, 2], &[7; 12], false);
        let err = parse_idx("a.idx", &full[..full.len() - 5]).unwrap_err().to_string();
        assert_eq!(err, "a.idx: truncated: header says 3×2×2 = 12 bytes of data, found 7");
        let gz = encode_idx_u8(&[3, 2, 2], &[7; 12], true);
        // A gzip stream cut short fails as a corrupt stream or as truncated data.
        let err = parse_idx("a.gz", &gz[..gz.len() - 10]).unwrap_err().to_string();
        assert!(err.starts_with("a.gz: corrupt gzip stream") || err.starts_with("a.gz: truncated"), "{err}");
    }

    #[test]
    fn wrong_magic_and_trailing_bytes_are_rejected() {
        let mut bytes = encode_idx_u8(&[1], &[1], false);
        bytes[2] = 0x07;
        bytes[3] = 0x03;
        let err = parse_idx("m", &bytes).unwrap_err().to_string();
        assert_eq!(err, "m: wrong magic number 0x00000703, expected 0x0000080X (an IDX file)");
        let mut long = encode_idx_u8(&[2], &[1, 2], false);
        long.push(3);
        assert!(parse_idx("t", &long).unwrap_err().to_string().contains("more follows"));
    }

    #[test]
    fn absurd_header_does_not_allocate_or_overflow() {
        // 4 dims of 2^32-1: the product overflows usize.
        let mut bytes = vec![0, 0, 0x0E, 4];
        bytes.extend([0xFF; 16]);
        assert!(parse_idx("h", &bytes).unwrap_err().to_string().contains("overflow"));
        // 2^31 × 2^31 bytes fits in u64 but the file holds none of it.
        let huge = [0, 0, 0x08, 2, 0x80, 0, 0, 0, 0x80, 0, 0, 0];
        assert!(matches!(parse_idx("h", &huge), Err(DataError::Truncated { .. })));
    }

    #[test]
    fn wide_integers_become_i64_hosts() {
        let ints = [0, 0, 0x0B, 1, 0, 0, 0, 2, 0xFF, 0xFE, 0x01, 0x00];
        let host = parse_idx("i", &ints).unwrap().into_host();
        assert_eq!(host, HostArray::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![-2, 256]).unwrap()));
    }
}
